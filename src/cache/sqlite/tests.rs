//! Unit tests of the SQLite store: memory/SQLite model equivalence (proptest), checksum and
//! extractor handling, the single error mapping, and read-only hits.

use super::*;
use crate::cache::memory::MemoryStore;
use crate::cache::open_cache;
use crate::symbols::{Symbol, SymbolKind};
use proptest::prelude::*;

fn seg(p: &Path) -> Segment {
    crate::symbols::resolve::segment_root(p).unwrap()
}

fn settings() -> CacheSettings {
    CacheSettings {
        persist: true,
        ..CacheSettings::default()
    }
}

fn table(n: u8) -> SymbolTable {
    SymbolTable {
        symbols: vec![Symbol {
            kind: SymbolKind::Function,
            name: format!("f{n}"),
            line: u32::from(n) + 1,
            end_line: u32::from(n) + 2,
            is_async: n.is_multiple_of(2),
            members: None,
        }],
        syntax_errors: vec![],
    }
}

/// Cold reasons differ by design (memory: nothing survives; SQLite: the DB was missing or
/// empty); everything else must be identical.
fn normalize(l: Lookup) -> Lookup {
    match l {
        Lookup::Miss(
            MissReason::EphemeralCache
            | MissReason::ColdCacheDbMissing
            | MissReason::ColdCacheEmpty,
        ) => Lookup::Miss(MissReason::EphemeralCache),
        other => other,
    }
}

#[derive(Debug, Clone)]
enum Op {
    Get(u8, u8),
    Put(u8, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..3, 0u8..3).prop_map(|(f, c)| Op::Get(f, c)),
        (0u8..3, 0u8..3).prop_map(|(f, c)| Op::Put(f, c)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn memory_and_sqlite_agree(ops in proptest::collection::vec(op(), 1..24)) {
        let dir = tempfile::tempdir().unwrap();
        let mut opened = open_cache(&seg(dir.path()), &settings(), &Telemetry::disabled());
        prop_assert!(opened.fallback.is_none());
        prop_assert_eq!(opened.store.backend(), Backend::Sqlite);
        let mut mem = MemoryStore::new();
        for o in ops {
            match o {
                Op::Get(f, c) => {
                    let file = format!("m{f}.py");
                    let key = CacheKey::of(&[c]);
                    let a = normalize(mem.get(&file, &key).unwrap());
                    let b = normalize(opened.store.get(&file, &key).unwrap());
                    prop_assert_eq!(a, b);
                }
                Op::Put(f, c) => {
                    let file = format!("m{f}.py");
                    let key = CacheKey::of(&[c]);
                    mem.put(&file, &key, &table(c)).unwrap();
                    opened.store.put(&file, &key, &table(c)).unwrap();
                }
            }
        }
    }
}

fn raw_insert(dir: &Path, file: &str, key: &CacheKey, tag: &str, payload: &[u8]) {
    let c = Connection::open(crate::cache::cache_db_path(dir)).unwrap();
    let sum = entry_checksum(file, key.content_hash(), tag, payload);
    c.execute(
        "INSERT OR REPLACE INTO entries VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, 0)",
        params![
            file,
            &key.content_hash()[..],
            tag,
            payload,
            &sum[..],
            payload.len() as i64
        ],
    )
    .unwrap();
}

#[test]
fn extractor_change_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    drop(open_cache(
        &seg(dir.path()),
        &settings(),
        &Telemetry::disabled(),
    ));
    let key = CacheKey::of(b"x");
    raw_insert(dir.path(), "a.py", &key, "tsp0.0-x0", br#"{"symbols":[]}"#);
    let mut o = open_cache(&seg(dir.path()), &settings(), &Telemetry::disabled());
    assert_eq!(
        o.store.get("a.py", &key).unwrap(),
        Lookup::Miss(MissReason::ExtractorChanged)
    );
}

#[test]
fn checksum_mismatch_is_never_served_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let key = CacheKey::of(b"x");
    {
        let mut o = open_cache(&seg(dir.path()), &settings(), &Telemetry::disabled());
        o.store.put("a.py", &key, &table(1)).unwrap();
        assert_eq!(o.store.get("a.py", &key).unwrap(), Lookup::Hit(table(1)));
    }
    // Same row, other payload, old checksum: a value SQLite cannot see is wrong.
    let c = Connection::open(crate::cache::cache_db_path(dir.path())).unwrap();
    let payload = serde_json::to_vec(&table(2)).unwrap();
    c.execute("UPDATE entries SET payload = ?1", [payload])
        .unwrap();
    drop(c);
    let mut o = open_cache(&seg(dir.path()), &settings(), &Telemetry::disabled());
    assert_eq!(
        o.store.get("a.py", &key).unwrap(),
        Lookup::Miss(MissReason::CorruptionRecovered)
    );
    // This run stays uncached: writes are skipped, lookups keep missing.
    o.store.put("a.py", &key, &table(1)).unwrap();
    assert_eq!(
        o.store.get("a.py", &key).unwrap(),
        Lookup::Miss(MissReason::CorruptionRecovered)
    );
    drop(o);
    let q = dir.path().join(".trifecta/cache/quarantine");
    assert_eq!(std::fs::read_dir(q).unwrap().count(), 1);
    let mut o = open_cache(&seg(dir.path()), &settings(), &Telemetry::disabled());
    assert_eq!(
        o.store.get("a.py", &key).unwrap(),
        Lookup::Miss(MissReason::ColdCacheEmpty)
    );
}

#[test]
fn classify_maps_only_corruption_to_corrupt() {
    let corrupt = rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
        None,
    );
    assert!(matches!(
        classify(corrupt),
        SqlFailure::Corrupt(DamageKind::SqliteCorrupt)
    ));
    let notadb = rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_NOTADB),
        None,
    );
    assert!(matches!(classify(notadb), SqlFailure::Corrupt(_)));
    let busy =
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None);
    assert!(matches!(classify(busy), SqlFailure::Other(_)));
}

#[test]
fn hits_do_not_write_unless_access_is_stale() {
    let dir = tempfile::tempdir().unwrap();
    let key = CacheKey::of(b"x");
    let mut o = open_cache(&seg(dir.path()), &settings(), &Telemetry::disabled());
    o.store.put("a.py", &key, &table(1)).unwrap();
    drop(o);
    let c = Connection::open(crate::cache::cache_db_path(dir.path())).unwrap();
    c.execute(
        "UPDATE entries SET last_access_ms = ?1",
        [crate::clock::now_ms() - 10],
    )
    .unwrap();
    let changes = |c: &Connection| -> i64 {
        c.query_row("PRAGMA data_version", [], |r| r.get(0))
            .unwrap()
    };
    let before = changes(&c);
    let mut o = open_cache(&seg(dir.path()), &settings(), &Telemetry::disabled());
    assert!(matches!(o.store.get("a.py", &key).unwrap(), Lookup::Hit(_)));
    drop(o);
    assert_eq!(changes(&c), before, "a fresh hit wrote the database");
    c.execute("UPDATE entries SET last_access_ms = 0", [])
        .unwrap();
    let before = changes(&c);
    let mut o = open_cache(&seg(dir.path()), &settings(), &Telemetry::disabled());
    assert!(matches!(o.store.get("a.py", &key).unwrap(), Lookup::Hit(_)));
    drop(o);
    assert_ne!(changes(&c), before, "a stale last_access was not refreshed");
}

/// A class nested `depth` deep (each in the previous one's members), with a syntax error.
fn nested(depth: usize) -> SymbolTable {
    let mut inner: Option<Vec<Symbol>> = Some(Vec::new());
    for i in (0..depth).rev() {
        let line = u32::try_from(i).unwrap() + 1;
        inner = Some(vec![Symbol {
            kind: SymbolKind::Class,
            name: format!("C{i}"),
            line,
            end_line: line + 1,
            is_async: false,
            members: inner,
        }]);
    }
    SymbolTable {
        symbols: inner.unwrap_or_default(),
        syntax_errors: vec![crate::symbols::SyntaxErrorLoc::lines(1, 2)],
    }
}

/// Depth and names along the chain of first members, iteratively (comparing or dropping a
/// 20,000-deep table recurses, which is not what these tests are about).
fn chain(t: &SymbolTable) -> Vec<(String, u32, u32)> {
    let mut out = Vec::new();
    let mut cur = t.symbols.first();
    while let Some(s) = cur {
        out.push((s.name.clone(), s.line, s.end_line));
        cur = s.members.as_ref().and_then(|m| m.first());
    }
    out
}

#[test]
fn tables_of_any_depth_round_trip() {
    // 63 nested classes was the first depth past serde_json's default recursion limit (128):
    // such a module read back as "corruption" on every lookup. On a 256 KiB stack, so that
    // the depth, not a roomy test thread, is what is tested.
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            for depth in [63, 1_000, 20_000] {
                let t = nested(depth);
                let back = decode_payload(&encode_payload(&t).unwrap()).unwrap();
                assert_eq!(chain(&back).len(), depth);
                assert_eq!(chain(&back), chain(&t), "depth {depth}");
                assert_eq!(back.syntax_errors, t.syntax_errors);
                std::mem::forget((t, back));
            }
        })
        .unwrap()
        .join()
        .expect("no overflow");
    let dir = tempfile::tempdir().unwrap();
    let key = CacheKey::of(b"deep");
    let deep = nested(1_000);
    let mut o = open_cache(&seg(dir.path()), &settings(), &Telemetry::disabled());
    o.store.put("deep.py", &key, &deep).unwrap();
    drop(o);
    let mut o = open_cache(&seg(dir.path()), &settings(), &Telemetry::disabled());
    assert_eq!(o.store.get("deep.py", &key).unwrap(), Lookup::Hit(deep));
}

#[test]
fn an_intact_but_undecodable_entry_misses_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (ka, kb) = (CacheKey::of(b"a"), CacheKey::of(b"b"));
    let mut o = open_cache(&seg(dir.path()), &settings(), &Telemetry::disabled());
    o.store.put("a.py", &ka, &table(1)).unwrap();
    o.store.put("b.py", &kb, &table(2)).unwrap();
    drop(o);
    // A row whose checksum matches but whose payload is not a table: not damage.
    let c = Connection::open(crate::cache::cache_db_path(dir.path())).unwrap();
    let payload = b"[1, 2, 3]".to_vec();
    let sum = entry_checksum(
        "a.py",
        ka.content_hash(),
        &CacheKey::extractor_tag(),
        &payload,
    );
    c.execute(
        "UPDATE entries SET payload = ?1, checksum = ?2 WHERE file_rel = 'a.py'",
        params![payload, &sum[..]],
    )
    .unwrap();
    drop(c);
    let mut o = open_cache(&seg(dir.path()), &settings(), &Telemetry::disabled());
    assert_eq!(
        o.store.get("a.py", &ka).unwrap(),
        Lookup::Miss(MissReason::EntryUnreadable)
    );
    // The store is still in use: the other entry hits, and the bad one is rewritten.
    assert_eq!(o.store.get("b.py", &kb).unwrap(), Lookup::Hit(table(2)));
    o.store.put("a.py", &ka, &table(1)).unwrap();
    assert_eq!(o.store.get("a.py", &ka).unwrap(), Lookup::Hit(table(1)));
    drop(o);
    assert!(!dir.path().join(".trifecta/cache/quarantine").exists());
}

/// Maintenance runs when the command says it is done ([`Store::finish`]), never from `Drop`:
/// a command that unwinds or returns early must not start a maintenance pass.
#[test]
fn maintenance_runs_on_finish_not_on_drop() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = CacheSettings {
        max_bytes: 1,
        maintenance_interval: std::time::Duration::ZERO,
        ..settings()
    };
    let rows = |o: &mut crate::cache::OpenedCache| {
        (0..4u8)
            .filter(|i| {
                matches!(
                    o.store.get(&format!("m{i}.py"), &CacheKey::of(&[*i])),
                    Ok(Lookup::Hit(_))
                )
            })
            .count()
    };
    let mut o = open_cache(&seg(dir.path()), &settings(), &Telemetry::disabled());
    for i in 0..4u8 {
        o.store
            .put(&format!("m{i}.py"), &CacheKey::of(&[i]), &table(i))
            .unwrap();
    }
    o.store.finish();
    drop(o);
    // Over a 1-byte cap with maintenance always due: dropped without finish, nothing happens.
    let mut o = open_cache(&seg(dir.path()), &tiny, &Telemetry::disabled());
    assert_eq!(rows(&mut o), 4);
    drop(o);
    let mut o = open_cache(&seg(dir.path()), &tiny, &Telemetry::disabled());
    assert_eq!(rows(&mut o), 4, "Drop must not run maintenance");
    o.store.finish();
    drop(o);
    let mut o = open_cache(&seg(dir.path()), &tiny, &Telemetry::disabled());
    assert!(
        rows(&mut o) < 4,
        "finish runs the due maintenance (eviction)"
    );
}
