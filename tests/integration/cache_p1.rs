//! P1 persistence through the real binary: cross-process hits, truthful miss reasons, one row
//! per file, relocatable cache, flag and environment variable equivalent.

use super::cache_support::*;

const URI: &str = "sym://python/mod/pkg.mod";

#[test]
fn cross_run_hit_with_flag() {
    let seg = segment();
    let reference = uncached(seg.path(), URI);
    assert!(!db_path(seg.path()).exists(), "uncached run creates no DB");
    let r1 = persisted(seg.path(), URI, &[]);
    assert_same_as_uncached(&r1, &reference);
    assert_eq!(r1.s("cache_status"), "miss");
    assert_eq!(r1.s("miss_reason"), "cold_cache_db_missing");
    assert_eq!(r1.s("cache_backend"), "sqlite");
    let root = std::fs::canonicalize(seg.path()).unwrap();
    assert_eq!(r1.s("cache_db_path"), db_path(&root).to_str().unwrap());
    assert!(db_path(seg.path()).is_file());

    let r2 = persisted(seg.path(), URI, &[]);
    assert_same_as_uncached(&r2, &reference);
    assert_eq!(r2.s("cache_status"), "hit");
    assert_eq!(r2.s("miss_reason"), "cache_hit");
    assert_eq!(r2.json["symbols"], r1.json["symbols"]);
    assert_eq!(r2.json["cache_key"], r1.json["cache_key"]);
}

#[test]
fn env_var_behaves_exactly_like_the_flag() {
    let seg = segment();
    let by_flag = persisted(seg.path(), URI, &[]);
    std::fs::remove_dir_all(seg.path().join(".trifecta")).unwrap();
    let by_env = symbols(seg.path(), URI, &[], &[("TRIFECTA_AST_PERSIST", "1")]);
    assert_eq!(by_env.code, 0);
    assert_eq!(by_env.json["miss_reason"], by_flag.json["miss_reason"]);
    assert_eq!(by_env.json["cache_db_path"], by_flag.json["cache_db_path"]);
    assert_eq!(by_env.s("cache_backend"), "sqlite");
    let hit = symbols(seg.path(), URI, &[], &[("TRIFECTA_AST_PERSIST", "true")]);
    assert_eq!(hit.s("miss_reason"), "cache_hit");
    // The flag wins over the variable in both directions.
    let off = symbols(
        seg.path(),
        URI,
        &["--no-persist-cache"],
        &[("TRIFECTA_AST_PERSIST", "1")],
    );
    assert_eq!(off.s("cache_backend"), "memory");
    assert_eq!(off.s("miss_reason"), "ephemeral_cache");
    assert!(off.json["cache_db_path"].is_null());
}

#[test]
fn edit_gives_content_changed_then_hit_and_one_row_per_file() {
    let seg = segment();
    persisted(seg.path(), URI, &[]);
    persisted(seg.path(), "sym://python/mod/top", &[]);
    for i in 0..3 {
        std::fs::write(
            seg.path().join("pkg/mod.py"),
            format!("{MOD_SRC}\n\ndef extra{i}():\n    pass\n"),
        )
        .unwrap();
        let reference = uncached(seg.path(), URI);
        let miss = persisted(seg.path(), URI, &[]);
        assert_same_as_uncached(&miss, &reference);
        assert_eq!(miss.s("miss_reason"), "content_changed");
        let hit = persisted(seg.path(), URI, &[]);
        assert_same_as_uncached(&hit, &reference);
        assert_eq!(hit.s("miss_reason"), "cache_hit");
    }
    let c = db(seg.path());
    let rows: i64 = c
        .query_row("SELECT COUNT(*) FROM entries", [], |r| r.get(0))
        .unwrap();
    let mods: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM entries WHERE file_rel = 'pkg/mod.py'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!((rows, mods), (2, 1), "one row per file, not per edit");
}

#[test]
fn key_miss_and_cold_empty_are_truthful() {
    let seg = segment();
    assert_eq!(
        persisted(seg.path(), URI, &[]).s("miss_reason"),
        "cold_cache_db_missing"
    );
    assert_eq!(
        persisted(seg.path(), "sym://python/mod/top", &[]).s("miss_reason"),
        "key_miss"
    );
    db(seg.path()).execute("DELETE FROM entries", []).unwrap();
    assert_eq!(
        persisted(seg.path(), URI, &[]).s("miss_reason"),
        "cold_cache_empty"
    );
}

#[test]
fn moving_the_segment_keeps_hits() {
    let parent = tempfile::tempdir().unwrap();
    let seg = segment();
    let a = parent.path().join("a");
    // Copy the fixture under a directory we control, warm it, then rename the directory.
    std::fs::rename(seg.path(), &a).unwrap_or_else(|_| {
        copy_dir(seg.path(), &a);
    });
    let warm = persisted(&a, URI, &[]);
    assert_eq!(warm.s("cache_status"), "miss");
    let b = parent.path().join("elsewhere/b");
    std::fs::create_dir_all(b.parent().unwrap()).unwrap();
    std::fs::rename(&a, &b).unwrap();
    let moved = persisted(&b, URI, &[]);
    assert_eq!(moved.s("miss_reason"), "cache_hit");
    assert_eq!(moved.json["cache_key"], warm.json["cache_key"]);
    assert_eq!(moved.json["symbols"], warm.json["symbols"]);
    assert!(
        moved
            .s("cache_db_path")
            .starts_with(std::fs::canonicalize(&b).unwrap().to_str().unwrap())
    );
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

#[test]
fn cache_dir_is_tagged_and_ignored() {
    let seg = segment();
    persisted(seg.path(), URI, &[]);
    let t = seg.path().join(".trifecta");
    assert_eq!(
        std::fs::read_to_string(t.join(".gitignore"))
            .unwrap()
            .trim(),
        "*"
    );
    let tag = std::fs::read_to_string(t.join("CACHEDIR.TAG")).unwrap();
    assert!(
        tag.starts_with("Signature: 8a477f597d28d172789f06886806bc55"),
        "{tag}"
    );
}

#[test]
fn bad_input_creates_nothing() {
    let seg = segment();
    let r = persisted(seg.path(), "sym://python/mod/nope", &[]);
    assert_eq!(r.code, 1);
    assert_eq!(r.s("error_code"), "FILE_NOT_FOUND");
    assert!(!seg.path().join(".trifecta").exists());
    let r = persisted(seg.path(), "sym://python/mod/pkg..mod", &[]);
    assert_eq!(r.code, 1);
    assert!(!seg.path().join(".trifecta").exists());
}

#[test]
fn db_schema_and_pragmas() {
    let seg = segment();
    persisted(seg.path(), URI, &[]);
    let c = db(seg.path());
    let q = |sql: &str| -> String {
        c.query_row(sql, [], |r| r.get::<_, rusqlite::types::Value>(0))
            .map(|v| format!("{v:?}"))
            .unwrap()
    };
    assert_eq!(q("PRAGMA journal_mode"), "Text(\"wal\")");
    assert_eq!(q("PRAGMA auto_vacuum"), "Integer(2)");
    assert_eq!(q("PRAGMA user_version"), "Integer(1)");
    assert_eq!(
        q("PRAGMA application_id"),
        format!("Integer({})", 0x5452_4946)
    );
    let (len, bytes, payload): (i64, i64, Vec<u8>) = c
        .query_row(
            "SELECT length(content_hash), payload_bytes, payload FROM entries",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(len, 32);
    assert_eq!(bytes as usize, payload.len());
    let v: serde_json::Value = serde_json::from_slice(&payload).expect("payload is plain JSON");
    assert!(v.get("symbols").is_some());
}

#[test]
fn row_from_another_extractor_is_extractor_changed_then_replaced() {
    let seg = segment();
    persisted(seg.path(), URI, &[]);
    let c = db(seg.path());
    let (rel, hash, payload): (String, Vec<u8>, Vec<u8>) = c
        .query_row(
            "SELECT file_rel, content_hash, payload FROM entries",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let old_tag = "tsp0.0-x0";
    let sum = trifecta::cache::sqlite::entry_checksum(&rel, &hash, old_tag, &payload);
    c.execute(
        "UPDATE entries SET extractor = ?1, checksum = ?2",
        rusqlite::params![old_tag, &sum[..]],
    )
    .unwrap();
    drop(c);
    let r = persisted(seg.path(), URI, &[]);
    assert_same_as_uncached(&r, &uncached(seg.path(), URI));
    assert_eq!(r.s("miss_reason"), "extractor_changed");
    assert_eq!(
        persisted(seg.path(), URI, &[]).s("miss_reason"),
        "cache_hit"
    );
    let tag: String = db(seg.path())
        .query_row("SELECT extractor FROM entries", [], |r| r.get(0))
        .unwrap();
    assert_ne!(tag, old_tag);
}
