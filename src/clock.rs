//! Wall-clock time in Unix milliseconds, with a test override.
//!
//! `TRIFECTA_TEST_NOW_MS` (an integer, Unix ms) replaces the clock for TTL and maintenance
//! decisions so tests and gates can age entries without sleeping. It is read per call (cheap)
//! so a long-lived process in a test can be moved forward.

use std::time::{SystemTime, UNIX_EPOCH};

/// The environment variable that overrides the clock (tests and gates only).
pub const TEST_NOW_ENV: &str = "TRIFECTA_TEST_NOW_MS";

/// Current time in Unix milliseconds (or the test override).
pub fn now_ms() -> i64 {
    if let Some(v) = std::env::var_os(TEST_NOW_ENV)
        && let Some(ms) = v.to_str().and_then(|s| s.trim().parse::<i64>().ok())
    {
        return ms;
    }
    real_now_ms()
}

/// Current real time in Unix milliseconds, ignoring any override (for telemetry timestamps).
pub fn real_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
