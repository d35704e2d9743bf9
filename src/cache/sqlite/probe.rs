//! A look at the database file *before* SQLite opens it: existence, type, size and the
//! 100-byte header (magic, page size, page count, `user_version`, `application_id`).
//!
//! This is the cheapest corruption layer (one `stat` and one 100-byte read) and it is what
//! lets a newer-schema database stay byte-for-byte untouched: we decide from the raw header,
//! without ever letting SQLite write `-wal`/`-shm` state for it.
//!
//! **The rule: outside SQLite, nothing in this process closes a descriptor of the live database
//! file.** SQLite's locks on the database are POSIX `fcntl` locks, which belong to the *process*:
//! closing any descriptor of the file drops every lock the process holds on it, including the
//! `SHARED` lock of a connection another thread has open (SQLite's "How To Corrupt" §2.4). A
//! process that then closes its last connection gets `EXCLUSIVE`, believes it is alone,
//! checkpoints without regard for our readers and truncates the WAL under them: `disk I/O
//! error` mid-request, and a risk of corruption for a writer. A CLI process probes before it
//! opens any connection, so a plain open/read/close was harmless there; the daemon serves
//! requests on several threads, and a probe on one of them stripped the others' locks (the gate
//! `p2-daemon-cli` saw it). SQLite's own unix VFS avoids this by keeping such descriptors open
//! until the inode's last lock is released (`unixInodeInfo`'s pending closes).
//!
//! So the header is read through [`HELD`]: for each database path, the one descriptor this
//! process keeps open on the file there, reused by every probe while the same file (device and
//! inode) is in place, and closed only when a probe finds a *different* file at that path. That
//! close is harmless: the old file could only be replaced (clear, quarantine, re-creation) by a
//! holder of the exclusive cache lock, and every connection in this process is opened and held
//! under that database's cache lock (`flock` on `ast_cache.lock`, which conflicts between
//! threads as between processes), so no connection of this process can still be open on the old
//! file. The cost: one descriptor per database the process uses (a daemon or a CLI run uses
//! one), and a cleared database's disk space stays allocated until this process's next probe
//! of that path or its exit.
//!
//! Inventory of the other raw touches of the database's names (none opens the live file or its
//! `-wal`/`-shm`, so none needs the rule): sizes and kinds are `lstat`s (`Anchored::size`,
//! `claim_names`, stats); quarantine, clear and recovery rename, link and unlink through the
//! directory handle, under the exclusive lock; `recover::build_fresh` opens and syncs a new
//! database under a temporary name before it is renamed into place (a different inode, which no
//! connection has open). A source check (`tests/integration/daemon_db_locks.rs`) fails when
//! other library code opens the database or a sidecar by its cache names. Thus daemon threads
//! may open the database concurrently; they need no turns.
//!
//! A size that disagrees with the header's page count is only a *suspicion*: another process
//! may be in the middle of a checkpoint. Recovery re-checks it under the exclusive lock after a
//! full checkpoint before anything is quarantined.

use crate::cache::schema::{APPLICATION_ID, SCHEMA_VERSION};
use crate::mutant::{self, Mutant};
use crate::segment_fs::{Access, Anchored, FsError};
use rustix::fs::FileType;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex, PoisonError};

/// Per database path, the descriptor this process keeps open for header reads and the identity
/// of the file it was opened on (see the module docs for why it is never closed while that file
/// is in place).
static HELD: LazyLock<Mutex<HashMap<PathBuf, (FileId, File)>>> = LazyLock::new(Default::default);

/// SQLite's file magic.
const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Identity of the file on disk, to tell "the file I saw" from "a file someone put there since".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    /// Identity from an `lstat` result.
    pub fn of_stat(s: &rustix::fs::Stat) -> Self {
        FileId {
            dev: s.st_dev,
            ino: s.st_ino,
        }
    }
}

/// Why a database is considered damaged. `as_str` is the telemetry `result.kind` and part of
/// the quarantine folder name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DamageKind {
    /// The path is a directory or something else that is not a regular file.
    NotAFile,
    /// Zero bytes (SQLite would silently treat it as a new, empty database).
    EmptyFile,
    /// Shorter than the 100-byte header.
    ShortHeader,
    /// The header does not start with SQLite's magic or has an impossible page size.
    BadHeader,
    /// A valid SQLite file that is not a trifecta cache (wrong `application_id`).
    ForeignApplication,
    /// File size disagrees with the header's page count (truncated or extended).
    SizeMismatch,
    /// SQLite reported `SQLITE_CORRUPT` or `SQLITE_NOTADB`.
    SqliteCorrupt,
    /// A row's stored checksum does not match its content.
    ChecksumMismatch,
    /// A row's columns have impossible types or sizes.
    RowMalformed,
    /// `PRAGMA quick_check` or `integrity_check` did not say `ok`.
    IntegrityCheckFailed,
}

impl DamageKind {
    /// The wire spelling, e.g. `checksum_mismatch`.
    pub fn as_str(self) -> &'static str {
        match self {
            DamageKind::NotAFile => "not_a_file",
            DamageKind::EmptyFile => "empty_file",
            DamageKind::ShortHeader => "short_header",
            DamageKind::BadHeader => "bad_header",
            DamageKind::ForeignApplication => "foreign_application_id",
            DamageKind::SizeMismatch => "size_mismatch",
            DamageKind::SqliteCorrupt => "sqlite_corrupt",
            DamageKind::ChecksumMismatch => "checksum_mismatch",
            DamageKind::RowMalformed => "row_malformed",
            DamageKind::IntegrityCheckFailed => "integrity_check_failed",
        }
    }

    /// True when the sign can be a transient view of a healthy file (see module docs).
    pub fn is_suspicion(self) -> bool {
        matches!(self, DamageKind::SizeMismatch)
    }
}

/// Facts read from a healthy-looking header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// File identity.
    pub id: FileId,
    /// Size of the main file.
    pub db_bytes: u64,
    /// `user_version` (schema version).
    pub user_version: i64,
}

/// What the probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// No file at the path.
    Missing,
    /// Ours, at our schema version or older (older means: migrate).
    Usable(Header),
    /// Ours, written by a newer trifecta: never touch it.
    Newer {
        /// The `user_version` found.
        found: i64,
    },
    /// Damaged (or, for [`DamageKind::is_suspicion`] kinds, possibly mid-checkpoint).
    Damaged(DamageKind, Option<FileId>),
}

fn be_u32(h: &[u8; 100], at: usize) -> u32 {
    u32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]])
}

/// Classify a 100-byte header plus the file size. Pure, for unit tests.
pub fn classify_header(h: &[u8; 100], len: u64, id: FileId) -> Probe {
    if &h[..16] != MAGIC {
        return Probe::Damaged(DamageKind::BadHeader, Some(id));
    }
    let page_size = match u16::from_be_bytes([h[16], h[17]]) {
        1 => 65536u64,
        n if n >= 512 && n.is_power_of_two() => u64::from(n),
        _ => return Probe::Damaged(DamageKind::BadHeader, Some(id)),
    };
    let app = be_u32(h, 68) as i32;
    let user_version = i64::from(be_u32(h, 60) as i32);
    if app != APPLICATION_ID {
        return Probe::Damaged(DamageKind::ForeignApplication, Some(id));
    }
    if user_version > SCHEMA_VERSION {
        return Probe::Newer {
            found: user_version,
        };
    }
    // The in-header page count is authoritative only when the change counter (24) equals the
    // version-valid-for number (92); SQLite itself applies the same rule.
    let pages = u64::from(be_u32(h, 28));
    let valid = be_u32(h, 24) == be_u32(h, 92) && pages > 0;
    if !len.is_multiple_of(page_size) || (valid && pages * page_size != len) {
        return Probe::Damaged(DamageKind::SizeMismatch, Some(id));
    }
    Probe::Usable(Header {
        id,
        db_bytes: len,
        user_version,
    })
}

/// Probe the database file at `db`.
pub fn probe(db: &Anchored) -> io::Result<Probe> {
    let Some(st) = db.stat()? else {
        return Ok(Probe::Missing);
    };
    let id = FileId::of_stat(&st);
    let len = u64::try_from(st.st_size).unwrap_or(0);
    // A second name for the database's inode (a planted hard link) would let SQLite's writes
    // change a file outside the segment: not a file we use.
    let is_file = FileType::from_raw_mode(st.st_mode) == FileType::RegularFile && st.st_nlink == 1;
    if !is_file {
        return Ok(Probe::Damaged(DamageKind::NotAFile, Some(id)));
    }
    if len == 0 {
        return Ok(Probe::Damaged(DamageKind::EmptyFile, Some(id)));
    }
    if len < 100 {
        return Ok(Probe::Damaged(DamageKind::ShortHeader, Some(id)));
    }
    match read_header(db, id) {
        Ok(h) => Ok(classify_header(&h, len, id)),
        // Swapped for something else since the stat: not a database we can use.
        Err(FsError::Foreign { .. }) => Ok(Probe::Damaged(DamageKind::NotAFile, Some(id))),
        Err(e) => Err(e.into()),
    }
}

/// The first 100 bytes of the database file `id` at `db`, read through [`HELD`]: the kept
/// descriptor when it is still on that file, else a new one, which is kept in its place (the
/// lock on the map is held throughout, so two threads never both open one).
fn read_header(db: &Anchored, id: FileId) -> Result<[u8; 100], FsError> {
    let mut h = [0u8; 100];
    if mutant::active(Mutant::ProbeClosesDb) {
        // The hazard itself: a descriptor of our own, closed when this function returns.
        db.open(Access::Read)?.read_exact(&mut h)?;
        return Ok(h);
    }
    let mut held = HELD.lock().unwrap_or_else(PoisonError::into_inner);
    let path = db.abs();
    if let Some((held_id, f)) = held.get(&path)
        && *held_id == id
    {
        f.read_exact_at(&mut h, 0)?;
        return Ok(h);
    }
    let f = db.open(Access::Read)?;
    let opened = FileId::of_stat(&rustix::fs::fstat(&f).map_err(io::Error::from)?);
    let read = f.read_exact_at(&mut h, 0);
    // Kept even when the read failed (a file truncated meanwhile): closing it is the hazard.
    // The descriptor it replaces is of a file no longer in place (see the module docs).
    held.insert(path, (opened, f));
    read?;
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(p: &std::path::Path) -> Anchored {
        Anchored::user_path(p).unwrap()
    }
    use crate::cache::schema::create_db;

    fn fresh() -> (tempfile::TempDir, std::path::PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.db");
        create_db(&p, 0).unwrap();
        (d, p)
    }

    #[test]
    fn fresh_db_is_usable_and_missing_is_missing() {
        let (d, p) = fresh();
        assert!(
            matches!(probe(&at(&p)).unwrap(), Probe::Usable(h) if h.user_version == SCHEMA_VERSION)
        );
        assert_eq!(probe(&at(&d.path().join("nope"))).unwrap(), Probe::Missing);
    }

    #[test]
    fn header_damage_is_classified() {
        let (_d, p) = fresh();
        let good = std::fs::read(&p).unwrap();
        let id = FileId { dev: 0, ino: 0 };
        let mut h = [0u8; 100];
        h.copy_from_slice(&good[..100]);
        let len = good.len() as u64;
        assert!(matches!(classify_header(&h, len, id), Probe::Usable(_)));
        assert!(matches!(
            classify_header(&h, len + 7, id),
            Probe::Damaged(DamageKind::SizeMismatch, _)
        ));
        assert!(matches!(
            classify_header(&h, len - 4096, id),
            Probe::Damaged(DamageKind::SizeMismatch, _)
        ));
        let mut bad = h;
        bad[0] = b'X';
        assert!(matches!(
            classify_header(&bad, len, id),
            Probe::Damaged(DamageKind::BadHeader, _)
        ));
        let mut foreign = h;
        foreign[68..72].copy_from_slice(&0i32.to_be_bytes());
        assert!(matches!(
            classify_header(&foreign, len, id),
            Probe::Damaged(DamageKind::ForeignApplication, _)
        ));
        let mut newer = h;
        newer[60..64].copy_from_slice(&((SCHEMA_VERSION + 1) as i32).to_be_bytes());
        assert_eq!(
            classify_header(&newer, len, id),
            Probe::Newer {
                found: SCHEMA_VERSION + 1
            }
        );
    }

    /// Whether *another process* can take a write lock on the whole file at `p` right now
    /// (`fcntl` `F_SETLK`, as SQLite's unix VFS does): it cannot while any connection of this
    /// process holds SQLite's `SHARED` lock, which a WAL connection keeps until it closes.
    fn other_process_can_lock(p: &std::path::Path) -> bool {
        const LOCKER: &str = "import fcntl, os, sys\n\
            fd = os.open(sys.argv[1], os.O_RDWR)\n\
            try:\n    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n    print('locked')\n\
            except OSError:\n    print('refused')\n";
        let out = std::process::Command::new("python3")
            .args(["-c", LOCKER])
            .arg(p)
            .output()
            .expect("python3 runs the lock attempt");
        match String::from_utf8_lossy(&out.stdout).trim() {
            "locked" => true,
            "refused" => false,
            other => panic!(
                "lock attempt: {other:?} {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    /// A connection in the middle of a read, as a daemon thread's would be.
    fn reading_connection(p: &std::path::Path) -> rusqlite::Connection {
        let c = rusqlite::Connection::open(p).unwrap();
        c.execute_batch("BEGIN").unwrap();
        let _: i64 = c
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
        c
    }

    /// Why the module's rule exists: a plain open/read/close of the database on another thread
    /// drops the `SHARED` lock of a connection that is mid-read, and another process can then
    /// lock the whole file (the `EXCLUSIVE` a closing connection takes before it checkpoints and
    /// truncates the WAL). The probe, run the same way, leaves the lock in place.
    #[test]
    fn a_raw_close_drops_another_threads_sqlite_lock_and_the_probe_does_not() {
        let (_d, p) = fresh();
        assert!(
            other_process_can_lock(&p),
            "control: nobody holds a lock yet"
        );

        let reader = reading_connection(&p);
        assert!(
            !other_process_can_lock(&p),
            "a reading connection is locked"
        );
        let raw = p.clone();
        std::thread::spawn(move || {
            let mut h = [0u8; 100];
            std::fs::File::open(&raw)
                .unwrap()
                .read_exact(&mut h)
                .unwrap();
        })
        .join()
        .unwrap();
        assert!(
            other_process_can_lock(&p),
            "the hazard: one close on another thread released the reader's lock"
        );
        drop(reader);

        let reader = reading_connection(&p);
        assert!(!other_process_can_lock(&p));
        for _ in 0..3 {
            let at_p = at(&p);
            let probed = std::thread::spawn(move || probe(&at_p).unwrap());
            assert!(matches!(probed.join().unwrap(), Probe::Usable(_)));
            assert!(
                !other_process_can_lock(&p),
                "the probe must not release the reader's lock"
            );
        }
        let _: i64 = reader
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .unwrap();
    }

    /// The kept descriptor follows the file: a database replaced at the same path is probed
    /// from its own bytes, not the old file's.
    #[test]
    fn a_replaced_database_is_probed_afresh() {
        let (d, p) = fresh();
        assert!(matches!(probe(&at(&p)).unwrap(), Probe::Usable(_)));
        let newer = d.path().join("newer.db");
        create_db(&newer, 0).unwrap();
        let c = rusqlite::Connection::open(&newer).unwrap();
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        drop(c);
        std::fs::rename(&newer, &p).unwrap();
        assert_eq!(
            probe(&at(&p)).unwrap(),
            Probe::Newer {
                found: SCHEMA_VERSION + 1
            }
        );
    }

    #[test]
    fn empty_short_and_directory() {
        let d = tempfile::tempdir().unwrap();
        let e = d.path().join("e.db");
        std::fs::write(&e, b"").unwrap();
        assert!(matches!(
            probe(&at(&e)).unwrap(),
            Probe::Damaged(DamageKind::EmptyFile, _)
        ));
        std::fs::write(&e, b"SQLite format 3\0").unwrap();
        assert!(matches!(
            probe(&at(&e)).unwrap(),
            Probe::Damaged(DamageKind::ShortHeader, _)
        ));
        let dir = d.path().join("d.db");
        std::fs::create_dir(&dir).unwrap();
        assert!(matches!(
            probe(&at(&dir)).unwrap(),
            Probe::Damaged(DamageKind::NotAFile, _)
        ));
    }
}
