//! The one factory that builds the cache a command uses.
//!
//! It never fails: when the SQLite store cannot be used (lock timeout, corruption, newer
//! schema, I/O) it returns the in-memory store and says why in [`OpenedCache::fallback`].

use super::OpenedCache;
use super::memory::MemoryStore;
use crate::config::CacheSettings;
use crate::symbols::resolve::Segment;
use crate::telemetry::Telemetry;

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
