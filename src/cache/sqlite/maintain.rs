//! Maintenance: integrity `quick_check`, counters folding, TTL, rows of deleted files, LRU
//! eviction down to the low-water mark, and giving file space back (`incremental_vacuum` +
//! WAL truncation). Emits `ast.cache.stats`, `ast.cache.evicted`, `ast.cache.pruned` and
//! `ast.cache.maintenance`.
//!
//! Automatic maintenance runs when a store is dropped, at most every `maintenance_interval`
//! (the last run is recorded in `meta`) or when DB + WAL exceed `max_bytes`, and only if the
//! exclusive lock is free *at once*: a user's command never waits for it. `ast cache prune`
//! runs the same pass with a bounded wait for the lock.

use super::probe::DamageKind;
use super::recover;
use super::{CacheCtx, SqlFailure, classify, connect, events};
use crate::cache::counters;
use crate::cache::lock::{self, LockMode};
use crate::cache::schema::{META_CREATED_MS, META_LAST_MAINTENANCE_MS};
use crate::mutant::{self, Mutant};
use crate::telemetry::event::StatsResult;
use rusqlite::{Connection, params};
use serde::Serialize;
use std::time::Instant;

/// What a maintenance pass did (the payload of `ast.cache.maintenance`).
pub use crate::telemetry::event::MaintenancePass as Report;

/// Entry statistics of a database.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DbStats {
    /// Rows.
    pub entries: u64,
    /// Sum of payload sizes.
    pub payload_bytes: u64,
    /// Oldest `last_access_ms` (null when empty).
    pub oldest_access_ms: Option<i64>,
    /// Newest `last_access_ms` (null when empty).
    pub newest_access_ms: Option<i64>,
}

/// Read [`DbStats`].
pub fn db_stats(conn: &Connection) -> rusqlite::Result<DbStats> {
    conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(payload_bytes), 0), MIN(last_access_ms), MAX(last_access_ms) \
         FROM entries",
        [],
        |r| {
            Ok(DbStats {
                entries: r.get::<_, i64>(0)?.max(0) as u64,
                payload_bytes: r.get::<_, i64>(1)?.max(0) as u64,
                oldest_access_ms: r.get(2)?,
                newest_access_ms: r.get(3)?,
            })
        },
    )
}

/// Estimated on-disk cost of a row beyond its payload (hash, checksum, tag, path, integers and
/// the two index entries), used to turn "bytes to free" into rows to evict.
pub const ROW_OVERHEAD_BYTES: u64 = 200;

/// Over the size limit, maintenance runs at most this often (so a limit that eviction cannot
/// reach, e.g. one smaller than an empty database, cannot make every command maintain).
pub const OVER_MAX_MIN_GAP_MS: i64 = 60_000;

/// Is automatic maintenance due? When the last pass (or the creation, if none yet) is older
/// than the interval, or when the files are over `max_bytes` and the last pass is older than
/// [`OVER_MAX_MIN_GAP_MS`].
pub fn due(conn: &Connection, ctx: &CacheCtx, over_max: bool) -> bool {
    let (last, created): (Option<i64>, Option<i64>) = conn
        .prepare_cached(
            "SELECT (SELECT v FROM meta WHERE k = ?1), (SELECT v FROM meta WHERE k = ?2)",
        )
        .and_then(|mut s| {
            s.query_row(params![META_LAST_MAINTENANCE_MS, META_CREATED_MS], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
        })
        .unwrap_or((None, None));
    let now = crate::clock::now_ms();
    let interval = ctx.settings.maintenance_interval.as_millis() as i64;
    let since = |t: Option<i64>| t.map(|t| now.saturating_sub(t));
    let interval_due = since(last.or(created)).is_none_or(|d| d >= interval);
    let size_due = over_max && since(last).is_none_or(|d| d >= OVER_MAX_MIN_GAP_MS);
    interval_due || size_due
}

/// Automatic maintenance: only if the exclusive lock is free right now. The caller has
/// released its connection and shared lock.
pub fn maybe_run(ctx: &CacheCtx) {
    let Ok(Some(_x)) = lock::try_acquire(&ctx.lock_path(), LockMode::Exclusive) else {
        events::maintenance(&ctx.telemetry, Err("lock_busy"), std::time::Duration::ZERO);
        return;
    };
    // Re-check under the lock: another process may have just done it.
    let Ok(conn) = connect(&ctx.db, &ctx.settings) else {
        return;
    };
    let (db, wal) = db_and_wal_bytes(ctx);
    if !due(&conn, ctx, db + wal > ctx.settings.max_bytes) {
        return;
    }
    let _ = run_locked(ctx, conn, Check::Quick);
}

/// How thoroughly a pass checks the database first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// `quick_check`: O(N), skips index-vs-table consistency (automatic maintenance, which
    /// must not hold the exclusive lock long).
    Quick,
    /// `integrity_check` plus every row's checksum: O(N log N), also finds damaged indexes
    /// and bad rows nobody has read yet (`ast cache prune`).
    Full,
}

/// Sizes of the main file and the WAL (0 when absent).
pub fn db_and_wal_bytes(ctx: &CacheCtx) -> (u64, u64) {
    (ctx.db_at.size(), ctx.sidecar("-wal").size())
}

/// The maintenance pass. The caller holds the exclusive lock. On corruption the database is
/// quarantined and recreated (we already hold the lock) and the error is returned.
pub fn run_locked(
    ctx: &CacheCtx,
    mut conn: Connection,
    check: Check,
) -> Result<Report, SqlFailure> {
    let started = Instant::now();
    match pass(ctx, &mut conn, check, started) {
        Ok(r) => Ok(r),
        Err(SqlFailure::Corrupt(kind)) => {
            drop(conn);
            recover::recover_locked(ctx, kind, None);
            Err(SqlFailure::Corrupt(kind))
        }
        Err(e) => Err(e),
    }
}

/// One maintenance pass, phase by phase: check, fold counters, expire and drop rows of deleted
/// files and evict (one transaction), give space back, report.
fn pass(
    ctx: &CacheCtx,
    conn: &mut Connection,
    check: Check,
    started: Instant,
) -> Result<Report, SqlFailure> {
    let mut rep = Report {
        db_bytes_before: db_and_wal_bytes(ctx).0,
        ..Report::default()
    };
    integrity(conn, check)?;
    rep.counters_folded = fold_counters(ctx, conn)?;
    let now = crate::clock::now_ms();
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    rep.expired = tx.execute(
        "DELETE FROM entries WHERE last_access_ms < ?1",
        params![now.saturating_sub(ttl_ms(ctx))],
    )? as u64;
    rep.deleted_files = drop_deleted_files(ctx, &tx)?;
    (rep.evicted, rep.evicted_bytes) = evict(ctx, &tx)?;
    {
        let mut up = tx.prepare_cached(
            "INSERT INTO counters (name, n) VALUES (?1, ?2) \
             ON CONFLICT (name) DO UPDATE SET n = n + excluded.n",
        )?;
        up.execute(params!["evictions", rep.evicted as i64])?;
        up.execute(params!["pruned", (rep.expired + rep.deleted_files) as i64])?;
    }
    tx.execute(
        "INSERT INTO meta (k, v) VALUES (?1, ?2) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
        params![META_LAST_MAINTENANCE_MS, now],
    )?;
    tx.commit()?;

    // Give space back: free pages are released by incremental_vacuum; in WAL mode the file
    // shrinks when the checkpoint writes the truncation.
    conn.execute_batch("PRAGMA incremental_vacuum;")?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    rep.db_bytes_after = db_and_wal_bytes(ctx).0;
    report(ctx, conn, &rep, started.elapsed())?;
    Ok(rep)
}

/// `quick_check` or `integrity_check`, plus every row's checksum for a full check.
fn integrity(conn: &Connection, check: Check) -> Result<(), SqlFailure> {
    let sql = match check {
        Check::Quick => "PRAGMA quick_check(1)",
        Check::Full => "PRAGMA integrity_check(1)",
    };
    let qc: String = conn.query_row(sql, [], |r| r.get(0))?;
    if qc != "ok" {
        return Err(SqlFailure::Corrupt(DamageKind::IntegrityCheckFailed));
    }
    if check == Check::Full {
        // Rows are verified whenever they are read; the full pass also finds bad rows that
        // nobody has asked for yet.
        recover::verify_checksums(conn)?;
    }
    Ok(())
}

/// The entry TTL in milliseconds.
fn ttl_ms(ctx: &CacheCtx) -> i64 {
    let ttl = ctx.settings.ttl;
    if mutant::active(Mutant::TtlOff) {
        ttl.as_micros().min(i64::MAX as u128) as i64
    } else if mutant::active(Mutant::TtlSeconds) {
        ttl.as_secs().min(i64::MAX as u64) as i64
    } else {
        ttl.as_millis().min(i64::MAX as u128) as i64
    }
}

/// Fold the counters file into the table, in its own transaction, emptied only after it
/// committed (a crash in between counts that batch twice; it can never lose it). Returns how
/// many counts were folded.
fn fold_counters(ctx: &CacheCtx, conn: &mut Connection) -> Result<i64, SqlFailure> {
    let folded = counters::fold(ctx.dir(), |totals| -> Result<(), SqlFailure> {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut up = tx.prepare_cached(
                "INSERT INTO counters (name, n) VALUES (?1, ?2) \
                 ON CONFLICT (name) DO UPDATE SET n = n + excluded.n",
            )?;
            for (name, n) in totals {
                up.execute(params![name, n])?;
            }
        }
        tx.commit()?;
        Ok(())
    });
    match folded {
        Ok(t) => Ok(t.values().sum()),
        Err(SqlFailure::Other(_)) => Ok(0), // counters are bookkeeping; never block maintenance on them
        Err(e) => Err(e),
    }
}

/// Delete the rows of files that are gone from the segment; returns how many.
fn drop_deleted_files(ctx: &CacheCtx, tx: &rusqlite::Transaction) -> Result<u64, SqlFailure> {
    let gone: Vec<String> = {
        let mut s = tx.prepare("SELECT file_rel FROM entries")?;
        let rows = s.query_map([], |r| r.get::<_, String>(0))?;
        let mut v = Vec::new();
        for f in rows {
            let f = f.map_err(classify)?;
            // Keys are escaped file names (crate::file_rel); one that does not decode is from an
            // older format and can never be looked up again. The file is checked beneath the
            // segment like a module read: a row naming a path that leads out of it (a planted
            // database) counts as gone, and nothing outside is examined.
            let here = crate::file_rel::decode(&f).is_some_and(|p| {
                crate::segment_fs::open_module(&ctx.anchor, std::path::Path::new(&p), true).is_ok()
            });
            if !here {
                v.push(f);
            }
        }
        v
    };
    for f in &gone {
        tx.execute("DELETE FROM entries WHERE file_rel = ?1", [f])?;
    }
    Ok(gone.len() as u64)
}

/// Least-recently-used eviction down to the low-water mark when over the cap. The size that
/// counts is the larger of the logical size (payload + per-row overhead) and the files on
/// disk; rows' estimated cost is freed until under the mark. Returns (rows, payload bytes).
fn evict(ctx: &CacheCtx, tx: &rusqlite::Transaction) -> Result<(u64, u64), SqlFailure> {
    let (payload, rows): (i64, i64) = tx.query_row(
        "SELECT COALESCE(SUM(payload_bytes), 0), COUNT(*) FROM entries",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let logical = payload.max(0) as u64 + rows.max(0) as u64 * ROW_OVERHEAD_BYTES;
    let (db_now, wal_now) = db_and_wal_bytes(ctx);
    let size = logical.max(db_now + wal_now);
    if size <= ctx.settings.max_bytes {
        return Ok((0, 0));
    }
    let need = size - ctx.settings.low_water_bytes();
    let victims: Vec<(String, i64)> = {
        let mut s = tx.prepare(
            "SELECT file_rel, payload_bytes FROM entries ORDER BY last_access_ms, created_ms",
        )?;
        let mut rows = s.query([])?;
        let mut v = Vec::new();
        let mut freed = 0u64;
        while freed < need {
            let Some(r) = rows.next()? else { break };
            let b: i64 = r.get(1)?;
            freed += b.max(0) as u64 + ROW_OVERHEAD_BYTES;
            v.push((r.get(0)?, b));
        }
        v
    };
    let mut bytes = 0;
    for (f, b) in &victims {
        tx.execute("DELETE FROM entries WHERE file_rel = ?1", [f])?;
        bytes += (*b).max(0) as u64;
    }
    Ok((victims.len() as u64, bytes))
}

/// The pass's events: `ast.cache.stats`, `evicted` and `pruned` when they happened, and the
/// `ast.cache.maintenance` summary.
fn report(
    ctx: &CacheCtx,
    conn: &Connection,
    rep: &Report,
    took: std::time::Duration,
) -> Result<(), SqlFailure> {
    let stats = db_stats(conn)?;
    let (db_after, wal_after) = db_and_wal_bytes(ctx);
    let t = &ctx.telemetry;
    let snapshot = StatsResult {
        entries: stats.entries,
        payload_bytes: stats.payload_bytes,
        db_bytes: db_after,
        wal_bytes: wal_after,
        oldest_access_ms: stats.oldest_access_ms,
        newest_access_ms: stats.newest_access_ms,
    };
    events::stats(t, snapshot, took);
    if rep.evicted > 0 {
        events::evicted(t, rep.evicted, rep.evicted_bytes, took);
    }
    if rep.expired + rep.deleted_files > 0 {
        events::pruned(t, rep.expired, rep.deleted_files, took);
    }
    events::maintenance(t, Ok(rep), took);
    Ok(())
}
