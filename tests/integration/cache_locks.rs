//! Lock behaviour through the real binary: a held exclusive lock makes `ast symbols` fall back
//! (correct symbols, exit 0, `lock_timeout`, event) within the configured bound; maintenance
//! commands refuse with `CACHE_UNAVAILABLE` and touch nothing; a dead holder's lock is gone.

use super::cache_support::*;
use std::fs::{File, OpenOptions};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const URI: &str = "sym://python/mod/pkg.mod";

fn lock_file(seg: &std::path::Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(seg.join(".trifecta/cache/ast_cache.lock"))
        .unwrap()
}

#[test]
fn held_exclusive_lock_gives_bounded_fallback_with_correct_symbols() {
    let seg = segment();
    let reference = uncached(seg.path(), URI);
    persisted(seg.path(), URI, &[]);
    let holder = lock_file(seg.path());
    holder.lock().unwrap(); // exclusive, like a maintenance pass in another process
    let t = Instant::now();
    let r = symbols(
        seg.path(),
        URI,
        &["--persist-cache", "--telemetry", "lite"],
        &[("TRIFECTA_AST_LOCK_TIMEOUT_MS", "300")],
    );
    let wall = t.elapsed();
    assert_same_as_uncached(&r, &reference);
    assert_eq!(r.s("miss_reason"), "lock_timeout");
    assert_eq!(r.s("cache_backend"), "memory");
    assert!(
        r.json["cache_db_path"].is_string(),
        "path still reported on fallback"
    );
    // Bounded by the configured 300 ms, not the 5 s default (generous margin for slow CI).
    assert!(wall < Duration::from_secs(4), "took {wall:?}");
    let ev = events_named(seg.path(), "ast.cache.lock_timeout");
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["args"]["mode"], "shared");
    assert_eq!(ev[0]["result"]["timeout_ms"], 300);
    assert!(ev[0]["result"]["waited_ms"].as_u64().unwrap() >= 300);
    let sym = events_named(seg.path(), "ast.symbols");
    assert_eq!(sym[0]["result"]["miss_reason"], "lock_timeout");
    assert_eq!(sym[0]["cache_type"], "memory");
    // The write event says nothing was persisted, and why (it used to say "ok").
    let w = events_named(seg.path(), "ast.cache.write");
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0]["result"]["status"], "skipped");
    assert_eq!(w[0]["result"]["reason"], "lock_timeout");
    drop(holder);
    let after = persisted(seg.path(), URI, &[]);
    assert_eq!(after.s("miss_reason"), "cache_hit");
}

#[test]
fn first_run_under_a_held_lock_falls_back_too() {
    let seg = segment();
    std::fs::create_dir_all(seg.path().join(".trifecta/cache")).unwrap();
    let holder = lock_file(seg.path());
    holder.lock().unwrap();
    let r = persisted(seg.path(), URI, &[("TRIFECTA_AST_LOCK_TIMEOUT_MS", "150")]);
    assert_same_as_uncached(&r, &uncached(seg.path(), URI));
    assert_eq!(r.s("miss_reason"), "lock_timeout");
    assert!(
        !db_path(seg.path()).exists(),
        "no DB created without the lock"
    );
}

#[test]
fn shared_holders_do_not_block_lookups_but_block_clear_and_prune() {
    let seg = segment();
    persisted(seg.path(), URI, &[]);
    let reader = lock_file(seg.path());
    reader.lock_shared().unwrap(); // another process using the cache
    let r = persisted(seg.path(), URI, &[("TRIFECTA_AST_LOCK_TIMEOUT_MS", "200")]);
    assert_eq!(r.s("miss_reason"), "cache_hit");
    let before = std::fs::read(db_path(seg.path())).unwrap();
    let s = seg.path().to_str().unwrap();
    for sub in ["clear", "prune"] {
        let r = run_with(
            &["ast", "cache", sub, "--segment", s],
            &[("TRIFECTA_AST_LOCK_TIMEOUT_MS", "200")],
        );
        assert_eq!(
            (r.code, r.s("error_code")),
            (1, "CACHE_UNAVAILABLE"),
            "{sub}: {}",
            r.json
        );
    }
    assert_eq!(
        std::fs::read(db_path(seg.path())).unwrap(),
        before,
        "nothing touched"
    );
    drop(reader);
    let c = run_with(&["ast", "cache", "clear", "--segment", s], &[]);
    assert_eq!(c.code, 0, "{}", c.json);
    assert_eq!(c.json["removed_entries"], 1);
    assert!(!db_path(seg.path()).exists());
    assert_eq!(
        persisted(seg.path(), URI, &[]).s("miss_reason"),
        "cold_cache_db_missing"
    );
}

#[test]
fn lock_held_by_another_process_then_killed() {
    let seg = segment();
    persisted(seg.path(), URI, &[]);
    let lock = seg.path().join(".trifecta/cache/ast_cache.lock");
    // flock(1) holds the exclusive lock in a separate process for up to 60 s.
    // Own process group, so the holder (flock and the `sleep` it forks, which inherits the
    // locked descriptor) can be killed as a whole, like a crashed process.
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("flock")
        .arg("-x")
        .arg(&lock)
        .args(["sleep", "60"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("flock(1) is installed (util-linux)");
    // Wait until it really holds the lock.
    let probe = lock_file(seg.path());
    let t = Instant::now();
    while probe.try_lock_shared().is_ok() {
        probe.unlock().unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "flock never took the lock"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = persisted(seg.path(), URI, &[("TRIFECTA_AST_LOCK_TIMEOUT_MS", "200")]);
    assert_eq!(r.s("miss_reason"), "lock_timeout");
    assert_eq!(r.code, 0);
    // SIGKILL to the holder's process group (only the processes this test started): the
    // holder dies without unlocking, and the kernel drops its flock.
    let pgid = child.id() as i32;
    assert_eq!(unsafe { libc::kill(-pgid, libc::SIGKILL) }, 0);
    child.wait().unwrap();
    let t = Instant::now();
    loop {
        let r = persisted(seg.path(), URI, &[("TRIFECTA_AST_LOCK_TIMEOUT_MS", "200")]);
        if r.s("miss_reason") == "cache_hit" {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "lock not released after the kill"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
