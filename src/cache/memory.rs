//! The in-memory backend: a per-process map, one entry per file. It gives the same answers as
//! the SQLite store for the same sequence of operations, except that its cold misses say
//! `ephemeral_cache` (nothing survives the process).

use super::{Backend, CacheError, CacheKey, Lookup, MissReason, Store, Written};
use crate::symbols::SymbolTable;
use std::collections::HashMap;

/// Per-process store; the default backend.
#[derive(Debug, Default)]
pub struct MemoryStore {
    entries: HashMap<String, (String, CacheKey, SymbolTable)>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of files held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl Store for MemoryStore {
    fn backend(&self) -> Backend {
        Backend::Memory
    }

    fn get(&mut self, file_rel: &str, key: &CacheKey) -> Result<Lookup, CacheError> {
        let Some((tag, stored_key, table)) = self.entries.get(file_rel) else {
            return Ok(Lookup::Miss(if self.entries.is_empty() {
                MissReason::EphemeralCache
            } else {
                MissReason::KeyMiss
            }));
        };
        Ok(if *tag != CacheKey::extractor_tag() {
            Lookup::Miss(MissReason::ExtractorChanged)
        } else if stored_key != key {
            Lookup::Miss(MissReason::ContentChanged)
        } else {
            Lookup::Hit(table.clone())
        })
    }

    fn put(
        &mut self,
        file_rel: &str,
        key: &CacheKey,
        table: &SymbolTable,
    ) -> Result<Written, CacheError> {
        self.entries.insert(
            file_rel.to_string(),
            (CacheKey::extractor_tag(), *key, table.clone()),
        );
        Ok(Written::Stored)
    }

    fn put_batch(
        &mut self,
        items: &[(String, CacheKey, SymbolTable)],
    ) -> Result<Written, CacheError> {
        for (file_rel, key, table) in items {
            self.put(file_rel, key, table)?;
        }
        Ok(Written::Stored)
    }
}
