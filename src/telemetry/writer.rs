//! Appending to `events.jsonl` safely from many processes, with size-based rotation.
//!
//! **Appends.** Each process writes its whole batch with one `write(2)` on an `O_APPEND`
//! descriptor while holding an exclusive `flock` on the events file itself, so lines from
//! concurrent writers never interleave or tear. The lock wait is bounded: a writer that cannot
//! get the lock in [`LOCK_WAIT`] gives up on this batch rather than stall the command (the
//! caller reports that on stderr; the command itself is unaffected).
//!
//! **Rotation.** When the batch would push `events.jsonl` past [`Rotation::max_bytes`], the
//! writer that holds the lock renames `events.(k).jsonl → events.(k+1).jsonl` (dropping the
//! oldest beyond [`Rotation::keep`]) and then `events.jsonl → events.1.jsonl`, so `events.1` is
//! always the newest rotated file. Rotation happens *only* while holding the lock on the file
//! that is currently `events.jsonl`, so two processes can never rotate at once.
//!
//! **Rotated-away files.** A writer may open `events.jsonl`, then wait for the lock while
//! another process rotates that very file to `events.1.jsonl`. After taking the lock every
//! writer therefore compares the locked descriptor's (device, inode) with what the path
//! `events.jsonl` names now; on a mismatch (or if the path is gone) it unlocks, reopens and
//! tries again. A line is thus only ever written to the file that is `events.jsonl` at the
//! moment of the write, never to one already rotated out.

use super::Location;
use crate::segment_fs::{Access, Anchored, FsError, Incident, Kind};
use std::fs::{File, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The events file name inside the telemetry directory.
pub const EVENTS_FILE: &str = "events.jsonl";
/// Longest a writer waits for the events-file lock (in total, across reopen retries).
pub const LOCK_WAIT: Duration = Duration::from_millis(500);
/// Rotate `events.jsonl` when a batch would take it past this many MiB (decimals allowed;
/// default [`DEFAULT_MAX_BYTES`]).
pub const ENV_MAX_MB: &str = "TRIFECTA_TELEMETRY_MAX_MB";
/// How many rotated files (`events.1.jsonl` … `events.N.jsonl`) to keep (default
/// [`DEFAULT_KEEP`]; `0` keeps none, i.e. the full file is simply discarded).
pub const ENV_KEEP: &str = "TRIFECTA_TELEMETRY_KEEP";
/// Default rotation size: 10 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Default number of rotated files kept.
pub const DEFAULT_KEEP: usize = 5;
/// Upper bound on `TRIFECTA_TELEMETRY_KEEP` (a typo like `5000` must not make every rotation
/// stat thousands of names).
pub const MAX_KEEP: usize = 100;
/// Upper bound on `TRIFECTA_TELEMETRY_MAX_MB` (1 TiB): larger is a typo, not a policy.
pub const MAX_ROTATE_MB: f64 = 1_048_576.0;
/// How often a writer reopens after finding its file rotated away before giving up, at least:
/// it keeps trying for [`REOPEN_WINDOW`] as well. A count alone ran out in well under a
/// millisecond on a loaded machine where many writers rotate a small log, and dropped events.
const MAX_REOPENS: usize = 16;
/// How long a writer keeps reopening a file that other writers keep rotating away.
const REOPEN_WINDOW: Duration = Duration::from_secs(2);

/// Size-based rotation policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate when the file would grow past this many bytes (a batch larger than this still
    /// goes whole into a fresh file: lines are never split).
    pub max_bytes: u64,
    /// Rotated files kept; older ones are deleted.
    pub keep: usize,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_bytes: DEFAULT_MAX_BYTES,
            keep: DEFAULT_KEEP,
        }
    }
}

impl Rotation {
    /// Parse [`ENV_MAX_MB`] and [`ENV_KEEP`] values (`None` = unset). A malformed value falls
    /// back to the default and yields a warning string (`config` turns it into an error).
    pub fn parse(max_mb: Option<String>, keep: Option<String>) -> (Rotation, Option<String>) {
        let mut r = Rotation::default();
        let mut warn = Vec::new();
        if let Some(v) = max_mb {
            match v.trim().parse::<f64>() {
                Ok(mb) if mb.is_finite() && mb > 0.0 && mb <= MAX_ROTATE_MB => {
                    r.max_bytes = ((mb * 1024.0 * 1024.0) as u64).max(1);
                }
                _ => warn.push(format!(
                    "{ENV_MAX_MB}={} is not valid: expected a number above 0 and at most \
                     {MAX_ROTATE_MB}",
                    crate::output::quoted(&v)
                )),
            }
        }
        if let Some(v) = keep {
            match v.trim().parse::<usize>() {
                Ok(k) if k <= MAX_KEEP => r.keep = k,
                _ => warn.push(format!(
                    "{ENV_KEEP}={} is not valid: expected a whole number from 0 to {MAX_KEEP}",
                    crate::output::quoted(&v)
                )),
            }
        }
        (r, (!warn.is_empty()).then(|| warn.join("; ")))
    }
}

/// The name of rotated file number `n` (1 = newest): `events.<n>.jsonl`.
pub fn rotated_name(n: usize) -> String {
    format!("events.{n}.jsonl")
}

/// The path of rotated file number `n` in `dir` (for tests and messages).
pub fn rotated_path(dir: &Path, n: usize) -> PathBuf {
    dir.join(rotated_name(n))
}

/// Append `bytes` (whole lines) to `<dir>/events.jsonl` with the default rotation policy (`dir`
/// named by the user, e.g. in tests).
pub fn append(dir: &Path, bytes: &[u8]) -> io::Result<()> {
    append_with(&Location::user(dir), bytes, Rotation::default()).map(|_| ())
}

/// Append `bytes` (whole lines) to `events.jsonl` in `location`, creating the directory if
/// needed and rotating per `rotation`. One `write(2)` under the lock: all of `bytes` lands
/// contiguously. Every file is opened and renamed through [`crate::segment_fs`]: a planted link,
/// FIFO or directory at one of our names is moved aside (returned as incidents), never written
/// through, rotated or deleted.
pub fn append_with(
    location: &Location,
    bytes: &[u8],
    rotation: Rotation,
) -> io::Result<Vec<Incident>> {
    let mut incidents = Vec::new();
    if bytes.is_empty() {
        return Ok(incidents);
    }
    let dir = location.for_write(&mut incidents)?;
    let path = dir.join(EVENTS_FILE);
    let reopen_until = Instant::now() + REOPEN_WINDOW;
    let mut attempt = 0;
    while attempt < MAX_REOPENS || Instant::now() < reopen_until {
        attempt += 1;
        let file = match path.open(Access::Append { create: true }) {
            Ok(f) => f,
            Err(FsError::Foreign { found, .. }) => {
                incidents.push(path.move_aside(found)?);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        // The lock wait is bounded per attempt: a writer that just lost a rotation race must
        // not arrive at its next lock with no time left.
        lock_until(&file, Instant::now() + LOCK_WAIT)?;
        // Everything below runs under the lock; the guard releases it on every path.
        let guard = Unlock(&file);
        if !path.names(&file)? {
            // Rotated (or removed) between our open and our lock: this descriptor no longer
            // names events.jsonl. Writing here would put the batch into a rotated file.
            drop(guard);
            continue;
        }
        let size = file.metadata()?.len();
        if size > 0 && size.saturating_add(bytes.len() as u64) > rotation.max_bytes {
            rotate(&dir, &path, rotation.keep, &mut incidents)?;
            // The locked file is now events.1.jsonl; start over on a fresh events.jsonl.
            drop(guard);
            continue;
        }
        let res = (&file).write_all(bytes);
        drop(guard);
        return res.map(|()| incidents);
    }
    Err(io::Error::other("events file kept being rotated away"))
}

/// Releases the lock when dropped (the descriptor itself is closed by its own drop).
struct Unlock<'a>(&'a File);

impl Drop for Unlock<'_> {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Shift `events.k` → `events.k+1` (oldest first, dropping those beyond `keep`), then
/// `events.jsonl` → `events.1.jsonl`. Caller holds the lock on the current `events.jsonl`.
/// Only regular files are deleted; anything else at a rotated name is moved aside.
fn rotate(
    dir: &Anchored,
    current: &Anchored,
    keep: usize,
    incidents: &mut Vec<Incident>,
) -> io::Result<()> {
    if keep == 0 {
        return current.remove_file();
    }
    // Anything at or beyond `keep` (e.g. left over from a larger KEEP setting) is dropped.
    let mut n = keep;
    while let Some(kind) = dir.join(rotated_name(n)).kind()? {
        let old = dir.join(rotated_name(n));
        if kind == Kind::File {
            old.remove_file()?;
        } else {
            incidents.push(old.move_aside(kind)?);
        }
        n += 1;
        if n > MAX_KEEP + keep {
            break;
        }
    }
    for k in (1..keep).rev() {
        let from = dir.join(rotated_name(k));
        match from.kind()? {
            None => continue,
            Some(Kind::File) => from.rename(&dir.join(rotated_name(k + 1)))?,
            Some(kind) => incidents.push(from.move_aside(kind)?),
        }
    }
    current.rename(&dir.join(rotated_name(1)))
}

/// Take an exclusive lock on `file`, polling with a short jittered sleep until `deadline`.
fn lock_until(file: &File, deadline: Instant) -> io::Result<()> {
    let mut pause = Duration::from_micros(100);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                // Jitter so that a crowd of waiters does not retry in lockstep.
                let jitter = Duration::from_micros(fastrand::u64(0..=pause.as_micros() as u64));
                std::thread::sleep(pause / 2 + jitter);
                pause = (pause * 2).min(Duration::from_millis(5));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "events file lock busy",
                ));
            }
            Err(TryLockError::Error(e)) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(p: &Path) -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn appends_whole_batches() {
        let d = tempfile::tempdir().unwrap();
        append(d.path(), b"{\"a\":1}\n{\"a\":2}\n").unwrap();
        append(d.path(), b"{\"a\":3}\n").unwrap();
        assert_eq!(
            lines(&d.path().join(EVENTS_FILE)),
            ["{\"a\":1}", "{\"a\":2}", "{\"a\":3}"]
        );
    }

    #[test]
    fn rotates_at_the_limit_and_keeps_n_newest_first() {
        let d = tempfile::tempdir().unwrap();
        let rot = Rotation {
            max_bytes: 20,
            keep: 2,
        };
        // Each line is 10 bytes: two fit, the third rotates.
        for i in 0..7 {
            append_with(
                &Location::user(d.path()),
                format!("line-{i:03}\n").as_bytes(),
                rot,
            )
            .unwrap();
        }
        assert_eq!(lines(&d.path().join(EVENTS_FILE)), ["line-006"]);
        assert_eq!(lines(&rotated_path(d.path(), 1)), ["line-004", "line-005"]);
        assert_eq!(lines(&rotated_path(d.path(), 2)), ["line-002", "line-003"]);
        assert!(
            !rotated_path(d.path(), 3).exists(),
            "keep=2 must drop older"
        );
    }

    #[test]
    fn oversized_batch_goes_whole_into_a_fresh_file() {
        let d = tempfile::tempdir().unwrap();
        let rot = Rotation {
            max_bytes: 8,
            keep: 1,
        };
        append_with(&Location::user(d.path()), b"small\n", rot).unwrap();
        append_with(&Location::user(d.path()), b"a much longer line\n", rot).unwrap();
        assert_eq!(lines(&d.path().join(EVENTS_FILE)), ["a much longer line"]);
        assert_eq!(lines(&rotated_path(d.path(), 1)), ["small"]);
    }

    #[test]
    fn keep_zero_discards() {
        let d = tempfile::tempdir().unwrap();
        let rot = Rotation {
            max_bytes: 4,
            keep: 0,
        };
        append_with(&Location::user(d.path()), b"aaa\n", rot).unwrap();
        append_with(&Location::user(d.path()), b"bbb\n", rot).unwrap();
        assert_eq!(lines(&d.path().join(EVENTS_FILE)), ["bbb"]);
        assert!(!rotated_path(d.path(), 1).exists());
    }

    #[test]
    fn a_file_rotated_away_after_open_is_detected() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(EVENTS_FILE);
        std::fs::write(&path, b"x\n").unwrap();
        let held = File::open(&path).unwrap();
        let at = crate::segment_fs::Anchor::open(d.path())
            .unwrap()
            .at(EVENTS_FILE);
        let same_file = |f: &File, _: &Path| at.names(f);
        assert!(same_file(&held, &path).unwrap());
        std::fs::rename(&path, rotated_path(d.path(), 1)).unwrap();
        assert!(
            !same_file(&held, &path).unwrap(),
            "gone path must not match"
        );
        std::fs::write(&path, b"").unwrap();
        assert!(
            !same_file(&held, &path).unwrap(),
            "new inode must not match"
        );
    }

    #[test]
    fn busy_lock_times_out_instead_of_hanging() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(EVENTS_FILE);
        std::fs::write(&path, b"").unwrap();
        let holder = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        holder.lock().unwrap();
        let err = append(d.path(), b"late\n").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        holder.unlock().unwrap();
        assert!(lines(&path).is_empty());
    }

    #[test]
    fn rotation_settings_parse_and_bad_values_fall_back_with_a_warning() {
        let s = |v: &str| Some(v.to_string());
        assert_eq!(Rotation::parse(None, None), (Rotation::default(), None));
        let (r, w) = Rotation::parse(s("0.5"), s("2"));
        assert_eq!(
            r,
            Rotation {
                max_bytes: 512 * 1024,
                keep: 2
            }
        );
        assert!(w.is_none());
        for (m, k) in [
            ("-1", "2"),
            ("abc", "2"),
            ("1", "x"),
            ("1", "101"),
            ("0", "1"),
        ] {
            let (r, w) = Rotation::parse(s(m), s(k));
            assert!(w.is_some(), "{m}/{k} must warn");
            assert!(r.max_bytes == DEFAULT_MAX_BYTES || r.keep == DEFAULT_KEEP);
        }
    }
}
