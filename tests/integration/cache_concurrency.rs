//! Ten processes × fifty runs of the real binary on one segment, with hits, misses and edits
//! happening at the same time: no failure, every output equal to an uncached run of the same
//! content, every telemetry line parses and the counts add up, the database passes
//! `integrity_check`, and `ast cache stats` counted every lookup.

use super::cache_support::*;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

const WORKERS: usize = 10;
const RUNS: usize = 50;
const MODULES: usize = 4;

fn variant(v: usize) -> String {
    format!("{MOD_SRC}\n\ndef edited_{v}(a):\n    return a\n\n\nclass Edit{v}:\n    x = 1\n")
}

/// Replace a file atomically (write a temp file, rename), as editors and `git checkout` do.
fn atomic_write(path: &std::path::Path, content: &str) {
    let tmp = path.with_extension(format!("tmp{}", fastrand::u32(..)));
    std::fs::write(&tmp, content).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

#[test]
fn ten_processes_fifty_runs_with_edits() {
    let seg = segment();
    for m in 0..MODULES {
        std::fs::write(seg.path().join(format!("c{m}.py")), variant(m)).unwrap();
    }
    // Reference outputs, keyed by cache_key (= content): every variant the editor will write.
    let mut expected: HashMap<String, Value> = HashMap::new();
    let edited = seg.path().join("c0.py");
    for v in 0..3 {
        atomic_write(&edited, &variant(100 + v));
        let r = uncached(seg.path(), "sym://python/mod/c0");
        expected.insert(r.s("cache_key").to_string(), r.json.clone());
    }
    atomic_write(&edited, &variant(100));
    for m in 1..MODULES {
        let r = uncached(seg.path(), &format!("sym://python/mod/c{m}"));
        expected.insert(r.s("cache_key").to_string(), r.json.clone());
    }

    let stop = Arc::new(AtomicBool::new(false));
    let editor = {
        let stop = stop.clone();
        let edited = edited.clone();
        std::thread::spawn(move || {
            let mut v = 0;
            let mut edits = 0;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(40));
                v = (v + 1) % 3;
                atomic_write(&edited, &variant(100 + v));
                edits += 1;
            }
            edits
        })
    };
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let seg = seg.path().to_path_buf();
            std::thread::spawn(move || {
                let mut rng = fastrand::Rng::with_seed(w as u64);
                (0..RUNS)
                    .map(|_| {
                        let uri = format!("sym://python/mod/c{}", rng.usize(..MODULES));
                        symbols(&seg, &uri, &["--persist-cache", "--telemetry", "lite"], &[])
                    })
                    .collect::<Vec<Run>>()
            })
        })
        .collect();
    let runs: Vec<Run> = workers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    stop.store(true, Ordering::Relaxed);
    let edits = editor.join().unwrap();

    assert_eq!(runs.len(), WORKERS * RUNS);
    let mut reasons: HashMap<String, usize> = HashMap::new();
    for r in &runs {
        assert_eq!(r.code, 0, "{} / {}", r.json, r.stderr);
        let want = expected
            .get(r.s("cache_key"))
            .unwrap_or_else(|| panic!("output for unknown content: {}", r.json));
        assert_eq!(r.json["symbols"], want["symbols"], "{}", r.json);
        assert_eq!(r.json["syntax_errors"], want["syntax_errors"]);
        assert_eq!(
            r.s("cache_backend"),
            "sqlite",
            "no fallback under normal contention"
        );
        *reasons.entry(r.s("miss_reason").to_string()).or_default() += 1;
    }
    eprintln!("edits: {edits}, outcomes: {reasons:?}");
    for bad in [
        "lock_timeout",
        "corruption_recovered",
        "cache_unavailable",
        "schema_incompatible",
    ] {
        assert!(!reasons.contains_key(bad), "{bad}: {reasons:?}");
    }
    let hits = reasons.get("cache_hit").copied().unwrap_or(0);
    assert!(
        hits > 0 && hits < runs.len(),
        "mixed hits and misses: {reasons:?}"
    );
    assert!(edits > 0);

    // Telemetry: every line parses (events() panics otherwise) and the counts equal the runs.
    let all = events(seg.path());
    let count = |name: &str| all.iter().filter(|e| e["cmd"] == name).count();
    assert_eq!(count("ast.symbols"), runs.len());
    assert_eq!(count("ast.cache.hit"), hits);
    assert_eq!(count("ast.cache.hit") + count("ast.cache.miss"), runs.len());
    assert!(
        all.iter()
            .all(|e| e["ts"].as_str().is_some_and(|t| t.ends_with('Z')))
    );

    let integrity: String = db(seg.path())
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let s = seg.path().to_str().unwrap();
    assert_eq!(
        run_with(&["ast", "cache", "verify", "--segment", s], &[]).code,
        0
    );
    let st = run_with(&["ast", "cache", "stats", "--segment", s], &[]).json;
    assert_eq!(st["hits"].as_u64(), Some(hits as u64));
    assert_eq!(
        st["hits"].as_u64().unwrap() + st["misses"].as_u64().unwrap(),
        runs.len() as u64
    );
    // One row per file whatever the edit history.
    let rows: i64 = db(seg.path())
        .query_row("SELECT COUNT(*) FROM entries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, MODULES as i64);
}

/// Ten processes hit the same damaged database at once: every one answers correctly, and the
/// database is quarantined exactly once (the others re-check under the exclusive lock, see a
/// different file and use it instead of quarantining another process's fresh database).
#[test]
fn concurrent_detection_quarantines_exactly_once() {
    use trifecta::verify::steps::faults::{CorruptionMode, inject};
    for (round, mode) in [
        CorruptionMode::ZeroHeader,
        CorruptionMode::AppendGarbage,
        CorruptionMode::FlipPayloadBit,
    ]
    .into_iter()
    .enumerate()
    {
        let seg = segment();
        let uri = "sym://python/mod/pkg.mod";
        let reference = uncached(seg.path(), uri);
        persisted(seg.path(), uri, &[]);
        inject(mode, &db_path(seg.path()), round as u64).unwrap();
        let handles: Vec<_> = (0..10)
            .map(|_| {
                let seg = seg.path().to_path_buf();
                std::thread::spawn(move || {
                    symbols(&seg, uri, &["--persist-cache", "--telemetry", "lite"], &[])
                })
            })
            .collect();
        let runs: Vec<Run> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let mut reasons: HashMap<String, usize> = HashMap::new();
        for r in &runs {
            assert_same_as_uncached(r, &reference);
            *reasons.entry(r.s("miss_reason").to_string()).or_default() += 1;
        }
        let q = seg.path().join(".trifecta/cache/quarantine");
        let folders = std::fs::read_dir(&q).map(|d| d.count()).unwrap_or(0);
        let detected = events_named(seg.path(), "ast.cache.corruption_detected");
        eprintln!(
            "{}: {reasons:?}, {} event(s)",
            mode.as_str(),
            detected.len()
        );
        assert_eq!(
            folders, 1,
            "{mode:?}: quarantined {folders} times; {reasons:?}"
        );
        let quarantined: Vec<_> = detected
            .iter()
            .filter(|e| e["result"]["action"] == "quarantined_and_recreated")
            .collect();
        assert_eq!(quarantined.len(), 1, "{detected:?}");
        assert!(reasons.get("corruption_recovered").copied().unwrap_or(0) >= 1);
        // The database path never disappears during recovery, so nobody takes it for a
        // first run.
        assert!(
            !reasons.contains_key("cold_cache_db_missing"),
            "{reasons:?}"
        );
        let s = seg.path().to_str().unwrap();
        assert_eq!(
            run_with(&["ast", "cache", "verify", "--segment", s], &[]).code,
            0
        );
        // The contract after a recovery: the next run rebuilds, the one after hits. If one
        // of the ten concurrent runs already rebuilt (it opened the fresh DB and missed), the
        // next run hits at once; if all ten were served uncached, it is the rebuild.
        let next = persisted(seg.path(), uri, &[]);
        match next.s("miss_reason") {
            "cache_hit" => {}
            "cold_cache_empty" => {
                let after = persisted(seg.path(), uri, &[]);
                assert_eq!(
                    after.s("cache_status"),
                    "hit",
                    "{mode:?}: the run after the rebuild hits"
                );
            }
            other => {
                panic!("{mode:?}: after recovery the next run must hit or rebuild, got {other}")
            }
        }
    }
}
