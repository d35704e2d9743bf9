//! The one cache-aside, used by `ast symbols` and `ast index` alike.
//!
//! [`SymbolCache`] wraps the store the factory built and is the only place that turns a lookup
//! or a write into telemetry: one `ast.cache.hit` or `ast.cache.miss` per lookup, one
//! `ast.cache.write` per entry written (stored or skipped, and why), and an
//! `ast.cache.fallback` when the store fails mid-run. Commands never build these events
//! themselves, so a lookup made by `ast index` is counted by the dashboard exactly like one made
//! by `ast symbols` (it used to be invisible there).
//!
//! It also owns the two policies both commands need and used to write twice: a miss on the
//! in-memory fallback reports the *fallback's* reason (why the persistent cache was not used),
//! and a store error is absorbed (counted, reported, served uncached), never returned.

use super::OpenedCache;
use super::factory::open_cache;
use super::{Backend, CacheKey, Lookup, MissReason, Written};
use crate::config::CacheSettings;
use crate::mutant::{self, Mutant};
use crate::symbols::resolve::Segment;
use crate::symbols::{SymbolTable, extract};
use crate::telemetry::event::{
    FallbackResult, HitResult, KeyArgs, MissResult, WriteDetail, WriteResult,
};
use crate::telemetry::{Event, Level, LineEvent, Telemetry};
use std::path::PathBuf;
use std::time::Instant;

/// The answer to one lookup.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// Served from the cache.
    Hit(SymbolTable),
    /// Not in the cache, and why (the fallback's reason when the store is the fallback).
    Miss(MissReason),
}

/// Lookups or writes that failed during a run (each file was served uncached instead).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StoreTrouble {
    /// How many.
    pub failures: u64,
    /// The last such error, for the summary.
    pub last_error: Option<String>,
}

/// One entry to write, with how long its extraction took (reported on its write event).
pub struct ToStore {
    /// Segment-relative path, escaped losslessly ([`crate::file_rel`]).
    pub file_rel: String,
    /// Content key.
    pub key: CacheKey,
    /// The extracted symbols.
    pub table: SymbolTable,
    /// Extraction time, milliseconds.
    pub extract_ms: f64,
}

/// What `lookup_or_extract` served.
pub struct Served {
    /// The module's symbols.
    pub table: SymbolTable,
    /// `None` on a hit, otherwise why it missed.
    pub miss: Option<MissReason>,
}

/// The cache a command uses: the factory's store plus its telemetry.
pub struct SymbolCache<'t> {
    opened: OpenedCache,
    telemetry: &'t Telemetry,
    trouble: StoreTrouble,
}

/// Milliseconds since `t`, rounded to microseconds (the telemetry's resolution).
pub fn elapsed_ms(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 1e6).round() / 1e3
}

impl<'t> SymbolCache<'t> {
    /// Open the cache for `root` per `settings` (never fails: see [`open_cache`]).
    pub fn open(root: &Segment, settings: &CacheSettings, telemetry: &'t Telemetry) -> Self {
        SymbolCache {
            opened: open_cache(root, settings, telemetry),
            telemetry,
            trouble: StoreTrouble::default(),
        }
    }

    /// The store that answers (`memory` on fallback).
    pub fn backend(&self) -> Backend {
        self.opened.store.backend()
    }

    /// The DB path when persistence was requested (also on fallback).
    pub fn db_path(&self) -> Option<&PathBuf> {
        self.opened.db_path.as_ref()
    }

    /// Failures absorbed so far.
    pub fn trouble(&self) -> &StoreTrouble {
        &self.trouble
    }

    /// Look `file_rel` up under `key`, emitting `ast.cache.hit` or `ast.cache.miss`.
    pub fn lookup(&mut self, file_rel: &str, key: &CacheKey) -> Found {
        let t = Instant::now();
        let got = self.opened.store.get(file_rel, key);
        let lookup_ms = elapsed_ms(t);
        let found = match got {
            Ok(Lookup::Hit(table)) => Found::Hit(table),
            Ok(Lookup::Miss(reason)) => Found::Miss(self.opened.fallback.unwrap_or(reason)),
            Err(e) => {
                self.absorb(e.to_string());
                Found::Miss(MissReason::CacheUnavailable)
            }
        };
        if !self.telemetry.enabled(Level::Lite) {
            // `ast index` looks up every module: no event is built when nobody records it.
            return found;
        }
        let args = KeyArgs {
            cache_key: key.to_string(),
        };
        let ev = match &found {
            Found::Hit(_) => Event::CacheHit {
                args,
                result: HitResult {
                    status: "hit".into(),
                },
            },
            Found::Miss(reason) => Event::CacheMiss {
                args,
                result: MissResult {
                    status: "miss".into(),
                    miss_reason: Some(reason.as_str().into()),
                },
            },
        };
        self.emit(Level::Lite, ev.into_line().timed(lookup_ms));
        found
    }

    /// Write entries (one transaction for all of them), emitting one `ast.cache.write` per
    /// entry; each carries its share of the write time and the batch size.
    pub fn store(&mut self, items: Vec<ToStore>) {
        if items.is_empty() {
            return;
        }
        let t = Instant::now();
        let written = if let [one] = items.as_slice() {
            self.opened.store.put(&one.file_rel, &one.key, &one.table)
        } else {
            let batch: Vec<(String, CacheKey, SymbolTable)> = items
                .iter()
                .map(|i| (i.file_rel.clone(), i.key, i.table.clone()))
                .collect();
            self.opened.store.put_batch(&batch)
        };
        let write_ms = elapsed_ms(t);
        let written = match written {
            Ok(w) => w,
            Err(e) => return self.absorb(e.to_string()),
        };
        if !self.telemetry.enabled(Level::Lite) {
            return;
        }
        let n = items.len();
        let level = if mutant::active(Mutant::WriteEventFullOnly) {
            Level::Full
        } else {
            Level::Lite
        };
        for i in &items {
            // What really happened: stored, or skipped with the reason (a store disabled by a
            // corruption earlier in the run, or an uncached fallback run).
            let (status, reason) = match written {
                Written::Stored => ("ok", None),
                Written::Skipped(why) => ("skipped", Some(why.as_str().to_string())),
            };
            let batch = (n > 1).then_some(n as u64);
            let ev = Event::CacheWrite {
                args: KeyArgs {
                    cache_key: i.key.to_string(),
                },
                result: WriteResult {
                    status: status.into(),
                    reason,
                    symbols_count: i.table.symbols.len() as u64,
                },
                x: WriteDetail {
                    extract_ms: i.extract_ms,
                    batch,
                    batch_ms: batch.map(|_| write_ms),
                },
            };
            let share_ms = ((write_ms / n as f64) * 1e3).round() / 1e3;
            self.emit(level, ev.into_line().timed(share_ms));
        }
    }

    /// Cache-aside for one module: look up, else extract `bytes` and store the result.
    pub fn lookup_or_extract(&mut self, file_rel: &str, key: &CacheKey, bytes: &[u8]) -> Served {
        let reason = match self.lookup(file_rel, key) {
            Found::Hit(table) => return Served { table, miss: None },
            Found::Miss(reason) => reason,
        };
        let t = Instant::now();
        let table = extract::extract(bytes);
        let extract_ms = elapsed_ms(t);
        self.store(vec![ToStore {
            file_rel: file_rel.to_string(),
            key: *key,
            table: table.clone(),
            extract_ms,
        }]);
        Served {
            table,
            miss: Some(reason),
        }
    }

    /// The command is done with the cache: release it and run the housekeeping that is due
    /// (automatic maintenance). Explicit, so it never runs while a command unwinds.
    pub fn finish(mut self) {
        self.opened.store.finish();
    }

    /// A store error: counted, reported as `ast.cache.fallback`, and the file served uncached.
    fn absorb(&mut self, error: String) {
        let result = FallbackResult {
            status: "uncached".into(),
            reason: MissReason::CacheUnavailable.as_str().into(),
        };
        self.emit(
            Level::Lite,
            Event::Fallback { result }.into_line().warn(&error),
        );
        self.trouble.failures += 1;
        self.trouble.last_error = Some(error);
    }

    /// Record a cache event at `level`, stamped with this cache's backend.
    fn emit(&self, level: Level, ev: LineEvent) {
        self.telemetry
            .event(level, ev.cache(self.backend().as_str()));
    }
}
