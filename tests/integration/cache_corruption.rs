//! Every mode of the corruption catalog (`faults::CorruptionMode::ALL`), end to end through the
//! real binary: the damaged run exits 0 with exactly the symbols of an uncached run and the
//! right event; the next run rebuilds (miss); the one after hits; `ast cache verify` is clean
//! afterwards and quarantine stays bounded.
//!
//! Modes SQLite heals by itself are asserted as such, honestly: a garbage `-wal` (its header
//! checksum is invalid, so SQLite ignores it), a deleted `-shm` and a garbage `-shm` (the first
//! connection rebuilds the wal-index when no other process has the database open) produce no
//! corruption event and the next run is a verified hit. Wrong symbols are impossible either
//! way: every row's checksum is verified before it is served.

use super::cache_support::*;
use serde_json::Value;
use trifecta::verify::steps::faults::{CorruptionMode, inject};

const URI: &str = "sym://python/mod/pkg.mod";

/// What a mode must produce on the first run after the damage.
#[derive(Debug)]
enum Expect {
    /// Quarantine + recreate; `kinds` lists the acceptable `result.kind` values.
    Recovered(&'static [&'static str]),
    /// SQLite heals it; the run is a verified hit and no corruption is reported.
    Healed,
    /// Newer schema: uncached, DB byte-for-byte untouched, forever.
    Untouched,
    /// Damage inside a data page: detected by the lookup when it lands on a page the lookup
    /// reads (then as `Recovered`); otherwise latent — the run is a verified hit, and the
    /// damage is found by `ast cache verify` (CACHE_CORRUPT) and quarantined by maintenance
    /// (`ast cache prune`), or it sits in unused page space where no check can see it and
    /// nothing ever reads it.
    PageDamage(&'static [&'static str]),
}

fn expectation(mode: CorruptionMode) -> Expect {
    use CorruptionMode as M;
    match mode {
        M::AppendGarbage => Expect::Recovered(&["size_mismatch"]),
        M::Truncate => Expect::Recovered(&["size_mismatch", "short_header"]),
        M::ZeroHeader | M::RandomHeader => Expect::Recovered(&["bad_header"]),
        M::RandomPageBytes => Expect::PageDamage(&[
            "sqlite_corrupt",
            "checksum_mismatch",
            "row_malformed",
            "integrity_check_failed",
        ]),
        M::FlipPayloadBit => Expect::Recovered(&["checksum_mismatch"]),
        M::GarbageWal | M::DeleteShm | M::GarbageShm => Expect::Healed,
        M::ZeroLength => Expect::Recovered(&["empty_file"]),
        M::Directory => Expect::Recovered(&["not_a_file"]),
        M::NewerUserVersion => Expect::Untouched,
    }
}

fn lite(seg: &std::path::Path) -> Run {
    symbols(seg, URI, &["--persist-cache", "--telemetry", "lite"], &[])
}

fn run_mode(mode: CorruptionMode, seed: u64) {
    let seg = segment();
    let reference = uncached(seg.path(), URI);
    let warm = persisted(seg.path(), URI, &[]);
    assert_eq!(warm.s("miss_reason"), "cold_cache_db_missing");
    let db = db_path(seg.path());
    let inj = inject(mode, &db, seed).unwrap_or_else(|e| panic!("{mode:?}: inject failed: {e}"));
    let ctx = format!("{} seed {seed}: {}", mode.as_str(), inj.detail);
    let before = std::fs::read(&db).ok();

    let r1 = lite(seg.path());
    assert_same_as_uncached(&r1, &reference);
    let corruption = events_named(seg.path(), "ast.cache.corruption_detected");
    let s = seg.path().to_str().unwrap();
    let mut exp = expectation(mode);
    if let Expect::PageDamage(kinds) = exp {
        if r1.s("miss_reason") == "corruption_recovered" {
            eprintln!("{ctx}: detected by the lookup");
            exp = Expect::Recovered(kinds);
        } else {
            assert!(corruption.is_empty(), "{ctx}: {corruption:?}");
            assert_eq!(
                r1.s("miss_reason"),
                "cache_hit",
                "{ctx}: latent damage, verified hit"
            );
            let v = run_with(&["ast", "cache", "verify", "--segment", s], &[]);
            if v.code == 0 {
                eprintln!("{ctx}: latent in unused space (verify ok)");
                // Unused page space: invisible to integrity_check and never read.
                let r = persisted(seg.path(), URI, &[]);
                assert_same_as_uncached(&r, &reference);
                assert_eq!(r.s("miss_reason"), "cache_hit", "{ctx}");
                return;
            }
            assert_eq!(v.s("error_code"), "CACHE_CORRUPT", "{ctx}");
            eprintln!("{ctx}: latent, found by verify, quarantined by prune");
            let p = run_with(&["ast", "cache", "prune", "--segment", s], &[]);
            assert_eq!(
                (p.code, p.s("error_code")),
                (1, "CACHE_CORRUPT"),
                "{ctx}: {}",
                p.json
            );
            let q = seg.path().join(".trifecta/cache/quarantine");
            assert_eq!(
                std::fs::read_dir(&q).map(|d| d.count()).unwrap_or(0),
                1,
                "{ctx}"
            );
            let r2 = persisted(seg.path(), URI, &[]);
            assert_same_as_uncached(&r2, &reference);
            assert_eq!(
                r2.s("miss_reason"),
                "cold_cache_empty",
                "{ctx}: rebuilt after prune"
            );
            let r3 = persisted(seg.path(), URI, &[]);
            assert_eq!(r3.s("miss_reason"), "cache_hit", "{ctx}");
            let v = run_with(&["ast", "cache", "verify", "--segment", s], &[]);
            assert_eq!(v.code, 0, "{ctx}: verify after prune: {}", v.json);
            return;
        }
    }
    match exp {
        Expect::PageDamage(_) => unreachable!("resolved above"),
        Expect::Recovered(kinds) => {
            assert_eq!(r1.s("miss_reason"), "corruption_recovered", "{ctx}");
            assert_eq!(r1.s("cache_status"), "miss", "{ctx}");
            assert_eq!(corruption.len(), 1, "{ctx}: {corruption:?}");
            let res = &corruption[0]["result"];
            let kind = res["kind"].as_str().unwrap();
            assert!(kinds.contains(&kind), "{ctx}: kind {kind}");
            let q = res["quarantined_to"].as_str().unwrap();
            assert!(
                q.starts_with("quarantine/") && !q.starts_with('/'),
                "{ctx}: {q}"
            );
            let qdir = seg.path().join(".trifecta/cache").join(q);
            assert!(
                qdir.join("ast_cache.db").exists(),
                "{ctx}: nothing quarantined"
            );
            assert_eq!(res["action"], "quarantined_and_recreated");
            let r2 = persisted(seg.path(), URI, &[]);
            assert_same_as_uncached(&r2, &reference);
            assert_eq!(r2.s("cache_status"), "miss", "{ctx}: next run rebuilds");
            assert_eq!(r2.s("miss_reason"), "cold_cache_empty", "{ctx}");
            let r3 = persisted(seg.path(), URI, &[]);
            assert_same_as_uncached(&r3, &reference);
            assert_eq!(
                r3.s("miss_reason"),
                "cache_hit",
                "{ctx}: the one after hits"
            );
        }
        Expect::Healed => {
            assert!(corruption.is_empty(), "{ctx}: {corruption:?}");
            assert_eq!(r1.s("miss_reason"), "cache_hit", "{ctx}");
            let r2 = persisted(seg.path(), URI, &[]);
            assert_same_as_uncached(&r2, &reference);
            assert_eq!(r2.s("miss_reason"), "cache_hit", "{ctx}");
        }
        Expect::Untouched => {
            assert_eq!(r1.s("miss_reason"), "schema_incompatible", "{ctx}");
            assert_eq!(r1.s("cache_backend"), "memory");
            let ev = events_named(seg.path(), "ast.cache.schema_incompatible");
            assert_eq!(ev.len(), 1, "{ctx}");
            assert!(ev[0]["result"]["found"].as_i64().unwrap() > 1);
            assert!(corruption.is_empty());
            for _ in 0..2 {
                let r = persisted(seg.path(), URI, &[]);
                assert_same_as_uncached(&r, &reference);
                assert_eq!(r.s("miss_reason"), "schema_incompatible");
            }
            // Commands refuse to touch it too.
            for sub in ["clear", "prune", "stats"] {
                let r = run_with(&["ast", "cache", sub, "--segment", s], &[]);
                assert_eq!(
                    (r.code, r.s("error_code")),
                    (1, "CACHE_UNAVAILABLE"),
                    "{sub}"
                );
            }
            assert_eq!(
                std::fs::read(&db).ok(),
                before,
                "{ctx}: the newer DB was modified"
            );
            assert!(!seg.path().join(".trifecta/cache/quarantine").exists());
            return;
        }
    }
    let v = run_with(&["ast", "cache", "verify", "--segment", s], &[]);
    assert_eq!(v.code, 0, "{ctx}: verify after recovery: {}", v.json);
    assert_eq!(v.json["integrity_check"], "ok");
}

#[test]
fn every_catalog_mode_end_to_end() {
    for mode in CorruptionMode::ALL {
        run_mode(mode, 7);
    }
}

#[test]
fn byte_level_modes_over_many_seeds() {
    use CorruptionMode as M;
    for mode in [
        M::Truncate,
        M::RandomHeader,
        M::RandomPageBytes,
        M::FlipPayloadBit,
        M::AppendGarbage,
    ] {
        for seed in 1..=6 {
            run_mode(mode, seed);
        }
    }
}

#[test]
fn verify_reports_damage_with_cache_corrupt() {
    use CorruptionMode as M;
    for mode in [M::ZeroHeader, M::FlipPayloadBit, M::Truncate, M::Directory] {
        let seg = segment();
        persisted(seg.path(), URI, &[]);
        let s = seg.path().to_str().unwrap();
        let ok = run_with(&["ast", "cache", "verify", "--segment", s], &[]);
        assert_eq!(ok.code, 0, "{}", ok.json);
        inject(mode, &db_path(seg.path()), 3).unwrap();
        let bad = run_with(&["ast", "cache", "verify", "--segment", s], &[]);
        assert_eq!(bad.code, 1, "{mode:?}: {}", bad.json);
        assert_eq!(bad.s("error_code"), "CACHE_CORRUPT", "{mode:?}");
        let text = run_with(
            &["ast", "cache", "verify", "--segment", s, "--format", "text"],
            &[],
        );
        assert_eq!(text.code, 1, "text format fails the same way");
    }
}

#[test]
fn quarantine_is_bounded_to_three() {
    let seg = segment();
    let reference = uncached(seg.path(), URI);
    for seed in 0..5 {
        persisted(seg.path(), URI, &[]);
        inject(CorruptionMode::ZeroHeader, &db_path(seg.path()), seed).unwrap();
        let r = persisted(seg.path(), URI, &[]);
        assert_same_as_uncached(&r, &reference);
        assert_eq!(r.s("miss_reason"), "corruption_recovered");
        // Folder names are per millisecond; keep them distinct.
        std::thread::sleep(std::time::Duration::from_millis(3));
    }
    let q = seg.path().join(".trifecta/cache/quarantine");
    assert_eq!(std::fs::read_dir(q).unwrap().count(), 3);
    let stats = run_with(
        &[
            "ast",
            "cache",
            "stats",
            "--segment",
            seg.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(stats.json["corruptions"], Value::from(5));
    assert_eq!(stats.json["quarantines"], Value::from(5));
}

/// A segment with `n` modules, all cached through the library (same key and extraction as the
/// binary), so the database has many dense pages for page-level damage to land on.
fn full_segment(n: usize) -> tempfile::TempDir {
    use trifecta::cache::{CacheKey, open_cache};
    use trifecta::config::CacheSettings;
    let seg = segment();
    let mut items = Vec::new();
    for i in 0..n {
        let src = format!(
            "def f{i}(a, b):\n    return a + b\n\n\nclass C{i}:\n    def m(self):\n        pass\n"
        );
        let rel = format!("m{i:03}.py");
        std::fs::write(seg.path().join(&rel), &src).unwrap();
        let table = trifecta::symbols::extract::extract(src.as_bytes());
        items.push((rel, CacheKey::of(src.as_bytes()), table));
    }
    let settings = CacheSettings {
        persist: true,
        ..CacheSettings::default()
    };
    let root = trifecta::symbols::resolve::segment_root(seg.path()).unwrap();
    let mut opened = open_cache(
        &root,
        &settings,
        &trifecta::telemetry::Telemetry::disabled(),
    );
    assert!(opened.fallback.is_none());
    opened.store.put_batch(&items).unwrap();
    drop(opened);
    seg
}

#[test]
fn random_page_bytes_on_a_full_db_never_serves_wrong_symbols() {
    let mut branches = std::collections::BTreeMap::<&str, u32>::new();
    for seed in 1..=8u64 {
        let seg = full_segment(300);
        let s = seg.path().to_str().unwrap().to_string();
        let inj = inject(CorruptionMode::RandomPageBytes, &db_path(seg.path()), seed).unwrap();
        let mut detected = false;
        for i in (0..300).step_by(15) {
            let uri = format!("sym://python/mod/m{i:03}");
            let reference = uncached(seg.path(), &uri);
            let r = symbols(
                seg.path(),
                &uri,
                &["--persist-cache", "--telemetry", "lite"],
                &[],
            );
            assert_same_as_uncached(&r, &reference);
            match r.s("miss_reason") {
                "cache_hit" => {}
                // After a recovery the DB is fresh: later modules miss and are rebuilt.
                "corruption_recovered" => detected = true,
                "cold_cache_empty" | "key_miss" if detected => {}
                other => panic!("seed {seed} ({}): unexpected {other}", inj.detail),
            }
        }
        let n_events = events_named(seg.path(), "ast.cache.corruption_detected").len();
        assert_eq!(
            n_events,
            usize::from(detected),
            "seed {seed}: one event per recovery"
        );
        let v = run_with(&["ast", "cache", "verify", "--segment", &s], &[]);
        let branch = if detected {
            assert_eq!(v.code, 0, "seed {seed}: verify after recovery {}", v.json);
            "detected by a lookup"
        } else if v.code == 0 {
            "latent in unused space"
        } else {
            assert_eq!(v.s("error_code"), "CACHE_CORRUPT");
            if sweep_all_rows(seg.path(), 300) {
                "latent; a lookup of another row detected and recovered it"
            } else {
                let p = run_with(&["ast", "cache", "prune", "--segment", &s], &[]);
                assert_eq!(
                    p.s("error_code"),
                    "CACHE_CORRUPT",
                    "prune quarantines: {}",
                    p.json
                );
                "latent, found by verify, quarantined by prune"
            }
        };
        let v2 = run_with(&["ast", "cache", "verify", "--segment", &s], &[]);
        assert_eq!(v2.code, 0, "seed {seed}: verify at the end {}", v2.json);
        eprintln!("random_page_bytes seed {seed} ({}): {branch}", inj.detail);
        *branches.entry(branch).or_default() += 1;
    }
    eprintln!("branches: {branches:?}");
}

/// Look every row up in-process (fast): each answer is a hit equal to a fresh extraction, or
/// a miss; never a wrong hit. Returns whether a lookup detected (and recovered) corruption.
fn sweep_all_rows(seg: &std::path::Path, n: usize) -> bool {
    use trifecta::cache::{CacheKey, Lookup, MissReason, open_cache};
    let settings = trifecta::config::CacheSettings {
        persist: true,
        ..Default::default()
    };
    let root = trifecta::symbols::resolve::segment_root(seg).unwrap();
    let mut opened = open_cache(
        &root,
        &settings,
        &trifecta::telemetry::Telemetry::disabled(),
    );
    let mut detected = opened.fallback == Some(MissReason::CorruptionRecovered);
    for i in 0..n {
        let rel = format!("m{i:03}.py");
        let bytes = std::fs::read(root.join(&rel)).unwrap();
        match opened.store.get(&rel, &CacheKey::of(&bytes)) {
            Ok(Lookup::Hit(t)) => {
                assert_eq!(
                    t,
                    trifecta::symbols::extract::extract(&bytes),
                    "wrong hit for {rel}"
                )
            }
            Ok(Lookup::Miss(MissReason::CorruptionRecovered)) => detected = true,
            Ok(Lookup::Miss(_)) | Err(_) => {}
        }
    }
    detected
}
