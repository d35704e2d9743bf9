//! Every telemetry event trifecta writes, as one typed enum shared by the producers (the
//! commands, the cache service, the SQLite store, the segment file-system guard) and the
//! consumer (`telemetry report`'s aggregator).
//!
//! The wire format is unchanged by typing it: an event serializes (internally tagged by `cmd`)
//! to `{cmd, args, result, x}`, which [`Event::into_line`] turns into the [`super::LineEvent`]
//! the writer stamps and appends; the reader's [`super::read::Record`] turns back into an
//! [`Event`] with [`Event::from_record`]. Keys inside `args`, `result` and `x` come out sorted
//! (serde_json's map), as they always have.
//!
//! **Adding an event** touches this file (a variant and, if needed, its payload types), the
//! producer that emits it, and the consumers that count it (the report aggregator); nothing
//! else. Payload fields that old logs may lack are `Option` or `#[serde(default)]`, so an
//! older log still aggregates; a line whose known `cmd` has a payload of the wrong shape is
//! counted by name but not analysed.

use super::LineEvent;
use super::read::Record;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One telemetry event: its name (`cmd`) and typed `args` / `result` / `x`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd")]
pub enum Event {
    /// One per `ast symbols` command (whole-command outcome and timing).
    #[serde(rename = "ast.symbols")]
    Symbols {
        /// What was asked.
        #[serde(default)]
        args: UriArgs,
        /// Outcome.
        result: CommandResult,
        /// Module detail (and per-phase timings at `full`).
        #[serde(default)]
        x: SymbolsDetail,
    },
    /// One per `ast index` run.
    #[serde(rename = "ast.index")]
    Index {
        /// Totals of the run.
        result: IndexResult,
    },
    /// A store lookup that found a valid entry.
    #[serde(rename = "ast.cache.hit")]
    CacheHit {
        /// The key looked up.
        #[serde(default)]
        args: KeyArgs,
        /// `{"status":"hit"}`, and the level that answered when a remote is configured.
        result: HitResult,
        /// Local and remote latency (`full`, lookups that went to the remote).
        #[serde(default)]
        x: LookupDetail,
    },
    /// A store lookup that found no usable entry.
    #[serde(rename = "ast.cache.miss")]
    CacheMiss {
        /// The key looked up.
        #[serde(default)]
        args: KeyArgs,
        /// Why it missed.
        result: MissResult,
        /// Local and remote latency (`full`, lookups that went to the remote).
        #[serde(default)]
        x: LookupDetail,
    },
    /// A value in the remote (Redis) tier failed its checks; it was not served.
    #[serde(rename = "ast.cache.remote_corrupt")]
    RemoteCorrupt {
        /// The key looked up.
        #[serde(default)]
        args: KeyArgs,
        /// What was wrong, and what happens to it.
        result: RemoteCorruptResult,
    },
    /// The remote tier failed; this process uses the local cache only from now on.
    #[serde(rename = "ast.cache.remote_unavailable")]
    RemoteUnavailable {
        /// What was being done.
        #[serde(default)]
        args: RemoteArgs,
        /// Timeout or error.
        result: RemoteUnavailableResult,
    },
    /// One entry written (or skipped, with the reason).
    #[serde(rename = "ast.cache.write")]
    CacheWrite {
        /// The key written.
        #[serde(default)]
        args: KeyArgs,
        /// Stored or skipped.
        result: WriteResult,
        /// Extraction time and batch detail.
        #[serde(default)]
        x: WriteDetail,
    },
    /// The cache could not be used; the module was served uncached.
    #[serde(rename = "ast.cache.fallback")]
    Fallback {
        /// Why.
        result: FallbackResult,
    },
    /// A bounded wait for the cache lock ran out.
    #[serde(rename = "ast.cache.lock_timeout")]
    LockTimeout {
        /// Which lock mode was wanted.
        #[serde(default)]
        args: LockArgs,
        /// How long was waited.
        result: LockTimeoutResult,
    },
    /// Damage found in the database, and what was done.
    #[serde(rename = "ast.cache.corruption_detected")]
    CorruptionDetected {
        /// Kind of damage and action.
        result: CorruptionResult,
    },
    /// The database has a schema this build does not support; it is left untouched.
    #[serde(rename = "ast.cache.schema_incompatible")]
    SchemaIncompatible {
        /// Versions found and supported.
        result: SchemaResult,
    },
    /// DB + WAL passed the warning threshold.
    #[serde(rename = "ast.cache.size_warning")]
    SizeWarning {
        /// Sizes and threshold.
        result: SizeResult,
    },
    /// DB + WAL size as the command found it on opening the cache (the two `stat`s the open
    /// already pays for), so the dashboard's size chart has data from ordinary runs.
    #[serde(rename = "ast.cache.size")]
    Size {
        /// Sizes.
        result: SizeObserved,
    },
    /// Entry statistics, recorded by each maintenance pass.
    #[serde(rename = "ast.cache.stats")]
    Stats {
        /// Sizes and entry counts.
        result: StatsResult,
    },
    /// Least-recently-used entries evicted to get under the size limit.
    #[serde(rename = "ast.cache.evicted")]
    Evicted {
        /// How many, how big.
        result: EvictedResult,
    },
    /// Entries removed by the TTL or because their file is gone.
    #[serde(rename = "ast.cache.pruned")]
    Pruned {
        /// How many of each.
        result: PrunedResult,
    },
    /// An administration command on the cache (`ast cache clear|prune|verify|stats --zero`)
    /// and how it ended, so a log explains a sudden run of misses or zeroed counters.
    #[serde(rename = "ast.cache.admin")]
    Admin {
        /// Which command.
        args: AdminArgs,
        /// Outcome.
        result: AdminResult,
    },
    /// A maintenance pass ran (with what it did), or was skipped (with why).
    #[serde(rename = "ast.cache.maintenance")]
    Maintenance {
        /// `ran` plus the pass's report, or the reason it did not run.
        result: MaintenanceResult,
    },
    /// Something planted at one of the tool's own names, and what was done about it.
    #[serde(rename = "ast.fs.incident")]
    FsIncident {
        /// The segment-relative name.
        #[serde(default)]
        args: PathArgs,
        /// What was found and done.
        result: IncidentResult,
    },
    /// A daemon started serving the segment (its events carry its own `daemon_…` run id).
    #[serde(rename = "daemon.start")]
    DaemonStart {
        /// `ok`.
        result: DaemonStatus,
        /// Pid and idle timeout.
        #[serde(default)]
        x: DaemonStartDetail,
    },
    /// A daemon stopped, and why.
    #[serde(rename = "daemon.stop")]
    DaemonStop {
        /// `signal`, `shutdown` or `idle`.
        result: DaemonStopResult,
        /// Requests answered, connections still open when the drain ended.
        #[serde(default)]
        x: DaemonStopDetail,
    },
    /// One request answered by a daemon.
    #[serde(rename = "daemon.request")]
    DaemonRequest {
        /// The method (absent for a request that did not parse).
        #[serde(default)]
        args: DaemonRequestArgs,
        /// `ok`, `error` or `invalid` (with the JSON-RPC code).
        result: DaemonRequestResult,
    },
    /// A daemon refused a connection (another uid, too many connections).
    #[serde(rename = "daemon.refused")]
    DaemonRefused {
        /// `refused` and why.
        result: DaemonReason,
    },
    /// A client answered locally because the daemon failed (refused, timeout, bad reply).
    #[serde(rename = "daemon.fallback")]
    DaemonFallback {
        /// `local` and why.
        result: DaemonReason,
    },
    /// A daemon re-extracted modules that changed on disk.
    #[serde(rename = "daemon.reextract")]
    DaemonReextract {
        /// How many, and how many were already cached.
        result: ReextractResult,
    },
    /// A daemon could not watch its segment (it still answers requests).
    #[serde(rename = "daemon.watch_failed")]
    DaemonWatchFailed {
        /// `unwatched`.
        result: DaemonStatus,
    },
}

impl Event {
    /// The wire event (`cmd`, `args`, `result`, `x` as JSON) with zero timing, no warnings and
    /// no cache type; set those with [`LineEvent::timed`], [`LineEvent::warn`] and
    /// [`LineEvent::cache`].
    pub fn into_line(self) -> LineEvent {
        let mut parts = match serde_json::to_value(&self) {
            Ok(Value::Object(map)) => map,
            // Every variant is a struct of plain fields: serialization cannot fail or produce
            // anything but an object. Keep an honest marker if it ever does.
            _ => return LineEvent::new("telemetry.encode_error"),
        };
        let mut take = |k: &str| match parts.remove(k) {
            Some(v @ Value::Object(_)) => v,
            _ => Value::Object(Default::default()),
        };
        let (args, result, x) = (take("args"), take("result"), take("x"));
        let mut line = LineEvent::new(self.cmd());
        line.args = args;
        line.result = result;
        line.x = x;
        line
    }

    /// The event a read line holds, if its `cmd` is known and its payload has the right shape.
    pub fn from_record(r: &Record) -> Option<Event> {
        let mut obj = serde_json::Map::new();
        obj.insert("cmd".into(), Value::String(r.cmd.clone()));
        obj.insert("args".into(), r.args.clone());
        obj.insert("result".into(), r.result.clone());
        obj.insert("x".into(), r.x.clone());
        serde_json::from_value(Value::Object(obj)).ok()
    }

    /// The `cmd` name this event is written under.
    pub fn cmd(&self) -> &'static str {
        match self {
            Event::Symbols { .. } => "ast.symbols",
            Event::Index { .. } => "ast.index",
            Event::CacheHit { .. } => "ast.cache.hit",
            Event::CacheMiss { .. } => "ast.cache.miss",
            Event::RemoteCorrupt { .. } => "ast.cache.remote_corrupt",
            Event::RemoteUnavailable { .. } => "ast.cache.remote_unavailable",
            Event::CacheWrite { .. } => "ast.cache.write",
            Event::Fallback { .. } => "ast.cache.fallback",
            Event::LockTimeout { .. } => "ast.cache.lock_timeout",
            Event::CorruptionDetected { .. } => "ast.cache.corruption_detected",
            Event::SchemaIncompatible { .. } => "ast.cache.schema_incompatible",
            Event::SizeWarning { .. } => "ast.cache.size_warning",
            Event::Size { .. } => "ast.cache.size",
            Event::Stats { .. } => "ast.cache.stats",
            Event::Evicted { .. } => "ast.cache.evicted",
            Event::Pruned { .. } => "ast.cache.pruned",
            Event::Maintenance { .. } => "ast.cache.maintenance",
            Event::Admin { .. } => "ast.cache.admin",
            Event::FsIncident { .. } => "ast.fs.incident",
            Event::DaemonStart { .. } => "daemon.start",
            Event::DaemonStop { .. } => "daemon.stop",
            Event::DaemonRequest { .. } => "daemon.request",
            Event::DaemonRefused { .. } => "daemon.refused",
            Event::DaemonFallback { .. } => "daemon.fallback",
            Event::DaemonReextract { .. } => "daemon.reextract",
            Event::DaemonWatchFailed { .. } => "daemon.watch_failed",
        }
    }

    /// True for the events the dashboard lists as incidents (something went wrong with the
    /// cache and was handled).
    pub fn is_incident(&self) -> bool {
        matches!(
            self,
            Event::LockTimeout { .. }
                | Event::CorruptionDetected { .. }
                | Event::Fallback { .. }
                | Event::SchemaIncompatible { .. }
                | Event::SizeWarning { .. }
                | Event::DaemonRefused { .. }
                | Event::DaemonFallback { .. }
                | Event::DaemonWatchFailed { .. }
        )
    }
}

/// `args` of `ast.symbols`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UriArgs {
    /// The requested `sym://` URI (absent when the command failed before parsing it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

/// `result` of a command event (`ast.symbols`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CommandResult {
    /// `ok` or `error`.
    pub status: String,
    /// The stable error code when `status` is `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// `hit` or `miss`, when the cache was consulted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_status: Option<String>,
    /// Why it missed (`cache_hit` on a hit), when the cache was consulted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub miss_reason: Option<String>,
}

/// `x` of `ast.symbols`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SymbolsDetail {
    /// Segment-relative file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Symbols returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbols_count: Option<u64>,
    /// The cache key used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<String>,
    /// Syntax errors recovered from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syntax_errors: Option<u64>,
    /// Per-phase milliseconds (`full` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phases: Option<Phases>,
    /// Symbol counts by kind (`full` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbols_by_kind: Option<SymbolsByKind>,
}

/// Where one `ast symbols` spent its time, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Phases {
    /// URI to file.
    pub resolve_ms: f64,
    /// Reading the source.
    pub read_ms: f64,
    /// Cache lookup, and extraction plus store on a miss.
    pub cache_ms: f64,
    /// Selecting the requested symbols.
    pub select_ms: f64,
}

/// Top-level functions (sync/async), classes and, recursively, class members.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SymbolsByKind {
    /// Top-level `def`.
    pub function: u64,
    /// Top-level `async def`.
    pub async_function: u64,
    /// Top-level classes.
    pub class: u64,
    /// Members of classes, at any depth.
    pub member: u64,
}

/// `result` of `ast.index`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IndexResult {
    /// `ok`, or `error` for a run that failed before indexing (then the counts are 0).
    pub status: String,
    /// The stable error code when `status` is `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Modules visited.
    pub files: u64,
    /// Cache hits.
    pub hits: u64,
    /// Cache misses (extracted).
    pub misses: u64,
    /// Modules that could not be read.
    pub errors: u64,
    /// Source bytes read.
    pub bytes: u64,
    /// Worker threads.
    pub jobs: u64,
}

/// `args` of the per-lookup cache events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KeyArgs {
    /// The cache key (content hash and extractor tag; no path).
    #[serde(default)]
    pub cache_key: String,
}

/// `result` of `daemon.start` and `daemon.watch_failed`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DaemonStatus {
    /// `ok` or `unwatched`.
    pub status: String,
}

/// `x` of `daemon.start`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DaemonStartDetail {
    /// The daemon's pid.
    pub pid: u32,
    /// Its idle timeout, seconds.
    pub idle_s: u64,
}

/// `result` of `daemon.stop`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DaemonStopResult {
    /// `ok`.
    pub status: String,
    /// `signal`, `shutdown` or `idle`.
    pub stopped_by: String,
}

/// `x` of `daemon.stop`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DaemonStopDetail {
    /// Requests answered over the daemon's life.
    pub requests: u64,
    /// Connections still open when the drain ended (0 after a clean drain).
    pub unfinished: u64,
}

/// `args` of `daemon.request`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DaemonRequestArgs {
    /// The JSON-RPC method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
}

/// `result` of `daemon.request`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DaemonRequestResult {
    /// `ok`, `error` (the command failed) or `invalid` (not a valid request).
    pub status: String,
    /// The JSON-RPC error code of an invalid request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
}

/// `result` of `daemon.refused` and `daemon.fallback`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DaemonReason {
    /// `refused` or `local`.
    pub status: String,
    /// Why (`peer_uid`, `busy`; `refused`, `timeout`, `bad_reply`, `io`).
    pub reason: String,
}

/// `result` of `daemon.reextract`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReextractResult {
    /// `ok`.
    pub status: String,
    /// Modules re-extracted (or found current) in this batch.
    pub modules: u64,
    /// Of those, already cached under their current content.
    pub already_cached: u64,
}

/// `result` of `ast.cache.hit`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HitResult {
    /// `hit`.
    pub status: String,
    /// `local` or `remote`: which cache level answered (`memory`: the daemon's in-memory tier
    /// in front of the local store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_level: Option<String>,
}

/// `x` of `ast.cache.hit` / `ast.cache.miss` (`full` level, lookups that went to the remote).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LookupDetail {
    /// The local store's part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_ms: Option<f64>,
    /// This lookup's share of the remote round trip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_ms: Option<f64>,
}

/// `args` of `ast.cache.remote_unavailable`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RemoteArgs {
    /// `lookup` or `write`.
    #[serde(default)]
    pub during: String,
}

/// `result` of `ast.cache.remote_corrupt`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RemoteCorruptResult {
    /// `miss`: the value was not served.
    pub status: String,
    /// `truncated`, `checksum_mismatch`, `foreign_format`, `other_extractor`, `key_mismatch`, ….
    pub damage: String,
    /// `overwrite` (rewritten after extraction) or `ignored_read_only`.
    pub action: String,
}

/// `result` of `ast.cache.remote_unavailable`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RemoteUnavailableResult {
    /// `local_only`: the rest of the process runs on the local cache.
    pub status: String,
    /// `timeout` or `error`.
    pub failure: String,
}

/// `result` of `ast.cache.miss`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MissResult {
    /// `miss`.
    pub status: String,
    /// Why (`key_miss`, `checksum_mismatch`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub miss_reason: Option<String>,
}

/// `result` of `ast.cache.write`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WriteResult {
    /// `ok` (stored) or `skipped`.
    pub status: String,
    /// Why it was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Symbols in the entry.
    #[serde(default)]
    pub symbols_count: u64,
}

/// `x` of `ast.cache.write`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WriteDetail {
    /// Time the extraction took.
    #[serde(default)]
    pub extract_ms: f64,
    /// Entries written in the same transaction (batches only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u64>,
    /// The whole transaction's time (batches only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_ms: Option<f64>,
    /// With a remote configured: `stored`, `read_only` or `unavailable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

/// `result` of `ast.cache.fallback`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FallbackResult {
    /// `uncached`: the module was served without the cache.
    #[serde(default)]
    pub status: String,
    /// Why the cache could not be used.
    #[serde(default)]
    pub reason: String,
}

/// `args` of `ast.cache.lock_timeout`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LockArgs {
    /// `shared` or `exclusive`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

/// `result` of `ast.cache.lock_timeout`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LockTimeoutResult {
    /// How long was waited.
    #[serde(default)]
    pub waited_ms: u64,
    /// The configured bound.
    #[serde(default)]
    pub timeout_ms: u64,
}

/// `result` of `ast.cache.corruption_detected`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CorruptionResult {
    /// Kind of damage.
    #[serde(default)]
    pub kind: String,
    /// Where the damaged file was moved, relative to the cache directory (`null` if not).
    #[serde(default)]
    pub quarantined_to: Option<String>,
    /// What was done.
    #[serde(default)]
    pub action: String,
}

/// `result` of `ast.cache.schema_incompatible`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SchemaResult {
    /// Schema version found in the database.
    pub found: i64,
    /// Newest version this build supports.
    pub supported: i64,
    /// What was done (`uncached_db_untouched`).
    pub action: String,
}

/// `result` of `ast.cache.size_warning`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SizeResult {
    /// Main file bytes.
    pub db_bytes: u64,
    /// WAL bytes.
    #[serde(default)]
    pub wal_bytes: u64,
    /// The warning threshold.
    #[serde(default)]
    pub threshold_bytes: u64,
}

/// `result` of `ast.cache.size`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SizeObserved {
    /// Main file bytes.
    pub db_bytes: u64,
    /// WAL bytes.
    #[serde(default)]
    pub wal_bytes: u64,
}

/// `result` of `ast.cache.stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsResult {
    /// Rows.
    #[serde(default)]
    pub entries: u64,
    /// Sum of payload sizes.
    #[serde(default)]
    pub payload_bytes: u64,
    /// Main file bytes.
    pub db_bytes: u64,
    /// WAL bytes.
    #[serde(default)]
    pub wal_bytes: u64,
    /// Oldest `last_access_ms` (`null` when empty).
    #[serde(default)]
    pub oldest_access_ms: Option<i64>,
    /// Newest `last_access_ms` (`null` when empty).
    #[serde(default)]
    pub newest_access_ms: Option<i64>,
}

/// `result` of `ast.cache.evicted`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EvictedResult {
    /// Entries evicted.
    #[serde(default)]
    pub count: u64,
    /// Payload bytes freed.
    #[serde(default)]
    pub bytes: u64,
}

/// `args` of `ast.cache.admin`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdminArgs {
    /// `clear`, `prune`, `verify` or `zero` (`ast cache stats --zero`).
    pub action: String,
}

/// `result` of `ast.cache.admin`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdminResult {
    /// `ok` or `error`.
    pub status: String,
    /// The stable error code when it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// `clear`: whether a database existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub existed: Option<bool>,
    /// `clear`: the entries it held (when readable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed_entries: Option<u64>,
}

/// `result` of `ast.cache.pruned`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PrunedResult {
    /// Entries past the TTL.
    #[serde(default)]
    pub expired: u64,
    /// Entries whose file is gone.
    #[serde(default)]
    pub deleted_files: u64,
}

/// What a maintenance pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
// No container `default`: the flattened `Option<MaintenancePass>` must read as `None` when the
// pass's fields are absent (a skipped run), not as a pass that did nothing.
pub struct MaintenancePass {
    /// Rows not used within the TTL, removed.
    pub expired: u64,
    /// Rows whose source file no longer exists in the segment, removed.
    pub deleted_files: u64,
    /// Rows evicted (least recently used first) to get under the size limit.
    pub evicted: u64,
    /// Payload bytes those evictions freed.
    pub evicted_bytes: u64,
    /// Counter records folded from the counters file.
    pub counters_folded: i64,
    /// Main file size before the pass.
    pub db_bytes_before: u64,
    /// Main file size after the pass (space given back by incremental vacuum).
    pub db_bytes_after: u64,
}

/// `result` of `ast.cache.maintenance`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MaintenanceResult {
    /// Whether a pass ran.
    #[serde(default)]
    pub ran: bool,
    /// Why it did not (`lock_busy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What the pass did, when it ran.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub pass: Option<MaintenancePass>,
}

/// `args` of `ast.fs.incident`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PathArgs {
    /// Segment-relative name where something was planted.
    #[serde(default)]
    pub path: String,
}

/// `result` of `ast.fs.incident`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IncidentResult {
    /// What was found (`symlink`, `fifo`, …).
    #[serde(default)]
    pub found: String,
    /// What was done.
    #[serde(default)]
    pub action: String,
    /// Where it was moved, if it was.
    #[serde(default)]
    pub moved_to: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::encode_line;
    use crate::telemetry::read::parse_line;
    use crate::telemetry::redact::Redactor;

    /// One event of every variant, with every optional field set.
    fn one_of_each() -> Vec<Event> {
        let key = || KeyArgs {
            cache_key: "rp0-x4:ab12".into(),
        };
        vec![
            Event::Symbols {
                args: UriArgs {
                    uri: Some("sym://python/mod/pkg.a".into()),
                },
                result: CommandResult {
                    status: "error".into(),
                    error_code: Some("SYMBOL_NOT_FOUND".into()),
                    cache_status: Some("hit".into()),
                    miss_reason: Some("cache_hit".into()),
                },
                x: SymbolsDetail {
                    file: Some("pkg/a.py".into()),
                    symbols_count: Some(3),
                    cache_key: Some("k".into()),
                    syntax_errors: Some(0),
                    phases: Some(Phases {
                        resolve_ms: 0.1,
                        read_ms: 0.2,
                        cache_ms: 0.3,
                        select_ms: 0.4,
                    }),
                    symbols_by_kind: Some(SymbolsByKind {
                        function: 1,
                        async_function: 0,
                        class: 1,
                        member: 2,
                    }),
                },
            },
            Event::Index {
                result: IndexResult {
                    status: "ok".into(),
                    error_code: None,
                    files: 9,
                    hits: 4,
                    misses: 5,
                    errors: 0,
                    bytes: 1000,
                    jobs: 2,
                },
            },
            Event::CacheHit {
                args: key(),
                result: HitResult {
                    status: "hit".into(),
                    cache_level: Some("remote".into()),
                },
                x: LookupDetail {
                    local_ms: Some(0.1),
                    remote_ms: Some(0.4),
                },
            },
            Event::CacheMiss {
                args: key(),
                result: MissResult {
                    status: "miss".into(),
                    miss_reason: Some("key_miss".into()),
                },
                x: LookupDetail::default(),
            },
            Event::CacheWrite {
                args: key(),
                result: WriteResult {
                    status: "skipped".into(),
                    reason: Some("store_disabled".into()),
                    symbols_count: 7,
                },
                x: WriteDetail {
                    extract_ms: 1.5,
                    batch: Some(2),
                    batch_ms: Some(3.25),
                    remote: Some("stored".into()),
                },
            },
            Event::Fallback {
                result: FallbackResult {
                    status: "uncached".into(),
                    reason: "cache_unavailable".into(),
                },
            },
            Event::LockTimeout {
                args: LockArgs {
                    mode: Some("exclusive".into()),
                },
                result: LockTimeoutResult {
                    waited_ms: 5000,
                    timeout_ms: 5000,
                },
            },
            Event::CorruptionDetected {
                result: CorruptionResult {
                    kind: "integrity_check".into(),
                    quarantined_to: Some("quarantine/x.db".into()),
                    action: "rebuilt".into(),
                },
            },
            Event::SchemaIncompatible {
                result: SchemaResult {
                    found: 9,
                    supported: 2,
                    action: "uncached_db_untouched".into(),
                },
            },
            Event::SizeWarning {
                result: SizeResult {
                    db_bytes: 10,
                    wal_bytes: 2,
                    threshold_bytes: 8,
                },
            },
            Event::Size {
                result: SizeObserved {
                    db_bytes: 8192,
                    wal_bytes: 4120,
                },
            },
            Event::Stats {
                result: StatsResult {
                    entries: 3,
                    payload_bytes: 300,
                    db_bytes: 4096,
                    wal_bytes: 0,
                    oldest_access_ms: Some(1),
                    newest_access_ms: None,
                },
            },
            Event::Evicted {
                result: EvictedResult {
                    count: 2,
                    bytes: 200,
                },
            },
            Event::Pruned {
                result: PrunedResult {
                    expired: 1,
                    deleted_files: 2,
                },
            },
            Event::Admin {
                args: AdminArgs {
                    action: "clear".into(),
                },
                result: AdminResult {
                    status: "ok".into(),
                    error_code: None,
                    existed: Some(true),
                    removed_entries: Some(3),
                },
            },
            Event::Maintenance {
                result: MaintenanceResult {
                    ran: true,
                    reason: None,
                    pass: Some(MaintenancePass {
                        expired: 1,
                        ..MaintenancePass::default()
                    }),
                },
            },
            Event::Maintenance {
                result: MaintenanceResult {
                    ran: false,
                    reason: Some("lock_busy".into()),
                    pass: None,
                },
            },
            Event::RemoteCorrupt {
                args: key(),
                result: RemoteCorruptResult {
                    status: "miss".into(),
                    damage: "truncated".into(),
                    action: "overwrite".into(),
                },
            },
            Event::RemoteUnavailable {
                args: RemoteArgs {
                    during: "lookup".into(),
                },
                result: RemoteUnavailableResult {
                    status: "local_only".into(),
                    failure: "timeout".into(),
                },
            },
            Event::FsIncident {
                args: PathArgs {
                    path: "_ctx/telemetry/events.jsonl".into(),
                },
                result: IncidentResult {
                    found: "symlink".into(),
                    action: "moved_aside".into(),
                    moved_to: Some("_ctx/telemetry/events.jsonl.planted".into()),
                },
            },
            Event::DaemonStart {
                result: DaemonStatus {
                    status: "ok".into(),
                },
                x: DaemonStartDetail {
                    pid: 42,
                    idle_s: 600,
                },
            },
            Event::DaemonStop {
                result: DaemonStopResult {
                    status: "ok".into(),
                    stopped_by: "idle".into(),
                },
                x: DaemonStopDetail {
                    requests: 3,
                    unfinished: 0,
                },
            },
            Event::DaemonRequest {
                args: DaemonRequestArgs {
                    method: Some("ast.symbols".into()),
                },
                result: DaemonRequestResult {
                    status: "invalid".into(),
                    code: Some(-32700),
                },
            },
            Event::DaemonRefused {
                result: DaemonReason {
                    status: "refused".into(),
                    reason: "peer_uid".into(),
                },
            },
            Event::DaemonFallback {
                result: DaemonReason {
                    status: "local".into(),
                    reason: "timeout".into(),
                },
            },
            Event::DaemonReextract {
                result: ReextractResult {
                    status: "ok".into(),
                    modules: 2,
                    already_cached: 1,
                },
            },
            Event::DaemonWatchFailed {
                result: DaemonStatus {
                    status: "unwatched".into(),
                },
            },
        ]
    }

    /// A variant number per variant, with no wildcard: adding a variant without adding it to
    /// [`one_of_each`] stops this from compiling, then fails the coverage assertion.
    fn variant_no(e: &Event) -> usize {
        match e {
            Event::Symbols { .. } => 0,
            Event::Index { .. } => 1,
            Event::CacheHit { .. } => 2,
            Event::CacheMiss { .. } => 3,
            Event::CacheWrite { .. } => 4,
            Event::Fallback { .. } => 5,
            Event::LockTimeout { .. } => 6,
            Event::CorruptionDetected { .. } => 7,
            Event::SchemaIncompatible { .. } => 8,
            Event::SizeWarning { .. } => 9,
            Event::Size { .. } => 10,
            Event::Stats { .. } => 11,
            Event::Evicted { .. } => 12,
            Event::Pruned { .. } => 13,
            Event::Maintenance { .. } => 14,
            Event::FsIncident { .. } => 15,
            Event::RemoteCorrupt { .. } => 16,
            Event::RemoteUnavailable { .. } => 17,
            Event::DaemonStart { .. } => 18,
            Event::DaemonStop { .. } => 19,
            Event::DaemonRequest { .. } => 20,
            Event::DaemonRefused { .. } => 21,
            Event::DaemonFallback { .. } => 22,
            Event::DaemonReextract { .. } => 23,
            Event::DaemonWatchFailed { .. } => 24,
            Event::Admin { .. } => 25,
        }
    }

    #[test]
    fn every_event_round_trips_through_the_jsonl_line() {
        let events = one_of_each();
        let mut seen: Vec<usize> = events.iter().map(variant_no).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen, (0..=25).collect::<Vec<_>>(), "one sample per variant");
        let redactor = Redactor::new(None, None, None);
        for ev in events {
            let line = ev.clone().into_line().timed(1.5);
            assert_eq!(line.cmd, ev.cmd(), "cmd() agrees with the serde tag");
            let text = encode_line(
                "2026-11-21T03:34:43.123Z",
                "r",
                "abcd1234",
                &line,
                &redactor,
            );
            let rec = parse_line(text.as_bytes()).unwrap();
            assert_eq!(Event::from_record(&rec).as_ref(), Some(&ev), "{text}");
        }
    }

    #[test]
    fn a_known_name_with_a_payload_of_the_wrong_shape_is_not_analysed() {
        let text = r#"{"ts":"2026-11-21T03:34:43.123Z","run_id":"r","segment_id":"s","cmd":"ast.cache.lock_timeout","args":{"mode":7},"result":{"waited_ms":"long"},"timing_ms":1,"warnings":[],"x":{}}"#;
        let rec = parse_line(text.as_bytes()).unwrap();
        assert_eq!(Event::from_record(&rec), None);
        let unknown = text.replace("ast.cache.lock_timeout", "ast.cache.future_thing");
        assert_eq!(
            Event::from_record(&parse_line(unknown.as_bytes()).unwrap()),
            None
        );
    }

    #[test]
    fn fields_an_older_log_lacks_default_instead_of_dropping_the_event() {
        let text = r#"{"ts":"2026-11-21T03:34:43.123Z","run_id":"r","segment_id":"s","cmd":"ast.cache.fallback","args":{},"result":{"reason":"lock_timeout"},"timing_ms":0,"warnings":[],"x":{}}"#;
        let rec = parse_line(text.as_bytes()).unwrap();
        let Some(Event::Fallback { result }) = Event::from_record(&rec) else {
            panic!("not read as a fallback")
        };
        assert_eq!(
            (result.status.as_str(), result.reason.as_str()),
            ("", "lock_timeout")
        );
    }
}
