//! The cache's incident events (contracts.md names and fields). Paths in events are always
//! relative to the cache directory; nothing absolute ever leaves through telemetry.

use crate::cache::lock::LockMode;
use crate::telemetry::{Event, Level, Telemetry};
use serde_json::{Value, json};
use std::time::Duration;

fn emit(t: &Telemetry, cmd: &'static str, args: Value, result: Value, timing_ms: f64) {
    let mut ev = Event::new(cmd);
    ev.args = args;
    ev.result = result;
    ev.timing_ms = timing_ms;
    ev.cache_type = Some("sqlite");
    t.event(Level::Lite, ev);
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// `ast.cache.lock_timeout`.
pub fn lock_timeout(t: &Telemetry, mode: LockMode, waited: Duration, timeout: Duration) {
    emit(
        t,
        "ast.cache.lock_timeout",
        json!({"mode": mode.as_str()}),
        json!({"waited_ms": waited.as_millis() as u64, "timeout_ms": timeout.as_millis() as u64}),
        ms(waited),
    );
}

/// `ast.cache.corruption_detected`; `quarantined_to` is relative to the cache directory.
pub fn corruption(t: &Telemetry, kind: &str, quarantined_to: Option<&str>, action: &str) {
    emit(
        t,
        "ast.cache.corruption_detected",
        json!({}),
        json!({"kind": kind, "quarantined_to": quarantined_to, "action": action}),
        0.0,
    );
}

/// `ast.cache.schema_incompatible`.
pub fn schema_incompatible(t: &Telemetry, found: i64, supported: i64) {
    emit(
        t,
        "ast.cache.schema_incompatible",
        json!({}),
        json!({"found": found, "supported": supported, "action": "uncached_db_untouched"}),
        0.0,
    );
}

/// `ast.cache.fallback` (the cache could not be used for another reason).
pub fn fallback(t: &Telemetry, reason: &str, detail: &str) {
    let mut ev = Event::new("ast.cache.fallback");
    ev.result = json!({"reason": reason});
    ev.warnings = vec![detail.to_string()];
    ev.cache_type = Some("sqlite");
    t.event(Level::Lite, ev);
}

/// `ast.cache.size_warning`.
pub fn size_warning(t: &Telemetry, db_bytes: u64, wal_bytes: u64, threshold: u64) {
    emit(
        t,
        "ast.cache.size_warning",
        json!({}),
        json!({"db_bytes": db_bytes, "wal_bytes": wal_bytes, "threshold_bytes": threshold}),
        0.0,
    );
}

/// Any other cache event with a plain result (`ast.cache.stats`, `evicted`, `pruned`,
/// `maintenance`).
pub fn plain(t: &Telemetry, cmd: &'static str, result: Value, took: Duration) {
    emit(t, cmd, json!({}), result, ms(took));
}

/// `ast.fs.incident`: something planted at one of the cache's own names, and what was done.
pub fn incident(t: &Telemetry, i: &crate::segment_fs::Incident) {
    t.event(Level::Lite, crate::telemetry::incident_event(i));
}
