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
//!
//! With `TRIFECTA_AST_REMOTE` set it is also the L1 → L2 chain: the local store first (an L1 hit
//! never touches the network, not even a connect), then one `MGET` to Redis for the L1 misses of
//! a lookup or an `ast index` chunk. An L2 hit is backfilled into L1 and reported as a hit with
//! `cache_level: "remote"`; a damaged L2 value is a miss plus `ast.cache.remote_corrupt` (and is
//! overwritten by the write that follows the extraction, unless read-only); a failing server is
//! one `ast.cache.remote_unavailable` and L1 only for the rest of the process.

use super::OpenedCache;
use super::counters::{self, RemoteTally, Tally};
use super::factory::open_cache;
use super::hot_tier::{DbIdentity, HotTier};
use super::remote::{FailKind, RemoteFailure, RemoteGot, RemoteTier};
use super::{Backend, CacheKey, Lookup, MissReason, Written};
use crate::config::CacheSettings;
use crate::mutant::{self, Mutant};
use crate::symbols::resolve::Segment;
use crate::symbols::{SymbolTable, extract};
use crate::telemetry::event::{
    FallbackResult, HitResult, KeyArgs, LookupDetail, MissResult, RemoteArgs, RemoteCorruptResult,
    RemoteUnavailableResult, WriteDetail, WriteResult,
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

/// The cache a command uses: the factory's store (L1), the remote tier (L2) when configured,
/// and their telemetry.
pub struct SymbolCache<'t> {
    opened: OpenedCache,
    telemetry: &'t Telemetry,
    trouble: StoreTrouble,
    remote: Option<RemoteTier>,
    /// Remote tallies for `ast cache stats`, kept in the local cache's counters file (only
    /// when persistence is on: an in-memory run has nowhere to count).
    remote_tallies: Option<counters::Pending>,
}

/// Where a hit came from: the `cache_level` of `ast.cache.hit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheLevel {
    /// The local store (SQLite, or the in-memory map).
    Local,
    /// The shared remote tier, backfilled into the local store.
    Remote,
}

impl CacheLevel {
    fn as_str(self) -> &'static str {
        match self {
            CacheLevel::Local => "local",
            CacheLevel::Remote => "remote",
        }
    }
}

/// `(device, inode)` of the segment's cache database, `None` when there is none.
fn db_identity(root: &Segment) -> DbIdentity {
    let rel = std::path::Path::new(super::CACHE_DIR_REL).join(super::DB_FILE_NAME);
    match root.anchor.at(rel).stat() {
        Ok(Some(st)) => Some((st.st_dev, st.st_ino)),
        _ => None,
    }
}

/// Milliseconds since `t`, rounded to microseconds (the telemetry's resolution).
pub fn elapsed_ms(t: Instant) -> f64 {
    (t.elapsed().as_secs_f64() * 1e6).round() / 1e3
}

impl<'t> SymbolCache<'t> {
    /// Open the cache for `root` per `settings` (never fails: see [`open_cache`]).
    pub fn open(root: &Segment, settings: &CacheSettings, telemetry: &'t Telemetry) -> Self {
        let remote = settings.remote.as_ref().map(RemoteTier::new);
        let remote_tallies = (remote.is_some() && settings.persist)
            .then(|| counters::Pending::new(&root.anchor.at(super::CACHE_DIR_REL)));
        SymbolCache {
            opened: open_cache(root, settings, telemetry),
            telemetry,
            trouble: StoreTrouble::default(),
            remote,
            remote_tallies,
        }
    }

    /// Whether the remote tier ever connected in this process (an L1 hit must not connect).
    pub fn remote_connected(&self) -> bool {
        self.remote.as_ref().is_some_and(RemoteTier::connected)
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
        let mut found = self.lookup_many(&[(file_rel, key)]);
        found
            .pop()
            .unwrap_or(Found::Miss(MissReason::CacheUnavailable))
    }

    /// Look several files up: each in L1, then the L1 misses in L2 with one `MGET`. One
    /// `ast.cache.hit` or `ast.cache.miss` per file, in order.
    pub fn lookup_many(&mut self, items: &[(&str, &CacheKey)]) -> Vec<Found> {
        let mut found = Vec::with_capacity(items.len());
        let mut local_ms = Vec::with_capacity(items.len());
        for (file_rel, key) in items {
            let t = Instant::now();
            let got = self.opened.store.get(file_rel, key);
            local_ms.push(elapsed_ms(t));
            found.push(match got {
                Ok(Lookup::Hit(table)) => Found::Hit(table),
                Ok(Lookup::Miss(reason)) => Found::Miss(self.opened.fallback.unwrap_or(reason)),
                Err(e) => {
                    self.absorb(e.to_string());
                    Found::Miss(MissReason::CacheUnavailable)
                }
            });
        }
        let (levels, remote_ms) = self.consult_remote(items, &mut found);
        if self.telemetry.enabled(Level::Lite) {
            // `ast index` looks up every module: no event is built when nobody records it.
            for (i, f) in found.iter().enumerate() {
                let level = levels.get(i).copied().flatten();
                self.lookup_event(items[i].1, f, level, local_ms[i], remote_ms);
            }
        }
        found
    }

    /// L2 for the L1 misses of `items` (in place): returns each file's hit level and the
    /// remote time per file that went remote (for the hit/miss events).
    fn consult_remote(
        &mut self,
        items: &[(&str, &CacheKey)],
        found: &mut [Found],
    ) -> (Vec<Option<CacheLevel>>, Option<f64>) {
        let mut levels: Vec<Option<CacheLevel>> = found
            .iter()
            .map(|f| matches!(f, Found::Hit(_)).then_some(CacheLevel::Local))
            .collect();
        let misses: Vec<usize> = (0..found.len()).filter(|&i| levels[i].is_none()).collect();
        let Some(remote) = self.remote.as_mut().filter(|r| r.usable()) else {
            return (levels, None);
        };
        if misses.is_empty() {
            return (levels, None);
        }
        let keys: Vec<CacheKey> = misses.iter().map(|&i| *items[i].1).collect();
        let t = Instant::now();
        let got = remote.get_many(&keys);
        let remote_ms = elapsed_ms(t);
        let got = match got {
            Ok(g) => g,
            Err(f) => {
                self.remote_unavailable("lookup", &f, remote_ms);
                return (levels, None);
            }
        };
        let mut backfill = Vec::new();
        for (&i, g) in misses.iter().zip(got) {
            match g {
                RemoteGot::Hit(table) => {
                    self.tally(RemoteTally::Hit);
                    backfill.push((items[i].0.to_string(), *items[i].1, table.clone()));
                    found[i] = Found::Hit(table);
                    levels[i] = Some(CacheLevel::Remote);
                }
                RemoteGot::Miss => self.tally(RemoteTally::Miss),
                RemoteGot::Corrupt(damage) => {
                    self.tally(RemoteTally::Corrupt);
                    let writable = self.remote.as_ref().is_some_and(RemoteTier::writable);
                    let ev = Event::RemoteCorrupt {
                        args: KeyArgs {
                            cache_key: items[i].1.to_string(),
                        },
                        result: RemoteCorruptResult {
                            status: "miss".into(),
                            damage: damage.as_str().into(),
                            action: if writable {
                                "overwrite"
                            } else {
                                "ignored_read_only"
                            }
                            .into(),
                        },
                    };
                    self.emit(Level::Lite, ev.into_line());
                }
            }
        }
        self.backfill(backfill);
        let per_file = ((remote_ms / misses.len() as f64) * 1e3).round() / 1e3;
        (levels, Some(per_file))
    }

    /// Copy L2 hits into L1 so the next lookup is local. Part of the hit (no write event).
    fn backfill(&mut self, entries: Vec<(String, CacheKey, SymbolTable)>) {
        let r = match entries.as_slice() {
            [] => return,
            [(f, k, t)] => self.opened.store.put(f, k, t),
            _ => self.opened.store.put_batch(&entries),
        };
        if let Err(e) = r {
            self.absorb(e.to_string());
        }
    }

    /// One `ast.cache.hit` or `ast.cache.miss`.
    fn lookup_event(
        &self,
        key: &CacheKey,
        found: &Found,
        level: Option<CacheLevel>,
        local_ms: f64,
        remote_ms: Option<f64>,
    ) {
        // A file that went to L2 waited for its share of the MGET too.
        let remote_ms = remote_ms.filter(|_| level != Some(CacheLevel::Local));
        let x = match remote_ms {
            Some(ms) if self.telemetry.enabled(Level::Full) => LookupDetail {
                local_ms: Some(local_ms),
                remote_ms: Some(ms),
            },
            _ => LookupDetail::default(),
        };
        let args = KeyArgs {
            cache_key: key.to_string(),
        };
        let ev = match found {
            Found::Hit(_) => Event::CacheHit {
                args,
                result: HitResult {
                    status: "hit".into(),
                    cache_level: Some(level.unwrap_or(CacheLevel::Local).as_str().into()),
                },
                x,
            },
            Found::Miss(reason) => Event::CacheMiss {
                args,
                result: MissResult {
                    status: "miss".into(),
                    miss_reason: Some(reason.as_str().into()),
                },
                x,
            },
        };
        let ms = local_ms + remote_ms.unwrap_or(0.0);
        self.emit(Level::Lite, ev.into_line().timed(ms));
    }

    /// Count a remote outcome for `ast cache stats`.
    fn tally(&mut self, t: RemoteTally) {
        if let Some(p) = &mut self.remote_tallies {
            p.add(Tally::Remote(t));
        }
    }

    /// The remote failed: one event (the circuit is now open, so there is no second one in this
    /// process), counted as an error or a timeout. The run goes on with L1 alone.
    fn remote_unavailable(&mut self, during: &str, f: &RemoteFailure, ms: f64) {
        self.tally(match f.kind {
            FailKind::Timeout => RemoteTally::Timeout,
            FailKind::Error => RemoteTally::Error,
        });
        let ev = Event::RemoteUnavailable {
            args: RemoteArgs {
                during: during.into(),
            },
            result: RemoteUnavailableResult {
                status: "local_only".into(),
                failure: f.kind.as_str().into(),
            },
        };
        self.emit(Level::Lite, ev.into_line().timed(ms).warn(&f.message));
    }

    /// Write entries to L2 (unless read-only or the circuit is open). Returns what the write
    /// events say about the remote: `None` when no remote is configured.
    fn store_remote(&mut self, items: &[ToStore]) -> Option<&'static str> {
        let remote = self.remote.as_mut()?;
        if !remote.usable() {
            return Some("unavailable");
        }
        if !remote.writable() {
            return Some("read_only");
        }
        let batch: Vec<(CacheKey, &SymbolTable)> =
            items.iter().map(|i| (i.key, &i.table)).collect();
        let t = Instant::now();
        match remote.put_many(&batch) {
            Ok(n) => {
                for _ in 0..n {
                    self.tally(RemoteTally::Write);
                }
                Some("stored")
            }
            Err(f) => {
                self.remote_unavailable("write", &f, elapsed_ms(t));
                Some("unavailable")
            }
        }
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
        let remote = self.store_remote(&items);
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
                    remote: remote.map(str::to_string),
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

    /// The cache-aside for one module with the daemon's in-memory tier in front: a tier hit
    /// (same content key, same database file, see [`HotTier`]) answers without opening the
    /// database and is reported as an `ast.cache.hit` with `cache_level = "memory"`; anything else
    /// opens the cache, runs [`SymbolCache::lookup_or_extract`], releases the cache again (so
    /// the shared lock is never held between requests) and remembers what SQLite served or
    /// stored. Several threads may do this at once (see the rule in `cache/sqlite/probe.rs`).
    /// Returns what was served and the backend that answered.
    pub fn serve_with_tier(
        root: &Segment,
        settings: &CacheSettings,
        telemetry: &Telemetry,
        hot: &HotTier,
        file_rel: &str,
        key: &CacheKey,
        bytes: &[u8],
    ) -> (Served, Backend) {
        let t = Instant::now();
        let db = if settings.persist {
            db_identity(root)
        } else {
            None
        };
        if let Some(table) = hot.get(file_rel, key, db) {
            if telemetry.enabled(Level::Lite) {
                let ev = Event::CacheHit {
                    args: KeyArgs {
                        cache_key: key.to_string(),
                    },
                    result: HitResult {
                        status: "hit".into(),
                        cache_level: Some("memory".into()),
                    },
                    x: LookupDetail::default(),
                };
                let line = ev.into_line().timed(elapsed_ms(t));
                telemetry.event(Level::Lite, line.cache(Backend::Sqlite.as_str()));
            }
            return (Served { table, miss: None }, Backend::Sqlite);
        }
        let mut cache = SymbolCache::open(root, settings, telemetry);
        let backend = cache.backend();
        let served = cache.lookup_or_extract(file_rel, key, bytes);
        let stored = cache.trouble.failures == 0;
        cache.finish();
        // Only what the database really holds is remembered, and only when the file the lookup
        // began with is still the one in place (a clear or a quarantine meanwhile: not kept).
        if backend == Backend::Sqlite && stored && db.is_some() && db_identity(root) == db {
            hot.put(file_rel, key, &served.table, db);
        }
        (served, backend)
    }

    /// Open the cache and release it at once: runs the automatic maintenance when it is due
    /// (the daemon's start-up and interval passes; same rule as every command's `finish`).
    pub fn open_for_maintenance(root: &Segment, settings: &CacheSettings, telemetry: &Telemetry) {
        let cache = SymbolCache::open(root, settings, telemetry);
        if mutant::active(Mutant::DaemonKeepsDbOpen) {
            std::mem::forget(cache); // connection and shared lock kept for the process's life
            return;
        }
        cache.finish();
    }

    /// The command is done with the cache: release it and run the housekeeping that is due
    /// (automatic maintenance). Explicit, so it never runs while a command unwinds.
    pub fn finish(mut self) {
        if let Some(p) = &mut self.remote_tallies {
            p.flush();
        }
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
