//! The open flow of the SQLite cache. Never fails: every problem ends in an in-memory fallback
//! with a truthful reason.
//!
//! 1. Missing database → create the cache directory (+ `.gitignore`, `CACHEDIR.TAG`), take the
//!    exclusive lock, re-check, create (under a temporary name, renamed into place).
//! 2. Take the shared lock (bounded) and probe the header (see [`super::probe`]):
//!    newer schema → untouched, uncached run; damage → [`super::recover`]; older schema →
//!    migrate under the exclusive lock; usable → connect.
//! 3. Size monitoring: DB + WAL recorded (`ast.cache.size`, for the dashboard); above the
//!    warning threshold → `ast.cache.size_warning`; above the maximum → maintenance is due
//!    when the store is dropped.
//!
//! Steps that another process may be doing at the same time re-check after every lock, and
//! the loop is bounded (a few attempts), so two processes can never ping-pong forever.

use super::probe::{self, Probe};
use super::recover::{self, Recovery};
use super::{CacheCtx, SqlFailure, SqliteStore, classify, connect, events};
use crate::cache::OpenedCache;

use crate::cache::fallback::FallbackStore;
use crate::cache::lock::{CacheLock, LockError, LockMode};
use crate::cache::schema::{self, SCHEMA_VERSION};
use crate::cache::{CacheError, MissReason};
use crate::config::CacheSettings;
use crate::mutant::{self, Mutant};
use crate::symbols::resolve::Segment;
use crate::telemetry::Telemetry;

/// Attempts of the create/lock/probe loop before giving up with `cache_unavailable`.
const MAX_ATTEMPTS: usize = 4;

/// Open the SQLite cache of `root` (persistence was requested).
pub fn open(root: &Segment, settings: &CacheSettings, telemetry: &Telemetry) -> OpenedCache {
    let ctx = CacheCtx::new(root, settings, telemetry);
    let mut db_was_missing = false;
    for _ in 0..MAX_ATTEMPTS {
        match attempt(&ctx, &mut db_was_missing) {
            Step::Done(store) => {
                return OpenedCache {
                    store,
                    fallback: None,
                    db_path: Some(ctx.db.clone()),
                    db_was_missing,
                };
            }
            Step::Fallback(reason) => return fallback(&ctx, reason, db_was_missing),
            Step::Retry => {}
        }
    }
    events::fallback(
        &ctx.telemetry,
        MissReason::CacheUnavailable.as_str(),
        "database kept changing while opening; gave up",
    );
    fallback(&ctx, MissReason::CacheUnavailable, db_was_missing)
}

fn fallback(ctx: &CacheCtx, reason: MissReason, db_was_missing: bool) -> OpenedCache {
    OpenedCache {
        store: Box::new(FallbackStore::new(reason, ctx.dir(), ctx.settings.purpose)),
        fallback: Some(reason),
        db_path: Some(ctx.db.clone()),
        db_was_missing,
    }
}

enum Step {
    Done(Box<SqliteStore>),
    Fallback(MissReason),
    Retry,
}

/// Take a lock, reporting a timeout as telemetry + counter and returning the fallback reason.
pub(crate) fn lock_or_report(ctx: &CacheCtx, mode: LockMode) -> Result<CacheLock, MissReason> {
    match ctx.lock(mode) {
        Ok(l) => Ok(l),
        Err(LockError::Timeout { .. }) => Err(MissReason::LockTimeout),
        Err(LockError::Io(e)) => {
            events::fallback(
                &ctx.telemetry,
                MissReason::CacheUnavailable.as_str(),
                &e.to_string(),
            );
            Err(MissReason::CacheUnavailable)
        }
    }
}

fn unavailable(ctx: &CacheCtx, detail: &str) -> Step {
    events::fallback(
        &ctx.telemetry,
        MissReason::CacheUnavailable.as_str(),
        detail,
    );
    Step::Fallback(MissReason::CacheUnavailable)
}

fn attempt(ctx: &CacheCtx, db_was_missing: &mut bool) -> Step {
    // 0. Everything at our names is what we put there (planted links, FIFOs… moved aside).
    if let Err(e) = ctx.claim_names(false) {
        return unavailable(ctx, &format!("cache directory: {e}"));
    }
    // 1. Creation (a stat without a lock as a hint; re-checked under the exclusive lock).
    if let Err(step) = create_if_missing(ctx, db_was_missing) {
        return step;
    }

    // 2. Shared lock, then the header probe that counts.
    let shared = match lock_or_report(ctx, LockMode::Shared) {
        Ok(l) => l,
        Err(r) => return Step::Fallback(r),
    };
    let header = match probe_settled(ctx) {
        Ok(Probe::Missing) => return Step::Retry, // cleared since step 1
        Ok(Probe::Newer { found }) => {
            events::schema_incompatible(&ctx.telemetry, found, SCHEMA_VERSION);
            return Step::Fallback(MissReason::SchemaIncompatible);
        }
        Ok(Probe::Damaged(kind, id)) => {
            drop(shared);
            return after_recovery(recover::recover(ctx, kind, id));
        }
        Ok(Probe::Usable(h)) => h,
        Err(e) => return unavailable(ctx, &e.to_string()),
    };
    if header.user_version < SCHEMA_VERSION {
        drop(shared);
        return match migrate(ctx) {
            Ok(()) => Step::Retry,
            Err(Step::Fallback(r)) => Step::Fallback(r),
            Err(s) => s,
        };
    }
    let conn = match connect(&ctx.db, &ctx.settings) {
        Ok(c) => c,
        Err(e) => match classify(e) {
            SqlFailure::Corrupt(kind) => {
                drop(shared);
                return after_recovery(recover::recover(ctx, kind, Some(header.id)));
            }
            SqlFailure::Other(e) => return unavailable(ctx, &e.to_string()),
        },
    };

    // 3. Size monitoring from two stats we already paid for.
    let total = watch_size(ctx, header.db_bytes);
    Step::Done(Box::new(SqliteStore::new(
        ctx.clone(),
        conn,
        shared,
        header.id,
        *db_was_missing,
        total > ctx.settings.max_bytes,
    )))
}

/// Create the database if there is none (first use, or cleared since), under the exclusive
/// lock; another process may win the race, which is fine.
fn create_if_missing(ctx: &CacheCtx, db_was_missing: &mut bool) -> Result<(), Step> {
    match ctx.db_at.stat() {
        Ok(Some(_)) => return Ok(()),
        Ok(None) => *db_was_missing = true,
        Err(e) => return Err(unavailable(ctx, &e.to_string())),
    }
    if let Err(e) = recover::ensure_dir(ctx) {
        return Err(unavailable(
            ctx,
            &format!("cannot create cache directory: {e}"),
        ));
    }
    let _x = lock_or_report(ctx, LockMode::Exclusive).map_err(Step::Fallback)?;
    match probe::probe(&ctx.db_at) {
        Ok(Probe::Missing) => recover::create_in_place(ctx)
            .map_err(|e| unavailable(ctx, &format!("cannot create cache database: {e}"))),
        Ok(_) => Ok(()), // another process created it meanwhile
        Err(e) => Err(unavailable(ctx, &e.to_string())),
    }
}

/// DB + WAL bytes, recorded as `ast.cache.size`, with an `ast.cache.size_warning` when over
/// the warning threshold.
fn watch_size(ctx: &CacheCtx, db_bytes: u64) -> u64 {
    let wal_bytes = ctx.sidecar("-wal").size();
    let total = db_bytes + wal_bytes;
    let threshold = if mutant::active(Mutant::SizeThresholdKib) {
        ctx.settings.size_warn_bytes.saturating_mul(1024)
    } else {
        ctx.settings.size_warn_bytes
    };
    events::size(&ctx.telemetry, db_bytes, wal_bytes);
    if total > threshold {
        let warn_at = ctx.settings.size_warn_bytes;
        events::size_warning(&ctx.telemetry, db_bytes, wal_bytes, warn_at);
    }
    total
}

/// Probe; a mere suspicion (size vs header, which a concurrent checkpoint shows for a moment)
/// is re-probed a few times over a few milliseconds before recovery, which would need the
/// exclusive lock and so wait for every other user of the cache.
fn probe_settled(ctx: &CacheCtx) -> std::io::Result<Probe> {
    let mut p = probe::probe(&ctx.db_at)?;
    for pause_ms in [1, 2, 4] {
        match p {
            Probe::Damaged(kind, _) if kind.is_suspicion() => {
                std::thread::sleep(std::time::Duration::from_millis(pause_ms));
                p = probe::probe(&ctx.db_at)?;
            }
            _ => break,
        }
    }
    Ok(p)
}

fn after_recovery(outcome: Recovery) -> Step {
    match outcome {
        Recovery::AlreadyRecovered | Recovery::NotReproduced => Step::Retry,
        o => Step::Fallback(o.miss_reason()),
    }
}

/// Bring an older database up to [`SCHEMA_VERSION`] under the exclusive lock, then fold the
/// WAL so the header on disk shows the new version to the next probe.
fn migrate(ctx: &CacheCtx) -> Result<(), Step> {
    let _x = lock_or_report(ctx, LockMode::Exclusive).map_err(Step::Fallback)?;
    let run = || -> Result<(), CacheError> {
        let mut conn = connect(&ctx.db, &ctx.settings)?;
        schema::migrate(&mut conn, schema::MIGRATIONS)?;
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    };
    run().map_err(|e| unavailable(ctx, &format!("migration failed: {e}")))
}
