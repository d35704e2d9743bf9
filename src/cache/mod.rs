//! The symbol cache: a small [`Store`] trait, two backends ([`memory`], [`sqlite`]) and the one
//! factory ([`factory::open_cache`]) that chooses between them. Nothing else in the crate
//! constructs a store: that is the "single source of truth" signal the gates check for.
//!
//! Freshness is by content: every lookup hashes the file bytes it is about to serve
//! ([`key::CacheKey`]), so a changed file can never be served stale symbols (no mtime trust,
//! so git's racy-clean problem cannot arise). Rows are keyed by the segment-relative path, one
//! row per file: an edit replaces the row and the next lookup reports `content_changed`.

pub mod admin;
pub mod counters;
pub mod factory;
pub mod fallback;
pub mod hot_tier;
pub mod key;
pub mod lock;
pub mod memory;
pub mod remote;
pub mod schema;
pub mod service;
pub mod sqlite;

pub use factory::open_cache;
pub use key::CacheKey;

use crate::symbols::SymbolTable;
use serde::Serialize;
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
    pub fallback: Option<MissReason>,
    /// The DB path when persistence was requested (reported even on fallback).
    pub db_path: Option<PathBuf>,
    /// True when the DB file did not exist before this open (first run on this segment).
    pub db_was_missing: bool,
}

/// Which storage answers lookups. Serialized as the telemetry `cache_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Per-process map; nothing survives the process.
    Memory,
    /// The shared SQLite database under `<segment>/.trifecta/cache/`.
    Sqlite,
}

impl Backend {
    /// The wire spelling (`memory` / `sqlite`).
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Sqlite => "sqlite",
        }
    }
}

/// Why a lookup did not hit. The spelling (`as_str`) is the `miss_reason` contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MissReason {
    /// Persistence requested and the DB file did not exist before this run.
    ColdCacheDbMissing,
    /// The DB existed but held no entries.
    ColdCacheEmpty,
    /// The DB has entries, none for this file.
    KeyMiss,
    /// The DB has this file's row, for different content (the file was edited).
    ContentChanged,
    /// This file's row was written by a different extractor version.
    ExtractorChanged,
    /// This file's row is intact (its checksum matches) but its payload did not decode. That is
    /// not damage, so nothing is quarantined: the entry is re-extracted and rewritten.
    EntryUnreadable,
    /// In-memory cache: nothing survives between processes, so a first lookup always misses.
    EphemeralCache,
    /// Fallback: the cache lock could not be taken within the timeout; ran uncached.
    LockTimeout,
    /// Fallback: corruption was detected and the DB quarantined; this run is uncached.
    CorruptionRecovered,
    /// Fallback: the DB was written by a newer trifecta; left untouched, ran uncached.
    SchemaIncompatible,
    /// Fallback: the DB could not be opened or used for another reason (I/O, permissions).
    CacheUnavailable,
}

impl MissReason {
    /// The wire spelling, e.g. `content_changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            MissReason::ColdCacheDbMissing => "cold_cache_db_missing",
            MissReason::ColdCacheEmpty => "cold_cache_empty",
            MissReason::KeyMiss => "key_miss",
            MissReason::ContentChanged => "content_changed",
            MissReason::ExtractorChanged => "extractor_changed",
            MissReason::EntryUnreadable => "entry_unreadable",
            MissReason::EphemeralCache => "ephemeral_cache",
            MissReason::LockTimeout => "lock_timeout",
            MissReason::CorruptionRecovered => "corruption_recovered",
            MissReason::SchemaIncompatible => "schema_incompatible",
            MissReason::CacheUnavailable => "cache_unavailable",
        }
    }
}

/// The answer of [`Store::get`].
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// A verified entry for exactly this content and extractor.
    Hit(SymbolTable),
    /// No usable entry, and why.
    Miss(MissReason),
}

/// A cache failure that the store could not absorb itself. Callers never turn this into a
/// failed command: they serve an uncached result and report a fallback.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// SQLite said something we did not map (see `sqlite` for the mapping).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// File-system trouble around the DB, lock or quarantine.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// Corruption was detected (and, where possible, recovered by quarantine).
    #[error("cache corruption: {0}")]
    Corrupt(String),
}

/// What a write did, so `ast.cache.write` reports what really happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The entries are in the store (the backend says which).
    Stored,
    /// Nothing was written, and why: the store was disabled earlier in this run (`reason` is
    /// what disabled it), or persistence was requested but the run is uncached.
    Skipped(MissReason),
}

/// A symbol-table store. Small on purpose and without default methods: each backend says
/// exactly what it does. Paths are segment-relative with `/` separators.
pub trait Store {
    /// Which storage answers.
    fn backend(&self) -> Backend;
    /// Look up `file_rel`'s entry for `key`. A hit has been integrity-checked.
    fn get(&mut self, file_rel: &str, key: &CacheKey) -> Result<Lookup, CacheError>;
    /// Insert or replace `file_rel`'s entry (one row per file).
    fn put(
        &mut self,
        file_rel: &str,
        key: &CacheKey,
        table: &SymbolTable,
    ) -> Result<Written, CacheError>;
    /// Insert or replace many entries in one transaction (used by `ast index`).
    fn put_batch(
        &mut self,
        items: &[(String, CacheKey, SymbolTable)],
    ) -> Result<Written, CacheError>;
    /// The command is done with the cache: release it and run whatever housekeeping is due
    /// (automatic maintenance, for SQLite). Called explicitly by the cache service, never from
    /// `Drop`: an unwinding or early-returning command must not start a maintenance pass.
    fn finish(&mut self) {}
}
