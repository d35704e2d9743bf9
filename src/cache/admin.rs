//! What `ast cache stats|verify|prune|clear|path` do, below the command line: the cache
//! layer's administration of its own database, so the commands never reach into SQLite's
//! internals themselves (they resolve, call one function here, and render).
//!
//! Nothing here creates the cache directory or a database: on a segment without a cache
//! every command answers `exists: false`. `stats` and `verify` hold the shared lock (so no
//! recovery can move the file while they read it); `prune` and `clear` hold the exclusive
//! lock with a bounded wait, and on timeout fail with `CACHE_UNAVAILABLE` having touched
//! nothing. A database written by a newer trifecta is never opened, changed or deleted.

use crate::cache::counters;
use crate::cache::lock::{self, CacheLock, LockError, LockMode};
use crate::cache::schema::SCHEMA_VERSION;
use crate::cache::sqlite::probe::{self, Probe};
use crate::cache::sqlite::{CacheCtx, SqlFailure, classify, connect, maintain, recover};
use crate::error::{CliError, ErrorCode};
use crate::symbols::resolve;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Whether the cache directory exists, after moving aside anything planted at the cache's own
/// names (reported as `ast.fs.incident`).
fn cache_dir_exists(ctx: &CacheCtx) -> Result<bool, CliError> {
    ctx.claim_names(false)
        .map_err(|e| unavailable(format!("cache directory: {e}")))
}

fn unavailable(msg: impl Into<String>) -> CliError {
    CliError::new(ErrorCode::CacheUnavailable, msg)
}

fn corrupt(msg: impl Into<String>) -> CliError {
    CliError::new(ErrorCode::CacheCorrupt, msg)
}

fn lock_for(ctx: &CacheCtx, mode: LockMode) -> Result<CacheLock, CliError> {
    match ctx.lock(mode) {
        Ok(l) => Ok(l),
        Err(LockError::Timeout { waited, .. }) => Err(unavailable(format!(
            "the cache is busy: {} lock not acquired within {} ms; nothing was changed",
            mode.as_str(),
            waited.as_millis()
        ))),
        Err(LockError::Io(e)) => Err(unavailable(format!("cache lock: {e}"))),
    }
}

/// Probe under a lock we hold; a newer schema is an error for every command.
fn probe_locked(ctx: &CacheCtx) -> Result<Probe, CliError> {
    let p = probe::probe(&ctx.db_at).map_err(|e| unavailable(format!("cannot read cache: {e}")))?;
    if let Probe::Newer { found } = p {
        return Err(unavailable(format!(
            "the cache was written by a newer trifecta (schema {found} > {SCHEMA_VERSION}); \
             it was left untouched"
        )));
    }
    Ok(p)
}

fn fault_to_cli(f: SqlFailure) -> CliError {
    match f {
        SqlFailure::Corrupt(k) => corrupt(format!("cache database is damaged ({})", k.as_str())),
        SqlFailure::Other(e) => unavailable(e.to_string()),
    }
}

/// `ast cache stats --format json`, keys in the contract's order.
#[derive(Debug, Serialize)]
pub struct StatsOutput {
    /// Always `"ok"`.
    pub status: &'static str,
    /// Absolute DB path.
    pub db_path: String,
    /// Whether the DB file exists.
    pub exists: bool,
    /// Rows.
    pub entries: u64,
    /// Sum of payload sizes.
    pub payload_bytes: u64,
    /// Main file size.
    pub db_bytes: u64,
    /// WAL size.
    pub wal_bytes: u64,
    /// Lookups served from the cache (a daemon's memory tier or the local store).
    pub hits: i64,
    /// Lookups that missed (all reasons).
    pub misses: i64,
    /// hits / (hits + misses), null before the first lookup.
    pub hit_rate: Option<f64>,
    /// Misses per `miss_reason`.
    pub misses_by_reason: BTreeMap<String, i64>,
    /// Lock timeouts.
    pub lock_timeouts: i64,
    /// Corruption incidents confirmed.
    pub corruptions: i64,
    /// Databases moved to quarantine.
    pub quarantines: i64,
    /// Rows evicted by the size limit.
    pub evictions: i64,
    /// Rows pruned (TTL + deleted files).
    pub pruned: i64,
    /// Oldest `last_access_ms`.
    pub oldest_access_ms: Option<i64>,
    /// Newest `last_access_ms`.
    pub newest_access_ms: Option<i64>,
    /// Lookups per cache level (sccache's per-level stats): `memory` is a daemon's in-memory
    /// tier, `local` the SQLite store (its misses are the misses above; hits above are memory
    /// plus local hits), `remote` the shared Redis tier consulted after a local miss.
    pub levels: Levels,
    /// Modules a daemon re-extracted in the background after an edit: neither hits nor misses
    /// (nobody asked), so they do not move the hit rate.
    pub background_refreshes: Refreshes,
    /// The remote tier's configuration, or null when `TRIFECTA_AST_REMOTE` is unset.
    pub remote: Option<RemoteView>,
    /// The limits in force (this process's settings).
    pub limits: Limits,
    /// When the counters were last reset (`ast cache stats --zero`); null if never.
    pub counters_zeroed_ms: Option<i64>,
    /// When the database was created (the counters count from then unless zeroed).
    pub created_ms: Option<i64>,
    /// When maintenance last ran; null if never.
    pub last_maintenance_ms: Option<i64>,
    /// `user_version` of the DB (0 when there is none).
    pub schema_version: i64,
}

/// The configured limits, as `ast cache stats` shows them.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Limits {
    /// Size cap (DB + WAL) above which maintenance evicts down to 80 %.
    pub max_bytes: u64,
    /// DB + WAL size that triggers `ast.cache.size_warning`.
    pub size_warn_bytes: u64,
    /// Entries unused this long are pruned, in seconds.
    pub ttl_s: f64,
    /// At most one automatic maintenance pass per this many seconds.
    pub maintenance_interval_s: u64,
}

/// `meta` key: Unix ms of the last `ast cache stats --zero`.
pub const META_COUNTERS_ZEROED_MS: &str = "counters_zeroed_ms";

/// Reset every counter (hits, misses by reason, incidents) to zero and record when, under the
/// exclusive lock with the usual bounded wait; entries are untouched. Without a database
/// there is nothing to reset. On timeout: `CACHE_UNAVAILABLE`, nothing changed.
pub fn zero(ctx: &CacheCtx) -> Result<(), CliError> {
    if !cache_dir_exists(ctx)? {
        return Ok(());
    }
    let _x = lock_for(ctx, LockMode::Exclusive)?;
    match probe_locked(ctx)? {
        Probe::Usable(_) => {}
        Probe::Missing => return discard_pending(ctx),
        Probe::Damaged(k, _) => {
            return Err(corrupt(format!(
                "cache database is damaged ({}); nothing was reset",
                k.as_str()
            )));
        }
        Probe::Newer { .. } => return Err(unavailable("newer schema")), // see probe_locked
    }
    let mut conn = connect(&ctx.db, &ctx.settings).map_err(|e| fault_to_cli(classify(e)))?;
    let tx = conn.transaction().map_err(|e| fault_to_cli(classify(e)))?;
    tx.execute("DELETE FROM counters", [])
        .and_then(|_| {
            tx.execute(
                "INSERT INTO meta (k, v) VALUES (?1, ?2) ON CONFLICT (k) DO UPDATE SET v = excluded.v",
                rusqlite::params![META_COUNTERS_ZEROED_MS, crate::clock::now_ms()],
            )
        })
        .and_then(|_| tx.commit())
        .map_err(|e| fault_to_cli(classify(e)))?;
    discard_pending(ctx)
}

/// Empty the not-yet-folded counter records (under the counters file's own exclusive lock).
fn discard_pending(ctx: &CacheCtx) -> Result<(), CliError> {
    counters::fold(ctx.dir(), |_| Ok::<(), std::io::Error>(()))
        .map(|_| ())
        .map_err(|e| unavailable(format!("cannot reset the pending counters: {e}")))
}

/// A `meta` value, if present.
fn meta(conn: &rusqlite::Connection, key: &str) -> Result<Option<i64>, CliError> {
    use rusqlite::OptionalExtension;
    conn.query_row("SELECT v FROM meta WHERE k = ?1", [key], |r| r.get(0))
        .optional()
        .map_err(|e| fault_to_cli(classify(e)))
}

/// Counts per cache level.
#[derive(Debug, Default, Serialize)]
pub struct Levels {
    /// A daemon's in-memory tier.
    pub memory: MemoryLevel,
    /// The local store.
    pub local: LocalLevel,
    /// The remote tier.
    pub remote: RemoteLevel,
}

/// The memory level's counts: daemon requests with the persistent cache. A running daemon
/// appends them once per tick of its accept loop, so a direct `ast cache stats` may lack the
/// last 50 ms of them (`cache.stats` through the daemon flushes first).
#[derive(Debug, Default, Serialize)]
pub struct MemoryLevel {
    /// Requests answered from the daemon's memory, without opening the database.
    pub hits: i64,
    /// Requests the memory tier could not answer (each then counted by the local level).
    pub misses: i64,
}

/// Background re-extractions by a daemon's watcher.
#[derive(Debug, Default, Serialize)]
pub struct Refreshes {
    /// Modules extracted and stored, so the next request for them hits.
    pub extracted: i64,
    /// Modules whose content was already cached (an edit that changed nothing, say).
    pub already_cached: i64,
}

/// The local level's counts (the store's own hits; its misses are the top-level `misses`).
#[derive(Debug, Default, Serialize)]
pub struct LocalLevel {
    /// Lookups served locally.
    pub hits: i64,
    /// Local misses (each then went to the remote, when one is configured).
    pub misses: i64,
}

/// The remote level's counts, recorded by processes that had persistence on.
#[derive(Debug, Default, Serialize)]
pub struct RemoteLevel {
    /// Local misses served from Redis (and backfilled).
    pub hits: i64,
    /// Local misses Redis did not have.
    pub misses: i64,
    /// Redis values that failed their checks (never served).
    pub corrupt: i64,
    /// Entries written to Redis.
    pub writes: i64,
    /// Failures other than timeouts (each opened one process's circuit).
    pub errors: i64,
    /// Timeouts (each opened one process's circuit).
    pub timeouts: i64,
}

/// The remote tier as configured for this command (the password never shown).
#[derive(Debug, Serialize)]
pub struct RemoteView {
    /// `TRIFECTA_AST_REMOTE`, password replaced by `***`.
    pub url: String,
    /// `read-write` or `read-only`.
    pub mode: &'static str,
    /// Key namespace.
    pub prefix: String,
    /// Entry lifetime in days (`EX`).
    pub ttl_days: f64,
    /// Connect bound.
    pub connect_timeout_ms: u128,
    /// Per-command bound.
    pub io_timeout_ms: u128,
    /// How a `rediss://` server is authenticated (absent for a plain remote).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsView>,
}

/// The TLS settings of a `rediss://` remote as `ast cache stats` shows them.
#[derive(Debug, Serialize)]
pub struct TlsView {
    /// What the server's certificate is checked against; says `OFF` in insecure mode.
    pub verification: &'static str,
    /// `TRIFECTA_AST_REMOTE_TLS_INSECURE`: certificate verification off.
    pub insecure: bool,
    /// `TRIFECTA_AST_REMOTE_CA_FILE`, if set.
    pub ca_file: Option<String>,
    /// `TRIFECTA_AST_REMOTE_CLIENT_CERT`, if set (the key's path is not shown).
    pub client_cert: Option<String>,
}

impl RemoteView {
    fn of(r: &crate::config::RemoteSettings) -> Self {
        RemoteView {
            url: r.display_url(),
            mode: r.mode.as_str(),
            prefix: r.prefix.clone(),
            ttl_days: r.ttl.as_secs_f64() / 86400.0,
            connect_timeout_ms: r.connect_timeout.as_millis(),
            io_timeout_ms: r.io_timeout.as_millis(),
            tls: r.tls.as_ref().map(|t| TlsView {
                verification: t.verification(),
                insecure: t.insecure,
                ca_file: t.ca_file.clone(),
                client_cert: t.client_cert.as_ref().map(|(c, _)| c.clone()),
            }),
        }
    }
}

/// Entries, sizes, access times and the folded counters, read under the shared lock.
pub fn stats(ctx: &CacheCtx) -> Result<StatsOutput, CliError> {
    let mut totals = BTreeMap::new();
    let mut out = StatsOutput {
        status: "ok",
        db_path: ctx.db.to_string_lossy().into_owned(),
        exists: false,
        entries: 0,
        payload_bytes: 0,
        db_bytes: 0,
        wal_bytes: 0,
        hits: 0,
        misses: 0,
        hit_rate: None,
        misses_by_reason: BTreeMap::new(),
        lock_timeouts: 0,
        corruptions: 0,
        quarantines: 0,
        evictions: 0,
        pruned: 0,
        oldest_access_ms: None,
        newest_access_ms: None,
        levels: Levels::default(),
        background_refreshes: Refreshes::default(),
        remote: ctx.settings.remote.as_ref().map(RemoteView::of),
        limits: Limits {
            max_bytes: ctx.settings.max_bytes,
            size_warn_bytes: ctx.settings.size_warn_bytes,
            ttl_s: ctx.settings.ttl.as_secs_f64(),
            maintenance_interval_s: ctx.settings.maintenance_interval.as_secs(),
        },
        counters_zeroed_ms: None,
        created_ms: None,
        last_maintenance_ms: None,
        schema_version: 0,
    };
    if cache_dir_exists(ctx)? {
        let _shared = lock_for(ctx, LockMode::Shared)?;
        match probe_locked(ctx)? {
            Probe::Missing => {}
            Probe::Damaged(k, _) => {
                return Err(corrupt(format!(
                    "cache database is damaged ({}); the next `ast symbols` run will quarantine \
                     and rebuild it",
                    k.as_str()
                )));
            }
            Probe::Newer { .. } => return Err(unavailable("newer schema")), // see probe_locked
            Probe::Usable(h) => read_db(ctx, h.user_version, &mut out, &mut totals)?,
        }
        for (k, n) in counters::pending(ctx.dir()) {
            *totals.entry(k).or_insert(0) += n;
        }
        (out.db_bytes, out.wal_bytes) = maintain::db_and_wal_bytes(ctx);
    }
    fold_counters(&mut out, totals);
    out.levels.local.misses = out.misses;
    out.hits = out.levels.local.hits + out.levels.memory.hits;
    let lookups = out.hits + out.misses;
    out.hit_rate = (lookups > 0).then(|| out.hits as f64 / lookups as f64);
    Ok(out)
}

/// Entries, times and counter totals from a usable database (the shared lock is held).
fn read_db(
    ctx: &CacheCtx,
    user_version: i64,
    out: &mut StatsOutput,
    totals: &mut BTreeMap<String, i64>,
) -> Result<(), CliError> {
    out.exists = true;
    out.schema_version = user_version;
    let conn = connect(&ctx.db, &ctx.settings).map_err(|e| fault_to_cli(classify(e)))?;
    let s = maintain::db_stats(&conn).map_err(|e| fault_to_cli(classify(e)))?;
    (out.entries, out.payload_bytes) = (s.entries, s.payload_bytes);
    (out.oldest_access_ms, out.newest_access_ms) = (s.oldest_access_ms, s.newest_access_ms);
    out.counters_zeroed_ms = meta(&conn, META_COUNTERS_ZEROED_MS)?;
    out.created_ms = meta(&conn, crate::cache::schema::META_CREATED_MS)?;
    out.last_maintenance_ms = meta(&conn, crate::cache::schema::META_LAST_MAINTENANCE_MS)?;
    let mut q = conn
        .prepare("SELECT name, n FROM counters")
        .map_err(|e| fault_to_cli(classify(e)))?;
    let rows = q
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .map_err(|e| fault_to_cli(classify(e)))?;
    for row in rows {
        let (k, n) = row.map_err(|e| fault_to_cli(classify(e)))?;
        *totals.entry(k).or_insert(0) += n;
    }
    Ok(())
}

/// Add the counter totals (folded table rows plus the pending file) into `out`.
fn fold_counters(out: &mut StatsOutput, totals: BTreeMap<String, i64>) {
    for (k, n) in totals {
        match k.as_str() {
            "hits" => out.levels.local.hits += n,
            "memory:hits" => out.levels.memory.hits += n,
            "memory:misses" => out.levels.memory.misses += n,
            "refresh:extracted" => out.background_refreshes.extracted += n,
            "refresh:already_cached" => out.background_refreshes.already_cached += n,
            "lock_timeouts" => out.lock_timeouts += n,
            "corruptions" => out.corruptions += n,
            "quarantines" => out.quarantines += n,
            "evictions" => out.evictions += n,
            "pruned" => out.pruned += n,
            "remote:hits" => out.levels.remote.hits += n,
            "remote:misses" => out.levels.remote.misses += n,
            "remote:corrupt" => out.levels.remote.corrupt += n,
            "remote:writes" => out.levels.remote.writes += n,
            "remote:errors" => out.levels.remote.errors += n,
            "remote:timeouts" => out.levels.remote.timeouts += n,
            other => {
                if let Some(reason) = other.strip_prefix("miss:") {
                    out.misses += n;
                    *out.misses_by_reason.entry(reason.to_string()).or_insert(0) += n;
                }
            }
        }
    }
}

/// `ast cache verify` result.
#[derive(Debug, Serialize)]
pub struct VerifyOutput {
    /// `"ok"`.
    pub status: &'static str,
    /// Absolute DB path.
    pub db_path: String,
    /// Whether the DB exists (a missing cache verifies trivially).
    pub exists: bool,
    /// `integrity_check` result (`ok`), null without a DB.
    pub integrity_check: Option<String>,
    /// Rows whose checksum was verified.
    pub entries_checked: u64,
    /// `user_version`.
    pub schema_version: i64,
}

/// `integrity_check` and every row's checksum, under the shared lock. Reports damage as
/// `CACHE_CORRUPT` and repairs nothing.
pub fn verify(ctx: &CacheCtx) -> Result<VerifyOutput, CliError> {
    let mut out = VerifyOutput {
        status: "ok",
        db_path: ctx.db.to_string_lossy().into_owned(),
        exists: false,
        integrity_check: None,
        entries_checked: 0,
        schema_version: 0,
    };
    if !cache_dir_exists(ctx)? {
        return Ok(out);
    }
    let _shared = lock_for(ctx, LockMode::Shared)?;
    let h = match probe_locked(ctx)? {
        Probe::Missing => return Ok(out),
        Probe::Damaged(k, _) => {
            return Err(corrupt(format!(
                "cache database is damaged: {} (header check)",
                k.as_str()
            )));
        }
        Probe::Newer { .. } => return Err(unavailable("newer schema")), // see probe_locked
        Probe::Usable(h) => h,
    };
    out.exists = true;
    out.schema_version = h.user_version;
    let conn = connect(&ctx.db, &ctx.settings).map_err(|e| fault_to_cli(classify(e)))?;
    let problems: Vec<String> = conn
        .prepare("PRAGMA integrity_check(20)")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| fault_to_cli(classify(e)))?;
    if problems != ["ok"] {
        return Err(corrupt(format!(
            "integrity_check failed: {}",
            problems.join("; ")
        )));
    }
    out.integrity_check = Some("ok".into());
    if crate::mutant::active(crate::mutant::Mutant::VerifySkipsChecksums) {
        return Ok(out);
    }
    out.entries_checked = recover::verify_checksums(&conn).map_err(|f| match f {
        SqlFailure::Corrupt(k) => corrupt(format!("entry check failed: {}", k.as_str())),
        SqlFailure::Other(e) => unavailable(e.to_string()),
    })?;
    Ok(out)
}

/// `ast cache prune` result.
#[derive(Debug, Serialize)]
pub struct PruneOutput {
    /// `"ok"`.
    pub status: &'static str,
    /// Absolute DB path.
    pub db_path: String,
    /// Whether there was a DB to prune.
    pub exists: bool,
    /// What the pass did.
    #[serde(flatten)]
    pub report: maintain::Report,
}

/// The maintenance pass now (TTL, rows of deleted files, eviction to the size cap), under the
/// exclusive lock.
pub fn prune(ctx: &CacheCtx) -> Result<PruneOutput, CliError> {
    let mut out = PruneOutput {
        status: "ok",
        db_path: ctx.db.to_string_lossy().into_owned(),
        exists: false,
        report: maintain::Report::default(),
    };
    if !cache_dir_exists(ctx)? {
        return Ok(out);
    }
    let _x = lock_for(ctx, LockMode::Exclusive)?;
    match probe_locked(ctx)? {
        Probe::Missing => return Ok(out),
        Probe::Damaged(k, id) => {
            let o = recover::recover_locked(ctx, k, id);
            return Err(corrupt(format!(
                "cache database is damaged ({}); recovery: {o}",
                k.as_str()
            )));
        }
        _ => {}
    }
    out.exists = true;
    let conn = connect(&ctx.db, &ctx.settings).map_err(|e| fault_to_cli(classify(e)))?;
    out.report = maintain::run_locked(ctx, conn, maintain::Check::Full).map_err(|f| match f {
        SqlFailure::Corrupt(k) => corrupt(format!(
            "cache database is damaged ({}); it was quarantined and recreated",
            k.as_str()
        )),
        SqlFailure::Other(e) => unavailable(e.to_string()),
    })?;
    Ok(out)
}

/// `ast cache clear` result.
#[derive(Debug, Serialize)]
pub struct ClearOutput {
    /// `"ok"`.
    pub status: &'static str,
    /// Absolute DB path.
    pub db_path: String,
    /// Whether a DB existed.
    pub existed: bool,
    /// Rows it held (null when it could not be read, e.g. damaged).
    pub removed_entries: Option<u64>,
}

/// Remove the database and its side files, under the exclusive lock.
pub fn clear(ctx: &CacheCtx) -> Result<ClearOutput, CliError> {
    let mut out = ClearOutput {
        status: "ok",
        db_path: ctx.db.to_string_lossy().into_owned(),
        existed: false,
        removed_entries: None,
    };
    if !cache_dir_exists(ctx)? {
        return Ok(out);
    }
    // Exclusive: no process has the DB open, so removing it cannot pull it from under a writer.
    let _x = lock_for(ctx, LockMode::Exclusive)?;
    let p = probe_locked(ctx)?;
    if p == Probe::Missing {
        return Ok(out);
    }
    out.existed = true;
    if let Probe::Usable(_) = p {
        out.removed_entries = connect(&ctx.db, &ctx.settings)
            .and_then(|c| maintain::db_stats(&c))
            .ok()
            .map(|s| s.entries);
    }
    for target in [ctx.db_at.clone(), ctx.sidecar("-wal"), ctx.sidecar("-shm")] {
        // Through directory handles: a link is removed itself, a directory emptied without
        // ever following a link inside it.
        target
            .remove_tree()
            .map_err(|e| unavailable(format!("cannot remove cache file: {e}")))?;
    }
    // The counters describe the database that is gone; start afresh with it.
    let _ = counters::path(ctx.dir()).remove_file();
    Ok(out)
}

/// `ast cache path` result.
#[derive(Debug, Serialize)]
pub struct PathOutput {
    /// `"ok"`.
    pub status: &'static str,
    /// Absolute DB path (deterministic: `<segment>/.trifecta/cache/ast_cache.db`).
    pub db_path: String,
    /// Whether it exists.
    pub exists: bool,
    /// The cache directory.
    pub cache_dir: String,
    /// The lock file.
    pub lock_path: String,
}

/// Where the cache of `segment` lives, and whether the database exists; touches nothing.
pub fn path(segment: &Path) -> Result<PathOutput, CliError> {
    let root = resolve::segment_root(segment)?;
    let db = crate::cache::cache_db_path(&root);
    let db_at = root
        .anchor
        .at(crate::cache::CACHE_DIR_REL)
        .join(crate::cache::DB_FILE_NAME);
    Ok(PathOutput {
        status: "ok",
        exists: matches!(db_at.kind(), Ok(Some(crate::segment_fs::Kind::File))),
        cache_dir: db
            .parent()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default(),
        lock_path: lock::lock_path(&db).to_string_lossy().into_owned(),
        db_path: db.to_string_lossy().into_owned(),
    })
}
