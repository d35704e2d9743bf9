//! The one factory that builds the cache a command uses.
//!
//! It never fails: when the SQLite store cannot be used (lock timeout, corruption, newer
//! schema, I/O) it returns the in-memory store and says why in [`OpenedCache::fallback`].

use super::counters::{self, Tally};
use super::memory::MemoryStore;
use super::{Backend, CacheError, CacheKey, Lookup, MissReason, Store, Written};
use crate::config::CacheSettings;
use crate::segment_fs::Anchored;
use crate::symbols::SymbolTable;
use crate::symbols::resolve::Segment;
use crate::telemetry::Telemetry;
use std::path::{Path, PathBuf};

/// File name of the cache database inside `<segment>/.trifecta/cache/`. Fixed and short: the
/// directory already identifies the segment, and a fixed name keeps the cache valid when the
/// checkout moves.
pub const DB_FILE_NAME: &str = "ast_cache.db";

/// The cache directory, relative to the segment root.
pub const CACHE_DIR_REL: &str = ".trifecta/cache";

/// `<segment>/.trifecta/cache/ast_cache.db` (for display; files are opened through
/// [`crate::segment_fs`]).
pub fn cache_db_path(segment_root: &Path) -> PathBuf {
    segment_root.join(CACHE_DIR_REL).join(DB_FILE_NAME)
}

/// What the factory built.
pub struct OpenedCache {
    /// The store to use for this command.
    pub store: Box<dyn Store>,
    /// Set when persistence was requested but the in-memory fallback is in use, and why.
    pub fallback: Option<super::MissReason>,
    /// The DB path when persistence was requested (reported even on fallback).
    pub db_path: Option<PathBuf>,
    /// True when the DB file did not exist before this open (first run on this segment).
    pub db_was_missing: bool,
}

/// Build the cache for `segment_root` per `settings`.
pub fn open_cache(
    segment_root: &Segment,
    settings: &CacheSettings,
    telemetry: &Telemetry,
) -> OpenedCache {
    if settings.persist {
        return super::sqlite::open::open(segment_root, settings, telemetry);
    }
    OpenedCache {
        store: Box::new(MemoryStore::new()),
        fallback: None,
        db_path: None,
        db_was_missing: false,
    }
}

/// The in-memory store used when persistence was requested but the database cannot be used.
/// It answers exactly like [`MemoryStore`], and additionally counts each lookup in the
/// counters file as a miss with the fallback reason, so `ast cache stats` sees these runs.
pub struct FallbackStore {
    inner: MemoryStore,
    reason: MissReason,
    tallies: counters::Pending,
}

impl FallbackStore {
    /// A fallback store for `reason`; lookups are counted in `cache_dir` (if it exists).
    pub fn new(reason: MissReason, cache_dir: &Anchored) -> Self {
        FallbackStore {
            inner: MemoryStore::new(),
            reason,
            tallies: counters::Pending::new(cache_dir),
        }
    }
}

impl Store for FallbackStore {
    fn backend(&self) -> Backend {
        Backend::Memory
    }

    fn get(&mut self, file_rel: &str, key: &CacheKey) -> Result<Lookup, CacheError> {
        let out = self.inner.get(file_rel, key)?;
        self.tallies.add(match out {
            Lookup::Hit(_) => Tally::Hit,
            Lookup::Miss(_) => Tally::Miss(self.reason),
        });
        Ok(out)
    }

    fn put(
        &mut self,
        file_rel: &str,
        key: &CacheKey,
        table: &SymbolTable,
    ) -> Result<Written, CacheError> {
        // Kept in memory for this run only: nothing persisted, and the event says why.
        self.inner.put(file_rel, key, table)?;
        Ok(Written::Skipped(self.reason))
    }

    fn put_batch(
        &mut self,
        items: &[(String, CacheKey, SymbolTable)],
    ) -> Result<Written, CacheError> {
        self.inner.put_batch(items)?;
        Ok(Written::Skipped(self.reason))
    }
}
