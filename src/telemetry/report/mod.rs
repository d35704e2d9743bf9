//! `trifecta telemetry report`: aggregate the event log into cache-effectiveness figures.
//!
//! Everything is computed in one streaming pass ([`Aggregator`]) over the events the reader
//! yields; the result is a [`Report`] whose JSON keys are stable (new keys may be added, none
//! renamed). [`text`] and [`html`] render the same `Report`.
//!
//! Definitions:
//! - *Command* figures come from `ast.symbols` (one per command): hit/miss from
//!   `result.cache_status`, latency from `timing_ms` (the whole command).
//! - *Lookup* figures come from `ast.cache.hit` / `ast.cache.miss` (the store lookup alone),
//!   misses by reason from `result.miss_reason`, writes from `ast.cache.write`.
//! - Percentiles use the nearest-rank method: the smallest sample with at least p% of the
//!   samples at or below it (so p50 of `[1,2,3,4]` is 2, and every percentile is a real sample).
//! - `hit_rate` is `hits / (hits + misses)`, `null` when there were no lookups.
//! - *Command hit rate* (`symbols.hit_rate`): of the `ast symbols` commands that consulted the
//!   cache, the share answered from it. *Lookup hit rate* (`lookups.hit_rate`): of all store
//!   lookups (one per `ast symbols`, one per module of every `ast index` run), the share that
//!   found a valid entry. They differ whenever `ast index` ran in the window.
//! - DB size over time comes from `ast.cache.size` (recorded by every persistent open, so
//!   ordinary runs give data), `ast.cache.stats` and `ast.cache.size_warning` results
//!   (`db_bytes`, `wal_bytes`).
//! - Errors are `ast.symbols` events with `status == "error"`, whether or not the command got
//!   as far as the cache; `ast index` runs come from `ast.index`.

pub mod html;
mod model;
mod style;
mod svg;
pub mod text;

pub use model::*;

use super::event::{CommandResult, Event, IndexResult, UriArgs};
use super::read::{self, Record, ScanSummary};
use model::round3;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// At most this many DB-size samples are kept (evenly thinned, the newest always kept).
pub const MAX_SIZE_SAMPLES: usize = 500;
/// At most this many runs are listed (most recent first); `runs.count` is the true total.
pub const MAX_RUNS_LISTED: usize = 50;
/// Number of buckets in the activity timeline.
pub const TIMELINE_BUCKETS: usize = 24;
/// At most this many failed commands are listed (most recent first); `errors.count` is the
/// true total.
pub const MAX_ERRORS_LISTED: usize = 20;
/// At most this many `ast index` runs are listed (most recent first).
pub const MAX_INDEX_RUNS_LISTED: usize = 20;
/// At most this many actions are kept per run in `runs.recent[].did`.
pub const MAX_RUN_ACTIONS: usize = 3;

/// What a timeline mark counts.
#[derive(Debug, Clone, Copy)]
enum Mark {
    Hit,
    Miss,
    NoLookup,
    Error,
    Incident,
    IndexRun,
}

/// Streaming aggregation state.
#[derive(Debug, Default)]
pub struct Aggregator {
    since_ms: Option<i64>,
    r: Report,
    sym_hit: Vec<f64>,
    sym_miss: Vec<f64>,
    look_hit: Vec<f64>,
    look_miss: Vec<f64>,
    write_ms: Vec<f64>,
    lock_waited: Vec<f64>,
    sizes: Vec<SizeSample>,
    runs: HashMap<String, RunSummary>,
    first_ms: Option<i64>,
    last_ms: Option<i64>,
    /// (ts_ms, what) for the timeline.
    marks: Vec<(i64, Mark)>,
    /// Failed commands with their time, for the newest-first list.
    errors: Vec<(i64, ErrorSample)>,
    /// `ast index` runs with their time, for the newest-first list.
    index_runs: Vec<(i64, IndexRun)>,
    index_wall: Vec<f64>,
}

fn bump(m: &mut BTreeMap<String, u64>, k: &str) {
    *m.entry(k.to_string()).or_default() += 1;
}

fn or_unspecified(s: &str) -> &str {
    if s.is_empty() { "unspecified" } else { s }
}

fn rate(h: u64, m: u64) -> Option<f64> {
    (h + m > 0).then(|| round3(h as f64 / (h + m) as f64 * 100.0) / 100.0)
}

impl Aggregator {
    /// Start aggregating; events before `since_ms` (Unix ms) are counted but not analysed.
    pub fn new(since_ms: Option<i64>) -> Self {
        Aggregator {
            since_ms,
            ..Aggregator::default()
        }
    }

    /// Take one event into account: every line is counted by name, run and segment; lines
    /// whose `cmd` is a known [`Event`] with a well-formed payload are analysed.
    pub fn add(&mut self, e: Record) {
        self.r.events_total += 1;
        if self.since_ms.is_some_and(|s| e.ts_ms < s) {
            return;
        }
        let r = &mut self.r;
        r.events_in_window += 1;
        if self.first_ms.is_none_or(|f| e.ts_ms < f) {
            self.first_ms = Some(e.ts_ms);
            r.first_ts = Some(e.ts.clone());
        }
        if self.last_ms.is_none_or(|l| e.ts_ms >= l) {
            self.last_ms = Some(e.ts_ms);
            r.last_ts = Some(e.ts.clone());
        }
        bump(&mut r.commands, &e.cmd);
        if !e.segment_id.is_empty() {
            bump(&mut r.segments, &e.segment_id);
        }
        let run = self
            .runs
            .entry(e.run_id.clone())
            .or_insert_with(|| RunSummary {
                run_id: e.run_id.clone(),
                first_ts: e.ts.clone(),
                last_ts: e.ts.clone(),
                last_ms: e.ts_ms,
                ..RunSummary::default()
            });
        run.events += 1;
        if !run.cmds.contains(&e.cmd) {
            run.cmds.insert(e.cmd.clone());
        }
        if e.ts_ms >= run.last_ms {
            run.last_ms = e.ts_ms;
            run.last_ts = e.ts.clone();
        }
        if let Some(ev) = Event::from_record(&e) {
            self.take(&e, ev);
        }
    }

    /// Analyse one typed event (`e` is its line, for the envelope: time, timing, backend).
    fn take(&mut self, e: &Record, ev: Event) {
        let t = e.timing_ms.filter(|t| t.is_finite() && *t >= 0.0);
        let run = self.runs.get_mut(&e.run_id).expect("run entry made by add");
        if ev.is_incident() {
            run.incidents += 1;
            self.marks.push((e.ts_ms, Mark::Incident));
        }
        match ev {
            Event::Symbols { args, result, .. } => self.take_command(e, t, args, result),
            Event::Index { result } => self.take_index(e, t, result),
            Event::CacheHit { result, .. } => {
                let l = &mut self.r.lookups;
                l.hits += 1;
                // Events from before the remote tier have no level: they were local.
                bump(
                    &mut l.hits_by_level,
                    result.cache_level.as_deref().unwrap_or("local"),
                );
                self.look_hit.extend(t);
            }
            Event::RemoteCorrupt { result, .. } => {
                let r = &mut self.r.lookups.remote;
                r.corrupt += 1;
                bump(&mut r.corrupt_by_damage, or_unspecified(&result.damage));
            }
            Event::RemoteUnavailable { result, .. } => {
                let r = &mut self.r.lookups.remote;
                r.unavailable += 1;
                bump(
                    &mut r.unavailable_by_failure,
                    or_unspecified(&result.failure),
                );
            }
            Event::CacheMiss { result, .. } => {
                let l = &mut self.r.lookups;
                l.misses += 1;
                let reason = result.miss_reason.as_deref().unwrap_or("unspecified");
                bump(&mut l.misses_by_reason, reason);
                self.look_miss.extend(t);
            }
            Event::CacheWrite { .. } => {
                self.r.lookups.writes += 1;
                self.write_ms.extend(t);
            }
            other => self.take_incident(e, other),
        }
    }

    /// One `ast symbols` command: outcome, latency, error, and what its run did.
    fn take_command(&mut self, e: &Record, t: Option<f64>, args: UriArgs, result: CommandResult) {
        let run = self.runs.get_mut(&e.run_id).expect("run entry made by add");
        run.commands += 1;
        let d = &mut self.r.daemon;
        if e.run_id.starts_with(crate::telemetry::DAEMON_RUN_PREFIX) {
            d.symbols_via_daemon += 1;
        } else {
            d.symbols_direct += 1;
        }
        let s = &mut self.r.symbols;
        s.count += 1;
        if let Some(ct) = &e.cache_type {
            bump(&mut s.backends, ct);
        }
        let outcome = match result.cache_status.as_deref() {
            Some("hit") => {
                s.hits += 1;
                run.hits += 1;
                self.sym_hit.extend(t);
                self.marks.push((e.ts_ms, Mark::Hit));
                "hit".to_string()
            }
            Some("miss") => {
                s.misses += 1;
                run.misses += 1;
                let reason = result.miss_reason.as_deref().unwrap_or("unspecified");
                bump(&mut s.misses_by_reason, reason);
                self.sym_miss.extend(t);
                self.marks.push((e.ts_ms, Mark::Miss));
                format!("miss ({reason})")
            }
            _ => {
                self.marks.push((e.ts_ms, Mark::NoLookup));
                "no cache lookup".to_string()
            }
        };
        let uri = args.uri.as_deref().unwrap_or("(no URI)");
        let action = if result.status == "error" {
            let code = result.error_code.as_deref().unwrap_or("unspecified");
            bump(&mut s.errors, code);
            bump(&mut self.r.errors.by_code, code);
            self.r.errors.count += 1;
            run.errors += 1;
            self.marks.push((e.ts_ms, Mark::Error));
            let sample = ErrorSample {
                ts: e.ts.clone(),
                run_id: e.run_id.clone(),
                code: code.to_string(),
                uri: args.uri.clone(),
            };
            keep_newest(&mut self.errors, (e.ts_ms, sample), MAX_ERRORS_LISTED);
            format!("ast symbols {uri} → error {code} ({outcome})")
        } else {
            format!("ast symbols {uri} → {outcome}")
        };
        if run.did.len() < MAX_RUN_ACTIONS {
            run.did.push(action);
        }
    }

    /// One `ast index` run.
    fn take_index(&mut self, e: &Record, t: Option<f64>, r: IndexResult) {
        let run = self.runs.get_mut(&e.run_id).expect("run entry made by add");
        if run.did.len() < MAX_RUN_ACTIONS {
            run.did.push(format!(
                "ast index: {} modules, {} hits, {} misses, {} errors",
                r.files, r.hits, r.misses, r.errors
            ));
        }
        let x = &mut self.r.index;
        x.runs += 1;
        x.files += r.files;
        x.hits += r.hits;
        x.misses += r.misses;
        x.errors += r.errors;
        self.index_wall.extend(t);
        self.marks.push((e.ts_ms, Mark::IndexRun));
        let one = IndexRun {
            ts: e.ts.clone(),
            run_id: e.run_id.clone(),
            files: r.files,
            hits: r.hits,
            misses: r.misses,
            errors: r.errors,
            bytes: r.bytes,
            jobs: r.jobs,
            wall_ms: t,
        };
        keep_newest(&mut self.index_runs, (e.ts_ms, one), MAX_INDEX_RUNS_LISTED);
    }

    /// Incidents, maintenance and DB-size observations.
    fn take_incident(&mut self, e: &Record, ev: Event) {
        let inc = &mut self.r.incidents;
        let size = |db_bytes: u64, wal_bytes: u64, entries: Option<u64>| SizeSample {
            ts: e.ts.clone(),
            ts_ms: e.ts_ms,
            db_bytes,
            wal_bytes,
            entries,
            source: e.cmd.clone(),
        };
        match ev {
            Event::LockTimeout { args, result } => {
                inc.lock_timeouts += 1;
                let mode = args.mode.as_deref().unwrap_or("unspecified");
                bump(&mut inc.lock_timeouts_by_mode, mode);
                self.lock_waited.push(result.waited_ms as f64);
            }
            Event::CorruptionDetected { result } => {
                inc.corruptions += 1;
                bump(&mut inc.corruption_kinds, or_unspecified(&result.kind));
            }
            Event::Fallback { result } => {
                inc.fallbacks += 1;
                bump(&mut inc.fallback_reasons, or_unspecified(&result.reason));
            }
            Event::SchemaIncompatible { .. } => inc.schema_incompatible += 1,
            Event::Evicted { result } => {
                inc.evictions.events += 1;
                inc.evictions.entries += result.count;
                inc.evictions.bytes += result.bytes;
            }
            Event::Pruned { result } => {
                inc.pruned.events += 1;
                inc.pruned.expired += result.expired;
                inc.pruned.deleted_files += result.deleted_files;
            }
            Event::Maintenance { result } if result.ran => inc.maintenance_runs += 1,
            Event::Admin { args, result } => {
                let action = or_unspecified(&args.action);
                match result.status.as_str() {
                    "ok" => bump(&mut inc.admin, action),
                    _ => bump(&mut inc.admin, &format!("{action} failed")),
                }
            }
            Event::SizeWarning { result } => {
                inc.size_warnings += 1;
                self.sizes
                    .push(size(result.db_bytes, result.wal_bytes, None));
            }
            Event::DaemonStart { .. } => self.r.daemon.starts += 1,
            Event::DaemonRequest { .. } => self.r.daemon.requests += 1,
            Event::DaemonRefused { result } => {
                bump(&mut self.r.daemon.refused, or_unspecified(&result.reason));
            }
            Event::DaemonFallback { result } => {
                bump(&mut self.r.daemon.fallbacks, or_unspecified(&result.reason));
            }
            Event::DaemonReextract { result } => {
                self.r.daemon.reextracted_modules += result.modules;
            }
            Event::Size { result } => {
                self.sizes
                    .push(size(result.db_bytes, result.wal_bytes, None));
            }
            Event::Stats { result } => {
                self.sizes.push(size(
                    result.db_bytes,
                    result.wal_bytes,
                    Some(result.entries),
                ));
            }
            _ => {}
        }
    }
    /// Close the aggregation with what the reader saw about the files.
    pub fn finish(mut self, dir: &Path, scan: ScanSummary, since: Option<String>) -> Report {
        let mut r = std::mem::take(&mut self.r);
        r.status = "ok";
        r.since = since;
        r.no_telemetry = r.events_in_window == 0;
        r.source = Source {
            dir: dir.to_string_lossy().into_owned(),
            exists: scan.dir_exists,
            files: scan.files,
        };
        r.malformed = MalformedSummary {
            count: scan.malformed,
            first: scan.malformed_first,
        };
        r.symbols.hit_rate = rate(r.symbols.hits, r.symbols.misses);
        r.symbols.latency_ms = HitMiss {
            hit: Percentiles::of(&self.sym_hit),
            miss: Percentiles::of(&self.sym_miss),
        };
        r.lookups.hit_rate = rate(r.lookups.hits, r.lookups.misses);
        r.lookups.latency_ms = HitMiss {
            hit: Percentiles::of(&self.look_hit),
            miss: Percentiles::of(&self.look_miss),
        };
        r.lookups.write_latency_ms = Percentiles::of(&self.write_ms);
        r.incidents.lock_waited_ms = Percentiles::of(&self.lock_waited);
        r.db_size = db_size(std::mem::take(&mut self.sizes));
        r.timeline = timeline(&self.marks, self.first_ms, self.last_ms);
        r.errors.recent = newest_first(std::mem::take(&mut self.errors), MAX_ERRORS_LISTED);
        r.index.recent = newest_first(std::mem::take(&mut self.index_runs), MAX_INDEX_RUNS_LISTED);
        r.index.hit_rate = rate(r.index.hits, r.index.misses);
        r.index.wall_ms = Percentiles::of(&self.index_wall);
        let mut runs: Vec<RunSummary> = self.runs.into_values().collect();
        for run in &mut runs {
            if run.did.is_empty() {
                let names: Vec<&str> = run.cmds.iter().map(String::as_str).collect();
                run.did.push(names.join(", "));
            }
        }
        runs.sort_by(|a, b| b.last_ms.cmp(&a.last_ms).then(a.run_id.cmp(&b.run_id)));
        r.runs = Runs {
            count: runs.len() as u64,
            recent: runs.into_iter().take(MAX_RUNS_LISTED).collect(),
        };
        r
    }
}

/// Push `x` keeping at most about `2 * n` items, dropping the oldest (the list is cut to `n`
/// by [`newest_first`]); bounds memory on long logs.
fn keep_newest<T>(v: &mut Vec<(i64, T)>, x: (i64, T), n: usize) {
    v.push(x);
    if v.len() >= 2 * n {
        v.sort_by_key(|x| std::cmp::Reverse(x.0));
        v.truncate(n);
    }
}

/// The newest `n`, newest first (equal times: the later line first).
fn newest_first<T>(mut v: Vec<(i64, T)>, n: usize) -> Vec<T> {
    v.reverse();
    v.sort_by_key(|x| std::cmp::Reverse(x.0));
    v.into_iter().map(|(_, x)| x).take(n).collect()
}

fn db_size(mut s: Vec<SizeSample>) -> DbSize {
    s.sort_by_key(|x| x.ts_ms);
    let total = s.len();
    let max_total_bytes = s.iter().map(|x| x.db_bytes + x.wal_bytes).max();
    let latest = s.last().cloned();
    let samples = if total > MAX_SIZE_SAMPLES {
        let step = total as f64 / (MAX_SIZE_SAMPLES - 1) as f64;
        let mut v: Vec<SizeSample> = (0..MAX_SIZE_SAMPLES - 1)
            .map(|i| s[((i as f64 * step) as usize).min(total - 1)].clone())
            .collect();
        v.extend(latest.clone());
        v
    } else {
        s
    };
    DbSize {
        samples_total: total as u64,
        latest,
        max_total_bytes,
        samples,
    }
}

fn timeline(marks: &[(i64, Mark)], first: Option<i64>, last: Option<i64>) -> Vec<Bucket> {
    let (Some(first), Some(last)) = (first, last) else {
        return Vec::new();
    };
    // Whole minutes per bucket so the labels are round; at least one minute.
    let span = (last - first).max(1);
    let width = (span / TIMELINE_BUCKETS as i64 + 1).max(60_000);
    let width = (width + 59_999) / 60_000 * 60_000;
    let start = first - first.rem_euclid(60_000);
    let n = (((last - start) / width) as usize + 1).min(TIMELINE_BUCKETS + 1);
    let mut out: Vec<Bucket> = (0..n)
        .map(|i| Bucket {
            start: fmt_ms(start + i as i64 * width),
            ..Bucket::default()
        })
        .collect();
    for &(ts, kind) in marks {
        let i = (((ts - start) / width).max(0) as usize).min(n - 1);
        let b = &mut out[i];
        match kind {
            Mark::Hit => b.hits += 1,
            Mark::Miss => b.misses += 1,
            Mark::NoLookup => b.no_lookup += 1,
            Mark::Error => b.errors += 1,
            Mark::Incident => b.incidents += 1,
            Mark::IndexRun => b.index_runs += 1,
        }
    }
    out
}

/// Unix ms as `2026-11-21T03:34:43.123Z`.
pub fn fmt_ms(ms: i64) -> String {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => format!("{ts:.3}"),
        Err(_) => ms.to_string(),
    }
}

/// Parse `--since`: a duration back from `now_ms` (`90s`, `30m`, `24h`, `7d`, `2w`, or ISO
/// 8601 / friendly forms jiff accepts, such as `PT1H` or `1h 30m`) or an RFC 3339 timestamp.
pub fn parse_since(s: &str, now_ms: i64) -> Result<i64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty value".into());
    }
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    let simple = t
        .char_indices()
        .find(|(_, c)| !c.is_ascii_digit())
        .and_then(|(i, _)| {
            let n: i64 = t[..i].parse().ok()?;
            let unit = match &t[i..] {
                "ms" => 1,
                "s" => 1_000,
                "m" | "min" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                "w" => 7 * 86_400_000,
                _ => return None,
            };
            n.checked_mul(unit)
        });
    let back_ms = match simple {
        Some(ms) => ms,
        None => match t.parse::<jiff::SignedDuration>() {
            Ok(d) if !d.is_negative() => d.as_millis().min(i64::MAX as i128) as i64,
            _ => {
                return Err(format!(
                    "{} is neither a duration (e.g. 30m, 24h, 7d) nor an RFC 3339 \
                     timestamp (e.g. 2026-11-21T00:00:00Z)",
                    crate::output::quoted(t)
                ));
            }
        },
    };
    Ok(now_ms.saturating_sub(back_ms))
}

/// Read `dir` and build the report for events at or after `since_ms`.
pub fn build(dir: &super::Location, since_ms: Option<i64>) -> std::io::Result<Report> {
    let mut agg = Aggregator::new(since_ms);
    let scan = read::scan_dir(dir, |rec| agg.add(rec))?;
    Ok(agg.finish(&dir.path(), scan, since_ms.map(fmt_ms)))
}

#[cfg(test)]
mod tests;
