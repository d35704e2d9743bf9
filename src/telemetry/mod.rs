//! Telemetry: JSONL events under `<segment>/_ctx/telemetry/events.jsonl`. PLACEHOLDER API:
//! the writer, rotation and the report dashboard are being implemented.
//!
//! Schema of one line: `{ts, run_id, segment_id, cmd, args, result, timing_ms, warnings, x,
//! cache_type}`. No absolute path, user name or source text ever goes into an event.

use serde_json::Value;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub mod writer;

/// How much is recorded. Ordered: `Off < Lite < Full`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Nothing is written.
    Off,
    /// One event per lookup (hit/miss/write) plus every incident.
    Lite,
    /// Lite plus per-phase timings and a stats snapshot on every run.
    Full,
}

impl Level {
    /// `off`, `lite` or `full`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Off => "off",
            Level::Lite => "lite",
            Level::Full => "full",
        }
    }
}

/// Where and how to write.
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// Recording level.
    pub level: Level,
    /// Directory holding `events.jsonl` and its rotated siblings.
    pub dir: PathBuf,
    /// Run id stamped on every event of this process.
    pub run_id: String,
    /// Opaque, path-free identity of the segment.
    pub segment_id: String,
}

/// One event before it is stamped with `ts`, `run_id` and `segment_id`.
#[derive(Debug, Clone)]
pub struct Event {
    /// Dotted command name, e.g. `ast.cache.hit`.
    pub cmd: &'static str,
    /// Inputs (never absolute paths).
    pub args: Value,
    /// Outcome.
    pub result: Value,
    /// Duration of the measured operation in milliseconds.
    pub timing_ms: f64,
    /// Human-readable warnings.
    pub warnings: Vec<String>,
    /// Extra detail.
    pub x: Value,
    /// `memory` or `sqlite` for cache events.
    pub cache_type: Option<&'static str>,
}

impl Event {
    /// An event with empty args/result/x and zero timing.
    pub fn new(cmd: &'static str) -> Self {
        Event {
            cmd,
            args: Value::Object(Default::default()),
            result: Value::Object(Default::default()),
            timing_ms: 0.0,
            warnings: Vec::new(),
            x: Value::Object(Default::default()),
            cache_type: None,
        }
    }
}

/// A cheap, clonable handle. Events are buffered and appended by [`Telemetry::flush`].
#[derive(Debug, Clone, Default)]
pub struct Telemetry {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    settings: TelemetrySettings,
    buffer: Mutex<Vec<Event>>,
}

impl Telemetry {
    /// A handle that records nothing.
    pub fn disabled() -> Self {
        Telemetry { inner: None }
    }

    /// A handle writing per `settings` (disabled when the level is `Off`).
    pub fn new(settings: TelemetrySettings) -> Self {
        if settings.level == Level::Off {
            return Telemetry::disabled();
        }
        Telemetry {
            inner: Some(Arc::new(Inner {
                settings,
                buffer: Mutex::new(Vec::new()),
            })),
        }
    }

    /// The active level.
    pub fn level(&self) -> Level {
        self.inner
            .as_ref()
            .map(|i| i.settings.level)
            .unwrap_or(Level::Off)
    }

    /// True when events of level `at` are recorded.
    pub fn enabled(&self, at: Level) -> bool {
        at != Level::Off && self.level() >= at
    }

    /// Record `ev` if the level allows it.
    pub fn event(&self, at: Level, ev: Event) {
        if let Some(inner) = &self.inner
            && self.enabled(at)
            && let Ok(mut b) = inner.buffer.lock()
        {
            b.push(ev);
        }
    }

    /// Append buffered events to `events.jsonl` as one locked write. Never fails the command:
    /// an I/O error (read-only directory, full disk) drops this run's events and reports it on
    /// stderr only.
    pub fn flush(&self) {
        let Some(inner) = &self.inner else { return };
        let events = match inner.buffer.lock() {
            Ok(mut b) => std::mem::take(&mut *b),
            Err(_) => return,
        };
        if events.is_empty() {
            return;
        }
        let mut lines = Vec::with_capacity(events.len() * 256);
        for ev in &events {
            let line = Line {
                ts: timestamp_now(),
                run_id: &inner.settings.run_id,
                segment_id: &inner.settings.segment_id,
                cmd: ev.cmd,
                args: &ev.args,
                result: &ev.result,
                timing_ms: ev.timing_ms,
                warnings: &ev.warnings,
                x: &ev.x,
                cache_type: ev.cache_type,
            };
            if serde_json::to_writer(&mut lines, &line).is_ok() {
                lines.push(b'\n');
            }
        }
        if let Err(e) = writer::append(&inner.settings.dir, &lines) {
            eprintln!("trifecta: telemetry not written ({e}); the command itself is unaffected");
        }
    }
}

/// The serialized shape of one event line (key order is the schema order).
#[derive(serde::Serialize)]
struct Line<'a> {
    ts: String,
    run_id: &'a str,
    segment_id: &'a str,
    cmd: &'a str,
    args: &'a Value,
    result: &'a Value,
    timing_ms: f64,
    warnings: &'a [String],
    x: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_type: Option<&'a str>,
}

/// UTC now with milliseconds, e.g. `2026-11-21T03:34:43.123Z`.
pub fn timestamp_now() -> String {
    let ms = crate::clock::real_now_ms();
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => format!("{ts:.3}"),
        Err(_) => String::from("1970-01-01T00:00:00.000Z"),
    }
}

/// Default directory below the segment root.
pub const DEFAULT_DIR: &str = "_ctx/telemetry";

/// Opaque segment identity: the first 8 hex digits of BLAKE3 of the canonical root path. It
/// identifies a checkout in reports without revealing where it lives.
pub fn segment_id(root: &std::path::Path) -> String {
    let h = blake3::hash(root.as_os_str().as_encoded_bytes());
    h.to_hex()[..8].to_string()
}

/// A run id unique per process: `run_<unix ms>_<pid>_<4 hex of entropy>`, or `TRIFECTA_RUN_ID`.
pub fn run_id() -> String {
    if let Some(id) = crate::config::env_str(crate::config::ENV_RUN_ID) {
        return id;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut h = blake3::Hasher::new();
    h.update(&now.as_nanos().to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    format!(
        "run_{}_{}_{}",
        now.as_millis(),
        std::process::id(),
        &h.finalize().to_hex()[..4]
    )
}

impl TelemetrySettings {
    /// Settings for a command on `root`: `TRIFECTA_TELEMETRY_DIR` or `<root>/_ctx/telemetry`.
    pub fn for_segment(level: Level, root: &std::path::Path) -> Self {
        let dir = match crate::config::env_str(crate::config::ENV_TELEMETRY_DIR) {
            Some(d) => PathBuf::from(d),
            None => root.join(DEFAULT_DIR),
        };
        TelemetrySettings {
            level,
            dir,
            run_id: run_id(),
            segment_id: segment_id(root),
        }
    }
}
