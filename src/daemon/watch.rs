//! The daemon watches its segment (inotify, directly) and re-extracts a module soon after it
//! changes, so the next request for it — from the daemon or from a CLI process — is a hit.
//!
//! Only `.py` files count, and nothing under the segment's own `.trifecta/` and `_ctx/` (the
//! cache and telemetry the CLI writes on every run would otherwise wake the daemon each time).
//! Links are not followed. A changed path is turned back into the module a URI would name and
//! resolved exactly as `ast symbols` resolves it ([`resolve::resolve_module`]: beneath the
//! segment, no escape), so the entry written is the one a later lookup reads. Events are
//! gathered until [`DEBOUNCE`] after the last one (an editor's save is several events), and a burst is
//! bounded ([`MAX_PENDING`] paths; the rest are simply extracted on their next request).
//!
//! Why inotify itself and not the `notify` crate (used before): `notify` asks the kernel for
//! every *open* of a watched file and offers no way to leave that out, and every daemon request
//! opens its module to hash the content. So each request woke two threads for an event nobody
//! used: 38 % of the daemon's CPU time under `perf`, on a 2-core machine where the request
//! thread waited for them. Here the watch asks only for what changes a module (created,
//! written, renamed in, touched), watches only directories a module can live in (names that
//! are identifiers, not `.trifecta/` or `_ctx/`: the cache's own writes wake nothing), and
//! watches directories created or moved in later. A queue overflow loses events, never
//! correctness: every request checks the content key anyway.

use crate::cache::CacheKey;
use crate::cache::hot_tier::HotTier;
use crate::cache::service::SymbolCache;
use crate::config::{CacheSettings, LookupPurpose};
use crate::segment_fs::{Anchor, Kind, OpenDir};
use crate::symbols::resolve::{self, Segment};
use crate::telemetry::event::ReextractResult;
use crate::telemetry::{Event, Level, Telemetry};
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use std::collections::{BTreeSet, HashMap};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Quiet time after the last relevant event before a batch is re-extracted.
pub const DEBOUNCE: Duration = Duration::from_millis(50);
/// Longest the thread sleeps when nothing is pending (a stop also wakes it at once).
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// Most distinct paths gathered into one batch.
pub const MAX_PENDING: usize = 4096;
/// Most directories watched (each is an inotify watch, a per-user kernel resource).
pub const MAX_WATCHED_DIRS: usize = 65_536;

/// What the watch asks the kernel for: a file created, written, renamed in or touched, in a
/// directory. Not opens or reads. The watch is added on `/proc/self/fd/N` of a directory opened
/// beneath the segment without following any link ([`crate::segment_fs`]), so the kernel must
/// follow that one magic link (no `DONT_FOLLOW`): it leads exactly to the directory opened, and a
/// path component swapped for a link meanwhile cannot lead the watch (or the listing) outside.
fn mask() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::MODIFY
        | WatchMask::CLOSE_WRITE
        | WatchMask::MOVED_TO
        | WatchMask::ATTRIB
        | WatchMask::ONLYDIR
}

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

/// A running watch; dropping it stops the thread (woken through a pipe) and waits for it.
pub struct Watching {
    wake: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Watching {
    fn drop(&mut self) {
        // Closing the write end makes the read end readable (end of file): the thread returns.
        self.wake.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A pipe: (read end, write end), both close-on-exec.
fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    use std::os::fd::FromRawFd;
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    // SAFETY: both descriptors were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Start watching `ctx.root` recursively. Its lookups count as background refreshes in
/// `ast cache stats`, not as hits or misses ([`LookupPurpose::Refresh`]).
pub fn start(mut ctx: WatchCtx) -> Result<Watching, String> {
    ctx.settings.purpose = LookupPurpose::Refresh;
    let mut tree = Tree::new(&ctx.root).map_err(|e| e.to_string())?;
    let (stop_r, stop_w) = pipe()?;
    let thread = std::thread::Builder::new()
        .name("trifecta-watch".into())
        .stack_size(64 * 1024 * 1024)
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            let mut pending: BTreeSet<String> = BTreeSet::new();
            // When the batch is due: DEBOUNCE after the last relevant event.
            let mut due: Option<Instant> = None;
            loop {
                let wait = due.map_or(IDLE_WAIT, |d| d.saturating_duration_since(Instant::now()));
                let (changed, stop) =
                    wait_either(tree.inotify.as_raw_fd(), stop_r.as_raw_fd(), wait);
                if stop {
                    return;
                }
                if changed && tree.read(&mut buf, &mut pending) {
                    due = Some(Instant::now() + DEBOUNCE);
                }
                if due.is_some_and(|d| Instant::now() >= d) {
                    due = None;
                    reextract(&ctx, std::mem::take(&mut pending));
                }
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(Watching {
        wake: Some(stop_w),
        thread: Some(thread),
    })
}

/// `poll(2)` on the inotify descriptor and the stop pipe: (events readable, stop asked).
fn wait_either(events: RawFd, stop: RawFd, timeout: Duration) -> (bool, bool) {
    let mut fds = [
        libc::pollfd {
            fd: events,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: stop,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: two valid pollfds for the duration of the call.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
    if n <= 0 {
        return (false, false); // timed out, or a signal
    }
    (fds[0].revents != 0, fds[1].revents != 0)
}

/// The watched directories: one inotify watch per directory a module can live in.
struct Tree {
    inotify: Inotify,
    /// The segment, opened: every directory is opened and listed beneath it.
    anchor: Arc<Anchor>,
    root: PathBuf,
    dirs: HashMap<WatchDescriptor, PathBuf>,
}

impl Tree {
    /// Watch `root` and every module directory below it.
    fn new(root: &Segment) -> std::io::Result<Tree> {
        let mut tree = Tree {
            inotify: Inotify::init()?,
            anchor: Arc::clone(&root.anchor),
            root: root.path.clone(),
            dirs: HashMap::new(),
        };
        let Some(dir) = tree.watch(&root.path) else {
            return Err(std::io::Error::other(
                "cannot watch the segment's directory",
            ));
        };
        tree.add_below(&root.path, dir, None);
        Ok(tree)
    }

    /// Watch the module directories below `dir` (opened as `handle`), listing each through its
    /// handle (links are never followed); with `found`, also note the modules already in them
    /// (a directory created or moved in may hold files written before its watch existed).
    fn add_below(&mut self, dir: &Path, handle: OpenDir, mut found: Option<&mut BTreeSet<String>>) {
        let mut stack = vec![(dir.to_path_buf(), handle)];
        while let Some((d, h)) = stack.pop() {
            let Ok(entries) = h.entries() else {
                continue;
            };
            drop(h);
            for (name, kind) in entries {
                let path = d.join(name);
                if kind == Kind::Dir {
                    if let Some(sub) = self.watch(&path) {
                        stack.push((path, sub));
                    }
                } else if kind == Kind::File
                    && let Some(found) = found.as_deref_mut()
                    && found.len() < MAX_PENDING
                    && let Some(m) = module_of(&self.root, &path)
                {
                    found.insert(m);
                }
            }
        }
    }

    /// Open `dir` beneath the segment and watch it, if a module can live in it and the bound
    /// allows; the open directory when watched.
    fn watch(&mut self, dir: &Path) -> Option<OpenDir> {
        if self.dirs.len() >= MAX_WATCHED_DIRS || !module_dir(&self.root, dir) {
            return None;
        }
        let rel = dir.strip_prefix(&self.root).ok()?;
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        // Beneath the segment, no link followed at any component: a link, or a path that
        // left the segment, is simply not watched (its modules are extracted on request).
        let handle = self.anchor.at(rel).open_dir().ok()?;
        let by_fd = format!("/proc/self/fd/{}", handle.as_fd().as_raw_fd());
        match self.inotify.watches().add(&by_fd, mask()) {
            Ok(wd) => {
                // The same directory again (moved within the tree) keeps its descriptor.
                self.dirs.insert(wd, dir.to_path_buf());
                Some(handle)
            }
            Err(_) => None, // gone again, or no watches left: its modules are extracted on
                            // their next request instead
        }
    }

    /// Read every queued event: modules created, written, renamed in or touched go to
    /// `pending`, new directories are watched (and their modules noted). True when any module
    /// was noted.
    fn read(&mut self, buf: &mut [u8], pending: &mut BTreeSet<String>) -> bool {
        let before = pending.len();
        let mut new_dirs = Vec::new();
        while let Ok(events) = self.inotify.read_events(buf) {
            let mut seen = 0;
            for ev in events {
                seen += 1;
                if ev.mask.contains(EventMask::IGNORED) {
                    self.dirs.remove(&ev.wd); // the directory is gone
                    continue;
                }
                let (Some(dir), Some(name)) = (self.dirs.get(&ev.wd), ev.name) else {
                    continue; // a queue overflow, or an event on the directory itself
                };
                let path = dir.join(name);
                if ev.mask.contains(EventMask::ISDIR) {
                    if ev.mask.intersects(EventMask::CREATE | EventMask::MOVED_TO) {
                        new_dirs.push(path);
                    }
                } else if pending.len() < MAX_PENDING
                    && let Some(m) = module_of(&self.root, &path)
                {
                    pending.insert(m);
                }
            }
            if seen == 0 {
                break;
            }
        }
        for d in new_dirs {
            if let Some(h) = self.watch(&d) {
                // Its files and subdirectories may predate the watch: note and watch them.
                self.add_below(&d, h, Some(pending));
            }
        }
        pending.len() > before
    }
}

/// Whether a module can live in `dir`: every component below `root` an identifier, and not
/// the segment's own `.trifecta/` or `_ctx/`.
fn module_dir(root: &Path, dir: &Path) -> bool {
    let Ok(rel) = dir.strip_prefix(root) else {
        return false;
    };
    let mut parts = rel.components().peekable();
    if matches!(parts.peek(), Some(Component::Normal(s)) if *s == "_ctx") {
        return false;
    }
    parts.all(|c| match c {
        Component::Normal(s) => s.to_str().is_some_and(|s| is_ident(&s)),
        _ => false,
    })
}

/// A Python identifier (what one part of a dotted module name must be).
fn is_ident(s: &&str) -> bool {
    let mut ch = s.chars();
    ch.next()
        .is_some_and(|c| c == '_' || unicode_ident::is_xid_start(c))
        && ch.all(unicode_ident::is_xid_continue)
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
    (!parts.is_empty() && parts.iter().all(is_ident)).then(|| parts.join("."))
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

    #[test]
    fn only_directories_a_module_can_live_in_are_watched() {
        let r = Path::new("/s");
        let d = |p: &str| module_dir(r, Path::new(p));
        assert!(d("/s"));
        assert!(d("/s/pkg/sub"));
        assert!(!d("/s/_ctx"), "our telemetry");
        assert!(!d("/s/.trifecta/cache"), "our cache");
        assert!(!d("/s/.git/objects"));
        assert!(!d("/s/site-packages"), "not an identifier");
        assert!(d("/s/pkg/_ctx"), "only the segment's own _ctx is ours");
        assert!(!d("/elsewhere"));
    }

    /// A path whose middle component is a link out of the segment is neither watched nor
    /// listed, even though its last component is a real directory: every directory is opened
    /// beneath the segment and watched through its descriptor (a path-based watch with
    /// `DONT_FOLLOW` checks the last component only).
    #[test]
    fn a_link_inside_the_path_cannot_lead_the_watch_outside() {
        let t = tempfile::tempdir().unwrap();
        let (seg, outside) = (t.path().join("seg"), t.path().join("outside"));
        std::fs::create_dir_all(seg.join("pkg")).unwrap();
        std::fs::create_dir_all(outside.join("sub")).unwrap();
        std::fs::write(outside.join("sub/secret.py"), "x = 1\n").unwrap();
        std::os::unix::fs::symlink(&outside, seg.join("link")).unwrap();
        let root = resolve::segment_root(&seg).unwrap();
        let mut tree = Tree::new(&root).unwrap();
        let watched: Vec<&PathBuf> = tree.dirs.values().collect();
        assert_eq!(watched.len(), 2, "the segment and pkg only: {watched:?}");
        assert!(tree.watch(&root.path.join("link/sub")).is_none());
        assert!(tree.watch(&root.path.join("link")).is_none());
        assert!(tree.watch(&root.path.join("pkg")).is_some());
        // A file written outside through the link's target wakes nothing.
        std::fs::write(outside.join("sub/secret.py"), "x = 2\n").unwrap();
        let mut pending = BTreeSet::new();
        let mut buf = vec![0u8; 4096];
        tree.read(&mut buf, &mut pending);
        assert!(pending.is_empty(), "{pending:?}");
    }
}
