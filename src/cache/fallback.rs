//! The store a command falls back to when persistence was requested but the database cannot be
//! used (lock timeout, corruption, newer schema, I/O).

use super::counters::{self, Tally};
use super::memory::MemoryStore;
use super::{Backend, CacheError, CacheKey, Lookup, MissReason, Store, Written};
use crate::config::LookupPurpose;
use crate::segment_fs::Anchored;
use crate::symbols::SymbolTable;

/// The in-memory store used when persistence was requested but the database cannot be used.
/// It answers exactly like [`MemoryStore`], and additionally counts each lookup in the
/// counters file as a miss with the fallback reason, so `ast cache stats` sees these runs.
pub struct FallbackStore {
    inner: MemoryStore,
    reason: MissReason,
    tallies: counters::Pending,
}

impl FallbackStore {
    /// A fallback store for `reason`; lookups are counted in `cache_dir` (if it exists) as
    /// made for `purpose`.
    pub fn new(reason: MissReason, cache_dir: &Anchored, purpose: LookupPurpose) -> Self {
        FallbackStore {
            inner: MemoryStore::new(),
            reason,
            tallies: counters::Pending::for_purpose(cache_dir, purpose),
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
