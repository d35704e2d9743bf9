//! The report's data model: every figure `telemetry report` produces, with stable JSON keys
//! (field order is key order; keys are only ever added, never renamed).

use super::read::{FileInfo, Malformed};
use serde::Serialize;
use std::collections::BTreeMap;

/// Latency distribution of one population, in milliseconds (`null`s when `count` is 0).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median (nearest rank).
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Largest sample.
    pub max: Option<f64>,
    /// Arithmetic mean.
    pub mean: Option<f64>,
}

impl Percentiles {
    /// Nearest-rank percentiles of `samples` (order irrelevant; non-finite values ignored).
    pub fn of(samples: &[f64]) -> Self {
        let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Percentiles::default();
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let rank = |p: f64| v[((p / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1];
        Percentiles {
            count: n as u64,
            p50: Some(rank(50.0)),
            p95: Some(rank(95.0)),
            p99: Some(rank(99.0)),
            max: v.last().copied(),
            mean: Some(round3(v.iter().sum::<f64>() / n as f64)),
        }
    }
}

/// Round to three decimals (microseconds, for millisecond values).
pub(super) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Hit and miss latency side by side.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HitMiss {
    /// Latency of hits.
    pub hit: Percentiles,
    /// Latency of misses.
    pub miss: Percentiles,
}

/// `ast.symbols` figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CommandStats {
    /// `ast.symbols` events.
    pub count: u64,
    /// Served from the cache.
    pub hits: u64,
    /// Not served from the cache.
    pub misses: u64,
    /// `hits / (hits + misses)`.
    pub hit_rate: Option<f64>,
    /// Misses by `result.miss_reason`.
    pub misses_by_reason: BTreeMap<String, u64>,
    /// Commands by `cache_type` (the store that answered).
    pub backends: BTreeMap<String, u64>,
    /// Commands that failed after the lookup (`result.status == "error"`), by `error_code`.
    pub errors: BTreeMap<String, u64>,
    /// Whole-command latency by outcome.
    pub latency_ms: HitMiss,
}

/// `ast.cache.hit|miss|write` figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LookupStats {
    /// `ast.cache.hit` events.
    pub hits: u64,
    /// `ast.cache.miss` events.
    pub misses: u64,
    /// `hits / (hits + misses)`.
    pub hit_rate: Option<f64>,
    /// Misses by `result.miss_reason`.
    pub misses_by_reason: BTreeMap<String, u64>,
    /// `ast.cache.write` events.
    pub writes: u64,
    /// Lookup latency by outcome.
    pub latency_ms: HitMiss,
    /// Write latency.
    pub write_latency_ms: Percentiles,
    /// Hits by `result.cache_level` (`local`, `remote`; `local` for events written before the
    /// remote tier existed).
    pub hits_by_level: BTreeMap<String, u64>,
    /// The remote tier's incidents.
    pub remote: RemoteIncidents,
}

/// What went wrong with the shared remote tier.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RemoteIncidents {
    /// `ast.cache.remote_corrupt` events.
    pub corrupt: u64,
    /// Corrupt values by `result.damage`.
    pub corrupt_by_damage: BTreeMap<String, u64>,
    /// `ast.cache.remote_unavailable` events (at most one per process).
    pub unavailable: u64,
    /// Unavailability by `result.failure` (`timeout`, `error`).
    pub unavailable_by_failure: BTreeMap<String, u64>,
}

/// Count, entries and bytes of eviction events.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evictions {
    /// `ast.cache.evicted` events.
    pub events: u64,
    /// Sum of `result.count`.
    pub entries: u64,
    /// Sum of `result.bytes`.
    pub bytes: u64,
}

/// `ast.cache.pruned` totals.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Prunes {
    /// `ast.cache.pruned` events.
    pub events: u64,
    /// Sum of `result.expired`.
    pub expired: u64,
    /// Sum of `result.deleted_files`.
    pub deleted_files: u64,
}

/// Everything that went wrong, or nearly.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Incidents {
    /// `ast.cache.lock_timeout` events.
    pub lock_timeouts: u64,
    /// Lock timeouts by `args.mode`.
    pub lock_timeouts_by_mode: BTreeMap<String, u64>,
    /// `result.waited_ms` of lock timeouts.
    pub lock_waited_ms: Percentiles,
    /// `ast.cache.corruption_detected` events.
    pub corruptions: u64,
    /// Corruptions by `result.kind`.
    pub corruption_kinds: BTreeMap<String, u64>,
    /// `ast.cache.fallback` events.
    pub fallbacks: u64,
    /// Fallbacks by `result.reason` (`unspecified` when absent).
    pub fallback_reasons: BTreeMap<String, u64>,
    /// `ast.cache.schema_incompatible` events.
    pub schema_incompatible: u64,
    /// `ast.cache.size_warning` events.
    pub size_warnings: u64,
    /// `ast.cache.evicted` totals.
    pub evictions: Evictions,
    /// `ast.cache.pruned` totals.
    pub pruned: Prunes,
    /// `ast.cache.maintenance` events with `result.ran == true`.
    pub maintenance_runs: u64,
    /// `ast.cache.admin` events by action (`clear`, `prune`, `verify`, `zero`); a failed one
    /// counts under `<action> failed`.
    pub admin: BTreeMap<String, u64>,
}

/// One DB-size observation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SizeSample {
    /// Event timestamp.
    pub ts: String,
    /// Unix ms.
    pub ts_ms: i64,
    /// Main DB file bytes.
    pub db_bytes: u64,
    /// WAL bytes.
    pub wal_bytes: u64,
    /// Entries, when the event says.
    pub entries: Option<u64>,
    /// `ast.cache.size`, `ast.cache.stats` or `ast.cache.size_warning`.
    pub source: String,
}

/// DB size over time.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DbSize {
    /// Observations in the window.
    pub samples_total: u64,
    /// The latest observation.
    pub latest: Option<SizeSample>,
    /// Largest DB + WAL seen.
    pub max_total_bytes: Option<u64>,
    /// Up to [`super::MAX_SIZE_SAMPLES`] observations, oldest first.
    pub samples: Vec<SizeSample>,
}

/// Per-run counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunSummary {
    /// The run id.
    pub run_id: String,
    /// First event.
    pub first_ts: String,
    /// Last event.
    pub last_ts: String,
    /// Events of this run.
    pub events: u64,
    /// `ast.symbols` events.
    pub commands: u64,
    /// Cache hits (commands).
    pub hits: u64,
    /// Cache misses (commands).
    pub misses: u64,
    /// Lock timeouts, corruptions, fallbacks, schema and size incidents.
    pub incidents: u64,
    /// Commands of this run that failed (`ast.symbols` with `status == "error"`).
    pub errors: u64,
    /// What the run did, one line per command (`ast symbols <uri> → hit`, `ast index: …`),
    /// the first [`super::MAX_RUN_ACTIONS`]; for a run with no command event, the event
    /// names it wrote (`ast.cache.maintenance, ast.cache.stats`).
    pub did: Vec<String>,
    #[serde(skip)]
    pub(super) last_ms: i64,
    /// Event names of the run, for `did` when it ran no command.
    #[serde(skip)]
    pub(super) cmds: std::collections::BTreeSet<String>,
}

/// Runs seen.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Runs {
    /// Distinct run ids.
    pub count: u64,
    /// The most recent runs (up to [`super::MAX_RUNS_LISTED`]), newest first.
    pub recent: Vec<RunSummary>,
}

/// One slice of the activity timeline. `hits + misses + no_lookup` is the number of
/// `ast.symbols` commands in the slice (each command counted once); incidents are events of
/// their own, counted apart and never added to the commands.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Bucket {
    /// Start of the slice.
    pub start: String,
    /// `ast.symbols` hits.
    pub hits: u64,
    /// `ast.symbols` misses.
    pub misses: u64,
    /// Incident events.
    pub incidents: u64,
    /// `ast.symbols` commands that ended before consulting the cache (no `cache_status`).
    pub no_lookup: u64,
    /// `ast.symbols` commands that failed (any outcome above), for the errors marks.
    pub errors: u64,
    /// `ast.index` runs.
    pub index_runs: u64,
}

/// One failed command.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ErrorSample {
    /// When.
    pub ts: String,
    /// Which run.
    pub run_id: String,
    /// The stable error code.
    pub code: String,
    /// The URI asked, when the command got that far.
    pub uri: Option<String>,
}

/// Failed commands (`ast.symbols` with `status == "error"`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ErrorStats {
    /// Failed commands.
    pub count: u64,
    /// By error code.
    pub by_code: BTreeMap<String, u64>,
    /// The most recent (up to [`super::MAX_ERRORS_LISTED`]), newest first.
    pub recent: Vec<ErrorSample>,
}

/// One `ast index` run.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IndexRun {
    /// When it ended.
    pub ts: String,
    /// Which run.
    pub run_id: String,
    /// Modules visited.
    pub files: u64,
    /// Served from the cache.
    pub hits: u64,
    /// Extracted (and stored).
    pub misses: u64,
    /// Modules that could not be read.
    pub errors: u64,
    /// Source bytes read.
    pub bytes: u64,
    /// Worker threads.
    pub jobs: u64,
    /// Wall time of the run.
    pub wall_ms: Option<f64>,
}

/// `ast index` runs (`ast.index` events).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct IndexStats {
    /// Runs.
    pub runs: u64,
    /// Modules visited, all runs.
    pub files: u64,
    /// Modules served from the cache, all runs.
    pub hits: u64,
    /// Modules extracted, all runs.
    pub misses: u64,
    /// Modules that could not be read, all runs.
    pub errors: u64,
    /// `hits / (hits + misses)` over all runs' modules.
    pub hit_rate: Option<f64>,
    /// Wall time per run.
    pub wall_ms: Percentiles,
    /// The most recent runs (up to [`super::MAX_INDEX_RUNS_LISTED`]), newest first.
    pub recent: Vec<IndexRun>,
}

/// Where the events came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Source {
    /// Telemetry directory read.
    pub dir: String,
    /// Whether it exists.
    pub exists: bool,
    /// Files read, oldest first.
    pub files: Vec<FileInfo>,
}

/// Malformed-line accounting.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MalformedSummary {
    /// Malformed lines in all files (regardless of `--since`: their time is unknown).
    pub count: u64,
    /// Location and reason of the first few.
    pub first: Vec<Malformed>,
}

/// The whole report. Key order is the JSON order.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    /// Always `ok`.
    pub status: &'static str,
    /// True when there was no event in the window (missing dir, empty files, or all filtered).
    pub no_telemetry: bool,
    /// Where the events came from.
    pub source: Source,
    /// The `--since` cut-off (RFC 3339), if any.
    pub since: Option<String>,
    /// Valid events in all files.
    pub events_total: u64,
    /// Valid events at or after `since`.
    pub events_in_window: u64,
    /// Earliest event in the window.
    pub first_ts: Option<String>,
    /// Latest event in the window.
    pub last_ts: Option<String>,
    /// Malformed lines.
    pub malformed: MalformedSummary,
    /// Events by `cmd`.
    pub commands: BTreeMap<String, u64>,
    /// Events by `segment_id`.
    pub segments: BTreeMap<String, u64>,
    /// `ast.symbols` figures.
    pub symbols: CommandStats,
    /// Cache lookup figures.
    pub lookups: LookupStats,
    /// Incidents.
    pub incidents: Incidents,
    /// DB size over time.
    pub db_size: DbSize,
    /// Activity timeline over the window.
    pub timeline: Vec<Bucket>,
    /// Per-run counts.
    pub runs: Runs,
    /// Failed commands.
    pub errors: ErrorStats,
    /// `ast index` runs.
    pub index: IndexStats,
    /// Daemon vs CLI traffic and the daemons' incidents.
    pub daemon: DaemonTraffic,
}

/// Daemon vs CLI traffic (daemon events carry run ids starting with
/// [`crate::telemetry::DAEMON_RUN_PREFIX`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DaemonTraffic {
    /// `ast.symbols` answered by a daemon.
    pub symbols_via_daemon: u64,
    /// `ast.symbols` answered by CLI processes themselves.
    pub symbols_direct: u64,
    /// Requests daemons answered (every method).
    pub requests: u64,
    /// Daemons started.
    pub starts: u64,
    /// Connections daemons refused, by reason (`peer_uid`, `busy`).
    pub refused: BTreeMap<String, u64>,
    /// Clients that answered locally after a daemon failure, by reason.
    pub fallbacks: BTreeMap<String, u64>,
    /// Modules re-extracted in the background after an edit.
    pub reextracted_modules: u64,
}
