//! The persistent backend: one SQLite database per segment, shared by every process working
//! on it, at `<segment>/.trifecta/cache/ast_cache.db`.
//!
//! Layout of this module:
//! - here: [`SqliteStore`] (the [`Store`] impl), the per-entry checksum, and [`classify`], the
//!   ONE place where SQLite errors are mapped to "corruption" or "other";
//! - [`probe`]: header check before SQLite opens the file;
//! - [`open`]: the open flow (create under the exclusive lock, migrate, fall back);
//! - [`recover`]: re-check under the exclusive lock, quarantine, recreate;
//! - [`maintain`]: TTL, deleted files, LRU eviction, vacuum, counters folding, stats.
//!
//! The warm-hit path is: shared lock, header probe, open, one indexed SELECT, checksum,
//! deserialize. A hit does not write the database (except `last_access_ms`, at most hourly).

pub mod events;
pub mod maintain;
pub mod open;
pub mod probe;
pub mod recover;

use super::counters::{self, Tally};
use super::lock::CacheLock;
use super::{Backend, CacheError, CacheKey, Lookup, MissReason, Store, Written};
use crate::config::CacheSettings;
use crate::mutant::{self, Mutant};
use crate::segment_fs::{Anchor, Anchored, Incident, Kind};
use crate::symbols::SymbolTable;
use crate::symbols::resolve::Segment;
use crate::telemetry::Telemetry;
use probe::{DamageKind, FileId};
use rusqlite::{Connection, OptionalExtension, params};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `last_access_ms` is refreshed on a hit only when older than this (so hits stay read-only).
pub const ACCESS_REFRESH_MS: i64 = 3_600_000;

/// Everything a cache operation needs to know about where it works.
#[derive(Debug, Clone)]
pub struct CacheCtx {
    /// The database file's absolute path: only for SQLite, which opens by name (with
    /// `SQLITE_OPEN_NOFOLLOW`, after the directory chain was checked through handles).
    pub db: PathBuf,
    /// The database file beneath the segment: every file operation of ours goes through it.
    pub db_at: Anchored,
    /// `.trifecta/cache` beneath the segment.
    pub cache_dir: Anchored,
    /// The open segment root (maintenance checks for deleted files beneath it).
    pub anchor: Arc<Anchor>,
    /// Resolved settings.
    pub settings: CacheSettings,
    /// Where incidents are reported.
    pub telemetry: Telemetry,
}

impl CacheCtx {
    /// Context for the segment `root`.
    pub fn new(root: &Segment, settings: &CacheSettings, telemetry: &Telemetry) -> Self {
        let cache_dir = root.anchor.at(super::CACHE_DIR_REL);
        let db_at = cache_dir.join(super::DB_FILE_NAME);
        CacheCtx {
            db: db_at.abs(),
            db_at,
            cache_dir,
            anchor: Arc::clone(&root.anchor),
            settings: settings.clone(),
            telemetry: telemetry.clone(),
        }
    }

    /// `<segment>/.trifecta/cache`.
    pub fn dir(&self) -> &Anchored {
        &self.cache_dir
    }

    /// The lock file.
    pub fn lock_path(&self) -> Anchored {
        self.cache_dir.join(super::lock::LOCK_FILE_NAME)
    }

    /// Take the cache lock in `mode`, waiting at most the configured bound. The one place a
    /// lock timeout is reported (`ast.cache.lock_timeout` and the `lock_timeouts` counter),
    /// whichever path asked for the lock; callers only decide what the failure means to them.
    pub fn lock(&self, mode: super::lock::LockMode) -> Result<CacheLock, super::lock::LockError> {
        let timeout = self.settings.lock_timeout;
        let got = super::lock::acquire(&self.lock_path(), mode, timeout);
        if let Err(super::lock::LockError::Timeout { mode, waited }) = &got {
            events::lock_timeout(&self.telemetry, *mode, *waited, timeout);
            counters::record(self.dir(), Tally::LockTimeout);
        }
        got
    }

    /// `-wal` / `-shm` sidecar of the database.
    pub fn sidecar(&self, suffix: &str) -> Anchored {
        self.db_at.with_suffix(suffix)
    }

    /// Check every name the cache owns before SQLite or we open any of them: the directory
    /// chain `.trifecta/cache` must be real directories, and the database's sidecars, the
    /// lock and counters files regular files. Anything else (a link, a FIFO, a device, a
    /// directory) was planted: it is moved aside within its directory and reported as an
    /// `ast.fs.incident`. Files are moved only under the exclusive lock, so a legitimate file
    /// that a concurrent process just put there is never moved. Returns whether the cache
    /// directory exists (it is created only when `create`).
    pub fn claim_names(&self, create: bool) -> Result<bool, CacheError> {
        const OWNED: [&str; 2] = [
            super::lock::LOCK_FILE_NAME,
            super::counters::COUNTERS_FILE_NAME,
        ];
        const SIDECARS: [&str; 3] = ["-wal", "-shm", "-journal"];
        let db = super::DB_FILE_NAME;
        let names = [
            OWNED[0].to_string(),
            OWNED[1].to_string(),
            format!("{db}{}", SIDECARS[0]),
            format!("{db}{}", SIDECARS[1]),
            format!("{db}{}", SIDECARS[2]),
            recover::QUARANTINE_DIR.to_string(),
        ];
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        // Fast path (every warm hit): one resolution of `.trifecta/cache` without links and
        // one lstat per name; only when something is off does the slow path below run.
        let kinds = match self.cache_dir.child_kinds(&refs)? {
            Some(k) => k,
            None => {
                let mut incidents = Vec::new();
                let exists = self.cache_dir.ensure_dir_chain(create, &mut incidents);
                self.report(&incidents);
                if !exists.map_err(io::Error::from)? {
                    return Ok(false);
                }
                self.cache_dir.child_kinds(&refs)?.unwrap_or_default()
            }
        };
        let foreign = |i: usize, want: Kind| matches!(kinds.get(i), Some(Some(k)) if *k != want);
        // The lock and counters files first, without the lock (a planted lock file cannot be
        // locked safely).
        for (i, name) in OWNED.iter().enumerate() {
            if foreign(i, Kind::File) {
                let mut found = Vec::new();
                self.cache_dir
                    .join(name)
                    .claim_file(&mut found)
                    .map_err(io::Error::from)?;
                self.report(&found);
            }
        }
        let sidecars_foreign = (2..5).any(|i| foreign(i, Kind::File));
        if sidecars_foreign || foreign(5, Kind::Dir) {
            // Moved only under the exclusive lock: a legitimate file a concurrent process just
            // put at one of these names is then never moved.
            let _x = super::lock::acquire(
                &self.lock_path(),
                super::lock::LockMode::Exclusive,
                self.settings.lock_timeout,
            )
            .map_err(|e| CacheError::Io(io::Error::other(e.to_string())))?;
            let mut found = Vec::new();
            for s in SIDECARS {
                self.sidecar(s)
                    .claim_file(&mut found)
                    .map_err(io::Error::from)?;
            }
            let quarantine = self.cache_dir.join(recover::QUARANTINE_DIR);
            if let Ok(Some(k)) = quarantine.kind()
                && k != Kind::Dir
            {
                found.push(quarantine.move_aside(k).map_err(io::Error::from)?);
            }
            self.report(&found);
        }
        Ok(true)
    }

    /// Emit one `ast.fs.incident` per incident.
    pub(crate) fn report(&self, incidents: &[Incident]) {
        for i in incidents {
            events::incident(&self.telemetry, i);
        }
    }
}

/// What a failed SQLite call means for us.
#[derive(Debug)]
pub enum SqlFailure {
    /// The database is damaged: recover.
    Corrupt(DamageKind),
    /// Anything else (busy beyond the timeout, I/O, full disk): give up on the cache this run.
    Other(CacheError),
}

impl From<std::io::Error> for SqlFailure {
    fn from(e: std::io::Error) -> Self {
        SqlFailure::Other(CacheError::Io(e))
    }
}

impl From<rusqlite::Error> for SqlFailure {
    fn from(e: rusqlite::Error) -> Self {
        classify(e)
    }
}

/// THE mapping of SQLite errors. `SQLITE_CORRUPT*` and `SQLITE_NOTADB` mean damage; column
/// type mismatches and invalid UTF-8 in our own rows mean a malformed row; everything else is
/// "other".
pub fn classify(e: rusqlite::Error) -> SqlFailure {
    use rusqlite::ErrorCode as C;
    match &e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, C::DatabaseCorrupt | C::NotADatabase) =>
        {
            SqlFailure::Corrupt(DamageKind::SqliteCorrupt)
        }
        // A TEXT column that is no longer UTF-8 is damage SQLite's own checks cannot see
        // (integrity_check does not validate encodings); found by a random-page fault.
        rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::Utf8Error(..) => SqlFailure::Corrupt(DamageKind::RowMalformed),
        _ => SqlFailure::Other(CacheError::Sqlite(e)),
    }
}

/// BLAKE3 over everything a row claims: path, content hash, extractor tag and payload, each
/// length-prefixed so no two different rows can share the byte stream.
pub fn entry_checksum(file_rel: &str, hash: &[u8], tag: &str, payload: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    for part in [file_rel.as_bytes(), hash, tag.as_bytes(), payload] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    *h.finalize().as_bytes()
}

/// The stored form of a table: its JSON. Serialized through `serde_stacker`, which grows the
/// stack on the heap when needed, so a table nested deeper than the thread's stack allows
/// (classes in classes, recovered from a broken module) is still stored.
pub fn encode_payload(table: &SymbolTable) -> serde_json::Result<Vec<u8>> {
    use serde::Serialize;
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::new(&mut out);
    table.serialize(serde_stacker::Serializer::new(&mut ser))?;
    Ok(out)
}

/// Read back what [`encode_payload`] stored, whatever its depth. serde_json refuses input
/// nested deeper than 128 by default (63 nested classes), which made such modules miss, as
/// "corruption", on every lookup. Without that limit, `serde_stacker` keeps deep input from
/// overflowing the stack; the payload is our own (checksummed) output, so depth is bounded by
/// what extraction can produce.
pub fn decode_payload(payload: &[u8]) -> serde_json::Result<SymbolTable> {
    use serde::Deserialize;
    let mut de = serde_json::Deserializer::from_slice(payload);
    de.disable_recursion_limit();
    let table = SymbolTable::deserialize(serde_stacker::Deserializer::new(&mut de))?;
    de.end()?;
    Ok(table)
}

/// Open a connection to an existing database with the per-connection settings. Never creates
/// the file (a vanished database must not be silently recreated outside the exclusive lock).
pub fn connect(db: &Path, settings: &CacheSettings) -> rusqlite::Result<Connection> {
    use rusqlite::OpenFlags as F;
    let conn = Connection::open_with_flags(
        db,
        // NOFOLLOW: SQLite refuses a path with a link anywhere in it (it resolves each
        // component itself), the last line of defence after our own checks of the chain.
        F::SQLITE_OPEN_READ_WRITE
            | F::SQLITE_OPEN_NO_MUTEX
            | F::SQLITE_OPEN_URI
            | F::SQLITE_OPEN_NOFOLLOW,
    )?;
    // busy_timeout bounded by the lock timeout: no SQLite wait outlives our own bound.
    conn.busy_timeout(if mutant::active(Mutant::BusyTimeoutZero) {
        std::time::Duration::ZERO
    } else {
        settings.lock_timeout
    })?;
    // synchronous is per connection; NORMAL in WAL loses durability, never consistency.
    // cell_size_check: catch damaged b-tree cells as pages are read, before the damage can
    // spread through a later write (small cost, per the SQLite docs).
    // journal_size_limit: a WAL grown by a big batch is trimmed after checkpoints.
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA cell_size_check = ON; \
         PRAGMA journal_size_limit = 4194304;",
    )?;
    persist_wal(&conn);
    Ok(conn)
}

/// Keep `-wal` and `-shm` when the last connection closes. Every CLI process is usually the
/// last connection; without this each one unlinks both files on exit and the next one creates
/// them again. (The wal-index itself is still rebuilt by a process that opens the database
/// while nobody else has it open: SQLite reinitialises an unshared `-shm`, which is also why
/// a stale or garbage `-shm` is harmless.) Close still checkpoints, and the WAL is truncated
/// (`journal_size_limit`).
fn persist_wal(conn: &Connection) {
    let mut on: std::os::raw::c_int = 1;
    // SAFETY: `conn.handle()` is a valid open sqlite3* for the duration of this call (we hold
    // `conn`); SQLITE_FCNTL_PERSIST_WAL reads and writes exactly one c_int through the pointer,
    // which points at a live local. The result only says whether the VFS supports it.
    unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL,
            (&mut on as *mut std::os::raw::c_int).cast(),
        );
    }
}

/// The SQLite store. Holds the shared cache lock for its whole life.
pub struct SqliteStore {
    ctx: CacheCtx,
    conn: Option<Connection>,
    lock: Option<CacheLock>,
    file_id: FileId,
    db_was_missing: bool,
    /// Set when this run stopped using the database (after recovery): every further lookup
    /// misses with this reason and writes are skipped.
    disabled: Option<MissReason>,
    /// DB + WAL were above `max_bytes` at open: maintenance is due regardless of the interval.
    over_max: bool,
    /// Hit/miss tallies, appended to the counters file once, before maintenance on drop.
    tallies: counters::Pending,
}

impl SqliteStore {
    /// Wrap an open connection (the open flow in [`open`] is the only caller).
    pub(crate) fn new(
        ctx: CacheCtx,
        conn: Connection,
        lock: CacheLock,
        file_id: FileId,
        db_was_missing: bool,
        over_max: bool,
    ) -> Self {
        SqliteStore {
            tallies: counters::Pending::for_purpose(ctx.dir(), ctx.settings.purpose),
            ctx,
            conn: Some(conn),
            lock: Some(lock),
            file_id,
            db_was_missing,
            disabled: None,
            over_max,
        }
    }

    fn lookup(&mut self, file_rel: &str, key: &CacheKey) -> Result<Lookup, SqlFailure> {
        let Some(conn) = self.conn.as_ref() else {
            return Ok(Lookup::Miss(MissReason::CacheUnavailable));
        };
        let row = conn
            .prepare_cached(
                "SELECT content_hash, extractor, payload, checksum, last_access_ms \
                 FROM entries WHERE file_rel = ?1",
            )?
            .query_row([file_rel], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, i64>(4)?,
                ))
            })
            .optional()?;
        let Some((hash, tag, payload, checksum, last_access)) = row else {
            let any: bool = conn
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM entries)")?
                .query_row([], |r| r.get(0))?;
            return Ok(Lookup::Miss(match (any, self.db_was_missing) {
                (true, _) => MissReason::KeyMiss,
                (false, true) => MissReason::ColdCacheDbMissing,
                (false, false) => MissReason::ColdCacheEmpty,
            }));
        };
        // Verify before trusting anything in the row: SQLite's own checks cannot see a flipped
        // bit inside a value.
        if checksum.as_slice() != entry_checksum(file_rel, &hash, &tag, &payload)
            && !mutant::active(Mutant::NoChecksumCheck)
        {
            return Err(SqlFailure::Corrupt(DamageKind::ChecksumMismatch));
        }
        if tag != CacheKey::extractor_tag() {
            return Ok(Lookup::Miss(MissReason::ExtractorChanged));
        }
        if hash.as_slice() != key.content_hash() {
            return Ok(Lookup::Miss(MissReason::ContentChanged));
        }
        // The checksum matched, so these are the bytes our writer stored: a payload that does
        // not decode is a writer/reader disagreement, not damage. Miss this entry alone (the
        // caller rewrites it); quarantining or disabling the store would punish every other
        // entry for it.
        let Ok(table) = decode_payload(&payload) else {
            return Ok(Lookup::Miss(MissReason::EntryUnreadable));
        };
        let now = crate::clock::now_ms();
        if now.saturating_sub(last_access) > ACCESS_REFRESH_MS
            && !mutant::active(Mutant::AccessNotRefreshed)
        {
            self.refresh_access(file_rel, now)?;
        }
        Ok(Lookup::Hit(table))
    }

    /// Coarse LRU bookkeeping (at most hourly per row), in its own `BEGIN IMMEDIATE`. Losing
    /// this update to a busy writer is harmless; only corruption is reported.
    fn refresh_access(&mut self, file_rel: &str, now: i64) -> Result<(), SqlFailure> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        let r = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .and_then(|tx| {
                tx.execute(
                    "UPDATE entries SET last_access_ms = ?2 \
                     WHERE file_rel = ?1 AND last_access_ms < ?2",
                    params![file_rel, now],
                )?;
                tx.commit()
            });
        match r.map_err(classify) {
            Err(SqlFailure::Corrupt(k)) => Err(SqlFailure::Corrupt(k)),
            _ => Ok(()),
        }
    }

    fn write(&mut self, items: &[(&str, &CacheKey, &SymbolTable)]) -> Result<(), SqlFailure> {
        let Some(conn) = self.conn.as_mut() else {
            return Ok(());
        };
        let now = crate::clock::now_ms();
        let tag = CacheKey::extractor_tag();
        // Mutant `split-checksum`: rows go in with a placeholder checksum and get the real one
        // in a second transaction; a crash in between leaves rows that fail verification.
        let split = mutant::active(Mutant::SplitChecksum);
        let mut late_sums: Vec<(&str, [u8; 32])> = Vec::new();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO entries (file_rel, content_hash, extractor, payload, checksum, \
                     payload_bytes, created_ms, last_access_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) \
                 ON CONFLICT (file_rel) DO UPDATE SET content_hash = excluded.content_hash, \
                     extractor = excluded.extractor, payload = excluded.payload, \
                     checksum = excluded.checksum, payload_bytes = excluded.payload_bytes, \
                     created_ms = excluded.created_ms, last_access_ms = excluded.last_access_ms",
            )?;
            for (file_rel, key, table) in items {
                let payload = encode_payload(table)
                    .map_err(|e| SqlFailure::Other(CacheError::Io(std::io::Error::other(e))))?;
                // A single entry larger than the whole cache is not stored (it would be the
                // first thing evicted; the original looped forever here).
                if payload.len() as u64 > self.ctx.settings.max_bytes {
                    continue;
                }
                let hash = key.content_hash();
                let mut sum = entry_checksum(file_rel, hash, &tag, &payload);
                if split {
                    late_sums.push((*file_rel, sum));
                    sum = [0; 32];
                }
                stmt.execute(params![
                    file_rel,
                    &hash[..],
                    tag,
                    payload,
                    &sum[..],
                    payload.len() as i64,
                    now
                ])?;
            }
        }
        tx.commit()?;
        if split {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for (file_rel, sum) in &late_sums {
                tx.execute(
                    "UPDATE entries SET checksum = ?2 WHERE file_rel = ?1",
                    params![file_rel, &sum[..]],
                )?;
            }
            tx.commit()?;
        }
        Ok(())
    }

    /// Stop using the database this run: close the connection and release the shared lock
    /// (recovery needs the exclusive one), then recover.
    fn fail(&mut self, kind: DamageKind) -> MissReason {
        self.conn = None;
        self.lock = None;
        let outcome = recover::recover(&self.ctx, kind, Some(self.file_id));
        let reason = outcome.miss_reason();
        self.disabled = Some(reason);
        reason
    }
}

impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    fn get(&mut self, file_rel: &str, key: &CacheKey) -> Result<Lookup, CacheError> {
        if let Some(r) = self.disabled {
            return Ok(Lookup::Miss(r));
        }
        let out = match self.lookup(file_rel, key) {
            Ok(l) => l,
            Err(SqlFailure::Corrupt(kind)) => Lookup::Miss(self.fail(kind)),
            Err(SqlFailure::Other(e)) => return Err(e),
        };
        self.tallies.add(match &out {
            Lookup::Hit(_) => Tally::Hit,
            Lookup::Miss(r) => Tally::Miss(*r),
        });
        Ok(out)
    }

    /// Automatic maintenance, when due: only if the exclusive lock is free at once. The
    /// connection and the shared lock are released first (flock conversion is not atomic).
    fn finish(&mut self) {
        // Tallies first, so a maintenance pass that folds the counters sees this run's.
        self.tallies.flush();
        let Some(conn) = self.conn.take() else {
            return;
        };
        let due = maintain::due(&conn, &self.ctx, self.over_max);
        drop(conn);
        self.lock = None;
        if due {
            maintain::maybe_run(&self.ctx);
        }
    }

    fn put(
        &mut self,
        file_rel: &str,
        key: &CacheKey,
        table: &SymbolTable,
    ) -> Result<Written, CacheError> {
        self.put_items(&[(file_rel, key, table)])
    }

    fn put_batch(
        &mut self,
        items: &[(String, CacheKey, SymbolTable)],
    ) -> Result<Written, CacheError> {
        let refs: Vec<(&str, &CacheKey, &SymbolTable)> =
            items.iter().map(|(f, k, t)| (f.as_str(), k, t)).collect();
        self.put_items(&refs)
    }
}

impl SqliteStore {
    fn put_items(
        &mut self,
        items: &[(&str, &CacheKey, &SymbolTable)],
    ) -> Result<Written, CacheError> {
        if let Some(reason) = self.disabled {
            return Ok(Written::Skipped(reason));
        }
        match self.write(items) {
            Ok(()) => Ok(Written::Stored),
            Err(SqlFailure::Corrupt(kind)) => {
                let reason = self.fail(kind);
                Err(CacheError::Corrupt(format!(
                    "{} during write; {}",
                    kind.as_str(),
                    reason.as_str()
                )))
            }
            Err(SqlFailure::Other(e)) => Err(e),
        }
    }
}

impl Drop for SqliteStore {
    /// Bookkeeping only: this run's tallies are never lost, however the command ended.
    /// Maintenance is [`Store::finish`]'s, called explicitly.
    fn drop(&mut self) {
        self.tallies.flush();
    }
}

#[cfg(test)]
mod tests;
