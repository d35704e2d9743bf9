//! Real hit/miss counters without a database write per hit.
//!
//! Each lookup appends one tiny text record (`hit`, `miss key_miss`, …) to
//! `<cache dir>/ast_cache.counters` with a single `write(2)` on an `O_APPEND` descriptor. The
//! maintenance pass folds the file into the database's `counters` table and empties it;
//! `ast cache stats` adds the table and the not-yet-folded file, so the numbers are exact at
//! any moment.
//!
//! Why a side file: a hit must not write the database (that serialized every reader in the
//! original, and its "hit rate" was computed from timestamps and read ~100% for any workload).
//! Appenders hold a *shared* `flock` on the counters file for the duration of their one write;
//! folding holds it *exclusive* while it reads, commits and truncates, so no record is lost
//! between the read and the truncate. The file lives outside the database, so counts of
//! corruption incidents survive the quarantine of the database they are about.
//!
//! Known limit: a crash between the fold's commit and its truncate counts that batch twice.

use super::MissReason;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// File name inside the cache directory.
pub const COUNTERS_FILE_NAME: &str = "ast_cache.counters";

/// Longest an appender or the folder waits for the counters-file lock. A record that cannot
/// be written in this time is dropped (the command never waits for bookkeeping).
const LOCK_WAIT: Duration = Duration::from_millis(200);

/// One countable thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tally {
    /// A lookup served from the cache.
    Hit,
    /// A lookup that missed, and why.
    Miss(MissReason),
    /// The cache lock could not be taken in time.
    LockTimeout,
    /// Corruption was detected.
    Corruption,
    /// A damaged database was moved into quarantine.
    Quarantine,
}

impl Tally {
    fn record_line(self) -> String {
        match self {
            Tally::Hit => "hit\n".into(),
            Tally::Miss(r) => format!("miss {}\n", r.as_str()),
            Tally::LockTimeout => "lock_timeout\n".into(),
            Tally::Corruption => "corruption\n".into(),
            Tally::Quarantine => "quarantine\n".into(),
        }
    }
}

/// Counter name in the `counters` table for a record line (`None` for unknown lines).
fn counter_name(line: &str) -> Option<String> {
    match line.split_once(' ') {
        None => match line {
            "hit" => Some("hits".into()),
            "lock_timeout" => Some("lock_timeouts".into()),
            "corruption" => Some("corruptions".into()),
            "quarantine" => Some("quarantines".into()),
            _ => None,
        },
        Some(("miss", reason))
            if !reason.is_empty()
                && reason.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') =>
        {
            Some(format!("miss:{reason}"))
        }
        _ => None,
    }
}

/// Parse a counters file's text into totals (unknown or torn lines are ignored).
pub fn parse(text: &str) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        if let Some(name) = counter_name(line.trim()) {
            *m.entry(name).or_insert(0) += 1;
        }
    }
    m
}

/// `<cache dir>/ast_cache.counters`.
pub fn path(cache_dir: &Path) -> PathBuf {
    cache_dir.join(COUNTERS_FILE_NAME)
}

fn lock_bounded(file: &File, exclusive: bool) -> io::Result<()> {
    let start = Instant::now();
    loop {
        let r = if exclusive {
            file.try_lock()
        } else {
            file.try_lock_shared()
        };
        match r {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) if start.elapsed() < LOCK_WAIT => {
                std::thread::sleep(Duration::from_micros(500));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "counters lock busy",
                ));
            }
            Err(TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// Append one record. Never fails the caller: bookkeeping errors are dropped (the cache
/// directory may not exist on a fallback path, or the disk may be full).
pub fn record(cache_dir: &Path, t: Tally) {
    let _ = try_record(cache_dir, t);
}

fn try_record(cache_dir: &Path, t: Tally) -> io::Result<()> {
    try_append(cache_dir, &t.record_line())
}

fn try_append(cache_dir: &Path, lines: &str) -> io::Result<()> {
    if !cache_dir.is_dir() {
        return Ok(()); // never create the cache directory just to count
    }
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path(cache_dir))?;
    lock_bounded(&f, false)?;
    f.write_all(lines.as_bytes())
}

/// Lookup tallies buffered in memory and appended in one locked write when flushed or
/// dropped: one append per store instead of one per lookup (`ast index` does thousands; each
/// append is an open, a lock, a write and a close).
#[derive(Debug)]
pub struct Pending {
    cache_dir: PathBuf,
    lines: String,
}

impl Pending {
    /// An empty buffer for the cache in `cache_dir`.
    pub fn new(cache_dir: &Path) -> Self {
        Pending {
            cache_dir: cache_dir.to_path_buf(),
            lines: String::new(),
        }
    }

    /// Buffer one record.
    pub fn add(&mut self, t: Tally) {
        self.lines.push_str(&t.record_line());
    }

    /// Append the buffered records (never fails the caller, as [`record`]).
    pub fn flush(&mut self) {
        if !self.lines.is_empty() {
            let _ = try_append(&self.cache_dir, &self.lines);
            self.lines.clear();
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Read the pending (not yet folded) records without changing anything.
pub fn pending(cache_dir: &Path) -> BTreeMap<String, i64> {
    std::fs::read_to_string(path(cache_dir))
        .map(|s| parse(&s))
        .unwrap_or_default()
}

/// Fold the pending records: `commit` receives the totals and must persist them; only when it
/// succeeds is the file emptied. Returns the totals folded.
pub fn fold<E>(
    cache_dir: &Path,
    commit: impl FnOnce(&BTreeMap<String, i64>) -> Result<(), E>,
) -> Result<BTreeMap<String, i64>, E>
where
    E: From<io::Error>,
{
    let p = path(cache_dir);
    let mut f = match OpenOptions::new().read(true).write(true).open(&p) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e.into()),
    };
    lock_bounded(&f, true)?;
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    let totals = parse(&text);
    if !totals.is_empty() {
        commit(&totals)?;
    }
    f.set_len(0)?;
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_parse_back_and_garbage_is_ignored() {
        let d = tempfile::tempdir().unwrap();
        for t in [
            Tally::Hit,
            Tally::Hit,
            Tally::Miss(MissReason::KeyMiss),
            Tally::Miss(MissReason::LockTimeout),
            Tally::LockTimeout,
            Tally::Corruption,
            Tally::Quarantine,
        ] {
            record(d.path(), t);
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(path(d.path()))
            .unwrap()
            .write_all(b"miss \nbogus\nmiss Key-Miss\nhi")
            .unwrap();
        let p = pending(d.path());
        let want: BTreeMap<String, i64> = [
            ("hits", 2),
            ("miss:key_miss", 1),
            ("miss:lock_timeout", 1),
            ("lock_timeouts", 1),
            ("corruptions", 1),
            ("quarantines", 1),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(p, want);
    }

    #[test]
    fn fold_empties_only_after_commit() {
        let d = tempfile::tempdir().unwrap();
        record(d.path(), Tally::Hit);
        let r: Result<_, io::Error> = fold(d.path(), |_| Err(io::Error::other("db down")));
        assert!(r.is_err());
        assert_eq!(pending(d.path()).get("hits"), Some(&1), "kept on failure");
        let got: BTreeMap<String, i64> = fold(d.path(), |_| Ok::<(), io::Error>(())).unwrap();
        assert_eq!(got.get("hits"), Some(&1));
        assert!(pending(d.path()).is_empty());
    }

    #[test]
    fn missing_dir_is_not_created() {
        let d = tempfile::tempdir().unwrap();
        let nope = d.path().join("nope");
        record(&nope, Tally::Hit);
        assert!(!nope.exists());
    }
}
