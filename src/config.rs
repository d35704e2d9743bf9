//! Resolved settings: command-line flag > environment variable > default. Every value is
//! validated here, once, so the rest of the crate works with typed settings. A malformed
//! environment value is an `INVALID_ARGUMENT` error, never silently ignored.

use crate::error::{CliError, ErrorCode};
use crate::telemetry::Level;
use std::time::Duration;

/// `1|true|yes|on` enables persistence; `0|false|no|off|""` disables it.
pub const ENV_PERSIST: &str = "TRIFECTA_AST_PERSIST";
/// Lock wait bound in milliseconds (default 5000).
pub const ENV_LOCK_TIMEOUT_MS: &str = "TRIFECTA_AST_LOCK_TIMEOUT_MS";
/// Size warning threshold in MB, DB + WAL (default 500; decimals allowed for tests).
pub const ENV_SIZE_WARN_MB: &str = "TRIFECTA_AST_SIZE_WARN_MB";
/// Maximum cache size in MB before LRU eviction (default 1024; decimals allowed).
pub const ENV_MAX_MB: &str = "TRIFECTA_AST_MAX_MB";
/// Days an entry may go unused before it is pruned (default 7).
pub const ENV_TTL_DAYS: &str = "TRIFECTA_AST_TTL_DAYS";
/// Seconds between automatic maintenance passes (default 3600).
pub const ENV_MAINTENANCE_S: &str = "TRIFECTA_AST_MAINTENANCE_INTERVAL_S";
/// Telemetry level `off|lite|full` (default `off`).
pub const ENV_TELEMETRY: &str = "TRIFECTA_TELEMETRY";
/// Telemetry directory override (default `<segment>/_ctx/telemetry`).
pub const ENV_TELEMETRY_DIR: &str = "TRIFECTA_TELEMETRY_DIR";
/// Fixed run id for every event of this process (default: unique per process).
pub const ENV_RUN_ID: &str = "TRIFECTA_RUN_ID";

/// Everything the cache needs to know, resolved and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    /// Use the SQLite backend (else in-memory).
    pub persist: bool,
    /// Bound on every lock wait.
    pub lock_timeout: Duration,
    /// DB + WAL size above which `ast.cache.size_warning` is emitted.
    pub size_warn_bytes: u64,
    /// Size above which LRU eviction runs down to [`CacheSettings::low_water_bytes`].
    pub max_bytes: u64,
    /// Entries not used for this long are pruned.
    pub ttl: Duration,
    /// Minimum time between automatic maintenance passes.
    pub maintenance_interval: Duration,
    /// Quarantined databases kept (newest first); older ones are deleted.
    pub quarantine_keep: usize,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            persist: false,
            lock_timeout: Duration::from_millis(5000),
            size_warn_bytes: 500 * 1024 * 1024,
            max_bytes: 1024 * 1024 * 1024,
            ttl: Duration::from_secs(7 * 24 * 3600),
            maintenance_interval: Duration::from_secs(3600),
            quarantine_keep: 3,
        }
    }
}

impl CacheSettings {
    /// Eviction target: 80% of the maximum size.
    pub fn low_water_bytes(&self) -> u64 {
        self.max_bytes / 10 * 8
    }

    /// Resolve from the environment; `persist_flag` is the command line's say
    /// (`Some(true)` for `--persist-cache`, `Some(false)` for `--no-persist-cache`).
    pub fn from_env(persist_flag: Option<bool>) -> Result<Self, CliError> {
        let d = CacheSettings::default();
        let persist = match persist_flag {
            Some(p) => p,
            None => env_bool(ENV_PERSIST)?.unwrap_or(d.persist),
        };
        Ok(CacheSettings {
            persist,
            lock_timeout: env_u64(ENV_LOCK_TIMEOUT_MS, MAX_LOCK_TIMEOUT_MS)?
                .map(Duration::from_millis)
                .unwrap_or(d.lock_timeout),
            size_warn_bytes: env_mb(ENV_SIZE_WARN_MB)?.unwrap_or(d.size_warn_bytes),
            max_bytes: env_mb(ENV_MAX_MB)?.unwrap_or(d.max_bytes),
            ttl: env_f64(ENV_TTL_DAYS, MAX_TTL_DAYS)?
                .map(|days| Duration::from_secs_f64(days * 86400.0))
                .unwrap_or(d.ttl),
            maintenance_interval: env_u64(ENV_MAINTENANCE_S, MAX_MAINTENANCE_S)?
                .map(Duration::from_secs)
                .unwrap_or(d.maintenance_interval),
            quarantine_keep: d.quarantine_keep,
        })
    }
}

/// Largest `TRIFECTA_AST_LOCK_TIMEOUT_MS`: one hour. Lock waits beyond that are a hang, and
/// larger values overflowed SQLite's `busy_timeout` (a C `int` of milliseconds).
pub const MAX_LOCK_TIMEOUT_MS: u64 = 3_600_000;
/// Largest size setting in MB (`TRIFECTA_AST_SIZE_WARN_MB`, `TRIFECTA_AST_MAX_MB`): 1 TiB.
pub const MAX_SIZE_MB: f64 = 1_048_576.0;
/// Largest `TRIFECTA_AST_TTL_DAYS`: 100 years (`1e300` days used to panic converting to a
/// duration).
pub const MAX_TTL_DAYS: f64 = 36_500.0;
/// Largest `TRIFECTA_AST_MAINTENANCE_INTERVAL_S`: one year.
pub const MAX_MAINTENANCE_S: u64 = 31_536_000;
/// Longest `TRIFECTA_RUN_ID`, in bytes: it is stamped on every event.
pub const MAX_RUN_ID_BYTES: usize = 128;
/// Longest `TRIFECTA_TELEMETRY_DIR`, in bytes (Linux's `PATH_MAX`).
pub const MAX_DIR_BYTES: usize = 4096;
/// Largest `TRIFECTA_TEST_NOW_MS`: the last millisecond of the year 9999, the range the
/// timestamp formatting handles.
pub const MAX_TEST_NOW_MS: u64 = 253_402_300_799_999;
/// `TRIFECTA_TEST_PANIC=1` makes a command panic (see `commands`); `0` or unset does nothing.
pub const ENV_TEST_PANIC: &str = "TRIFECTA_TEST_PANIC";

/// Check every `TRIFECTA_*` variable the CLI reads against its documented range (README,
/// "Environment"), before a command does anything. A value out of range is an
/// `INVALID_ARGUMENT` naming the variable, whichever command reads it, so a typo is never
/// silently ignored, clamped or turned into an internal error later. Unset or blank means
/// "default" for every variable.
pub fn check_environment() -> Result<(), CliError> {
    CacheSettings::from_env(None)?;
    telemetry_level(None)?;
    if let Some(w) = crate::telemetry::writer::Rotation::from_env().1 {
        return Err(CliError::new(ErrorCode::InvalidArgument, w));
    }
    if let Some(id) = env_str(ENV_RUN_ID)?
        && (id.len() > MAX_RUN_ID_BYTES || id.chars().any(char::is_control))
    {
        return Err(invalid(
            ENV_RUN_ID,
            &id,
            &format!("at most {MAX_RUN_ID_BYTES} bytes without control characters"),
        ));
    }
    if let Some(dir) = env_str(ENV_TELEMETRY_DIR)?
        && dir.len() > MAX_DIR_BYTES
    {
        return Err(invalid(
            ENV_TELEMETRY_DIR,
            &dir,
            &format!("a path of at most {MAX_DIR_BYTES} bytes"),
        ));
    }
    env_u64(crate::clock::TEST_NOW_ENV, MAX_TEST_NOW_MS)?;
    env_u64(ENV_TEST_PANIC, 1)?;
    if let Some(v) = env_str(crate::mutant::ENV_MUTANT)? {
        crate::mutant::parse_list(&v)
            .map_err(|why| invalid(crate::mutant::ENV_MUTANT, &v, &why))?;
    }
    Ok(())
}

/// Resolve the telemetry level: flag > `TRIFECTA_TELEMETRY` > `off`.
pub fn telemetry_level(flag: Option<&str>) -> Result<Level, CliError> {
    match flag {
        Some(v) => parse_level(v, "--telemetry"),
        None => match env_str(ENV_TELEMETRY)? {
            Some(v) => parse_level(&v, ENV_TELEMETRY),
            None => Ok(Level::Off),
        },
    }
}

fn parse_level(v: &str, what: &str) -> Result<Level, CliError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "off" | "" => Ok(Level::Off),
        "lite" => Ok(Level::Lite),
        "full" => Ok(Level::Full),
        _ => Err(invalid(what, v, "one of off, lite, full")),
    }
}

/// A non-blank environment variable, if set. A value that is not UTF-8 is an error naming the
/// variable (it used to count as unset, silently).
pub fn env_str(name: &str) -> Result<Option<String>, CliError> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(v).filter(|s| !s.trim().is_empty())),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(raw)) => {
            Err(invalid(name, &raw.to_string_lossy(), "a value in UTF-8"))
        }
    }
}

/// `name=value is not valid: expected …`, the value quoted with escapes so that control
/// characters in it cannot garble the message.
pub fn invalid(name: &str, value: &str, expected: &str) -> CliError {
    CliError::new(
        ErrorCode::InvalidArgument,
        format!(
            "{name}={} is not valid: expected {expected}",
            crate::output::quoted(value)
        ),
    )
}

fn env_bool(name: &str) -> Result<Option<bool>, CliError> {
    let Some(v) = env_str(name)? else {
        return Ok(None);
    };
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(Some(true)),
        "0" | "false" | "no" | "off" => Ok(Some(false)),
        _ => Err(invalid(name, &v, "1/true/yes/on or 0/false/no/off")),
    }
}

/// A whole number in `0..=max`.
fn env_u64(name: &str, max: u64) -> Result<Option<u64>, CliError> {
    match env_str(name)? {
        None => Ok(None),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if n <= max => Ok(Some(n)),
            _ => Err(invalid(
                name,
                &v,
                &format!("a whole number from 0 to {max}"),
            )),
        },
    }
}

/// A finite number in `0..=max` (decimals allowed).
fn env_f64(name: &str, max: f64) -> Result<Option<f64>, CliError> {
    match env_str(name)? {
        None => Ok(None),
        Some(v) => match v.trim().parse::<f64>() {
            // `!(x < 0.0)` would let NaN through; spell out the finite range instead.
            Ok(x) if x.is_finite() && (0.0..=max).contains(&x) => Ok(Some(x)),
            _ => Err(invalid(name, &v, &format!("a number from 0 to {max}"))),
        },
    }
}

/// Megabytes (MiB, decimals allowed) in `0..=MAX_SIZE_MB`, as bytes.
fn env_mb(name: &str) -> Result<Option<u64>, CliError> {
    Ok(env_f64(name, MAX_SIZE_MB)?.map(|mb| (mb * 1024.0 * 1024.0) as u64))
}
