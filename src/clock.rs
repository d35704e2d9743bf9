//! Wall-clock time in Unix milliseconds, with a test override.
//!
//! `TRIFECTA_TEST_NOW_MS` (an integer, Unix ms) replaces the clock for TTL and maintenance
//! decisions so tests and gates can age entries without sleeping. It is resolved with the rest
//! of the configuration (`config::Config`) and installed here once per process.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable that overrides the clock (tests and gates only).
pub const TEST_NOW_ENV: &str = "TRIFECTA_TEST_NOW_MS";

static TEST_NOW: OnceLock<Option<i64>> = OnceLock::new();

/// Install the test override (from `config::Config::install`); the first call wins.
pub fn install(test_now_ms: Option<i64>) {
    let _ = TEST_NOW.set(test_now_ms);
}

/// Current time in Unix milliseconds (or the installed test override).
pub fn now_ms() -> i64 {
    match TEST_NOW.get() {
        Some(Some(ms)) => *ms,
        _ => real_now_ms(),
    }
}

/// Current real time in Unix milliseconds, ignoring any override (for telemetry timestamps).
pub fn real_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
