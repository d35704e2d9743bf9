//! The one factory that builds the cache a command uses. PLACEHOLDER: SQLite wiring pending.
//!
//! It never fails: when the SQLite store cannot be used (lock timeout, corruption, newer
//! schema, I/O) it returns the in-memory store and says why in [`OpenedCache::fallback`].

use super::Store;
use super::memory::MemoryStore;
use crate::config::CacheSettings;
use crate::telemetry::Telemetry;
use std::path::{Path, PathBuf};

/// File name of the cache database inside `<segment>/.trifecta/cache/`. Fixed and short: the
/// directory already identifies the segment, and a fixed name keeps the cache valid when the
/// checkout moves.
pub const DB_FILE_NAME: &str = "ast_cache.db";

/// `<segment>/.trifecta/cache/ast_cache.db`.
pub fn cache_db_path(segment_root: &Path) -> PathBuf {
    segment_root
        .join(".trifecta")
        .join("cache")
        .join(DB_FILE_NAME)
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
    segment_root: &Path,
    settings: &CacheSettings,
    _telemetry: &Telemetry,
) -> OpenedCache {
    let db_path = settings.persist.then(|| cache_db_path(segment_root));
    OpenedCache {
        store: Box::new(MemoryStore::new()),
        fallback: None,
        db_path,
        db_was_missing: false,
    }
}
