//! The cache database schema: an append-only list of migrations indexed by `user_version`,
//! plus a fixed `application_id` that marks the file as ours.
//!
//! Rules: a migration is never edited once released, only appended; version N is the state
//! after applying `MIGRATIONS[..N]`. A database whose `user_version` is above
//! [`SCHEMA_VERSION`] was written by a newer trifecta and is never modified or deleted (the
//! caller runs uncached). Creation and migration run under the exclusive cache lock.

use rusqlite::Connection;
use std::path::Path;

/// `application_id` stamped in every cache DB (ASCII "TRIF"), header offset 68.
pub const APPLICATION_ID: i32 = 0x5452_4946;

/// One forward migration.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// What it does (for logs and reviewers).
    pub description: &'static str,
    /// SQL run inside the migration transaction.
    pub sql: &'static str,
}

/// Every migration, in order. Append only.
pub const MIGRATIONS: &[Migration] = &[Migration {
    description: "v1: entries (one row per file), meta, counters",
    sql: "
        CREATE TABLE entries (
            file_rel       TEXT PRIMARY KEY NOT NULL,
            content_hash   BLOB NOT NULL CHECK (length(content_hash) = 32),
            extractor      TEXT NOT NULL,
            payload        BLOB NOT NULL,
            checksum       BLOB NOT NULL CHECK (length(checksum) = 32),
            payload_bytes  INTEGER NOT NULL,
            created_ms     INTEGER NOT NULL,
            last_access_ms INTEGER NOT NULL
        );
        CREATE INDEX entries_by_last_access ON entries (last_access_ms);
        CREATE TABLE meta (
            k TEXT PRIMARY KEY NOT NULL,
            v INTEGER NOT NULL
        );
        CREATE TABLE counters (
            name TEXT PRIMARY KEY NOT NULL,
            n    INTEGER NOT NULL
        );
    ",
}];

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// `meta` key: Unix ms of the last completed maintenance pass.
pub const META_LAST_MAINTENANCE_MS: &str = "last_maintenance_ms";
/// `meta` key: Unix ms when the database was created.
pub const META_CREATED_MS: &str = "created_ms";

/// Apply `migrations[from..]` in one `BEGIN IMMEDIATE` transaction and set `user_version`.
/// Returns the new version. The caller holds the exclusive cache lock.
pub fn migrate(conn: &mut Connection, migrations: &[Migration]) -> rusqlite::Result<i64> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let from: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let target = migrations.len() as i64;
    if from >= target {
        return Ok(from);
    }
    for m in &migrations[from.max(0) as usize..] {
        tx.execute_batch(m.sql)?;
    }
    // PRAGMAs cannot take bound parameters; both values are integers we control.
    tx.execute_batch(&format!(
        "PRAGMA user_version = {target}; PRAGMA application_id = {APPLICATION_ID};"
    ))?;
    tx.commit()?;
    Ok(target)
}

/// Create a fresh cache database at `path` (which must not exist): incremental auto-vacuum and
/// WAL set once here, the full schema, and the creation time. The connection is closed before
/// returning, which checkpoints the WAL into the main file, so the file is complete on its own
/// and can be atomically renamed into place.
pub fn create_db(path: &Path, now_ms: i64) -> rusqlite::Result<()> {
    use rusqlite::OpenFlags as F;
    // NOFOLLOW: never create or open the database through a link (see `sqlite::connect`).
    let mut conn = Connection::open_with_flags(
        path,
        F::SQLITE_OPEN_READ_WRITE
            | F::SQLITE_OPEN_CREATE
            | F::SQLITE_OPEN_NO_MUTEX
            | F::SQLITE_OPEN_NOFOLLOW,
    )?;
    // auto_vacuum must be chosen before the first table exists; WAL is persistent in the header.
    // synchronous=OFF: the file is private until renamed into place, and the caller syncs it
    // once before the rename; per-statement fsyncs here cost a cold miss ~14 fsyncs.
    conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL; PRAGMA synchronous = OFF;")?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "journal_mode stayed {mode}"
        )));
    }
    migrate(&mut conn, MIGRATIONS)?;
    conn.execute(
        "INSERT INTO meta (k, v) VALUES (?1, ?2)",
        rusqlite::params![META_CREATED_MS, now_ms],
    )?;
    conn.close().map_err(|(_, e)| e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_sets_header_fields_and_wal() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.db");
        create_db(&p, 42).unwrap();
        assert!(!dir.path().join("c.db-wal").exists(), "closed cleanly");
        let c = Connection::open(&p).unwrap();
        let uv: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        let app: i32 = c
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .unwrap();
        let jm: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        let av: i64 = c.query_row("PRAGMA auto_vacuum", [], |r| r.get(0)).unwrap();
        assert_eq!(
            (uv, app, jm.as_str(), av),
            (SCHEMA_VERSION, APPLICATION_ID, "wal", 2)
        );
    }

    #[test]
    fn migrations_are_forward_only_and_idempotent() {
        const TWO: &[Migration] = &[
            MIGRATIONS[0],
            Migration {
                description: "test v2",
                sql: "ALTER TABLE entries ADD COLUMN extra INTEGER;",
            },
        ];
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.db");
        create_db(&p, 1).unwrap();
        let mut c = Connection::open(&p).unwrap();
        assert_eq!(migrate(&mut c, TWO).unwrap(), 2);
        // Applying again is a no-op, and an older list never goes backwards.
        assert_eq!(migrate(&mut c, TWO).unwrap(), 2);
        assert_eq!(migrate(&mut c, MIGRATIONS).unwrap(), 2);
        c.execute("SELECT extra FROM entries", []).unwrap();
    }
}
