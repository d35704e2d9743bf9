//! A look at the database file *before* SQLite opens it: existence, type, size and the
//! 100-byte header (magic, page size, page count, `user_version`, `application_id`).
//!
//! This is the cheapest corruption layer (one `stat` and one 100-byte read) and it is what
//! lets a newer-schema database stay byte-for-byte untouched: we decide from the raw header,
//! without ever letting SQLite write `-wal`/`-shm` state for it. It runs under the shared
//! lock and before this process opens any connection to the file, so reading the file
//! directly cannot drop SQLite's POSIX locks (they are per process and we hold none yet).
//!
//! A size that disagrees with the header's page count is only a *suspicion*: another process
//! may be in the middle of a checkpoint. Recovery re-checks it under the exclusive lock after a
//! full checkpoint before anything is quarantined.

use crate::cache::schema::{APPLICATION_ID, SCHEMA_VERSION};
use crate::segment_fs::{Access, Anchored, FsError};
use rustix::fs::FileType;
use std::io::{self, Read};

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
    let mut h = [0u8; 100];
    match db.open(Access::Read) {
        Ok(mut f) => f.read_exact(&mut h)?,
        // Swapped for something else since the stat: not a database we can use.
        Err(FsError::Foreign { .. }) => return Ok(Probe::Damaged(DamageKind::NotAFile, Some(id))),
        Err(e) => return Err(e.into()),
    }
    Ok(classify_header(&h, len, id))
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
