//! The cache lock: `ast_cache.lock` beside the database, locked with `flock(2)` through the
//! standard library's `File::lock*` API.
//!
//! Protocol: every process that uses the database holds the lock **shared** for as long as it
//! has a connection open (SQLite's WAL coordinates readers and writers among them). Anything
//! that renames, replaces or restructures the file — creation, migration, corruption recovery,
//! maintenance, `ast cache clear|prune` — holds it **exclusive**, so nothing is ever moved from
//! under a process that is using it. Every wait is bounded; a dead holder's lock disappears with
//! its process (the kernel releases `flock` locks when the descriptor closes).
//!
//! We lock a separate file and never the database itself: opening and closing the database
//! file outside SQLite would drop SQLite's own POSIX locks process-wide (see SQLite's
//! "How To Corrupt" page, §2.4 of the anchors).
//!
//! Caution: `flock` conversion (shared ↔ exclusive on one descriptor) is not atomic on Linux —
//! the old lock is dropped first — so this module never converts: [`CacheLock`] is released by
//! dropping it, and a new one is taken.

use crate::mutant::{self, Mutant};
use crate::segment_fs::{Access, Anchored};
use std::fs::{File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// File name of the lock file inside the cache directory.
pub const LOCK_FILE_NAME: &str = "ast_cache.lock";

/// `<cache dir>/ast_cache.lock` for the database at `db_path`.
pub fn lock_path(db_path: &Path) -> PathBuf {
    db_path.with_file_name(LOCK_FILE_NAME)
}

/// How the lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Normal use of the database (many holders).
    Shared,
    /// Creation, migration, recovery, maintenance (one holder, no shared holders).
    Exclusive,
}

impl LockMode {
    /// `shared` or `exclusive` (telemetry `args.mode`).
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Shared => "shared",
            LockMode::Exclusive => "exclusive",
        }
    }
}

/// A held lock. Dropping it closes the descriptor, which releases the lock.
#[derive(Debug)]
pub struct CacheLock {
    _file: File,
    mode: LockMode,
    waited: Duration,
}

impl CacheLock {
    /// The mode this lock is held in.
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    /// How long acquiring it took.
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process held a conflicting lock for the whole wait.
    #[error("cache lock ({}) not acquired within {} ms", mode.as_str(), waited.as_millis())]
    Timeout {
        /// The mode we asked for.
        mode: LockMode,
        /// How long we waited.
        waited: Duration,
    },
    /// The lock file could not be opened or locked.
    #[error("cache lock: {0}")]
    Io(#[from] io::Error),
}

fn open_lock_file(path: &Anchored) -> io::Result<File> {
    // Never truncated or removed: the file's content is irrelevant, only its identity matters,
    // and deleting it while others wait on it would let two processes "hold" different files.
    // Opened beneath the segment, never through a link, never blocking on a FIFO.
    Ok(path.open(Access::ReadWrite { create: true })?)
}

fn try_mode(file: &File, mode: LockMode) -> Result<bool, io::Error> {
    let r = match mode {
        LockMode::Shared => file.try_lock_shared(),
        LockMode::Exclusive => file.try_lock(),
    };
    match r {
        Ok(()) => Ok(true),
        Err(TryLockError::WouldBlock) => Ok(false),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Take the lock at `path` in `mode`, waiting at most `timeout`. Polls with a short, growing
/// backoff plus jitter (so a crowd of waiters does not retry in lockstep).
pub fn acquire(path: &Anchored, mode: LockMode, timeout: Duration) -> Result<CacheLock, LockError> {
    let file = open_lock_file(path)?;
    let start = Instant::now();
    let mut pause = Duration::from_micros(250);
    loop {
        if try_mode(&file, mode)? {
            return Ok(CacheLock {
                _file: file,
                mode,
                waited: start.elapsed(),
            });
        }
        let waited = start.elapsed();
        // The blocking-lock mutant waits forever (as if the timeout were never checked).
        let timeout = if mutant::active(Mutant::BlockingLock) {
            Duration::MAX
        } else {
            timeout
        };
        if waited >= timeout {
            return Err(LockError::Timeout { mode, waited });
        }
        let jitter = Duration::from_micros(fastrand::u64(0..=pause.as_micros() as u64 / 2));
        let sleep = (pause + jitter).min(timeout.saturating_sub(waited));
        std::thread::sleep(sleep);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Take the lock only if it is free right now (automatic maintenance: never make a user's
/// command wait). `Ok(None)` when it is busy.
pub fn try_acquire(path: &Anchored, mode: LockMode) -> Result<Option<CacheLock>, LockError> {
    let file = open_lock_file(path)?;
    Ok(try_mode(&file, mode)?.then(|| CacheLock {
        _file: file,
        mode,
        waited: Duration::ZERO,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_locks_coexist_and_exclusive_waits_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let p = crate::segment_fs::Anchor::open(dir.path())
            .unwrap()
            .at(LOCK_FILE_NAME);
        let a = acquire(&p, LockMode::Shared, Duration::from_millis(100)).unwrap();
        let b = acquire(&p, LockMode::Shared, Duration::from_millis(100)).unwrap();
        assert_eq!(a.mode(), LockMode::Shared);
        let t = Instant::now();
        let e = acquire(&p, LockMode::Exclusive, Duration::from_millis(80)).unwrap_err();
        assert!(matches!(
            e,
            LockError::Timeout {
                mode: LockMode::Exclusive,
                ..
            }
        ));
        assert!(t.elapsed() >= Duration::from_millis(80));
        assert!(try_acquire(&p, LockMode::Exclusive).unwrap().is_none());
        drop((a, b));
        let x = try_acquire(&p, LockMode::Exclusive)
            .unwrap()
            .expect("free now");
        assert!(try_acquire(&p, LockMode::Shared).unwrap().is_none());
        drop(x);
        assert!(try_acquire(&p, LockMode::Shared).unwrap().is_some());
    }

    #[test]
    fn lock_path_is_beside_the_db() {
        let p = lock_path(Path::new("/s/.trifecta/cache/ast_cache.db"));
        assert_eq!(p, Path::new("/s/.trifecta/cache/ast_cache.lock"));
    }
}
