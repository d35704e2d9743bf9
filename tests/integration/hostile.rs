//! The segment is untrusted: random hostile trees (links out, FIFOs, directories and files at
//! the tool's own names and at module names) and a module swapped between a file and a link out
//! while it is read. Three properties every time: nothing outside the segment is read, written
//! or deleted; every command ends within a bound; answers equal an uncached run on a clean copy.

use crate::cache_support::{MOD_SRC, Run, segment};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The definition only the outside file has: any answer containing it read outside content.
const OUTSIDE_MARK: &str = "outside_secret";

/// A folder beside the segment with files a leak would reveal or a write would change.
fn outside() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("secret.py"),
        format!("def {OUTSIDE_MARK}():\n    pass\n"),
    )
    .unwrap();
    std::fs::create_dir_all(d.path().join("sub")).unwrap();
    std::fs::copy(d.path().join("secret.py"), d.path().join("sub/secret.py")).unwrap();
    std::fs::write(d.path().join("sub/events.jsonl"), "{\"x\":1}\n").unwrap();
    std::fs::write(d.path().join("sub/ast_cache.db"), "not a db").unwrap();
    d
}

/// Names, kinds, sizes, link targets and contents of everything under `root` (links not
/// followed): equal before and after means nothing was written, created or deleted there.
fn state(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let what = if m.is_symlink() {
                format!("link {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else if m.is_file() {
                let bytes = std::fs::read(&p).unwrap();
                format!("file {} {}", bytes.len(), blake3::hash(&bytes))
            } else {
                format!("other {:?}", m.file_type())
            };
            out.insert(rel, what);
        }
    }
    out
}

fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o644) },
        0,
        "mkfifo {p:?}"
    );
}

/// What to plant at one path.
#[derive(Debug, Clone, Copy)]
enum Plant {
    LinkToOutsideDir,
    LinkToOutsideFile,
    HardLinkToOutsideFile,
    Fifo,
    Dir,
    File,
}

/// Every name the tool reads or writes under a segment, plus module names.
const PATHS: &[&str] = &[
    ".trifecta",
    ".trifecta/cache",
    ".trifecta/.gitignore",
    ".trifecta/CACHEDIR.TAG",
    ".trifecta/cache/ast_cache.db",
    ".trifecta/cache/ast_cache.db-wal",
    ".trifecta/cache/ast_cache.db-shm",
    ".trifecta/cache/ast_cache.db-journal",
    ".trifecta/cache/ast_cache.lock",
    ".trifecta/cache/ast_cache.counters",
    ".trifecta/cache/quarantine",
    "_ctx",
    "_ctx/telemetry",
    "_ctx/telemetry/events.jsonl",
    "_ctx/telemetry/events.1.jsonl",
    "pkg/hostile.py",
    "pkg/sub",
    ".gitignore",
    "pkg/.ignore",
];

fn plant(seg: &Path, out: &Path, rel: &str, what: Plant) {
    let p = seg.join(rel);
    if std::fs::symlink_metadata(&p).is_ok() {
        return; // an earlier plant already put something here (or its parent is planted)
    }
    // Create missing parents one by one, never through a planted link (the test itself must
    // not write outside); a parent that is a planted file, FIFO or link ends the plant.
    let mut dir = seg.to_path_buf();
    let parents: Vec<_> = Path::new(rel)
        .parent()
        .into_iter()
        .flat_map(|p| p.components())
        .collect();
    for c in parents {
        dir.push(c);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return,
            Err(_) => std::fs::create_dir(&dir).unwrap(),
        }
    }
    match what {
        Plant::LinkToOutsideDir => symlink(out.join("sub"), &p).unwrap(),
        Plant::LinkToOutsideFile => symlink(out.join("secret.py"), &p).unwrap(),
        // Same file system (both under the temp dir): a second name for an outside inode.
        Plant::HardLinkToOutsideFile => {
            std::fs::hard_link(out.join("sub/events.jsonl"), &p).unwrap()
        }
        Plant::Fifo => mkfifo(&p),
        Plant::Dir => std::fs::create_dir(&p).unwrap(),
        Plant::File => std::fs::write(&p, b"planted").unwrap(),
    }
}

/// Run with a hard bound: a hang fails the test instead of blocking it.
fn bounded(seg: &Path, args: &[&str]) -> Run {
    let mut c = crate::support::trifecta();
    c.args(args)
        .env("TRIFECTA_TELEMETRY", "full")
        .timeout(Duration::from_secs(20));
    let started = Instant::now();
    let out = c.output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20) && out.status.code().is_some(),
        "{args:?} did not finish within the bound (hang?) in {}",
        seg.display()
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !stdout.contains(OUTSIDE_MARK),
        "{args:?} revealed outside content: {stdout}"
    );
    // One JSON document for every command but `ast index --format jsonl` (Null there).
    let json = serde_json::from_str(&stdout).unwrap_or_default();
    Run {
        json,
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn every_command(seg: &Path) -> Vec<Run> {
    let s = seg.to_str().unwrap();
    let report = seg.join("_ctx/telemetry/report.html");
    let report = report.to_str().unwrap();
    let symbols = |m: &'static str| vec!["ast", "symbols", m, "--segment", s];
    let cache = |sub: &'static str| vec!["ast", "cache", sub, "--segment", s];
    let mut good = symbols("sym://python/mod/pkg.mod");
    good.push("--persist-cache");
    let mut html = vec!["telemetry", "report", "--segment", s, "--format", "html"];
    html.extend(["--output", report]);
    [
        good.clone(),
        good,
        symbols("sym://python/mod/pkg.hostile"),
        symbols("sym://python/mod/pkg.sub.secret"),
        vec![
            "ast",
            "index",
            "--segment",
            s,
            "--persist-cache",
            "--format",
            "jsonl",
        ],
        cache("stats"),
        cache("verify"),
        cache("prune"),
        cache("path"),
        vec!["telemetry", "report", "--segment", s],
        html,
        cache("clear"),
    ]
    .iter()
    .map(|a| bounded(seg, a))
    .collect()
}

fn plant_strategy() -> impl Strategy<Value = Vec<(usize, Plant)>> {
    let what = prop_oneof![
        Just(Plant::LinkToOutsideDir),
        Just(Plant::LinkToOutsideFile),
        Just(Plant::HardLinkToOutsideFile),
        Just(Plant::Fifo),
        Just(Plant::Dir),
        Just(Plant::File),
    ];
    proptest::collection::vec((0..PATHS.len(), what), 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Random hostile trees: outside unchanged, every command bounded, the good module's answer
    /// equal to an uncached run on a clean copy.
    #[test]
    fn random_hostile_trees_touch_nothing_outside(plants in plant_strategy()) {
        let clean = segment();
        let reference = crate::cache_support::uncached(clean.path(), "sym://python/mod/pkg.mod");
        let out = outside();
        let before = state(out.path());
        let seg = segment();
        for (i, what) in &plants {
            plant(seg.path(), out.path(), PATHS[*i], *what);
        }
        let runs = every_command(seg.path());
        prop_assert_eq!(&state(out.path()), &before, "outside changed after {:?}", plants);
        for r in &runs[..2] {
            prop_assert_eq!(r.code, 0, "{} / {}", r.json, r.stderr);
            prop_assert_eq!(&r.json["symbols"], &reference.json["symbols"]);
            prop_assert_eq!(&r.json["cache_key"], &reference.json["cache_key"]);
        }
    }
}

/// The three properties on one tree that plants something at every path at once (links to the
/// outside folder where a folder is expected, links to an outside file and FIFOs elsewhere),
/// plus the incidents in the telemetry.
#[test]
fn a_tree_hostile_everywhere_is_answered_correctly_and_reported() {
    let clean = segment();
    let reference = crate::cache_support::uncached(clean.path(), "sym://python/mod/pkg.mod");
    let out = outside();
    let before = state(out.path());
    let seg = segment();
    std::fs::create_dir_all(seg.path().join(".trifecta/cache")).unwrap();
    std::fs::create_dir_all(seg.path().join("_ctx/telemetry")).unwrap();
    for rel in [".trifecta/cache/quarantine", "pkg/sub"] {
        plant(seg.path(), out.path(), rel, Plant::LinkToOutsideDir);
    }
    for rel in [
        ".trifecta/cache/ast_cache.counters",
        "_ctx/telemetry/events.2.jsonl",
    ] {
        plant(seg.path(), out.path(), rel, Plant::HardLinkToOutsideFile);
    }
    for rel in [
        ".trifecta/.gitignore",
        ".trifecta/cache/ast_cache.db-wal",
        "_ctx/telemetry/events.1.jsonl",
        "_ctx/telemetry/report.html",
        "pkg/hostile.py",
        ".gitignore",
    ] {
        plant(seg.path(), out.path(), rel, Plant::LinkToOutsideFile);
    }
    for rel in [
        ".trifecta/cache/ast_cache.db-shm",
        ".trifecta/cache/ast_cache.lock",
        "_ctx/telemetry/events.jsonl",
    ] {
        plant(seg.path(), out.path(), rel, Plant::Fifo);
    }
    let runs = every_command(seg.path());
    assert_eq!(state(out.path()), before, "outside changed");
    for r in &runs[..2] {
        crate::cache_support::assert_same_as_uncached(r, &reference);
    }
    assert_eq!(runs[1].json["cache_status"], "hit", "the cache works again");
    assert_eq!(runs[2].json["error_code"], "PATH_OUTSIDE_SEGMENT");
    assert_eq!(runs[3].json["error_code"], "PATH_OUTSIDE_SEGMENT");
    let report = &runs[10];
    assert_eq!(report.code, 1, "--output onto a planted link is refused");
    let incidents = crate::cache_support::events_named(seg.path(), "ast.fs.incident");
    let found: Vec<(String, String)> = incidents
        .iter()
        .map(|e| {
            (
                e["args"]["path"].as_str().unwrap_or("").to_string(),
                e["result"]["found"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for (path, kind) in [
        (".trifecta/cache/ast_cache.db-shm", "fifo"),
        (".trifecta/cache/ast_cache.db-wal", "symlink"),
        (".trifecta/cache/ast_cache.lock", "fifo"),
        (".trifecta/cache/quarantine", "symlink"),
        (".trifecta/.gitignore", "symlink"),
        (".trifecta/cache/ast_cache.counters", "hardlink"),
    ] {
        assert!(
            found.contains(&(path.to_string(), kind.to_string())),
            "no incident for {path} ({kind}) in {found:?}"
        );
    }
}

/// Swap `pkg/m.py` between a regular file and a link to the outside file as fast as possible
/// while `read` resolves and reads it; returns (inside reads, refusals, outside reads).
fn race(read: impl Fn(&Path) -> Result<String, String>, stop_on_leak: bool) -> (u64, u64, u64) {
    let out = outside();
    let seg = segment();
    let m = seg.path().join("pkg/m.py");
    std::fs::write(&m, MOD_SRC).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let (mut inside, mut refused, mut leaked) = (0, 0, 0);
    std::thread::scope(|s| {
        s.spawn(|| {
            let (l, f) = (seg.path().join("pkg/l.tmp"), seg.path().join("pkg/f.tmp"));
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = symlink(out.path().join("secret.py"), &l);
                let _ = std::fs::rename(&l, &m);
                let _ = std::fs::write(&f, MOD_SRC);
                let _ = std::fs::rename(&f, &m);
            }
        });
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(3) {
            match read(seg.path()) {
                Ok(text) if text.contains(OUTSIDE_MARK) => {
                    leaked += 1;
                    if stop_on_leak {
                        break;
                    }
                }
                Ok(_) => inside += 1,
                Err(_) => refused += 1,
            }
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    (inside, refused, leaked)
}

/// The mechanism under test: resolve and open beneath the segment in one step.
fn read_like_trifecta(seg: &Path) -> Result<String, String> {
    use trifecta::symbols::resolve::{resolve_module, segment_root};
    let root = segment_root(seg).map_err(|e| e.message)?;
    let f = resolve_module(&root, &["pkg".into(), "m".into()]).map_err(|e| e.message)?;
    let bytes =
        trifecta::symbols::read::read_capped(&f.file, 1 << 20).map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// What the tool did before: check the canonical path, then open the path again.
fn read_check_then_open(seg: &Path) -> Result<String, String> {
    let root = std::fs::canonicalize(seg).map_err(|e| e.to_string())?;
    let p = root.join("pkg/m.py");
    let abs = std::fs::canonicalize(&p).map_err(|e| e.to_string())?;
    if !abs.starts_with(&root) {
        return Err("outside".into());
    }
    std::fs::read_to_string(&p).map_err(|e| e.to_string())
}

#[test]
fn a_module_swapped_with_a_link_out_is_never_read_from_outside() {
    let (inside, refused, leaked) = race(read_like_trifecta, false);
    assert_eq!(
        leaked, 0,
        "outside content read ({inside} inside, {refused} refused)"
    );
    // Not vacuous: the race really alternated between the two states while reading.
    assert!(
        inside > 0 && refused > 0,
        "inside {inside}, refused {refused}"
    );
}

/// Control: the same race catches the check-then-open reader the tool used to have, so the
/// test above would fail on a regression to it.
#[test]
fn the_race_catches_a_check_then_open_reader() {
    let (_, _, leaked) = race(read_check_then_open, true);
    assert!(leaked > 0, "the race never made the naive reader leak");
}
