//! Corruption recovery and database (re)creation, both under the exclusive cache lock.
//!
//! Recovery never trusts the sign that triggered it. Under the exclusive lock it re-checks:
//! if the file is no longer the one we saw (another process already quarantined and
//! recreated it) it does nothing; a size mismatch is re-examined after a full checkpoint (it
//! can be a transient view of a healthy file); otherwise the header, `quick_check` and every
//! row's checksum are examined. Only damage that is still there is quarantined: the database,
//! `-wal` and `-shm` are moved *together* into `quarantine/<utc-ts>-<pid>-<kind>/` (the newest
//! `quarantine_keep` folders are kept), a fresh database takes its place (the path never
//! disappears, see [`quarantine_and_replace`]), and `ast.cache.corruption_detected` is
//! emitted.

use super::probe::{self, DamageKind, FileId, Probe};
use super::{CacheCtx, SqlFailure, classify, connect, entry_checksum, events};
use crate::cache::MissReason;
use crate::cache::counters::{self, Tally};
use crate::cache::lock::{LockError, LockMode};
use crate::segment_fs::{Access, Anchored, Kind};
use std::io;
use std::path::Path;

/// Folder (inside the cache directory) holding quarantined databases.
pub const QUARANTINE_DIR: &str = "quarantine";

/// How a recovery attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// The damage was confirmed; the files were moved to this folder (relative to the cache
    /// directory) and a fresh database was created.
    Quarantined(String),
    /// Another process replaced the database since we looked: nothing to do.
    AlreadyRecovered,
    /// The re-check found the database healthy.
    NotReproduced,
    /// The exclusive lock could not be taken in time; nothing was touched.
    LockTimeout,
    /// Recovery itself failed (I/O); nothing more can be done this run.
    Failed(String),
}

impl std::fmt::Display for Recovery {
    /// What happened, for messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recovery::Quarantined(rel) => write!(f, "quarantined to {rel} and recreated"),
            Recovery::AlreadyRecovered => f.write_str("already replaced by another process"),
            Recovery::NotReproduced => f.write_str("the damage was not found again on re-check"),
            Recovery::LockTimeout => {
                f.write_str("the exclusive lock was not free in time; nothing was touched")
            }
            Recovery::Failed(detail) => write!(f, "failed: {detail}"),
        }
    }
}

impl Recovery {
    /// The `miss_reason` of a run that detected corruption and ended this way.
    pub fn miss_reason(&self) -> MissReason {
        match self {
            Recovery::LockTimeout => MissReason::LockTimeout,
            Recovery::Failed(_) => MissReason::CacheUnavailable,
            _ => MissReason::CorruptionRecovered,
        }
    }
}

/// Recover from `kind`, seen on the file identified by `seen`. The caller must have closed
/// its connection and released its shared lock.
pub fn recover(ctx: &CacheCtx, kind: DamageKind, seen: Option<FileId>) -> Recovery {
    let _guard = match ctx.lock(LockMode::Exclusive) {
        Ok(g) => g,
        Err(LockError::Timeout { .. }) => return Recovery::LockTimeout,
        Err(LockError::Io(e)) => return failed(ctx, &e.to_string()),
    };
    recover_locked(ctx, kind, seen)
}

/// [`recover`] for a caller that already holds the exclusive lock (maintenance, commands).
pub fn recover_locked(ctx: &CacheCtx, kind: DamageKind, seen: Option<FileId>) -> Recovery {
    let confirmed = match recheck(ctx, kind, seen) {
        Ok(Recheck::Replaced) => return Recovery::AlreadyRecovered,
        Ok(Recheck::Healthy) => {
            if !kind.is_suspicion() {
                // We saw real damage that is gone now without the file changing identity:
                // say so instead of pretending nothing happened.
                events::corruption(&ctx.telemetry, kind.as_str(), None, "not_reproduced");
            }
            return Recovery::NotReproduced;
        }
        Ok(Recheck::Damaged(k)) => k,
        Err(e) => return failed(ctx, &e.to_string()),
    };
    counters::record(ctx.dir(), Tally::Corruption);
    match quarantine_and_replace(ctx, confirmed.as_str()) {
        Ok(rel) => {
            counters::record(ctx.dir(), Tally::Quarantine);
            events::corruption(
                &ctx.telemetry,
                confirmed.as_str(),
                Some(&rel),
                "quarantined_and_recreated",
            );
            Recovery::Quarantined(rel)
        }
        Err(e) => failed(ctx, &format!("quarantine: {e}")),
    }
}

fn failed(ctx: &CacheCtx, detail: &str) -> Recovery {
    events::fallback(
        &ctx.telemetry,
        MissReason::CacheUnavailable.as_str(),
        detail,
    );
    Recovery::Failed(detail.to_string())
}

enum Recheck {
    Replaced,
    Healthy,
    Damaged(DamageKind),
}

/// The re-check, under the exclusive lock (no other process has a connection open).
fn recheck(ctx: &CacheCtx, kind: DamageKind, seen: Option<FileId>) -> io::Result<Recheck> {
    let first = probe::probe(&ctx.db_at)?;
    let id = match first {
        Probe::Missing => return Ok(Recheck::Replaced),
        Probe::Newer { .. } => return Ok(Recheck::Healthy), // not ours to touch
        Probe::Usable(h) => h.id,
        Probe::Damaged(_, Some(id)) => id,
        Probe::Damaged(_, None) => match ctx.db_at.stat()? {
            Some(st) => FileId::of_stat(&st),
            None => return Ok(Recheck::Replaced),
        },
    };
    if seen.is_some_and(|s| s != id) {
        return Ok(Recheck::Replaced);
    }
    let header = match first {
        Probe::Damaged(DamageKind::SizeMismatch, _) => {
            // Fold any WAL into the main file; a healthy file then matches its header again.
            if let Ok(c) = connect(&ctx.db, &ctx.settings) {
                let _ = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            }
            probe::probe(&ctx.db_at)?
        }
        p => p,
    };
    match header {
        Probe::Usable(_) => {}
        Probe::Damaged(k, _) => return Ok(Recheck::Damaged(k)),
        Probe::Missing => return Ok(Recheck::Replaced),
        Probe::Newer { .. } => return Ok(Recheck::Healthy),
    }
    Ok(match deep_check(&ctx.db, ctx) {
        Ok(()) => Recheck::Healthy,
        Err(SqlFailure::Corrupt(k)) => Recheck::Damaged(k),
        // A database SQLite cannot even read through is as damaged as it gets; keep the
        // original sign as the kind.
        Err(SqlFailure::Other(_)) => Recheck::Damaged(kind),
    })
}

/// `quick_check` plus every row's checksum. O(N); only run when something already looked wrong
/// (and by maintenance).
pub fn deep_check(db: &Path, ctx: &CacheCtx) -> Result<(), SqlFailure> {
    let conn = connect(db, &ctx.settings)?;
    let qc: String = conn.query_row("PRAGMA quick_check(1)", [], |r| r.get(0))?;
    if qc != "ok" {
        return Err(SqlFailure::Corrupt(DamageKind::IntegrityCheckFailed));
    }
    verify_checksums(&conn).map(|_| ())
}

/// Check every row's checksum. Returns the number of rows checked.
pub fn verify_checksums(conn: &rusqlite::Connection) -> Result<u64, SqlFailure> {
    let mut stmt =
        conn.prepare("SELECT file_rel, content_hash, extractor, payload, checksum FROM entries")?;
    let mut rows = stmt.query([])?;
    let mut n = 0u64;
    while let Some(r) = rows.next().map_err(classify)? {
        let (f, h, t, p, c): (String, Vec<u8>, String, Vec<u8>, Vec<u8>) =
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
        if c.as_slice() != entry_checksum(&f, &h, &t, &p) {
            return Err(SqlFailure::Corrupt(DamageKind::ChecksumMismatch));
        }
        n += 1;
    }
    Ok(n)
}

fn compact_utc(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => format!(
            "{}{:03}Z",
            ts.strftime("%Y%m%dT%H%M%S"),
            ms.rem_euclid(1000)
        ),
        Err(_) => format!("{ms}"),
    }
}

/// Move the database and its sidecars into a new quarantine folder and put a fresh database
/// in its place; keep the newest `quarantine_keep` folders. Returns the folder relative to
/// the cache directory. The caller holds the exclusive lock.
///
/// The database path never disappears (a process that stats it meanwhile would otherwise
/// think this is a first run): the fresh database is built under a temporary name, the damaged
/// file is hard-linked into the quarantine folder, its `-wal`/`-shm` are moved there, and the
/// fresh file is renamed over the old name atomically. (A directory in place of the database
/// cannot be linked or renamed over; it is moved first.)
pub fn quarantine_and_replace(
    ctx: &CacheCtx,
    kind: &str,
) -> Result<String, crate::cache::CacheError> {
    ensure_dir(ctx)?;
    clean_tmp_leftovers(ctx.dir());
    let tmp = build_fresh(ctx)?;
    let result = move_into_quarantine(ctx, kind).and_then(|rel| {
        tmp.rename(&ctx.db_at)?;
        Ok(rel)
    });
    if result.is_err() {
        remove_db_files(&tmp);
    }
    let rel = result?;
    prune_quarantine(
        &ctx.dir().join(QUARANTINE_DIR),
        ctx.settings.quarantine_keep,
    );
    Ok(rel)
}

/// `Ok` for "done" and for "nothing was there".
fn ok_if_missing(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

fn move_into_quarantine(ctx: &CacheCtx, kind: &str) -> io::Result<String> {
    let name = format!(
        "{}-{}-{}",
        compact_utc(crate::clock::real_now_ms()),
        std::process::id(),
        kind
    );
    let qroot = ctx.dir().join(QUARANTINE_DIR);
    qroot.create_dir()?;
    let folder = qroot.join(&name);
    folder.create_dir()?;
    let db_name = super::super::DB_FILE_NAME;
    let kept = folder.join(db_name);
    // Every name below is acted on through its directory handle: a link is moved as a link,
    // never followed.
    let is_file = matches!(ctx.db_at.kind(), Ok(Some(Kind::File)));
    let linked = is_file && ctx.db_at.hard_link(&kept).is_ok();
    if !linked {
        ok_if_missing(ctx.db_at.rename(&kept))?;
    }
    for suffix in ["-wal", "-shm"] {
        ok_if_missing(
            ctx.sidecar(suffix)
                .rename(&folder.join(format!("{db_name}{suffix}"))),
        )?;
    }
    Ok(format!("{QUARANTINE_DIR}/{name}"))
}

/// Delete all but the newest `keep` quarantine folders (names start with a sortable UTC time).
/// Removal goes through directory handles and never follows a link.
pub fn prune_quarantine(qroot: &Anchored, keep: usize) {
    let Ok(entries) = qroot.entries() else {
        return;
    };
    let mut dirs: Vec<_> = entries
        .into_iter()
        .filter(|(_, k)| *k == Kind::Dir)
        .map(|(n, _)| n)
        .collect();
    dirs.sort();
    let excess = dirs.len().saturating_sub(keep);
    for d in dirs.into_iter().take(excess) {
        let _ = qroot.join(d).remove_tree();
    }
}

/// Create the cache directory with its `.gitignore` and `CACHEDIR.TAG` (in `.trifecta/`), each
/// written atomically (a full disk cannot leave an empty file behind for good); anything planted
/// at these names is moved aside and reported.
pub fn ensure_dir(ctx: &CacheCtx) -> Result<(), crate::cache::CacheError> {
    ctx.claim_names(true)?;
    let trifecta = ctx.dir().parent();
    let mut incidents = Vec::new();
    let r = trifecta
        .join(".gitignore")
        .write_if_missing(b"*\n", &mut incidents)
        .and_then(|()| {
            trifecta.join("CACHEDIR.TAG").write_if_missing(
                b"Signature: 8a477f597d28d172789f06886806bc55\n\
                  # This file is a cache directory tag created by trifecta.\n\
                  # For information about cache directory tags, see https://bford.info/cachedir/\n",
                &mut incidents,
            )
        });
    ctx.report(&incidents);
    r.map_err(|e| io::Error::from(e).into())
}

/// Create a fresh database at the cache path, which is free. The caller holds the exclusive
/// lock. Built under a temporary name and renamed into place, so no process ever sees a
/// half-created file; stale `-wal`/`-shm` files are removed first because SQLite would
/// otherwise replay a foreign WAL onto the new file (SQLite's "mispaired journal" hazard).
pub fn create_in_place(ctx: &CacheCtx) -> Result<(), crate::cache::CacheError> {
    ensure_dir(ctx)?;
    clean_tmp_leftovers(ctx.dir());
    let tmp = build_fresh(ctx)?;
    let res = (|| -> io::Result<()> {
        for s in ["-wal", "-shm"] {
            ok_if_missing(ctx.sidecar(s).remove_file())?;
        }
        tmp.rename(&ctx.db_at)
    })();
    if res.is_err() {
        remove_db_files(&tmp);
    }
    Ok(res?)
}

/// Build a complete fresh database under a temporary name in the cache directory.
fn build_fresh(ctx: &CacheCtx) -> Result<Anchored, crate::cache::CacheError> {
    let tmp = ctx.dir().join(format!(
        "{}.tmp-{}-{:08x}",
        super::super::DB_FILE_NAME,
        std::process::id(),
        fastrand::u32(..)
    ));
    if let Err(e) = crate::cache::schema::create_db(&tmp.abs(), crate::clock::now_ms()) {
        remove_db_files(&tmp);
        return Err(e.into());
    }
    // create_db runs with synchronous=OFF; make the file durable once, before the rename
    // publishes it (a crash must never leave a renamed-in, half-written database).
    if let Err(e) = tmp
        .open(Access::Read)
        .map_err(io::Error::from)
        .and_then(|f| f.sync_all())
    {
        remove_db_files(&tmp);
        return Err(e.into());
    }
    Ok(tmp)
}

fn remove_db_files(db: &Anchored) {
    for s in ["", "-wal", "-shm", "-journal"] {
        let _ = db.with_suffix(s).remove_file();
    }
}

/// Temporary databases left by a creator that crashed (we hold the exclusive lock, so none is
/// in use).
fn clean_tmp_leftovers(dir: &Anchored) {
    let prefix = format!("{}.tmp-", super::super::DB_FILE_NAME);
    if let Ok(entries) = dir.entries() {
        for (name, _) in entries {
            if name.to_string_lossy().starts_with(&prefix) {
                let _ = dir.join(name).remove_file();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_time_sorts_and_has_millis() {
        assert_eq!(compact_utc(1_795_232_083_217), "20261121T033443217Z");
        assert!(compact_utc(1_000) < compact_utc(2_000));
    }

    #[test]
    fn quarantine_keeps_newest() {
        let d = tempfile::tempdir().unwrap();
        for n in [
            "20260101T000000000Z-1-a",
            "20260102T000000000Z-1-b",
            "20260103T000000000Z-1-c",
            "20260104T000000000Z-1-d",
        ] {
            std::fs::create_dir_all(d.path().join(n)).unwrap();
        }
        prune_quarantine(
            &crate::segment_fs::Anchor::open(d.path()).unwrap().root(),
            3,
        );
        let mut left: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left.len(), 3);
        assert!(left[0].starts_with("20260102"));
    }
}
