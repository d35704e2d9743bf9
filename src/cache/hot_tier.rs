//! The daemon's small in-memory tier in front of the SQLite cache.
//!
//! A long-lived process can answer a repeated request without opening the database at all, but
//! only under three conditions, checked on every lookup:
//! - the entry's content key equals the key of the file's bytes *as read for this request*
//!   (the key is a content hash, so a rewritten module can never be served old symbols);
//! - the database file is still the one the entry was read from or written to (same device and
//!   inode): when another process quarantined, cleared or replaced it, the whole tier is
//!   dropped and the next lookup goes to the new database;
//! - the entry is younger than [`HOT_TTL`], so a module used only through the daemon still
//!   refreshes its row's access time in SQLite (the TTL pruning reads that) now and then.
//!
//! It is bounded ([`HOT_CAPACITY`] entries; when full, the oldest entry is dropped).
//!
//! The database behind it is opened by the daemon's threads concurrently (each miss opens the
//! cache, under the shared cache lock, and releases it). That is safe only because of one rule,
//! kept in `cache/sqlite/probe.rs`: nothing in the process but SQLite closes a descriptor of the
//! live database file. SQLite's locks are POSIX `fcntl` locks, owned by the process, and one
//! stray close strips every thread's connection of them (the "How To Corrupt" §2.4 failure; a
//! gate run saw `disk I/O error`). The daemon used to make its threads take turns at the
//! database instead; the rule makes turns unnecessary, and covers any threaded caller.

use super::CacheKey;
use crate::mutant::{self, Mutant};
use crate::symbols::SymbolTable;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most entries kept.
pub const HOT_CAPACITY: usize = 1024;
/// How long an entry may answer before the lookup goes through SQLite again.
pub const HOT_TTL: Duration = Duration::from_secs(60);

/// Identity of the database file an entry came from: `(device, inode)`, `None` when absent.
pub type DbIdentity = Option<(u64, u64)>;

struct Entry {
    key: CacheKey,
    table: SymbolTable,
    since: Instant,
}

struct Inner {
    db: DbIdentity,
    entries: HashMap<String, Entry>,
}

/// The tier. Shared by the daemon's connection threads.
pub struct HotTier {
    inner: Mutex<Inner>,
}

impl Default for HotTier {
    fn default() -> Self {
        HotTier {
            inner: Mutex::new(Inner {
                db: None,
                entries: HashMap::new(),
            }),
        }
    }
}

impl HotTier {
    /// An empty tier.
    pub fn new() -> Self {
        Self::default()
    }

    /// The symbols held for `file_rel` when they were extracted from content with key `key` and
    /// the database is still `db`; otherwise `None` (and a changed `db` empties the tier).
    pub fn get(&self, file_rel: &str, key: &CacheKey, db: DbIdentity) -> Option<SymbolTable> {
        let mut inner = self.inner.lock().ok()?;
        if inner.db != db || db.is_none() {
            inner.entries.clear();
            inner.db = db;
            return None;
        }
        let e = inner.entries.get(file_rel)?;
        let same_content = e.key == *key || mutant::active(Mutant::HotTierNoKeyCheck);
        (same_content && e.since.elapsed() < HOT_TTL).then(|| e.table.clone())
    }

    /// Remember `table` for `file_rel` (content key `key`), read from or written to the
    /// database `db`.
    pub fn put(&self, file_rel: &str, key: &CacheKey, table: &SymbolTable, db: DbIdentity) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        if db.is_none() {
            return;
        }
        if inner.db != db {
            inner.entries.clear();
            inner.db = db;
        }
        if inner.entries.len() >= HOT_CAPACITY && !inner.entries.contains_key(file_rel) {
            let oldest = inner
                .entries
                .iter()
                .min_by_key(|(_, e)| e.since)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                inner.entries.remove(&k);
            }
        }
        inner.entries.insert(
            file_rel.to_string(),
            Entry {
                key: *key,
                table: table.clone(),
                since: Instant::now(),
            },
        );
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |i| i.entries.len())
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(bytes: &[u8]) -> CacheKey {
        CacheKey::of(bytes)
    }

    #[test]
    fn serves_only_the_same_content_from_the_same_database() {
        let hot = HotTier::new();
        let (k1, k2) = (key(b"def a(): pass\n"), key(b"def b(): pass\n"));
        let t = SymbolTable::default();
        let db = Some((1, 2));
        hot.put("m.py", &k1, &t, db);
        assert_eq!(hot.get("m.py", &k1, db), Some(t.clone()));
        assert_eq!(hot.get("m.py", &k2, db), None, "changed content misses");
        assert_eq!(hot.get("other.py", &k1, db), None);
        assert_eq!(hot.get("m.py", &k1, Some((1, 3))), None, "new database");
        assert!(hot.is_empty(), "a replaced database empties the tier");
        hot.put("m.py", &k1, &t, None);
        assert!(hot.is_empty(), "nothing is kept without a database");
    }
}
