//! Size, age and bookkeeping through the real binary, with time moved by
//! `TRIFECTA_TEST_NOW_MS` instead of sleeping: TTL, rows of deleted files, LRU eviction to the
//! low-water mark, space given back, the maintenance interval, the size warning, and hit/miss
//! counters that match the real workload.

use super::cache_support::*;
use serde_json::Value;

const T0: i64 = 1_790_000_000_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn at(ms: i64) -> String {
    ms.to_string()
}

fn write_modules(seg: &std::path::Path, n: usize) {
    for i in 0..n {
        std::fs::write(
            seg.join(format!("m{i:02}.py")),
            format!("def f{i}():\n    pass\n"),
        )
        .unwrap();
    }
}

fn uri(i: usize) -> String {
    format!("sym://python/mod/m{i:02}")
}

fn stats(seg: &std::path::Path, env: &[(&str, &str)]) -> Value {
    let r = run_with(
        &["ast", "cache", "stats", "--segment", seg.to_str().unwrap()],
        env,
    );
    assert_eq!(r.code, 0, "{}", r.json);
    r.json
}

#[test]
fn ttl_prunes_unused_entries_and_keeps_used_ones() {
    let seg = segment();
    write_modules(seg.path(), 3);
    let t0 = at(T0);
    for i in 0..3 {
        persisted(seg.path(), &uri(i), &[("TRIFECTA_TEST_NOW_MS", &t0)]);
    }
    // Eight days later m00 is used (hit, last_access refreshed); maintenance is due (interval
    // long elapsed) and runs when the command finishes.
    let later = at(T0 + 8 * DAY);
    let r = symbols(
        seg.path(),
        &uri(0),
        &["--persist-cache", "--telemetry", "lite"],
        &[("TRIFECTA_TEST_NOW_MS", &later)],
    );
    assert_eq!(
        r.s("miss_reason"),
        "cache_hit",
        "TTL never blocks a valid hit"
    );
    let pruned = events_named(seg.path(), "ast.cache.pruned");
    assert_eq!(pruned.len(), 1, "{:?}", events(seg.path()));
    assert_eq!(pruned[0]["result"]["expired"], 2);
    let m = events_named(seg.path(), "ast.cache.maintenance");
    assert_eq!(m[0]["result"]["ran"], true);
    let st = events_named(seg.path(), "ast.cache.stats");
    assert_eq!(st[0]["result"]["entries"], 1);
    assert!(st[0]["result"]["db_bytes"].as_u64().unwrap() > 0);
    assert_eq!(st[0]["result"]["newest_access_ms"], T0 + 8 * DAY);
    let s = stats(seg.path(), &[]);
    assert_eq!(s["entries"], 1);
    assert_eq!(s["pruned"], 2);
    let miss = persisted(seg.path(), &uri(1), &[("TRIFECTA_TEST_NOW_MS", &later)]);
    assert_eq!(
        miss.s("miss_reason"),
        "key_miss",
        "the expired row is really gone"
    );
}

#[test]
fn maintenance_respects_the_interval_and_is_recorded_in_the_db() {
    let seg = segment();
    let t0 = at(T0);
    persisted(
        seg.path(),
        "sym://python/mod/top",
        &[("TRIFECTA_TEST_NOW_MS", &t0)],
    );
    let lite = ["--persist-cache", "--telemetry", "lite"];
    let soon = at(T0 + 10 * 60_000);
    symbols(
        seg.path(),
        "sym://python/mod/top",
        &lite,
        &[("TRIFECTA_TEST_NOW_MS", &soon)],
    );
    assert!(
        events_named(seg.path(), "ast.cache.maintenance").is_empty(),
        "not due after 10 min"
    );
    let due = at(T0 + 2 * HOUR);
    symbols(
        seg.path(),
        "sym://python/mod/top",
        &lite,
        &[("TRIFECTA_TEST_NOW_MS", &due)],
    );
    assert_eq!(events_named(seg.path(), "ast.cache.maintenance").len(), 1);
    let last: i64 = db(seg.path())
        .query_row(
            "SELECT v FROM meta WHERE k = 'last_maintenance_ms'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(last, T0 + 2 * HOUR);
    let again = at(T0 + 2 * HOUR + 60_000);
    symbols(
        seg.path(),
        "sym://python/mod/top",
        &lite,
        &[("TRIFECTA_TEST_NOW_MS", &again)],
    );
    assert_eq!(
        events_named(seg.path(), "ast.cache.maintenance").len(),
        1,
        "not twice in an hour"
    );
}

#[test]
fn busy_lock_skips_maintenance_without_waiting() {
    let seg = segment();
    let t0 = at(T0);
    persisted(
        seg.path(),
        "sym://python/mod/top",
        &[("TRIFECTA_TEST_NOW_MS", &t0)],
    );
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(seg.path().join(".trifecta/cache/ast_cache.lock"))
        .unwrap();
    f.lock_shared().unwrap(); // another process is using the cache
    let due = at(T0 + 2 * HOUR);
    let r = symbols(
        seg.path(),
        "sym://python/mod/top",
        &["--persist-cache", "--telemetry", "lite"],
        &[
            ("TRIFECTA_TEST_NOW_MS", &due),
            ("TRIFECTA_AST_LOCK_TIMEOUT_MS", "30000"),
        ],
    );
    assert_eq!(r.s("miss_reason"), "cache_hit");
    let m = events_named(seg.path(), "ast.cache.maintenance");
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["result"]["ran"], false);
    assert_eq!(m[0]["result"]["reason"], "lock_busy");
    // The whole command did not wait for the lock (it would have waited up to 30 s).
    let took = events_named(seg.path(), "ast.symbols")[0]["timing_ms"]
        .as_f64()
        .unwrap();
    assert!(took < 10_000.0, "{took} ms");
}

#[test]
fn deleted_files_are_pruned_by_the_command() {
    let seg = segment();
    write_modules(seg.path(), 4);
    for i in 0..4 {
        persisted(seg.path(), &uri(i), &[]);
    }
    std::fs::remove_file(seg.path().join("m01.py")).unwrap();
    std::fs::remove_file(seg.path().join("m02.py")).unwrap();
    let r = run_with(
        &[
            "ast",
            "cache",
            "prune",
            "--segment",
            seg.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.json);
    assert_eq!(
        (r.json["deleted_files"].as_u64(), r.json["expired"].as_u64()),
        (Some(2), Some(0))
    );
    let left: Vec<String> = db(seg.path())
        .prepare("SELECT file_rel FROM entries ORDER BY file_rel")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(left, ["m00.py", "m03.py"]);
}

#[test]
fn lru_eviction_to_low_water_and_space_given_back() {
    let seg = segment();
    let n = 40;
    // Big payloads through the library so the file really grows.
    {
        use trifecta::cache::{CacheKey, open_cache};
        use trifecta::symbols::{Symbol, SymbolKind, SymbolTable};
        let root = trifecta::symbols::resolve::segment_root(seg.path()).unwrap();
        let settings = trifecta::config::CacheSettings {
            persist: true,
            ..Default::default()
        };
        for i in 0..n {
            let rel = format!("m{i:02}.py");
            let src = format!("def f{i}():\n    pass\n");
            std::fs::write(root.join(&rel), &src).unwrap();
            let table = SymbolTable {
                symbols: (0..400)
                    .map(|j| Symbol {
                        kind: SymbolKind::Function,
                        name: format!("name_{i}_{j}_padding_padding"),
                        line: j + 1,
                        end_line: j + 1,
                        is_async: false,
                        members: None,
                    })
                    .collect(),
                syntax_errors: vec![],
            };
            let mut o = open_cache(
                &root,
                &settings,
                &trifecta::telemetry::Telemetry::disabled(),
            );
            o.store
                .put(&rel, &CacheKey::of(src.as_bytes()), &table)
                .unwrap();
            drop(o);
        }
    }
    let c = db(seg.path());
    // Access times one hour apart: m00 is the least recently used. (Set in the DB directly,
    // not through the process-wide clock variable, which other tests' threads would see.)
    for i in 0..n {
        c.execute(
            "UPDATE entries SET last_access_ms = ?1, created_ms = ?1 WHERE file_rel = ?2",
            rusqlite::params![T0 + i as i64 * HOUR, format!("m{i:02}.py")],
        )
        .unwrap();
    }
    let total: i64 = c
        .query_row("SELECT SUM(payload_bytes) FROM entries", [], |r| r.get(0))
        .unwrap();
    drop(c);
    // Limit at half the payload: evict the oldest rows down to 80% of the limit.
    let max = total as f64 / 2.0;
    let max_mb = format!("{}", max / 1024.0 / 1024.0);
    let now = at(T0 + n as i64 * HOUR);
    let env = [
        ("TRIFECTA_AST_MAX_MB", max_mb.as_str()),
        ("TRIFECTA_TEST_NOW_MS", now.as_str()),
    ];
    let r = run_with(
        &[
            "ast",
            "cache",
            "prune",
            "--segment",
            seg.path().to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(r.code, 0, "{}", r.json);
    let evicted = r.json["evicted"].as_u64().unwrap();
    assert!(evicted > 0);
    let c = db(seg.path());
    let (left, min_rel): (i64, String) = c
        .query_row(
            "SELECT SUM(payload_bytes), MIN(file_rel) FROM entries",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let max_bytes = (max_mb.parse::<f64>().unwrap() * 1024.0 * 1024.0) as i64;
    let low_water = max_bytes / 10 * 8;
    assert!(left <= low_water, "{left} > low water {low_water}");
    assert_eq!(
        min_rel,
        format!("m{evicted:02}.py"),
        "oldest {evicted} rows evicted, in LRU order"
    );
    // Space given back: the main file shrank.
    let before = r.json["db_bytes_before"].as_u64().unwrap();
    let after = r.json["db_bytes_after"].as_u64().unwrap();
    assert!(after < before, "{after} !< {before}");
    assert_eq!(std::fs::metadata(db_path(seg.path())).unwrap().len(), after);
    assert_eq!(stats(seg.path(), &[])["evictions"], Value::from(evicted));
}

#[test]
fn over_max_triggers_automatic_eviction_without_waiting_for_the_interval() {
    let seg = segment();
    write_modules(seg.path(), 3);
    for i in 0..3 {
        persisted(seg.path(), &uri(i), &[]);
    }
    // The DB file (tens of KB) is far above a 1 KB limit: the next run evicts at once.
    let r = symbols(
        seg.path(),
        &uri(2),
        &["--persist-cache", "--telemetry", "lite"],
        &[("TRIFECTA_AST_MAX_MB", "0.00005")],
    );
    assert_eq!(r.code, 0);
    let ev = events_named(seg.path(), "ast.cache.evicted");
    assert_eq!(ev.len(), 1, "{:?}", events(seg.path()));
    assert!(ev[0]["result"]["count"].as_u64().unwrap() >= 1);
    // An empty database is still bigger than 52 bytes: the limit is unreachable, and the next
    // runs must not maintain again and again (at most once a minute when over the limit).
    for _ in 0..2 {
        symbols(
            seg.path(),
            &uri(2),
            &["--persist-cache", "--telemetry", "lite"],
            &[("TRIFECTA_AST_MAX_MB", "0.00005")],
        );
    }
    assert_eq!(events_named(seg.path(), "ast.cache.maintenance").len(), 1);
}

#[test]
fn size_warning_above_threshold_only() {
    let seg = segment();
    let lite = ["--persist-cache", "--telemetry", "lite"];
    symbols(seg.path(), "sym://python/mod/top", &lite, &[]);
    symbols(seg.path(), "sym://python/mod/top", &lite, &[]);
    assert!(
        events_named(seg.path(), "ast.cache.size_warning").is_empty(),
        "default 500 MB"
    );
    symbols(
        seg.path(),
        "sym://python/mod/top",
        &lite,
        &[("TRIFECTA_AST_SIZE_WARN_MB", "0.01")],
    );
    let w = events_named(seg.path(), "ast.cache.size_warning");
    assert_eq!(w.len(), 1);
    let db_bytes = w[0]["result"]["db_bytes"].as_u64().unwrap();
    assert_eq!(w[0]["result"]["threshold_bytes"], 10485);
    assert!(db_bytes > 10485);
    assert!(w[0]["result"]["wal_bytes"].is_u64());
}

#[test]
fn stats_hit_rate_equals_the_real_workload() {
    let seg = segment();
    write_modules(seg.path(), 5);
    let (mut hits, mut misses) = (0, 0);
    for i in 0..5 {
        persisted(seg.path(), &uri(i), &[]); // 1 cold_cache_db_missing + 4 key_miss
        misses += 1;
    }
    for _ in 0..2 {
        for i in 0..5 {
            assert_eq!(
                persisted(seg.path(), &uri(i), &[]).s("miss_reason"),
                "cache_hit"
            );
            hits += 1;
        }
    }
    for i in 0..2 {
        std::fs::write(
            seg.path().join(format!("m{i:02}.py")),
            "def changed():\n    pass\n",
        )
        .unwrap();
        assert_eq!(
            persisted(seg.path(), &uri(i), &[]).s("miss_reason"),
            "content_changed"
        );
        misses += 1;
    }
    let s = stats(seg.path(), &[]);
    assert_eq!(
        (s["hits"].as_i64(), s["misses"].as_i64()),
        (Some(hits), Some(misses))
    );
    let want = hits as f64 / (hits + misses) as f64;
    assert!((s["hit_rate"].as_f64().unwrap() - want).abs() < 1e-12);
    assert_eq!(s["misses_by_reason"]["cold_cache_db_missing"], 1);
    assert_eq!(s["misses_by_reason"]["key_miss"], 4);
    assert_eq!(s["misses_by_reason"]["content_changed"], 2);
    // Uncached (memory) runs are not cache lookups of this DB and are not counted.
    uncached(seg.path(), &uri(3));
    // Folding the counters into the DB (maintenance) must not change the numbers.
    let p = run_with(
        &[
            "ast",
            "cache",
            "prune",
            "--segment",
            seg.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(p.json["counters_folded"], hits + misses);
    let s2 = stats(seg.path(), &[]);
    assert_eq!(s2["hits"], s["hits"]);
    assert_eq!(s2["misses"], s["misses"]);
    assert!(!s2["hit_rate"].is_null());
    // A fresh cache reports no rate rather than a made-up one.
    let empty = segment();
    assert!(stats(empty.path(), &[])["hit_rate"].is_null());
    assert_eq!(stats(empty.path(), &[])["exists"], false);
    assert!(
        !empty.path().join(".trifecta").exists(),
        "stats creates nothing"
    );
}

#[test]
fn cache_events_carry_no_absolute_paths() {
    use trifecta::verify::steps::faults::{CorruptionMode, inject};
    let seg = segment();
    let lite = ["--persist-cache", "--telemetry", "lite"];
    let t0 = at(T0);
    symbols(
        seg.path(),
        "sym://python/mod/top",
        &lite,
        &[("TRIFECTA_TEST_NOW_MS", &t0)],
    );
    inject(CorruptionMode::ZeroHeader, &db_path(seg.path()), 1).unwrap();
    symbols(seg.path(), "sym://python/mod/top", &lite, &[]); // corruption_detected
    // The recreated DB was stamped with the real clock: go two days past it.
    let real_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let later = at(real_now + 2 * DAY);
    symbols(
        seg.path(),
        "sym://python/mod/top",
        &lite,
        &[
            ("TRIFECTA_TEST_NOW_MS", &later),
            ("TRIFECTA_AST_SIZE_WARN_MB", "0.001"),
        ],
    ); // maintenance, stats, size warning
    let text = std::fs::read_to_string(seg.path().join("_ctx/telemetry/events.jsonl")).unwrap();
    let canon = std::fs::canonicalize(seg.path()).unwrap();
    for needle in [
        seg.path().to_str().unwrap(),
        canon.to_str().unwrap(),
        "/tmp/",
        "/home/",
    ] {
        assert!(
            !text.contains(needle),
            "telemetry leaks {needle:?}:\n{text}"
        );
    }
    for cmd in [
        "ast.cache.corruption_detected",
        "ast.cache.maintenance",
        "ast.cache.stats",
        "ast.cache.size_warning",
    ] {
        assert!(
            !events_named(seg.path(), cmd).is_empty(),
            "{cmd} was not emitted"
        );
    }
}
