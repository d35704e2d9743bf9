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
use crate::mutant::{self, Mutant};
use crate::segment_fs::{Access, Anchored, Kind};
use std::collections::BTreeMap;
use std::fs::{File, TryLockError};
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

/// File name inside the cache directory.
pub const COUNTERS_FILE_NAME: &str = "ast_cache.counters";

/// Longest an appender or the folder waits for the counters-file lock. A record that cannot
/// be written in this time is dropped (the command never waits for bookkeeping).
const LOCK_WAIT: Duration = Duration::from_millis(200);
/// Most bytes of pending records read at once (a planted huge file must not exhaust memory;
/// records past this are dropped when folded, which only loses counts).
const MAX_PENDING_BYTES: u64 = 16 << 20;

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
    /// Something the shared remote (L2) tier did.
    Remote(RemoteTally),
}

/// What the remote (L2) tier did, counted per lookup or write (`ast cache stats` → `levels`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteTally {
    /// An L1 miss served from Redis.
    Hit,
    /// An L1 miss that Redis did not have either.
    Miss,
    /// A Redis value that failed its checks (never served).
    Corrupt,
    /// An entry written to Redis.
    Write,
    /// The remote failed (refused, error reply); the circuit opened.
    Error,
    /// The remote timed out; the circuit opened.
    Timeout,
}

impl RemoteTally {
    /// The record word and the `counters` name suffix (`remote:<name>`).
    pub fn as_str(self) -> &'static str {
        match self {
            RemoteTally::Hit => "hits",
            RemoteTally::Miss => "misses",
            RemoteTally::Corrupt => "corrupt",
            RemoteTally::Write => "writes",
            RemoteTally::Error => "errors",
            RemoteTally::Timeout => "timeouts",
        }
    }
}

impl Tally {
    fn record_line(self) -> String {
        match self {
            Tally::Hit => "hit\n".into(),
            Tally::Miss(r) => format!("miss {}\n", r.as_str()),
            Tally::LockTimeout => "lock_timeout\n".into(),
            Tally::Corruption => "corruption\n".into(),
            Tally::Quarantine => "quarantine\n".into(),
            Tally::Remote(r) => format!("remote {}\n", r.as_str()),
        }
    }
}

/// Counter name in the `counters` table for a record line (`None` for unknown lines).
fn counter_name(line: &str) -> Option<String> {
    match line.split_once(' ') {
        None => match line {
            "hit" if mutant::active(Mutant::HitCounterTypo) => Some("hit".into()),
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
        Some(("remote", what))
            if matches!(
                what,
                "hits" | "misses" | "corrupt" | "writes" | "errors" | "timeouts"
            ) =>
        {
            Some(format!("remote:{what}"))
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
pub fn path(cache_dir: &Anchored) -> Anchored {
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
pub fn record(cache_dir: &Anchored, t: Tally) {
    let _ = try_record(cache_dir, t);
}

fn try_record(cache_dir: &Anchored, t: Tally) -> io::Result<()> {
    try_append(cache_dir, &t.record_line())
}

fn try_append(cache_dir: &Anchored, lines: &str) -> io::Result<()> {
    if !matches!(cache_dir.kind()?, Some(Kind::Dir)) {
        return Ok(()); // never create the cache directory just to count
    }
    let mut f = path(cache_dir).open(Access::Append { create: true })?;
    lock_bounded(&f, false)?;
    f.write_all(lines.as_bytes())
}

/// Lookup tallies buffered in memory and appended in one locked write when flushed or
/// dropped: one append per store instead of one per lookup (`ast index` does thousands; each
/// append is an open, a lock, a write and a close).
#[derive(Debug)]
pub struct Pending {
    cache_dir: Anchored,
    lines: String,
}

impl Pending {
    /// An empty buffer for the cache in `cache_dir`.
    pub fn new(cache_dir: &Anchored) -> Self {
        Pending {
            cache_dir: cache_dir.clone(),
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
pub fn pending(cache_dir: &Anchored) -> BTreeMap<String, i64> {
    path(cache_dir)
        .read(MAX_PENDING_BYTES)
        .map(|s| parse(&String::from_utf8_lossy(&s)))
        .unwrap_or_default()
}

/// Fold the pending records: `commit` receives the totals and must persist them; only when it
/// succeeds is the file emptied. Returns the totals folded.
pub fn fold<E>(
    cache_dir: &Anchored,
    commit: impl FnOnce(&BTreeMap<String, i64>) -> Result<(), E>,
) -> Result<BTreeMap<String, i64>, E>
where
    E: From<io::Error>,
{
    let f = match path(cache_dir).open(Access::ReadWrite { create: false }) {
        Ok(f) => f,
        Err(e) if e.is_not_found() => return Ok(BTreeMap::new()),
        Err(e) => return Err(io::Error::from(e).into()),
    };
    lock_bounded(&f, true)?;
    let mut bytes = Vec::new();
    (&f).take(MAX_PENDING_BYTES).read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
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

    fn dir(d: &tempfile::TempDir) -> Anchored {
        crate::segment_fs::Anchor::open(d.path()).unwrap().root()
    }

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
            Tally::Remote(RemoteTally::Hit),
            Tally::Remote(RemoteTally::Timeout),
        ] {
            record(&dir(&d), t);
        }
        std::fs::OpenOptions::new()
            .append(true)
            .open(d.path().join(COUNTERS_FILE_NAME))
            .unwrap()
            .write_all(b"miss \nbogus\nmiss Key-Miss\nremote hit\nremote \nhi")
            .unwrap();
        let p = pending(&dir(&d));
        let want: BTreeMap<String, i64> = [
            ("hits", 2),
            ("miss:key_miss", 1),
            ("miss:lock_timeout", 1),
            ("lock_timeouts", 1),
            ("corruptions", 1),
            ("quarantines", 1),
            ("remote:hits", 1),
            ("remote:timeouts", 1),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(p, want);
    }

    #[test]
    fn fold_empties_only_after_commit() {
        let d = tempfile::tempdir().unwrap();
        record(&dir(&d), Tally::Hit);
        let r: Result<_, io::Error> = fold(&dir(&d), |_| Err(io::Error::other("db down")));
        assert!(r.is_err());
        assert_eq!(pending(&dir(&d)).get("hits"), Some(&1), "kept on failure");
        let got: BTreeMap<String, i64> = fold(&dir(&d), |_| Ok::<(), io::Error>(())).unwrap();
        assert_eq!(got.get("hits"), Some(&1));
        assert!(pending(&dir(&d)).is_empty());
    }

    #[test]
    fn missing_dir_is_not_created() {
        let d = tempfile::tempdir().unwrap();
        record(&dir(&d).join("nope"), Tally::Hit);
        assert!(!d.path().join("nope").exists());
    }
}
