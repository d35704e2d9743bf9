//! Crash safety: a child process does many cache writes (and maintenance passes) and is
//! killed with SIGKILL at seeded points. Afterwards the database passes `integrity_check`,
//! `ast cache verify` is clean, and the next runs are correct (and then hit).
//!
//! The child is this same test binary, re-executed to run the ignored
//! `crash_child_entry_point` with `TRIFECTA_CRASH_CHILD_SEGMENT` set.

use super::cache_support::*;
use std::process::Stdio;
use std::time::Duration;

const FILES: usize = 20;
const CHILD_ENV: &str = "TRIFECTA_CRASH_CHILD_SEGMENT";

/// Module `i`, variant `v`; variants differ in size so rows grow and shrink across rounds.
fn content(i: usize, v: usize) -> String {
    let mut s = format!(
        "def f{i}_{v}(a):\n    return a\n\n\nclass K{i}:\n    def m{v}(self):\n        pass\n"
    );
    for j in 0..v * 30 {
        s.push_str(&format!("\n\ndef pad_{i}_{j}():\n    pass\n"));
    }
    s
}

/// The writer that gets killed. Ignored so a normal `cargo test` does not count it as a
/// (vacuous) pass; the parent runs it explicitly with `--ignored --exact`.
#[test]
#[ignore = "child process of crash_kill9_at_seeded_points"]
fn crash_child_entry_point() {
    use trifecta::cache::{CacheKey, open_cache};
    let Ok(seg) = std::env::var(CHILD_ENV) else {
        return;
    };
    let root = trifecta::symbols::resolve::segment_root(std::path::Path::new(&seg)).unwrap();
    let settings = trifecta::config::CacheSettings::resolve(
        &trifecta::config::Env::from_process(),
        Some(true),
    )
    .unwrap();
    let telemetry = trifecta::telemetry::Telemetry::disabled();
    for round in 0.. {
        let mut opened = open_cache(&root, &settings, &telemetry);
        let items: Vec<_> = (0..FILES)
            .map(|i| {
                // Every row is truthful (the real extraction of the content it is keyed by),
                // so any hit after the crash must equal an uncached run.
                let src = content(i, (round + i) % 3);
                let table = trifecta::symbols::extract::extract(src.as_bytes());
                (format!("m{i:02}.py"), CacheKey::of(src.as_bytes()), table)
            })
            .collect();
        let _ = opened.store.put_batch(&items);
        for (rel, key, _) in items.iter().step_by(3) {
            let _ = opened.store.get(rel, key);
        }
        drop(opened); // may run maintenance (interval 0 in some rounds' environment)
    }
}

#[test]
fn crash_kill9_at_seeded_points() {
    let exe = std::env::current_exe().unwrap();
    let mut with_rows = 0;
    for seed in 0..12u64 {
        let seg = segment();
        for i in 0..FILES {
            std::fs::write(seg.path().join(format!("m{i:02}.py")), content(i, 0)).unwrap();
        }
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut child = std::process::Command::new(&exe);
        child
            .args([
                "--ignored",
                "--exact",
                "cache_crash::crash_child_entry_point",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, seg.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        crate::support::scrub(&mut child);
        if seed % 2 == 0 {
            // Maintenance (checkpoint, vacuum, counters fold) on every drop: crash inside it too.
            child.env("TRIFECTA_AST_MAINTENANCE_INTERVAL_S", "0");
        }
        let mut child = child.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(rng.u64(40..400)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let db = db_path(seg.path());
        if db.exists() {
            let c = rusqlite::Connection::open(&db).unwrap();
            let ok: String = c
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(ok, "ok", "seed {seed}");
            let n: i64 = c
                .query_row("SELECT COUNT(*) FROM entries", [], |r| r.get(0))
                .unwrap();
            with_rows += usize::from(n > 0);
        }
        let s = seg.path().to_str().unwrap();
        let v = run_with(&["ast", "cache", "verify", "--segment", s], &[]);
        assert_eq!(v.code, 0, "seed {seed}: {}", v.json);
        for i in [0, 7, 19] {
            let uri = format!("sym://python/mod/m{i:02}");
            let reference = uncached(seg.path(), &uri);
            let r1 = persisted(seg.path(), &uri, &[]);
            assert_same_as_uncached(&r1, &reference);
            assert_eq!(r1.s("cache_backend"), "sqlite", "seed {seed}: {}", r1.json);
            let r2 = persisted(seg.path(), &uri, &[]);
            assert_same_as_uncached(&r2, &reference);
            assert_eq!(r2.s("miss_reason"), "cache_hit", "seed {seed}");
        }
    }
    // The kills must have landed while data was being written, not before the first write.
    assert!(
        with_rows >= 6,
        "only {with_rows} of 12 children wrote before being killed"
    );
}
