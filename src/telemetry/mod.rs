//! Telemetry: JSONL events under `<segment>/_ctx/telemetry/events.jsonl` (or
//! `$TRIFECTA_TELEMETRY_DIR/events.jsonl`), and the `telemetry report` dashboard over them.
//!
//! **Schema of one line** (keys in this order): `{ts, run_id, segment_id, cmd, args, result,
//! timing_ms, warnings, x, cache_type?}`. `ts` is UTC with milliseconds
//! (`2026-11-21T03:34:43.123Z`), `run_id` is unique per process (`TRIFECTA_RUN_ID` overrides),
//! `segment_id` is 8 hex digits of a hash of the segment root (never the path itself),
//! `timing_ms` a float, `cache_type` (`memory`|`sqlite`) only on cache events.
//!
//! **Levels** (flag `--telemetry` > `TRIFECTA_TELEMETRY` > default `off`):
//! - `off`: nothing is buffered or written, and no directory is created.
//! - `lite`: events emitted at [`Level::Lite`]: one `ast.symbols` per command (outcome, miss
//!   reason, symbol count, whole-command timing), one event per cache lookup (`ast.cache.hit` /
//!   `ast.cache.miss`) and per store (`ast.cache.write`), the DB + WAL size each persistent
//!   open found (`ast.cache.size`), and every incident (`lock_timeout`,
//!   `corruption_detected`, `size_warning`, `schema_incompatible`, `fallback`, `evicted`,
//!   `pruned`, `maintenance`).
//! - `full`: everything in `lite`, plus, on `ast.symbols`, `x.phases` (per-phase
//!   milliseconds: `resolve_ms`, `read_ms`, `cache_ms`, `select_ms`) and `x.symbols_by_kind`
//!   (`function`, `async_function`, `class`, `member`), plus any event a caller records at
//!   [`Level::Full`] (the place for per-run detail too bulky for `lite`, e.g. a stats
//!   snapshot on every run; the cache currently emits `ast.cache.stats` at `lite`, during
//!   maintenance only).
//!
//! **Writing** ([`writer`]): each event is stamped when it is recorded, buffered per process,
//! and appended at [`Telemetry::flush`] (or when the last handle is dropped) as one locked
//! `O_APPEND` write; rotation at `TRIFECTA_TELEMETRY_MAX_MB` (default 10 MiB) keeping
//! `TRIFECTA_TELEMETRY_KEEP` (default 5) files `events.1.jsonl` (newest) … `events.N.jsonl`.
//!
//! **Privacy** ([`redact`]): every string in `args`, `result`, `x` and `warnings` goes through
//! one central redaction pass at flush (segment paths made relative, other absolute paths,
//! home and user name replaced). Callers should not rely on it, but cannot bypass it.
//!
//! **Failure**: telemetry never fails the command. A write error (unwritable or missing
//! directory, full disk, busy lock) drops this run's batch and prints one line on stderr.
//!
//! **Reading** ([`read`], [`report`]): a tolerant streaming reader over the live and rotated
//! files that counts (never drops or rewrites) malformed lines, and the report aggregations and
//! renderers (text, JSON, self-contained HTML).

use serde_json::Value;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub mod event;
pub mod location;
pub mod read;
pub mod redact;
pub mod report;
pub mod writer;

pub use event::Event;
pub use location::Location;
use redact::Redactor;
use writer::Rotation;

/// How much is recorded. Ordered: `Off < Lite < Full`. See the module docs for exactly what
/// each level writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Level {
    /// Nothing is written, no directory is created.
    #[default]
    Off,
    /// One `ast.symbols` per command, one event per lookup (hit/miss) and write, every incident.
    Lite,
    /// Lite plus per-phase timings, per-kind symbol counts and `Full`-level events.
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
    pub dir: Location,
    /// Run id stamped on every event of this process.
    pub run_id: String,
    /// Opaque, path-free identity of the segment.
    pub segment_id: String,
    /// Canonical segment root, used only to make paths in events segment-relative (it is
    /// never written itself).
    pub segment_root: Option<PathBuf>,
    /// When to rotate `events.jsonl` and how many rotated files to keep.
    pub rotation: Rotation,
    /// Problems with telemetry settings, reported on stderr at flush instead of failing the
    /// command.
    pub setting_warnings: Vec<String>,
    /// `$HOME`, redacted from every string written.
    pub home: Option<String>,
    /// The user name, redacted from every string written.
    pub user: Option<String>,
}

/// One event as written, before it is stamped with `ts`, `run_id` and `segment_id`.
///
/// Producers build these from a typed [`Event`] ([`Event::into_line`]) and add the envelope
/// (timing, warnings, cache type); the writer, the redaction pass and tests of the JSONL format
/// work at this level, where any `cmd` is a string.
#[derive(Debug, Clone)]
pub struct LineEvent {
    /// Dotted command name, e.g. `ast.cache.hit`.
    pub cmd: std::borrow::Cow<'static, str>,
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

impl LineEvent {
    /// A line with empty args/result/x and zero timing. Outside the writer's own tests, build
    /// lines from a typed [`Event`] instead.
    pub fn new(cmd: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        LineEvent {
            cmd: cmd.into(),
            args: Value::Object(Default::default()),
            result: Value::Object(Default::default()),
            timing_ms: 0.0,
            warnings: Vec::new(),
            x: Value::Object(Default::default()),
            cache_type: None,
        }
    }

    /// With the measured duration, in milliseconds.
    pub fn timed(mut self, ms: f64) -> Self {
        self.timing_ms = ms;
        self
    }

    /// With one human-readable warning.
    pub fn warn(mut self, w: impl Into<String>) -> Self {
        self.warnings.push(w.into());
        self
    }

    /// With the cache backend (`memory` or `sqlite`) that produced it.
    pub fn cache(mut self, backend: &'static str) -> Self {
        self.cache_type = Some(backend);
        self
    }
}

impl From<Event> for LineEvent {
    fn from(e: Event) -> Self {
        e.into_line()
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
    redactor: Redactor,
    /// Events with the UTC timestamp of the moment they were recorded (not of the flush).
    buffer: Mutex<Vec<(String, LineEvent)>>,
    /// Set once a line went to stderr: a process prints at most one telemetry line, however
    /// often it flushes (setting warnings and write errors share that line).
    warned: AtomicBool,
}

impl Drop for Inner {
    /// Safety net: events recorded on a path that returned early (an error after the cache
    /// lookup, say) are still written when the last handle goes away.
    fn drop(&mut self) {
        let _ = self.flush();
    }
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
        let redactor = Redactor::new(
            settings
                .segment_root
                .as_deref()
                .map(|r| r.to_string_lossy().into_owned()),
            settings.home.clone(),
            settings.user.clone(),
        );
        Telemetry {
            inner: Some(Arc::new(Inner {
                settings,
                redactor,
                buffer: Mutex::new(Vec::new()),
                warned: AtomicBool::new(false),
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

    /// Record `ev` (a typed [`Event`], or a [`LineEvent`] built from one with its timing and
    /// warnings) if the level allows it.
    pub fn event(&self, at: Level, ev: impl Into<LineEvent>) {
        if let Some(inner) = &self.inner
            && self.enabled(at)
            && let Ok(mut b) = inner.buffer.lock()
        {
            b.push((timestamp_now(), ev.into()));
        }
    }

    /// Append buffered events to `events.jsonl` as one locked write, after the central
    /// redaction pass. Never fails the command: an I/O error (read-only or missing directory,
    /// full disk, busy lock) drops this run's events and prints at most one line on stderr.
    pub fn flush(&self) {
        if let Some(inner) = &self.inner {
            let _ = inner.flush();
        }
    }
}

impl Inner {
    /// Write the buffer; returns the stderr line it printed, if any.
    fn flush(&self) -> Option<String> {
        let events = match self.buffer.lock() {
            // The double-flush mutant copies instead of draining: the safety-net flush in
            // `Drop` then writes every event a second time.
            Ok(b) if crate::mutant::active(crate::mutant::Mutant::DoubleFlush) => b.clone(),
            Ok(mut b) => std::mem::take(&mut *b),
            Err(_) => return None,
        };
        let s = &self.settings;
        let mut problems = s.setting_warnings.clone();
        if !events.is_empty() {
            let mut lines = Vec::with_capacity(events.len() * 256);
            for (ts, ev) in &events {
                let line = encode_line(ts, &s.run_id, &s.segment_id, ev, &self.redactor);
                lines.extend_from_slice(line.as_bytes());
                lines.push(b'\n');
            }
            match writer::append_with(&s.dir, &lines, s.rotation) {
                Err(e) => problems.insert(0, format!("{} events not written ({e})", events.len())),
                // Things planted in the telemetry directory were moved aside while writing:
                // record that too (into the directory now in place). Writing those lines can
                // itself rotate and find more planted names (`events.N.jsonl` links), so repeat
                // until a write finds nothing new; bounded, since each round moves entries away.
                Ok(incidents) if !incidents.is_empty() => {
                    let mut pending = incidents;
                    for _ in 0..4 {
                        if pending.is_empty() {
                            break;
                        }
                        let mut more = Vec::new();
                        for i in &pending {
                            let ev = incident_event(i).into_line();
                            let line = encode_line(
                                &timestamp_now(),
                                &s.run_id,
                                &s.segment_id,
                                &ev,
                                &self.redactor,
                            );
                            more.extend_from_slice(line.as_bytes());
                            more.push(b'\n');
                        }
                        match writer::append_with(&s.dir, &more, s.rotation) {
                            Ok(next) => pending = next,
                            Err(_) => break,
                        }
                    }
                }
                Ok(_) => {}
            }
        }
        if problems.is_empty() || self.warned.swap(true, Ordering::Relaxed) {
            return None;
        }
        let line = format!(
            "trifecta: telemetry: {}; the command itself is unaffected",
            problems.join("; ")
        );
        eprintln!("{line}");
        Some(line)
    }
}

/// Serialize one event as a JSONL line (no trailing newline), stamping `ts`, `run_id` and
/// `segment_id`, with every string redacted by `redactor`. This is exactly what
/// [`Telemetry::flush`] writes; [`read::parse_line`] is its inverse.
pub fn encode_line(
    ts: &str,
    run_id: &str,
    segment_id: &str,
    ev: &LineEvent,
    redactor: &Redactor,
) -> String {
    let mut args = ev.args.clone();
    let mut result = ev.result.clone();
    let mut x = ev.x.clone();
    redactor.value(&mut args);
    redactor.value(&mut result);
    redactor.value(&mut x);
    let warnings: Vec<String> = ev.warnings.iter().map(|w| redactor.string(w)).collect();
    let line = Line {
        ts: ts.to_string(),
        run_id,
        segment_id,
        cmd: &ev.cmd,
        args: &args,
        result: &result,
        // JSON has no NaN/inf; a broken measurement is recorded as 0 rather than lost.
        timing_ms: if ev.timing_ms.is_finite() {
            ev.timing_ms
        } else {
            0.0
        },
        warnings: &warnings,
        x: &x,
        cache_type: ev.cache_type,
    };
    // Serializing Values and plain strings cannot fail; keep an honest marker if it ever does.
    serde_json::to_string(&line)
        .unwrap_or_else(|_| format!("{{\"ts\":\"{ts}\",\"cmd\":\"telemetry.encode_error\"}}"))
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
    if crate::mutant::active(crate::mutant::Mutant::LocalTimestamps) {
        return jiff::Zoned::now()
            .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
            .to_string();
    }
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(ts) => format!("{ts:.3}"),
        Err(_) => String::from("1970-01-01T00:00:00.000Z"),
    }
}

/// `ast.fs.incident`: something found at one of the tool's own names that the tool did not put
/// there (a link, a FIFO, a device, a directory for a file), and what was done about it. The
/// paths are relative to the segment (or to `TRIFECTA_TELEMETRY_DIR`).
pub fn incident_event(i: &crate::segment_fs::Incident) -> Event {
    Event::FsIncident {
        args: event::PathArgs {
            path: i.path.clone(),
        },
        result: event::IncidentResult {
            found: i.found.as_str().to_string(),
            action: i.action.to_string(),
            moved_to: i.moved_to.clone(),
        },
    }
}

/// Prefix of a daemon's run id (`daemon_run_…`): how the report tells daemon traffic from CLI.
pub const DAEMON_RUN_PREFIX: &str = "daemon_";

/// Default directory below the segment root.
pub const DEFAULT_DIR: &str = "_ctx/telemetry";

/// Opaque segment identity: the first 8 hex digits of BLAKE3 of the canonical root path. It
/// identifies a checkout in reports without revealing where it lives.
pub fn segment_id(root: &std::path::Path) -> String {
    if crate::mutant::active(crate::mutant::Mutant::SegmentIdPerRun) {
        let mut h = blake3::Hasher::new();
        h.update(root.as_os_str().as_encoded_bytes());
        h.update(&std::process::id().to_le_bytes());
        return h.finalize().to_hex()[..8].to_string();
    }
    let h = blake3::hash(root.as_os_str().as_encoded_bytes());
    h.to_hex()[..8].to_string()
}

/// A run id unique per process: `run_<unix ms>_<pid>_<4 hex of entropy>`.
pub fn run_id() -> String {
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

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: PathBuf, warnings: Vec<String>) -> TelemetrySettings {
        TelemetrySettings {
            level: Level::Lite,
            dir: Location::user(dir),
            run_id: "r".into(),
            segment_id: "0000abcd".into(),
            segment_root: None,
            rotation: Rotation::default(),
            setting_warnings: warnings,
            home: None,
            user: None,
        }
    }

    #[test]
    fn at_most_one_stderr_line_per_process_however_often_it_fails() {
        let d = tempfile::tempdir().unwrap();
        let file = d.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        // The telemetry "directory" is a file: every write fails.
        let t = Telemetry::new(settings(file, vec!["TRIFECTA_TELEMETRY_KEEP bad".into()]));
        let inner = t.inner.as_ref().unwrap();
        t.event(Level::Lite, LineEvent::new("a"));
        let first = inner.flush().expect("the first failure is reported");
        assert!(
            first.contains("1 events not written") && first.contains("KEEP bad"),
            "{first}"
        );
        t.event(Level::Lite, LineEvent::new("b"));
        assert_eq!(inner.flush(), None, "later failures stay quiet");
    }

    #[test]
    fn levels_gate_events_and_off_records_nothing() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("t");
        let lite = Telemetry::new(settings(dir.clone(), vec![]));
        lite.event(Level::Lite, LineEvent::new("kept"));
        lite.event(Level::Full, LineEvent::new("dropped"));
        lite.flush();
        let text = std::fs::read_to_string(dir.join(writer::EVENTS_FILE)).unwrap();
        assert!(
            text.contains("\"kept\"") && !text.contains("dropped"),
            "{text}"
        );
        let mut s = settings(d.path().join("off"), vec![]);
        s.level = Level::Off;
        let off = Telemetry::new(s);
        assert!(!off.enabled(Level::Lite));
        off.event(Level::Lite, LineEvent::new("x"));
        off.flush();
        assert!(!d.path().join("off").exists());
    }

    #[test]
    fn events_are_stamped_when_recorded_and_flushed_on_drop() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("t");
        {
            let t = Telemetry::new(settings(dir.clone(), vec![]));
            t.event(Level::Lite, LineEvent::new("first"));
            std::thread::sleep(std::time::Duration::from_millis(20));
            t.event(Level::Lite, LineEvent::new("second"));
            // No explicit flush: dropping the last handle writes the buffer.
        }
        let text = std::fs::read_to_string(dir.join(writer::EVENTS_FILE)).unwrap();
        let ts: Vec<jiff::Timestamp> = text
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["ts"].as_str().unwrap().parse().unwrap()
            })
            .collect();
        assert_eq!(ts.len(), 2);
        assert!(
            ts[1].as_millisecond() - ts[0].as_millisecond() >= 15,
            "{text}"
        );
    }
}
