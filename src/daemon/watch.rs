//! The daemon watches its segment (`notify`: inotify on Linux) and re-extracts a module soon
//! after it changes, so the next request for it — from the daemon or from a CLI process — is a
//! hit.
//!
//! Only `.py` files count, and nothing under the segment's own `.trifecta/` and `_ctx/` (the
//! cache and telemetry the CLI writes on every run would otherwise wake the daemon each time).
//! Links are not followed. A changed path is turned back into the module a URI would name and
//! resolved exactly as `ast symbols` resolves it ([`resolve::resolve_module`]: beneath the
//! segment, no escape), so the entry written is the one a later lookup reads. Events are
//! gathered until [`DEBOUNCE`] after the last one (an editor's save is several events), and a burst is
//! bounded ([`MAX_PENDING`] paths; the rest are simply extracted on their next request).

use crate::cache::CacheKey;
use crate::cache::hot_tier::HotTier;
use crate::cache::service::SymbolCache;
use crate::config::{CacheSettings, LookupPurpose};
use crate::symbols::resolve::{self, Segment};
use crate::telemetry::event::ReextractResult;
use crate::telemetry::{Event, Level, Telemetry};
use notify::{EventKind, RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Component, Path};
use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Quiet time after the last relevant event before a batch is re-extracted.
pub const DEBOUNCE: Duration = Duration::from_millis(50);
/// How long the thread sleeps when nothing is pending.
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// Most distinct paths gathered into one batch.
pub const MAX_PENDING: usize = 4096;

/// What the watcher's thread needs to write the cache as a request would.
pub struct WatchCtx {
    /// The segment.
    pub root: Segment,
    /// Cache settings (persistence on).
    pub settings: CacheSettings,
    /// The daemon's telemetry.
    pub telemetry: Telemetry,
    /// The daemon's memory tier (and its turn at the database).
    pub hot: Arc<HotTier>,
}

/// A running watch; dropping it stops the watcher, and its thread ends with it.
pub struct Watching {
    watcher: Option<notify::RecommendedWatcher>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        // Dropping the watcher drops the channel's sender: the thread's receive then fails.
        self.watcher.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Start watching `ctx.root` recursively. Its lookups count as background refreshes in
/// `ast cache stats`, not as hits or misses ([`LookupPurpose::Refresh`]).
pub fn start(mut ctx: WatchCtx) -> Result<Watching, String> {
    ctx.settings.purpose = LookupPurpose::Refresh;
    let (tx, rx) = channel::<notify::Result<notify::Event>>();
    let config = notify::Config::default().with_follow_symlinks(false);
    let mut watcher = notify::RecommendedWatcher::new(tx, config).map_err(|e| e.to_string())?;
    watcher
        .watch(&ctx.root.path, RecursiveMode::Recursive)
        .map_err(|e| e.to_string())?;
    let thread = std::thread::Builder::new()
        .name("trifecta-watch".into())
        .stack_size(64 * 1024 * 1024)
        .spawn(move || {
            let mut pending: BTreeSet<String> = BTreeSet::new();
            // When the batch is due: DEBOUNCE after the last *relevant* event. Other events
            // (reads, our own folders) must not postpone it, or a busy reader of the
            // telemetry file would starve the re-extraction.
            let mut due: Option<Instant> = None;
            loop {
                let wait = due.map_or(IDLE_WAIT, |d| d.saturating_duration_since(Instant::now()));
                match rx.recv_timeout(wait) {
                    Ok(Ok(ev)) => {
                        if gather(&ctx.root.path, &ev, &mut pending) {
                            due = Some(Instant::now() + DEBOUNCE);
                        }
                    }
                    Ok(Err(_)) | Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                if due.is_some_and(|d| Instant::now() >= d) {
                    due = None;
                    reextract(&ctx, std::mem::take(&mut pending));
                }
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(Watching {
        watcher: Some(watcher),
        thread: Some(thread),
    })
}

/// Add the modules an event touched (created, written, renamed in) to `pending`; true when it
/// touched any.
fn gather(root: &Path, ev: &notify::Event, pending: &mut BTreeSet<String>) -> bool {
    if !matches!(ev.kind, EventKind::Create(_) | EventKind::Modify(_)) {
        return false;
    }
    let mut any = false;
    for p in &ev.paths {
        if pending.len() >= MAX_PENDING {
            break;
        }
        if let Some(m) = module_of(root, p) {
            pending.insert(m);
            any = true;
        }
    }
    any
}

/// The dotted module a URI would name for `path` (`pkg/mod.py` → `pkg.mod`,
/// `pkg/__init__.py` → `pkg`), or `None` for anything that is not a module a URI can name, or
/// lies in the segment's own `.trifecta/` or `_ctx/`.
pub fn module_of(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let mut parts: Vec<&str> = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?),
            _ => return None,
        }
    }
    if matches!(parts.first(), Some(&".trifecta" | &"_ctx")) {
        return None;
    }
    let last = parts.pop()?.strip_suffix(".py")?;
    if last != "__init__" {
        parts.push(last);
    }
    let ident = |s: &&str| {
        let mut ch = s.chars();
        ch.next()
            .is_some_and(|c| c == '_' || unicode_ident::is_xid_start(c))
            && ch.all(unicode_ident::is_xid_continue)
    };
    (!parts.is_empty() && parts.iter().all(ident)).then(|| parts.join("."))
}

/// Re-extract `modules` into the cache (and the memory tier), one database turn each.
fn reextract(ctx: &WatchCtx, modules: BTreeSet<String>) {
    let t = std::time::Instant::now();
    let mut done = 0u64;
    let mut hits = 0u64;
    for m in &modules {
        let components: Vec<String> = m.split('.').map(String::from).collect();
        let Ok(file) = resolve::resolve_module(&ctx.root, &components) else {
            continue; // deleted again, or not a module after all
        };
        let Ok(bytes) = crate::symbols::read::read_capped(
            &file.file,
            crate::commands::symbols::MAX_SOURCE_BYTES,
        ) else {
            continue;
        };
        let key = CacheKey::for_file(&file.file, &bytes);
        let (served, _) = SymbolCache::serve_with_tier(
            &ctx.root,
            &ctx.settings,
            &Telemetry::disabled(),
            &ctx.hot,
            &file.file_rel,
            &key,
            &bytes,
        );
        done += 1;
        hits += u64::from(served.miss.is_none());
    }
    let ev = Event::DaemonReextract {
        result: ReextractResult {
            status: "ok".into(),
            modules: done,
            already_cached: hits,
        },
    };
    let line = ev.into_line().timed(crate::cache::service::elapsed_ms(t));
    ctx.telemetry.event(Level::Lite, line);
    ctx.telemetry.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_the_modules_a_uri_names_and_our_own_folders_are_ignored() {
        let r = Path::new("/s");
        let m = |p: &str| module_of(r, Path::new(p));
        assert_eq!(m("/s/pkg/mod.py").as_deref(), Some("pkg.mod"));
        assert_eq!(m("/s/pkg/__init__.py").as_deref(), Some("pkg"));
        assert_eq!(m("/s/app.py").as_deref(), Some("app"));
        assert_eq!(m("/s/__init__.py"), None);
        assert_eq!(m("/s/pkg/mod.pyc"), None);
        assert_eq!(m("/s/my-pkg/mod.py"), None, "not an identifier");
        assert_eq!(m("/s/.trifecta/cache/x.py"), None);
        assert_eq!(m("/s/_ctx/telemetry/x.py"), None);
        assert_eq!(m("/elsewhere/x.py"), None);
    }
}
