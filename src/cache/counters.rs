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
//!
//! The daemon's memory tier answers most of its requests without opening the database, in
//! about a tenth of a millisecond: one append per such hit would cost more than the hit. Its
//! tallies go to a [`TallyBuffer`] instead, which the daemon appends on every tick of its accept
//! loop (50 ms), before it answers `cache.stats`, and when it exits. A direct `ast cache stats`
//! can therefore miss at most one tick of a running daemon's memory-tier counts.
//!
//! What a lookup is for decides how it counts ([`LookupPurpose`]): the daemon's background
//! re-extraction of an edited module is a *refresh* (`refresh:extracted`, or
//! `refresh:already_cached` when the content was already cached), never a hit or a miss, so
//! it does not move the hit rate of the lookups users made.

use super::MissReason;
use crate::config::LookupPurpose;
use crate::mutant::{self, Mutant};
use crate::segment_fs::{Access, Anchored, Kind};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::{File, TryLockError};
use std::io::{self, Read, Write};
use std::sync::Mutex;
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
    /// A daemon request answered by its memory tier (a hit, at level `memory`).
    MemoryHit,
    /// A daemon request its memory tier could not answer (it went on to the local store,
    /// which counts it as a hit or a miss).
    MemoryMiss,
    /// A background re-extraction by the daemon's watcher: `true` when it extracted the
    /// module, `false` when the content was already cached.
    Refresh {
        /// Whether the module was extracted (else it was already cached).
        extracted: bool,
    },
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
    fn record_line(self) -> Cow<'static, str> {
        match self {
            Tally::Hit => "hit\n".into(),
            Tally::Miss(r) => format!("miss {}\n", r.as_str()).into(),
            Tally::LockTimeout => "lock_timeout\n".into(),
            Tally::Corruption => "corruption\n".into(),
            Tally::Quarantine => "quarantine\n".into(),
            Tally::Remote(r) => format!("remote {}\n", r.as_str()).into(),
            Tally::MemoryHit => "memory hit\n".into(),
            Tally::MemoryMiss => "memory miss\n".into(),
            Tally::Refresh { extracted: true } => "refresh extracted\n".into(),
            Tally::Refresh { extracted: false } => "refresh cached\n".into(),
        }
    }

    /// How this tally counts for a lookup made for `purpose`: unchanged for a request; for a
    /// background refresh a hit (at any level) is a refresh of cached content, a miss a refresh
    /// that extracted, and a memory-tier miss nothing (the local lookup after it counts).
    pub fn for_purpose(self, purpose: LookupPurpose) -> Option<Tally> {
        match (purpose, self) {
            (LookupPurpose::Request, t) => Some(t),
            (LookupPurpose::Refresh, Tally::Hit | Tally::MemoryHit) => {
                Some(Tally::Refresh { extracted: false })
            }
            (LookupPurpose::Refresh, Tally::Miss(_)) => Some(Tally::Refresh { extracted: true }),
            (LookupPurpose::Refresh, Tally::MemoryMiss) => None,
            (LookupPurpose::Refresh, t) => Some(t),
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
        Some(("memory", "hit")) => Some("memory:hits".into()),
        Some(("memory", "miss")) => Some("memory:misses".into()),
        Some(("refresh", "extracted")) => Some("refresh:extracted".into()),
        Some(("refresh", "cached")) => Some("refresh:already_cached".into()),
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
    purpose: LookupPurpose,
}

impl Pending {
    /// An empty buffer for the cache in `cache_dir`, counting user lookups.
    pub fn new(cache_dir: &Anchored) -> Self {
        Self::for_purpose(cache_dir, LookupPurpose::Request)
    }

    /// An empty buffer whose lookups count as made for `purpose` ([`Tally::for_purpose`]).
    pub fn for_purpose(cache_dir: &Anchored, purpose: LookupPurpose) -> Self {
        Pending {
            cache_dir: cache_dir.clone(),
            lines: String::new(),
            purpose,
        }
    }

    /// Buffer one record.
    pub fn add(&mut self, t: Tally) {
        if let Some(t) = t.for_purpose(self.purpose) {
            self.lines.push_str(&t.record_line());
        }
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

/// Tallies from many threads (the daemon's connections), kept in memory until [`flush`]ed:
/// adding one is a string append under a mutex, no system call (see the module docs for when
/// the daemon flushes, and how stale a direct `ast cache stats` can be).
///
/// [`flush`]: TallyBuffer::flush
#[derive(Debug, Default)]
pub struct TallyBuffer {
    lines: Mutex<String>,
}

impl TallyBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Buffer `t` as counted for `purpose` ([`Tally::for_purpose`]).
    pub fn add(&self, t: Tally, purpose: LookupPurpose) {
        if let Some(t) = t.for_purpose(purpose)
            && let Ok(mut lines) = self.lines.lock()
        {
            lines.push_str(&t.record_line());
        }
    }

    /// Append everything buffered to the counters file in `cache_dir` in one locked write
    /// (never fails the caller, as [`record`]). The buffer is taken first, so adders never wait
    /// for the file.
    pub fn flush(&self, cache_dir: &Anchored) {
        let lines = match self.lines.lock() {
            Ok(mut l) if !l.is_empty() => std::mem::take(&mut *l),
            _ => return,
        };
        let _ = try_append(cache_dir, &lines);
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
    fn daemon_tallies_count_by_level_and_refreshes_are_neither_hits_nor_misses() {
        let d = tempfile::tempdir().unwrap();
        let buf = TallyBuffer::new();
        for _ in 0..3 {
            buf.add(Tally::MemoryHit, LookupPurpose::Request);
        }
        buf.add(Tally::MemoryMiss, LookupPurpose::Request);
        // The watcher's lookups: a memory-tier miss is not counted, the rest are refreshes.
        buf.add(Tally::MemoryMiss, LookupPurpose::Refresh);
        buf.add(Tally::MemoryHit, LookupPurpose::Refresh);
        assert!(
            pending(&dir(&d)).is_empty(),
            "nothing written before the flush"
        );
        buf.flush(&dir(&d));
        let mut refresh = Pending::for_purpose(&dir(&d), LookupPurpose::Refresh);
        refresh.add(Tally::Miss(MissReason::ContentChanged));
        refresh.add(Tally::Hit);
        refresh.add(Tally::LockTimeout); // an incident is one whoever met it
        drop(refresh);
        let want: BTreeMap<String, i64> = [
            ("memory:hits", 3),
            ("memory:misses", 1),
            ("refresh:already_cached", 2),
            ("refresh:extracted", 1),
            ("lock_timeouts", 1),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(pending(&dir(&d)), want);
        buf.flush(&dir(&d)); // an empty buffer appends nothing
        assert_eq!(pending(&dir(&d)), want);
    }

    #[test]
    fn missing_dir_is_not_created() {
        let d = tempfile::tempdir().unwrap();
        record(&dir(&d).join("nope"), Tally::Hit);
        assert!(!d.path().join("nope").exists());
    }
}
