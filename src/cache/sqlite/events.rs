//! The SQLite store's incident events, built from the typed [`Event`]s. Paths in events are
//! always relative to the cache directory; nothing absolute ever leaves through telemetry.

use crate::cache::lock::LockMode;
use crate::telemetry::event::{
    CorruptionResult, EvictedResult, FallbackResult, LockArgs, LockTimeoutResult, MaintenancePass,
    MaintenanceResult, PrunedResult, SchemaResult, SizeObserved, SizeResult, StatsResult,
};
use crate::telemetry::{Event, Level, Telemetry};
use std::time::Duration;

/// Record `ev` at `lite`, stamped as a `sqlite` cache event taking `took`.
fn emit(t: &Telemetry, ev: Event, took: Duration) {
    t.event(Level::Lite, ev.into_line().timed(ms(took)).cache("sqlite"));
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// `ast.cache.lock_timeout`.
pub fn lock_timeout(t: &Telemetry, mode: LockMode, waited: Duration, timeout: Duration) {
    let ev = Event::LockTimeout {
        args: LockArgs {
            mode: Some(mode.as_str().to_string()),
        },
        result: LockTimeoutResult {
            waited_ms: waited.as_millis() as u64,
            timeout_ms: timeout.as_millis() as u64,
        },
    };
    emit(t, ev, waited);
}

/// `ast.cache.corruption_detected`; `quarantined_to` is relative to the cache directory.
pub fn corruption(t: &Telemetry, kind: &str, quarantined_to: Option<&str>, action: &str) {
    let result = CorruptionResult {
        kind: kind.to_string(),
        quarantined_to: quarantined_to.map(str::to_string),
        action: action.to_string(),
    };
    emit(t, Event::CorruptionDetected { result }, Duration::ZERO);
}

/// `ast.cache.schema_incompatible`.
pub fn schema_incompatible(t: &Telemetry, found: i64, supported: i64) {
    let result = SchemaResult {
        found,
        supported,
        action: "uncached_db_untouched".to_string(),
    };
    emit(t, Event::SchemaIncompatible { result }, Duration::ZERO);
}

/// `ast.cache.fallback`: the cache could not be used, so the command is served uncached.
pub fn fallback(t: &Telemetry, reason: &str, detail: &str) {
    let result = FallbackResult {
        status: "uncached".to_string(),
        reason: reason.to_string(),
    };
    let line = Event::Fallback { result }.into_line().warn(detail);
    t.event(Level::Lite, line.cache("sqlite"));
}

/// `ast.cache.size_warning`.
pub fn size_warning(t: &Telemetry, db_bytes: u64, wal_bytes: u64, threshold: u64) {
    let result = SizeResult {
        db_bytes,
        wal_bytes,
        threshold_bytes: threshold,
    };
    emit(t, Event::SizeWarning { result }, Duration::ZERO);
}

/// `ast.cache.size`: DB + WAL as this command's open found them (sizes already measured for
/// the warning check, so recording them costs no further system call).
pub fn size(t: &Telemetry, db_bytes: u64, wal_bytes: u64) {
    let result = SizeObserved {
        db_bytes,
        wal_bytes,
    };
    emit(t, Event::Size { result }, Duration::ZERO);
}

/// `ast.cache.stats`, recorded by each maintenance pass.
pub fn stats(t: &Telemetry, result: StatsResult, took: Duration) {
    emit(t, Event::Stats { result }, took);
}

/// `ast.cache.evicted`.
pub fn evicted(t: &Telemetry, count: u64, bytes: u64, took: Duration) {
    let result = EvictedResult { count, bytes };
    emit(t, Event::Evicted { result }, took);
}

/// `ast.cache.pruned`.
pub fn pruned(t: &Telemetry, expired: u64, deleted_files: u64, took: Duration) {
    let result = PrunedResult {
        expired,
        deleted_files,
    };
    emit(t, Event::Pruned { result }, took);
}

/// `ast.cache.maintenance`: the pass that ran, or why none did.
pub fn maintenance(t: &Telemetry, pass: Result<&MaintenancePass, &str>, took: Duration) {
    let result = match pass {
        Ok(p) => MaintenanceResult {
            ran: true,
            reason: None,
            pass: Some(p.clone()),
        },
        Err(why) => MaintenanceResult {
            ran: false,
            reason: Some(why.to_string()),
            pass: None,
        },
    };
    emit(t, Event::Maintenance { result }, took);
}

/// `ast.fs.incident`: something planted at one of the cache's own names, and what was done.
pub fn incident(t: &Telemetry, i: &crate::segment_fs::Incident) {
    t.event(Level::Lite, crate::telemetry::incident_event(i));
}
