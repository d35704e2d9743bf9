//! Seeded corruption injection (test fault injection, so it lives with the gate steps, not in
//! the production `cache` module): the catalog of ways a cache database can be damaged, shared by
//! the integration tests and the gate runner's `corrupt` step. The same mode and seed always
//! damage the same bytes of the same file, so a failing gate can be replayed exactly.
//!
//! Inject only while no process has the database open. Before damaging bytes, the database is
//! checkpointed (`wal_checkpoint(TRUNCATE)`) so the main file holds every committed page;
//! otherwise a byte-level fault could land on a stale page that SQLite never reads.

use serde::Serialize;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// One way to damage the cache. `as_str` names are the stable catalog names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CorruptionMode {
    /// Random bytes appended after the last page.
    AppendGarbage,
    /// The file cut short at a seeded offset.
    Truncate,
    /// The 100-byte SQLite header zeroed.
    ZeroHeader,
    /// The 100-byte SQLite header replaced by random bytes.
    RandomHeader,
    /// Random bytes written inside a seeded data page (page 2 or later).
    RandomPageBytes,
    /// One bit flipped inside one stored entry's payload (structure stays valid).
    FlipPayloadBit,
    /// A `-wal` file full of random bytes.
    GarbageWal,
    /// The `-shm` file removed.
    DeleteShm,
    /// A `-shm` file full of random bytes.
    GarbageShm,
    /// The database truncated to zero bytes.
    ZeroLength,
    /// A directory where the database file should be.
    Directory,
    /// `user_version` set beyond what this build supports (a "newer trifecta" DB).
    NewerUserVersion,
}

impl CorruptionMode {
    /// Every mode, in catalog order.
    pub const ALL: [CorruptionMode; 12] = [
        CorruptionMode::AppendGarbage,
        CorruptionMode::Truncate,
        CorruptionMode::ZeroHeader,
        CorruptionMode::RandomHeader,
        CorruptionMode::RandomPageBytes,
        CorruptionMode::FlipPayloadBit,
        CorruptionMode::GarbageWal,
        CorruptionMode::DeleteShm,
        CorruptionMode::GarbageShm,
        CorruptionMode::ZeroLength,
        CorruptionMode::Directory,
        CorruptionMode::NewerUserVersion,
    ];

    /// The catalog name, e.g. `flip_payload_bit`.
    pub fn as_str(self) -> &'static str {
        match self {
            CorruptionMode::AppendGarbage => "append_garbage",
            CorruptionMode::Truncate => "truncate",
            CorruptionMode::ZeroHeader => "zero_header",
            CorruptionMode::RandomHeader => "random_header",
            CorruptionMode::RandomPageBytes => "random_page_bytes",
            CorruptionMode::FlipPayloadBit => "flip_payload_bit",
            CorruptionMode::GarbageWal => "garbage_wal",
            CorruptionMode::DeleteShm => "delete_shm",
            CorruptionMode::GarbageShm => "garbage_shm",
            CorruptionMode::ZeroLength => "zero_length",
            CorruptionMode::Directory => "directory",
            CorruptionMode::NewerUserVersion => "newer_user_version",
        }
    }

    /// Look a mode up by catalog name.
    pub fn parse(name: &str) -> Option<CorruptionMode> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

/// What was done, for the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Injection {
    /// Catalog name.
    pub mode: &'static str,
    /// The seed used.
    pub seed: u64,
    /// Human description with offsets and lengths.
    pub detail: String,
}

fn sidecar(db: &Path, suffix: &str) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn random_bytes(rng: &mut fastrand::Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.u8(..)).collect()
}

fn write_at(path: &Path, offset: u64, bytes: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    f.write_all(bytes)
}

/// Fold the WAL into the main file so byte-level damage hits live pages. Best effort: a file
/// that SQLite cannot open is already as "damaged" as it gets.
fn checkpoint(db: &Path) {
    if let Ok(conn) = rusqlite::Connection::open(db) {
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }
}

/// Page size from the header (offset 16, big-endian; 1 means 65536), default 4096.
fn page_size(data: &[u8]) -> u64 {
    match data.get(16..18) {
        Some([a, b]) => match u16::from_be_bytes([*a, *b]) {
            1 => 65536,
            n if n >= 512 && n.is_power_of_two() => u64::from(n),
            _ => 4096,
        },
        _ => 4096,
    }
}

/// Damage the database at `db` (and its sidecars) per `mode`, deterministically for `seed`.
pub fn inject(mode: CorruptionMode, db: &Path, seed: u64) -> io::Result<Injection> {
    let mut rng = fastrand::Rng::with_seed(seed);
    if !matches!(
        mode,
        CorruptionMode::Directory | CorruptionMode::NewerUserVersion
    ) {
        checkpoint(db);
    }
    let len = fs::metadata(db)?.len();
    let rng = &mut rng;
    let detail = match mode {
        CorruptionMode::AppendGarbage => {
            let n = rng.usize(1..4096);
            let mut f = OpenOptions::new().append(true).open(db)?;
            f.write_all(&random_bytes(rng, n))?;
            format!("appended {n} random bytes after byte {len}")
        }
        CorruptionMode::Truncate => {
            let at = rng.u64(1..len.max(2));
            OpenOptions::new().write(true).open(db)?.set_len(at)?;
            format!("truncated from {len} to {at} bytes")
        }
        CorruptionMode::ZeroHeader => {
            write_at(db, 0, &[0u8; 100])?;
            "zeroed bytes 0..100 (the SQLite header)".to_string()
        }
        CorruptionMode::RandomHeader => {
            write_at(db, 0, &random_bytes(rng, 100))?;
            "overwrote bytes 0..100 (the SQLite header) with random bytes".to_string()
        }
        CorruptionMode::RandomPageBytes => random_page_bytes(db, len, rng)?,
        CorruptionMode::FlipPayloadBit => flip_payload_bit(db, rng)?,
        CorruptionMode::GarbageWal => {
            let n = rng.usize(4096..16384);
            fs::write(sidecar(db, "-wal"), random_bytes(rng, n))?;
            format!("wrote {n} random bytes as the -wal file")
        }
        CorruptionMode::DeleteShm => delete_shm(db)?,
        CorruptionMode::GarbageShm => {
            fs::write(sidecar(db, "-shm"), random_bytes(rng, 32768))?;
            "wrote 32768 random bytes as the -shm file".to_string()
        }
        CorruptionMode::ZeroLength => {
            OpenOptions::new().write(true).open(db)?.set_len(0)?;
            format!("truncated from {len} to 0 bytes")
        }
        CorruptionMode::Directory => replace_with_directory(db)?,
        CorruptionMode::NewerUserVersion => bump_user_version(db, rng)?,
    };
    Ok(Injection {
        mode: mode.as_str(),
        seed,
        detail,
    })
}

/// Overwrite a few random bytes inside one random page past page 1 (which holds the header
/// and schema), so the damage lands in table or index data rather than in the header.
fn random_page_bytes(db: &Path, len: u64, rng: &mut fastrand::Rng) -> io::Result<String> {
    let mut head = [0u8; 100];
    fs::File::open(db)?.read_exact(&mut head)?;
    let ps = page_size(&head);
    let pages = (len / ps).max(2);
    let page = rng.u64(2..=pages); // 1-based; page 1 holds the header and schema
    let n = rng.usize(16..64);
    let within = rng.u64(0..ps.saturating_sub(n as u64).max(1));
    let offset = ((page - 1) * ps + within).min(len.saturating_sub(n as u64));
    write_at(db, offset, &random_bytes(rng, n))?;
    Ok(format!(
        "wrote {n} random bytes at offset {offset} (page {page} of {pages}, page size {ps})"
    ))
}

/// Flip one bit inside a stored payload, leaving the page structurally valid: only a check of
/// the payload itself (not SQLite's integrity check) can notice.
fn flip_payload_bit(db: &Path, rng: &mut fastrand::Rng) -> io::Result<String> {
    let data = fs::read(db)?;
    let hits = payload_sites(&data);
    if hits.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "no stored payload found to flip a bit in",
        ));
    }
    let at = hits[rng.usize(..hits.len())];
    let bit = 1u8; // the low bit keeps an ASCII letter a letter-like byte: valid JSON, wrong name
    write_at(db, at as u64, &[data[at] ^ bit])?;
    Ok(format!(
        "flipped bit 0 of byte {at} (inside a stored symbol name; {} payload sites)",
        hits.len()
    ))
}

/// Offsets in `data` where a bit flip changes a stored payload but keeps it valid JSON.
fn payload_sites(data: &[u8]) -> Vec<usize> {
    // Prefer a symbol name; a table with no symbols (`{"symbols":[],…}`) has none, so
    // fall back to the first letter of its `symbols` key (still valid JSON, wrong key).
    let find = |needle: &[u8]| -> Vec<usize> {
        data.windows(needle.len())
            .enumerate()
            .filter(|(_, w)| *w == needle)
            .map(|(i, _)| i + needle.len())
            .collect()
    };
    let hits = find(br#""name":""#);
    if !hits.is_empty() {
        return hits;
    }
    find(br#"{""#)
        .into_iter()
        .filter(|&i| data[i..].starts_with(b"symbols\":"))
        .collect()
}

/// Remove the `-shm` sidecar; its absence is reported, not treated as an error.
fn delete_shm(db: &Path) -> io::Result<String> {
    match fs::remove_file(sidecar(db, "-shm")) {
        Ok(()) => Ok("removed the -shm file".to_string()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            Ok("no -shm file was present (nothing removed)".into())
        }
        Err(e) => Err(e),
    }
}

/// Replace the database file (and drop its sidecars) with a directory of the same name.
fn replace_with_directory(db: &Path) -> io::Result<String> {
    fs::remove_file(db)?;
    for s in ["-wal", "-shm"] {
        let _ = fs::remove_file(sidecar(db, s));
    }
    fs::create_dir(db)?;
    Ok("replaced the database file with a directory".to_string())
}

/// Set `user_version` above the current one, as a newer release of trifecta would.
fn bump_user_version(db: &Path, rng: &mut fastrand::Rng) -> io::Result<String> {
    let conn = rusqlite::Connection::open(db).map_err(io::Error::other)?;
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(io::Error::other)?;
    let newer = v + 1 + rng.i64(0..5);
    conn.execute_batch(&format!("PRAGMA user_version = {newer}"))
        .map_err(io::Error::other)?;
    Ok(format!("set user_version from {v} to {newer}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_db(dir: &Path) -> PathBuf {
        let db = dir.join("t.db");
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE e(k TEXT PRIMARY KEY, v BLOB);
             INSERT INTO e VALUES ('a', '{\"name\":\"alpha\"}'), ('b', '{\"name\":\"beta\"}');",
        )
        .unwrap();
        db
    }

    #[test]
    fn flip_payload_bit_works_on_tables_without_symbols() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("t.db");
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch(
            "CREATE TABLE e(k TEXT PRIMARY KEY, v BLOB);
             INSERT INTO e VALUES ('a', CAST('{\"symbols\":[],\"syntax_errors\":[]}' AS BLOB));",
        )
        .unwrap();
        drop(c);
        inject(CorruptionMode::FlipPayloadBit, &db, 1).unwrap();
        let c = rusqlite::Connection::open(&db).unwrap();
        let v: Vec<u8> = c.query_row("SELECT v FROM e", [], |r| r.get(0)).unwrap();
        assert_eq!(v, br#"{"rymbols":[],"syntax_errors":[]}"#);
        // Neither needle present: an honest error, not a silent no-op.
        let e = d.path().join("empty.db");
        rusqlite::Connection::open(&e)
            .unwrap()
            .execute_batch("CREATE TABLE e(v BLOB); INSERT INTO e VALUES (x'00');")
            .unwrap();
        assert!(inject(CorruptionMode::FlipPayloadBit, &e, 1).is_err());
    }

    #[test]
    fn names_round_trip() {
        for m in CorruptionMode::ALL {
            assert_eq!(CorruptionMode::parse(m.as_str()), Some(m));
        }
        assert_eq!(CorruptionMode::parse("nope"), None);
    }

    #[test]
    fn same_seed_same_damage_and_every_mode_changes_something() {
        for mode in CorruptionMode::ALL {
            let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let (da, db) = (sample_db(a.path()), sample_db(b.path()));
            let before = fs::read(&da).unwrap();
            let ia = inject(mode, &da, 7).unwrap();
            let ib = inject(mode, &db, 7).unwrap();
            assert_eq!(ia, ib, "{mode:?} is deterministic");
            let changed = match mode {
                CorruptionMode::Directory => da.is_dir(),
                CorruptionMode::GarbageWal
                | CorruptionMode::GarbageShm
                | CorruptionMode::DeleteShm => true,
                _ => fs::read(&da).unwrap() != before,
            };
            assert!(changed, "{mode:?} left the file unchanged: {}", ia.detail);
        }
    }
}
