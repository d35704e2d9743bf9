//! The one resolved configuration: command-line flag > environment variable > default.
//!
//! [`Env::from_process`] is the only reader of the process environment in the crate (the gate
//! runner aside): it snapshots the variables trifecta reads, once. [`Config::resolve`] turns the
//! command line and that snapshot into typed settings, validating every value once, before a
//! command does anything. A malformed value is an `INVALID_ARGUMENT` error naming the variable,
//! never silently ignored, clamped or turned into an internal error later; unset or blank means
//! "default" for every variable. Process-wide parts (the test clock, mutants) are installed
//! from it once by [`Config::install`].

pub mod settings;

use crate::cli::{AstCommand, Cli, Command};
use crate::error::{CliError, ErrorCode};
use crate::telemetry::writer::{self, Rotation};
use crate::telemetry::{self, Level, Location, TelemetrySettings};
use serde_json::Value;
pub use settings::{Effective, Origin, Resolver, Setting};
use settings::{parse_bool, parse_f64, parse_u64, show_f64};
use std::collections::BTreeMap;
use std::ffi::OsString;
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
/// Whether `ast symbols` asks the segment's daemon: `auto` (default), `never` or `require`.
pub const ENV_DAEMON: &str = "TRIFECTA_DAEMON";
/// Seconds a daemon waits without a request before it exits (default 600).
pub const ENV_DAEMON_IDLE_S: &str = "TRIFECTA_DAEMON_IDLE_S";
/// Milliseconds a client waits for the daemon's reply before answering itself (default 2000).
pub const ENV_DAEMON_TIMEOUT_MS: &str = "TRIFECTA_DAEMON_TIMEOUT_MS";
/// Most connections a daemon serves at once (default 64).
pub const ENV_DAEMON_MAX_CONNECTIONS: &str = "TRIFECTA_DAEMON_MAX_CONNECTIONS";
/// Milliseconds a daemon gives a client to send a whole request line once it has started one,
/// and to take a reply (default 5000).
pub const ENV_DAEMON_REQUEST_TIMEOUT_MS: &str = "TRIFECTA_DAEMON_REQUEST_TIMEOUT_MS";
/// Where per-user runtime files live (the daemon's socket directory is `trifecta/` in it).
pub const ENV_XDG_RUNTIME_DIR: &str = "XDG_RUNTIME_DIR";
/// The shared second-level cache: `redis://[user:pass@]host:port/db`, `rediss://…` (TLS) or
/// `unix:///path.sock`.
pub const ENV_REMOTE: &str = "TRIFECTA_AST_REMOTE";
/// `read-write` (default) or `read-only` (pull-request builds that must not write the L2).
pub const ENV_REMOTE_MODE: &str = "TRIFECTA_AST_REMOTE_MODE";
/// Namespace prepended to every Redis key (default `trifecta:`).
pub const ENV_REMOTE_PREFIX: &str = "TRIFECTA_AST_REMOTE_PREFIX";
/// Days a Redis entry lives (`SET … EX`; default: the local `TRIFECTA_AST_TTL_DAYS`).
pub const ENV_REMOTE_TTL_DAYS: &str = "TRIFECTA_AST_REMOTE_TTL_DAYS";
/// Bound on connecting to the remote, milliseconds (default 250).
pub const ENV_REMOTE_CONNECT_TIMEOUT_MS: &str = "TRIFECTA_AST_REMOTE_CONNECT_TIMEOUT_MS";
/// Bound on each remote read or write, milliseconds (default 500).
pub const ENV_REMOTE_IO_TIMEOUT_MS: &str = "TRIFECTA_AST_REMOTE_IO_TIMEOUT_MS";
/// PEM file of the CA certificate(s) a `rediss://` server's certificate must chain to, instead
/// of the bundled public roots (a private CA, Memorystore's per-instance CA).
pub const ENV_REMOTE_CA_FILE: &str = "TRIFECTA_AST_REMOTE_CA_FILE";
/// PEM certificate (chain) this client presents to a `rediss://` server that requires one (mTLS).
pub const ENV_REMOTE_CLIENT_CERT: &str = "TRIFECTA_AST_REMOTE_CLIENT_CERT";
/// PEM private key of [`ENV_REMOTE_CLIENT_CERT`].
pub const ENV_REMOTE_CLIENT_KEY: &str = "TRIFECTA_AST_REMOTE_CLIENT_KEY";
/// `1` turns certificate verification of a `rediss://` server off (default `0`): encrypted but
/// unauthenticated, so anyone on the path can serve symbols. Shown by `config` and `cache stats`.
pub const ENV_REMOTE_TLS_INSECURE: &str = "TRIFECTA_AST_REMOTE_TLS_INSECURE";

/// Whether this process may write the remote tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteMode {
    /// Look up and write (trusted builds: main branch CI, developers).
    ReadWrite,
    /// Look up only: nothing is ever written to Redis (pull-request builds).
    ReadOnly,
}

impl RemoteMode {
    /// The spelling of `TRIFECTA_AST_REMOTE_MODE`.
    pub fn as_str(self) -> &'static str {
        match self {
            RemoteMode::ReadWrite => "read-write",
            RemoteMode::ReadOnly => "read-only",
        }
    }
}

/// The shared second-level (Redis) cache, resolved and validated. Present only when
/// `TRIFECTA_AST_REMOTE` is set: without it nothing below runs and no connection is made.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteSettings {
    /// The server URL as given (it may hold a password: show [`RemoteSettings::display_url`]).
    pub url: String,
    /// Read-write or read-only.
    pub mode: RemoteMode,
    /// Prepended to every key, so several caches can share one server.
    pub prefix: String,
    /// Entry lifetime (`EX`), at least one second.
    pub ttl: Duration,
    /// Bound on the connect.
    pub connect_timeout: Duration,
    /// Bound on each command's read and write.
    pub io_timeout: Duration,
    /// How a `rediss://` server is authenticated; `None` for a plain `redis://` or `unix://`
    /// remote (nothing TLS runs then).
    pub tls: Option<RemoteTls>,
}

/// TLS settings of a `rediss://` remote. Only paths: the files are read when the first
/// connection is made (an L1 hit never reads them), so a bad file is a `remote_unavailable`
/// incident, like any other failure to reach the server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteTls {
    /// CA certificate(s) to trust instead of the bundled public roots.
    pub ca_file: Option<String>,
    /// Client certificate and key for servers that require one (both or neither).
    pub client_cert: Option<(String, String)>,
    /// Certificate verification off (`TRIFECTA_AST_REMOTE_TLS_INSECURE=1`).
    pub insecure: bool,
}

impl RemoteTls {
    /// What the server's certificate is checked against, for `ast cache stats`.
    pub fn verification(&self) -> &'static str {
        match (self.insecure, &self.ca_file) {
            (true, _) => "OFF (TRIFECTA_AST_REMOTE_TLS_INSECURE=1: any certificate is accepted)",
            (false, Some(_)) => "CA file",
            (false, None) => "bundled public roots (webpki-roots)",
        }
    }

    /// Resolve the TLS settings (always, so a typo is reported) and check they fit `url`: a
    /// TLS setting with a plain remote would look secure while it is not, so it is refused.
    fn resolve(r: &mut Resolver, url: Option<&str>) -> Result<Option<Self>, CliError> {
        let ca_file = r.get(&REMOTE_CA_FILE, None)?;
        let cert = r.get(&REMOTE_CLIENT_CERT, None)?;
        let key = r.get(&REMOTE_CLIENT_KEY, None)?;
        let insecure = r.get(&REMOTE_TLS_INSECURE, None)?;
        let client_cert = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            (c, _) => {
                let (set, unset) = if c.is_some() {
                    (ENV_REMOTE_CLIENT_CERT, ENV_REMOTE_CLIENT_KEY)
                } else {
                    (ENV_REMOTE_CLIENT_KEY, ENV_REMOTE_CLIENT_CERT)
                };
                return Err(CliError::new(
                    ErrorCode::InvalidArgument,
                    format!("{set} is set but {unset} is not: a client certificate needs its key"),
                ));
            }
        };
        let tls = RemoteTls {
            ca_file,
            client_cert,
            insecure,
        };
        let Some(url) = url else { return Ok(None) };
        if is_tls_url(url) {
            return Ok(Some(tls));
        }
        if tls != RemoteTls::default() {
            let name = match &tls {
                RemoteTls { insecure: true, .. } => ENV_REMOTE_TLS_INSECURE,
                RemoteTls {
                    ca_file: Some(_), ..
                } => ENV_REMOTE_CA_FILE,
                _ => ENV_REMOTE_CLIENT_CERT,
            };
            return Err(CliError::new(
                ErrorCode::InvalidArgument,
                format!(
                    "{name} is set but {ENV_REMOTE} is not a rediss:// URL: the connection \
                     would not use TLS"
                ),
            ));
        }
        Ok(None)
    }
}

/// Whether `url` asks for TLS (`rediss://`, any case).
pub fn is_tls_url(url: &str) -> bool {
    url.split_once("://")
        .is_some_and(|(s, _)| s.eq_ignore_ascii_case("rediss"))
}

impl RemoteSettings {
    /// The URL with any password replaced by `***` (for `ast cache stats` and messages).
    pub fn display_url(&self) -> String {
        redact_url_password(&self.url)
    }

    /// Every remote setting is resolved (and checked) even when no remote is configured, so
    /// a typo is reported and `trifecta config` lists them all.
    fn resolve(r: &mut Resolver, local_ttl: Duration) -> Result<Option<Self>, CliError> {
        let mode = r.get(&REMOTE_MODE, None)?;
        let prefix = r.get(&REMOTE_PREFIX, None)?;
        let ttl = r
            .get(&REMOTE_TTL_DAYS, None)?
            .map(days)
            .unwrap_or(local_ttl)
            .max(Duration::from_secs(1)); // Redis refuses `EX 0`
        let connect_timeout = Duration::from_millis(r.get(&REMOTE_CONNECT_TIMEOUT_MS, None)?);
        let io_timeout = Duration::from_millis(r.get(&REMOTE_IO_TIMEOUT_MS, None)?);
        let url = r.get(&REMOTE, None)?;
        let tls = RemoteTls::resolve(r, url.as_deref())?;
        let Some(url) = url else {
            return Ok(None);
        };
        Ok(Some(RemoteSettings {
            url,
            mode,
            prefix,
            ttl,
            connect_timeout,
            io_timeout,
            tls,
        }))
    }
}

/// Default `TRIFECTA_AST_REMOTE_PREFIX`.
pub const DEFAULT_REMOTE_PREFIX: &str = "trifecta:";
/// Longest `TRIFECTA_AST_REMOTE_PREFIX`, in bytes.
pub const MAX_PREFIX_BYTES: usize = 128;
/// Default connect bound: a LAN Redis answers in well under a millisecond; a dead one should
/// cost little, once per process.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 250;
/// Default bound on each command (an `MGET` of a 256-file chunk included).
pub const DEFAULT_IO_TIMEOUT_MS: u64 = 500;
/// Largest remote timeout: one minute.
pub const MAX_REMOTE_TIMEOUT_MS: u64 = 60_000;
/// Longest `TRIFECTA_AST_REMOTE`, in bytes.
pub const MAX_REMOTE_URL_BYTES: usize = 4096;

/// `TRIFECTA_AST_REMOTE` must be a URL the client can use: `redis://`, `rediss://` (TLS),
/// `unix://` or `redis+unix://`. A `rediss://` URL may not carry redis-rs's `#insecure`
/// fragment (or any other): turning verification off takes the loudly named
/// `TRIFECTA_AST_REMOTE_TLS_INSECURE`, which `config` and `cache stats` show.
/// `Err` says what is expected (the value is shown with its password hidden).
fn check_remote_url(url: &str) -> Result<(), String> {
    if url.len() > MAX_REMOTE_URL_BYTES || url.chars().any(char::is_control) {
        return Err(format!("a URL of at most {MAX_REMOTE_URL_BYTES} bytes"));
    }
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("redis" | "unix" | "redis+unix") => {}
        Some("rediss") if url.contains('#') => {
            return Err(format!(
                "a rediss:// URL without a #fragment (to turn certificate checks off, set \
                 {ENV_REMOTE_TLS_INSECURE}=1)"
            ));
        }
        Some("rediss") => {}
        _ => {
            return Err(
                "redis://[user:pass@]host:port/db, rediss://… (TLS) or unix:///path/to/redis.sock"
                    .into(),
            );
        }
    }
    use redis::IntoConnectionInfo;
    url.into_connection_info()
        .map(|_| ())
        .map_err(|e| format!("a valid Redis URL ({})", e.detail().unwrap_or("unparsable")))
}

/// `redis://user:secret@host` → `redis://user:***@host`; anything else unchanged.
pub fn redact_url_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            // `user:pass@` keeps the user; a lone `secret@` may be a password: hide it all.
            let hidden = match userinfo.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None if userinfo.is_empty() => String::new(),
                None => "***".to_string(),
            };
            format!("{scheme}://{hidden}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

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
    /// The shared second-level cache, when `TRIFECTA_AST_REMOTE` is set.
    pub remote: Option<RemoteSettings>,
    /// Who is looking up: not a setting (no variable sets it), but the caller's say of how
    /// `ast cache stats` counts the lookups (a daemon's background refresh is no user lookup).
    pub purpose: LookupPurpose,
}

/// Why the cache is consulted, for its counters ([`crate::cache::counters`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LookupPurpose {
    /// A user's question (`ast symbols`, `ast index`, a daemon request): counted as a hit or a
    /// miss.
    #[default]
    Request,
    /// The daemon's watcher re-extracting an edited module in the background: counted as a
    /// background refresh, never as a hit or a miss, so it does not move the hit rate.
    Refresh,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            persist: (PERSIST.default)(),
            lock_timeout: Duration::from_millis((LOCK_TIMEOUT_MS.default)()),
            size_warn_bytes: mb_to_bytes((SIZE_WARN_MB.default)()),
            max_bytes: mb_to_bytes((MAX_MB.default)()),
            ttl: days((TTL_DAYS.default)()),
            maintenance_interval: Duration::from_secs((MAINTENANCE_S.default)()),
            quarantine_keep: 3,
            remote: None,
            purpose: LookupPurpose::Request,
        }
    }
}

fn mb_to_bytes(mb: f64) -> u64 {
    (mb * 1024.0 * 1024.0) as u64
}

fn days(d: f64) -> Duration {
    Duration::from_secs_f64(d * 86400.0)
}

impl CacheSettings {
    /// Eviction target: 80% of the maximum size.
    pub fn low_water_bytes(&self) -> u64 {
        self.max_bytes / 10 * 8
    }

    /// Resolve from `env`; `persist_flag` is the command line's say (`Some(true)` for
    /// `--persist-cache`, `Some(false)` for `--no-persist-cache`).
    pub fn resolve(env: &Env, persist_flag: Option<bool>) -> Result<Self, CliError> {
        let mut r = Resolver::new(env);
        let persist = r.get(&PERSIST, persist_flag.map(|p| (p, Origin::Flag)))?;
        CacheSettings::resolve_with(&mut r, persist)
    }

    fn resolve_with(r: &mut Resolver, persist: bool) -> Result<Self, CliError> {
        let lock_timeout = Duration::from_millis(r.get(&LOCK_TIMEOUT_MS, None)?);
        let size_warn_bytes = mb_to_bytes(r.get(&SIZE_WARN_MB, None)?);
        let max_bytes = mb_to_bytes(r.get(&MAX_MB, None)?);
        let ttl = days(r.get(&TTL_DAYS, None)?);
        Ok(CacheSettings {
            persist,
            lock_timeout,
            size_warn_bytes,
            max_bytes,
            ttl,
            maintenance_interval: Duration::from_secs(r.get(&MAINTENANCE_S, None)?),
            quarantine_keep: CacheSettings::default().quarantine_keep,
            remote: RemoteSettings::resolve(r, ttl)?,
            purpose: LookupPurpose::Request,
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

// ---------------------------------------------------------------------------------------------
// The settings, each declared once. `trifecta config` lists every setting resolved through
// [`Resolver`], in this order; a new setting is one more declaration here plus the line in
// [`Config::resolve_flags`] that resolves it into its typed home.

/// `cache.persist`: SQLite instead of the in-memory cache.
pub static PERSIST: Setting<bool> = Setting {
    name: "cache.persist",
    env: ENV_PERSIST,
    flag: Some("--persist-cache / --no-persist-cache"),
    about: "use the persistent SQLite cache (ast index: on unless --no-persist-cache)",
    default: || false,
    parse: parse_bool,
    show: |b| Value::from(*b),
};
/// `cache.lock_timeout_ms`.
pub static LOCK_TIMEOUT_MS: Setting<u64> = Setting {
    name: "cache.lock_timeout_ms",
    env: ENV_LOCK_TIMEOUT_MS,
    flag: None,
    about: "bound on every cache-lock wait; past it the run goes uncached",
    default: || 5000,
    parse: |v| parse_u64(v, MAX_LOCK_TIMEOUT_MS),
    show: |n| Value::from(*n),
};
/// `cache.size_warn_mb`.
pub static SIZE_WARN_MB: Setting<f64> = Setting {
    name: "cache.size_warn_mb",
    env: ENV_SIZE_WARN_MB,
    flag: None,
    about: "DB + WAL size (MiB) that triggers ast.cache.size_warning",
    default: || 500.0,
    parse: |v| parse_f64(v, MAX_SIZE_MB),
    show: show_f64,
};
/// `cache.max_mb`.
pub static MAX_MB: Setting<f64> = Setting {
    name: "cache.max_mb",
    env: ENV_MAX_MB,
    flag: None,
    about: "size cap (MiB); maintenance evicts least recently used entries down to 80 %",
    default: || 1024.0,
    parse: |v| parse_f64(v, MAX_SIZE_MB),
    show: show_f64,
};
/// `cache.ttl_days`.
pub static TTL_DAYS: Setting<f64> = Setting {
    name: "cache.ttl_days",
    env: ENV_TTL_DAYS,
    flag: None,
    about: "entries unused this many days are pruned",
    default: || 7.0,
    parse: |v| parse_f64(v, MAX_TTL_DAYS),
    show: show_f64,
};
/// `cache.maintenance_interval_s`.
pub static MAINTENANCE_S: Setting<u64> = Setting {
    name: "cache.maintenance_interval_s",
    env: ENV_MAINTENANCE_S,
    flag: None,
    about: "at most one automatic maintenance pass per this many seconds",
    default: || 3600,
    parse: |v| parse_u64(v, MAX_MAINTENANCE_S),
    show: |n| Value::from(*n),
};
/// `remote.url`: the shared second-level cache (Redis); none without it.
pub static REMOTE: Setting<Option<String>> = Setting {
    name: "remote.url",
    env: ENV_REMOTE,
    flag: None,
    about: "the shared second-level cache: redis://[user:pass@]host:port/db, rediss://… (TLS) \
            or unix:///path",
    default: || None,
    parse: |v| check_remote_url(v).map(|()| Some(v.to_string())),
    show: |u| {
        u.as_deref().map_or(Value::from("<none>"), |u| {
            Value::from(redact_url_password(u))
        })
    },
};
/// `remote.mode`.
pub static REMOTE_MODE: Setting<RemoteMode> = Setting {
    name: "remote.mode",
    env: ENV_REMOTE_MODE,
    flag: None,
    about: "read-write, or read-only for builds that must not write the shared cache",
    default: || RemoteMode::ReadWrite,
    parse: |v| match v.to_ascii_lowercase().as_str() {
        "read-write" => Ok(RemoteMode::ReadWrite),
        "read-only" => Ok(RemoteMode::ReadOnly),
        _ => Err("read-write or read-only".into()),
    },
    show: |m| Value::from(m.as_str()),
};
/// `remote.prefix`.
pub static REMOTE_PREFIX: Setting<String> = Setting {
    name: "remote.prefix",
    env: ENV_REMOTE_PREFIX,
    flag: None,
    about: "namespace prepended to every Redis key",
    default: || DEFAULT_REMOTE_PREFIX.to_string(),
    parse: |p| {
        (p.len() <= MAX_PREFIX_BYTES && p.bytes().all(|b| b.is_ascii_graphic()))
            .then(|| p.to_string())
            .ok_or_else(|| {
                format!("at most {MAX_PREFIX_BYTES} printable ASCII characters, no spaces")
            })
    },
    show: |p| Value::from(p.as_str()),
};
/// `remote.ttl_days`: none means the local TTL.
pub static REMOTE_TTL_DAYS: Setting<Option<f64>> = Setting {
    name: "remote.ttl_days",
    env: ENV_REMOTE_TTL_DAYS,
    flag: None,
    about: "days a Redis entry lives (default: cache.ttl_days)",
    default: || None,
    parse: |v| parse_f64(v, MAX_TTL_DAYS).map(Some),
    show: |d| d.as_ref().map_or(Value::from("<cache.ttl_days>"), show_f64),
};
/// `remote.connect_timeout_ms`.
pub static REMOTE_CONNECT_TIMEOUT_MS: Setting<u64> = Setting {
    name: "remote.connect_timeout_ms",
    env: ENV_REMOTE_CONNECT_TIMEOUT_MS,
    flag: None,
    about: "bound on connecting to the remote",
    default: || DEFAULT_CONNECT_TIMEOUT_MS,
    parse: parse_remote_ms,
    show: |n| Value::from(*n),
};
/// `remote.io_timeout_ms`.
pub static REMOTE_IO_TIMEOUT_MS: Setting<u64> = Setting {
    name: "remote.io_timeout_ms",
    env: ENV_REMOTE_IO_TIMEOUT_MS,
    flag: None,
    about: "bound on each remote read or write",
    default: || DEFAULT_IO_TIMEOUT_MS,
    parse: parse_remote_ms,
    show: |n| Value::from(*n),
};

/// `remote.tls_ca_file`.
pub static REMOTE_CA_FILE: Setting<Option<String>> = Setting {
    name: "remote.tls_ca_file",
    env: ENV_REMOTE_CA_FILE,
    flag: None,
    about: "PEM CA certificate(s) a rediss:// server must chain to, instead of the bundled roots",
    default: || None,
    parse: parse_tls_path,
    show: |p| Value::from(p.as_deref().unwrap_or("<bundled public roots>")),
};
/// `remote.tls_client_cert`.
pub static REMOTE_CLIENT_CERT: Setting<Option<String>> = Setting {
    name: "remote.tls_client_cert",
    env: ENV_REMOTE_CLIENT_CERT,
    flag: None,
    about: "PEM client certificate for a rediss:// server that requires one (mTLS)",
    default: || None,
    parse: parse_tls_path,
    show: |p| Value::from(p.as_deref().unwrap_or("<none>")),
};
/// `remote.tls_client_key`.
pub static REMOTE_CLIENT_KEY: Setting<Option<String>> = Setting {
    name: "remote.tls_client_key",
    env: ENV_REMOTE_CLIENT_KEY,
    flag: None,
    about: "PEM private key of remote.tls_client_cert",
    default: || None,
    parse: parse_tls_path,
    show: |p| Value::from(p.as_deref().unwrap_or("<none>")),
};
/// `remote.tls_insecure`: certificate verification off. Named and shown loudly on purpose.
pub static REMOTE_TLS_INSECURE: Setting<bool> = Setting {
    name: "remote.tls_insecure",
    env: ENV_REMOTE_TLS_INSECURE,
    flag: None,
    about: "INSECURE: accept any rediss:// server certificate (anyone on the path can serve \
            symbols)",
    default: || false,
    parse: parse_bool,
    show: |b| Value::from(*b),
};

/// A TLS file's path: not checked for existence here (it is read only when a connection is
/// made), only for size.
fn parse_tls_path(v: &str) -> Result<Option<String>, String> {
    (v.len() <= MAX_DIR_BYTES)
        .then(|| Some(v.to_string()))
        .ok_or_else(|| format!("a path of at most {MAX_DIR_BYTES} bytes"))
}

/// A remote timeout: 1 to [`MAX_REMOTE_TIMEOUT_MS`] milliseconds (0 would never wait).
fn parse_remote_ms(v: &str) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) if (1..=MAX_REMOTE_TIMEOUT_MS).contains(&n) => Ok(n),
        _ => Err(format!("a whole number from 1 to {MAX_REMOTE_TIMEOUT_MS}")),
    }
}
/// `telemetry.level`.
pub static TELEMETRY_LEVEL: Setting<Level> = Setting {
    name: "telemetry.level",
    env: ENV_TELEMETRY,
    flag: Some("--telemetry"),
    about: "what is recorded in events.jsonl: off, lite or full",
    default: || Level::Off,
    parse: parse_level,
    show: |l| Value::from(l.as_str()),
};
/// `telemetry.dir`.
pub static TELEMETRY_DIR: Setting<Option<String>> = Setting {
    name: "telemetry.dir",
    env: ENV_TELEMETRY_DIR,
    flag: None,
    about: "where events.jsonl is written",
    default: || None,
    parse: |v| {
        (v.len() <= MAX_DIR_BYTES)
            .then(|| Some(v.to_string()))
            .ok_or_else(|| format!("a path of at most {MAX_DIR_BYTES} bytes"))
    },
    show: |d| Value::from(d.as_deref().unwrap_or("<segment>/_ctx/telemetry")),
};
/// `telemetry.max_mb`.
pub static TELEMETRY_MAX_MB: Setting<f64> = Setting {
    name: "telemetry.max_mb",
    env: writer::ENV_MAX_MB,
    flag: None,
    about: "events.jsonl is rotated past this size (MiB)",
    default: || writer::DEFAULT_MAX_BYTES as f64 / (1024.0 * 1024.0),
    parse: |v| match v.parse::<f64>() {
        Ok(mb) if mb.is_finite() && mb > 0.0 && mb <= writer::MAX_ROTATE_MB => Ok(mb),
        _ => Err(format!(
            "a number above 0 and at most {}",
            writer::MAX_ROTATE_MB
        )),
    },
    show: show_f64,
};
/// `telemetry.keep`.
pub static TELEMETRY_KEEP: Setting<u64> = Setting {
    name: "telemetry.keep",
    env: writer::ENV_KEEP,
    flag: None,
    about: "rotated event files kept",
    default: || writer::DEFAULT_KEEP as u64,
    parse: |v| parse_u64(v, writer::MAX_KEEP as u64),
    show: |n| Value::from(*n),
};
/// `telemetry.run_id`.
pub static RUN_ID: Setting<Option<String>> = Setting {
    name: "telemetry.run_id",
    env: ENV_RUN_ID,
    flag: None,
    about: "the run id stamped on every event",
    default: || None,
    parse: |v| {
        (v.len() <= MAX_RUN_ID_BYTES && !v.chars().any(char::is_control))
            .then(|| Some(v.to_string()))
            .ok_or_else(|| format!("at most {MAX_RUN_ID_BYTES} bytes without control characters"))
    },
    show: |id| Value::from(id.as_deref().unwrap_or("<unique per process>")),
};
/// `test.now_ms`.
pub static TEST_NOW_MS: Setting<Option<u64>> = Setting {
    name: "test.now_ms",
    env: crate::clock::TEST_NOW_ENV,
    flag: None,
    about: "test clock (Unix ms) for TTL and maintenance decisions; tests and gates only",
    default: || None,
    parse: |v| parse_u64(v, MAX_TEST_NOW_MS).map(Some),
    show: |ms| ms.map_or(Value::from("<real clock>"), Value::from),
};
/// `test.panic`.
pub static TEST_PANIC: Setting<bool> = Setting {
    name: "test.panic",
    env: ENV_TEST_PANIC,
    flag: None,
    about: "1 makes the command panic, to test the INTERNAL_ERROR envelope; tests only",
    default: || false,
    parse: |v| parse_u64(v, 1).map(|n| n == 1),
    show: |b| Value::from(*b),
};
/// `test.mutants`.
pub static MUTANTS: Setting<Vec<crate::mutant::Mutant>> = Setting {
    name: "test.mutants",
    env: crate::mutant::ENV_MUTANT,
    flag: None,
    about: "deliberate bugs switched on (debug builds only)",
    default: Vec::new,
    parse: crate::mutant::parse_list,
    show: |m| Value::from(m.iter().map(|x| x.name()).collect::<Vec<_>>()),
};

/// `daemon.mode`: whether `ast symbols` asks the segment's daemon.
pub static DAEMON_MODE: Setting<DaemonMode> = Setting {
    name: "daemon.mode",
    env: ENV_DAEMON,
    flag: Some("--daemon"),
    about: "ast symbols through the segment's daemon: auto (if one runs), never, require",
    default: || DaemonMode::Auto,
    parse: parse_daemon_mode,
    show: |m| Value::from(m.as_str()),
};
/// `daemon.idle_s`.
pub static DAEMON_IDLE_S: Setting<u64> = Setting {
    name: "daemon.idle_s",
    env: ENV_DAEMON_IDLE_S,
    flag: None,
    about: "the daemon exits after this many seconds without a request",
    default: || 600,
    parse: |v| parse_u64(v, MAX_DAEMON_IDLE_S),
    show: |n| Value::from(*n),
};
/// `daemon.reply_timeout_ms`: 0 means the default.
pub static DAEMON_TIMEOUT_MS: Setting<u64> = Setting {
    name: "daemon.reply_timeout_ms",
    env: ENV_DAEMON_TIMEOUT_MS,
    flag: None,
    about: "how long a client waits for the daemon's reply before answering itself",
    default: || 2000,
    parse: |v| parse_u64(v, MAX_DAEMON_TIMEOUT_MS).map(|ms| if ms == 0 { 2000 } else { ms }),
    show: |n| Value::from(*n),
};
/// `daemon.max_connections`: at the cap the connection idle longest is closed for a newcomer.
pub static DAEMON_MAX_CONNECTIONS: Setting<u64> = Setting {
    name: "daemon.max_connections",
    env: ENV_DAEMON_MAX_CONNECTIONS,
    flag: None,
    about: "most connections a daemon serves at once; at the cap the longest-idle one is closed",
    default: || 64,
    parse: |v| match parse_u64(v, MAX_DAEMON_CONNECTIONS) {
        Ok(0) => Err(format!("a whole number from 1 to {MAX_DAEMON_CONNECTIONS}")),
        other => other.map_err(|_| format!("a whole number from 1 to {MAX_DAEMON_CONNECTIONS}")),
    },
    show: |n| Value::from(*n),
};
/// `daemon.request_timeout_ms`: 0 means the default.
pub static DAEMON_REQUEST_TIMEOUT_MS: Setting<u64> = Setting {
    name: "daemon.request_timeout_ms",
    env: ENV_DAEMON_REQUEST_TIMEOUT_MS,
    flag: None,
    about: "how long a daemon waits for the rest of a started request line, and for a client to take its reply",
    default: || 5000,
    parse: |v| parse_u64(v, MAX_DAEMON_TIMEOUT_MS).map(|ms| if ms == 0 { 5000 } else { ms }),
    show: |n| Value::from(*n),
};

/// The variables trifecta reads, snapshotted once: `TRIFECTA_*`, `HOME`, `USER` and `LOGNAME`
/// for redaction, and `XDG_RUNTIME_DIR` for the daemon's socket directory. Everything else in
/// the environment is none of our business.
#[derive(Debug, Clone, Default)]
pub struct Env {
    vars: BTreeMap<String, OsString>,
}

impl Env {
    /// Snapshot the process environment: the crate's only read of it.
    pub fn from_process() -> Env {
        Env::from_pairs(std::env::vars_os())
    }

    /// A snapshot from explicit pairs (tests, benches); names trifecta does not read are
    /// dropped, as [`Env::from_process`] does.
    pub fn from_pairs<K: Into<OsString>, V: Into<OsString>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Env {
        let vars = pairs
            .into_iter()
            .filter_map(|(k, v)| {
                let k = k.into().into_string().ok()?;
                let ours = k.starts_with("TRIFECTA_")
                    || matches!(
                        k.as_str(),
                        "HOME" | "USER" | "LOGNAME" | ENV_XDG_RUNTIME_DIR
                    );
                ours.then(|| (k, v.into()))
            })
            .collect();
        Env { vars }
    }

    /// A non-blank variable, if set. A value that is not UTF-8 is an error naming the variable
    /// (it used to count as unset, silently).
    pub fn str(&self, name: &str) -> Result<Option<String>, CliError> {
        match self.vars.get(name) {
            None => Ok(None),
            Some(raw) => match raw.to_str() {
                Some(v) => Ok(Some(v.to_string()).filter(|s| !s.trim().is_empty())),
                None => Err(invalid(name, &raw.to_string_lossy(), "a value in UTF-8")),
            },
        }
    }
}

/// Telemetry settings that do not depend on the segment.
#[derive(Debug, Clone, Default)]
pub struct TelemetryConfig {
    /// Recording level: `--telemetry` > `TRIFECTA_TELEMETRY` > off.
    pub level: Level,
    /// `TRIFECTA_TELEMETRY_DIR`, if set (else `<segment>/_ctx/telemetry`).
    pub dir: Option<String>,
    /// `TRIFECTA_RUN_ID`, if set (else unique per process).
    pub run_id: Option<String>,
    /// `TRIFECTA_TELEMETRY_MAX_MB` / `TRIFECTA_TELEMETRY_KEEP`.
    pub rotation: Rotation,
    /// `$HOME`, redacted from every string written.
    pub home: Option<String>,
    /// `$USER` (or `$LOGNAME`), redacted from every string written.
    pub user: Option<String>,
}

impl TelemetryConfig {
    /// The telemetry directory for segment `root`: `TRIFECTA_TELEMETRY_DIR` or
    /// `<root>/_ctx/telemetry` (never the current directory).
    pub fn dir_for(&self, root: &std::path::Path) -> Location {
        match &self.dir {
            Some(d) => Location::user(d),
            None => Location::in_segment(root, telemetry::DEFAULT_DIR),
        }
    }

    /// The telemetry settings of a command on `root`.
    pub fn for_segment(&self, root: &std::path::Path) -> TelemetrySettings {
        TelemetrySettings {
            level: self.level,
            dir: self.dir_for(root),
            run_id: self.run_id.clone().unwrap_or_else(telemetry::run_id),
            segment_id: telemetry::segment_id(root),
            segment_root: Some(root.to_path_buf()),
            rotation: self.rotation,
            setting_warnings: Vec::new(),
            home: self.home.clone(),
            user: self.user.clone(),
        }
    }
}

/// Everything a command needs to know, resolved and validated once.
#[derive(Debug, Clone)]
pub struct Config {
    /// The cache's settings (with this command's persistence).
    pub cache: CacheSettings,
    /// Telemetry (with this command's level).
    pub telemetry: TelemetryConfig,
    /// `TRIFECTA_TEST_NOW_MS`: the clock for TTL and maintenance decisions (tests and gates).
    pub test_now_ms: Option<i64>,
    /// `TRIFECTA_TEST_PANIC=1`: the command panics (proves the panic safety net).
    pub test_panic: bool,
    /// `TRIFECTA_MUTANT`: deliberate bugs switched on (debug builds only).
    pub mutants: Vec<crate::mutant::Mutant>,
    /// The daemon: whether `ast symbols` asks it, its idle timeout, where its socket lives.
    pub daemon: DaemonSettings,
    /// Every setting with its effective value and origin (what `trifecta config` prints).
    pub effective: Vec<Effective>,
}

/// `--daemon` / `TRIFECTA_DAEMON`: whether `ast symbols` asks the segment's daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DaemonMode {
    /// Ask a running daemon; answer locally when there is none or it fails (the default: with
    /// no daemon running it costs one failed `connect`).
    #[default]
    Auto,
    /// Never ask a daemon.
    Never,
    /// Only the daemon may answer; no daemon is a `DAEMON_UNAVAILABLE` error.
    Require,
}

impl DaemonMode {
    /// `auto`, `never` or `require`.
    pub fn as_str(self) -> &'static str {
        match self {
            DaemonMode::Auto => "auto",
            DaemonMode::Never => "never",
            DaemonMode::Require => "require",
        }
    }
}

/// Everything about the daemon, resolved and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonSettings {
    /// Whether `ast symbols` asks the daemon.
    pub mode: DaemonMode,
    /// The daemon exits after this long without a request.
    pub idle: Duration,
    /// How long a client waits for a reply before answering itself.
    pub reply_timeout: Duration,
    /// `$XDG_RUNTIME_DIR`, if set (else `/tmp/trifecta-<uid>`).
    pub xdg_runtime_dir: Option<std::path::PathBuf>,
    /// Most connections the daemon serves at once.
    pub max_connections: usize,
    /// How long the daemon waits for the rest of a started request line, and for a client to
    /// take a reply, before it closes the connection.
    pub request_timeout: Duration,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        DaemonSettings {
            mode: DaemonMode::Auto,
            idle: Duration::from_secs(600),
            reply_timeout: Duration::from_millis(2000),
            xdg_runtime_dir: None,
            max_connections: 64,
            request_timeout: Duration::from_millis(5000),
        }
    }
}

/// Largest `TRIFECTA_DAEMON_IDLE_S`: one week.
pub const MAX_DAEMON_IDLE_S: u64 = 604_800;
/// Largest `TRIFECTA_DAEMON_TIMEOUT_MS` and `TRIFECTA_DAEMON_REQUEST_TIMEOUT_MS`: one minute.
pub const MAX_DAEMON_TIMEOUT_MS: u64 = 60_000;
/// Largest `TRIFECTA_DAEMON_MAX_CONNECTIONS`.
pub const MAX_DAEMON_CONNECTIONS: u64 = 1024;

impl DaemonSettings {
    /// Resolve through `r` (so `trifecta config` lists them); `mode_flag` is `--daemon`.
    fn resolve_with(
        r: &mut Resolver,
        env: &Env,
        mode_flag: Option<&str>,
    ) -> Result<Self, CliError> {
        let mode_flag = Resolver::flag(&DAEMON_MODE, mode_flag)?;
        let mode = r.get(&DAEMON_MODE, mode_flag)?;
        let idle = Duration::from_secs(r.get(&DAEMON_IDLE_S, None)?);
        let reply_timeout = Duration::from_millis(r.get(&DAEMON_TIMEOUT_MS, None)?);
        let max_connections = r.get(&DAEMON_MAX_CONNECTIONS, None)? as usize;
        let request_timeout = Duration::from_millis(r.get(&DAEMON_REQUEST_TIMEOUT_MS, None)?);
        // Only an absolute XDG_RUNTIME_DIR counts (the XDG spec says to ignore a relative one);
        // read leniently like HOME: it is the desktop's variable, not one of our settings.
        let xdg_runtime_dir = env
            .str(ENV_XDG_RUNTIME_DIR)
            .ok()
            .flatten()
            .map(std::path::PathBuf::from)
            .filter(|p| p.is_absolute());
        Ok(DaemonSettings {
            mode,
            idle,
            reply_timeout,
            xdg_runtime_dir,
            max_connections,
            request_timeout,
        })
    }
}

fn parse_daemon_mode(v: &str) -> Result<DaemonMode, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "auto" => Ok(DaemonMode::Auto),
        "never" => Ok(DaemonMode::Never),
        "require" => Ok(DaemonMode::Require),
        _ => Err("one of auto, never, require".into()),
    }
}

impl Config {
    /// Resolve `cli` against `env`. Every `TRIFECTA_*` variable is checked, whichever command
    /// reads it, so a typo is never silently ignored.
    pub fn resolve(cli: &Cli, env: &Env) -> Result<Config, CliError> {
        let flag = |p: Option<bool>| p.map(|p| (p, Origin::Flag));
        let daemon_flag = match &cli.command {
            Command::Ast(AstCommand::Symbols(a)) => a.daemon.as_deref(),
            _ => None,
        };
        let (persist, level_flag, persist_default) = match &cli.command {
            Command::Ast(AstCommand::Symbols(a)) => (
                flag(a.cache.persist_flag()),
                a.cache.telemetry.as_deref(),
                false,
            ),
            // `ast index` exists to warm the cache: it persists unless told not to.
            Command::Ast(AstCommand::Index(a)) => (
                flag(a.cache.persist_flag()),
                a.cache.telemetry.as_deref(),
                true,
            ),
            // The cache commands work on the persistent cache by definition.
            Command::Ast(AstCommand::Cache(_)) => (Some((true, Origin::Command)), None, false),
            Command::Config(a) => (
                flag(a.cache.persist_flag()),
                a.cache.telemetry.as_deref(),
                false,
            ),
            Command::Telemetry(_) | Command::Completions(_) | Command::Man(_) => {
                (None, None, false)
            }
            // The daemon serves the persistent cache by definition.
            Command::Daemon(_) => (Some((true, Origin::Command)), None, false),
            Command::Serve(a) => (Some((true, Origin::Command)), a.telemetry.as_deref(), false),
        };
        Config::resolve_with(env, persist, persist_default, level_flag, daemon_flag)
    }

    /// [`Config::resolve`] from the two flags that vary by command.
    pub fn resolve_flags(
        env: &Env,
        persist_flag: Option<bool>,
        level_flag: Option<&str>,
    ) -> Result<Config, CliError> {
        Config::resolve_with(
            env,
            persist_flag.map(|p| (p, Origin::Flag)),
            false,
            level_flag,
            None,
        )
    }

    /// Every setting, in declaration order; `persist` is the flag's or the command's say.
    fn resolve_with(
        env: &Env,
        persist: Option<(bool, Origin)>,
        persist_default: bool,
        level_flag: Option<&str>,
        daemon_flag: Option<&str>,
    ) -> Result<Config, CliError> {
        let mut r = Resolver::new(env);
        let persist = r.get_or(&PERSIST, persist, persist_default)?;
        let cache = CacheSettings::resolve_with(&mut r, persist)?;
        // The flag is checked after the variable: a typo in the environment is reported
        // whichever command meets it first, even where the flag overrides it.
        env.str(ENV_TELEMETRY)?
            .map(|v| parse_level(v.trim()).map_err(|e| invalid(ENV_TELEMETRY, &v, &e)))
            .transpose()?;
        let level_flag = Resolver::flag(&TELEMETRY_LEVEL, level_flag)?;
        let level = r.get(&TELEMETRY_LEVEL, level_flag)?;
        let dir = r.get(&TELEMETRY_DIR, None)?;
        let max_mb = r.get(&TELEMETRY_MAX_MB, None)?;
        let rotation = Rotation {
            max_bytes: mb_to_bytes(max_mb).max(1),
            keep: r.get(&TELEMETRY_KEEP, None)? as usize,
        };
        let run_id = r.get(&RUN_ID, None)?;
        let test_now_ms = r.get(&TEST_NOW_MS, None)?.map(|ms| ms as i64);
        let test_panic = r.get(&TEST_PANIC, None)?;
        let mutants = r.get(&MUTANTS, None)?;
        let daemon = DaemonSettings::resolve_with(&mut r, env, daemon_flag)?;
        // Redaction context: lenient, like a shell (a non-UTF-8 $HOME is simply not redacted).
        let soft = |k: &str| env.str(k).ok().flatten();
        Ok(Config {
            cache,
            telemetry: TelemetryConfig {
                level,
                dir,
                run_id,
                rotation,
                home: soft("HOME"),
                user: soft("USER").or_else(|| soft("LOGNAME")),
            },
            test_now_ms,
            test_panic,
            mutants,
            daemon,
            effective: r.effective,
        })
    }

    /// Install the process-wide parts: the test clock and the mutants. Called once, by
    /// `commands::run`, before any command runs.
    pub fn install(&self) {
        crate::clock::install(self.test_now_ms);
        crate::mutant::install(&self.mutants);
    }
}

fn parse_level(v: &str) -> Result<Level, String> {
    match v.to_ascii_lowercase().as_str() {
        "off" | "" => Ok(Level::Off),
        "lite" => Ok(Level::Lite),
        "full" => Ok(Level::Full),
        _ => Err("one of off, lite, full".into()),
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

/// `trifecta-verify`'s own settings from its environment, snapshotted once per process. The
/// gates' `trifecta` children never see the harness's `TRIFECTA_*` variables (their
/// environment comes from the gate specs), so these are the harness's settings only.
#[derive(Debug, Clone, Default)]
pub struct VerifyEnv {
    /// `TRIFECTA_VERIFY_JQ`: the reference jq; set but empty turns the cross-check off.
    pub jq: Option<OsString>,
    /// `PATH`, to find `jq` when `TRIFECTA_VERIFY_JQ` is unset.
    pub path: Option<OsString>,
    /// `HOME`, one of the absolute paths the leak scan looks for.
    pub home: Option<OsString>,
    /// `TRIFECTA_VERIFY_SLOW_MS`: the interval of `SLOW` progress lines (tests use a short one).
    pub slow_ms: Option<u64>,
    /// Every `TRIFECTA_*` name in the harness's environment: what children must not inherit.
    pub trifecta_names: Vec<OsString>,
}

/// `TRIFECTA_VERIFY_SLOW_MS`.
pub const ENV_VERIFY_SLOW_MS: &str = "TRIFECTA_VERIFY_SLOW_MS";
/// `TRIFECTA_VERIFY_JQ`.
pub const ENV_VERIFY_JQ: &str = "TRIFECTA_VERIFY_JQ";

impl VerifyEnv {
    /// The process's snapshot (taken on first use).
    pub fn get() -> &'static VerifyEnv {
        static ENV: std::sync::OnceLock<VerifyEnv> = std::sync::OnceLock::new();
        ENV.get_or_init(|| VerifyEnv::from_pairs(std::env::vars_os()))
    }

    /// A snapshot from explicit pairs (tests).
    pub fn from_pairs(pairs: impl IntoIterator<Item = (OsString, OsString)>) -> VerifyEnv {
        let mut v = VerifyEnv::default();
        for (k, val) in pairs {
            match k.to_str() {
                Some(ENV_VERIFY_JQ) => v.jq = Some(val.clone()),
                Some("PATH") => v.path = Some(val.clone()),
                Some("HOME") => v.home = Some(val.clone()),
                Some(ENV_VERIFY_SLOW_MS) => {
                    v.slow_ms = val
                        .to_str()
                        .and_then(|s| s.trim().parse().ok())
                        .filter(|ms| *ms > 0)
                }
                _ => {}
            }
            if k.to_string_lossy().starts_with("TRIFECTA_") {
                v.trifecta_names.push(k);
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().map(|(k, v)| (*k, *v)))
    }

    #[test]
    fn the_verifier_strips_every_trifecta_name_and_reads_its_own() {
        let os = |s: &str| OsString::from(s);
        let v = VerifyEnv::from_pairs(
            [
                ("PATH", "/bin"),
                ("TRIFECTA_AST_PERSIST", "1"),
                ("MY_TRIFECTA_X", "y"),
                ("TRIFECTA_MUTANT", "split-checksum"),
                ("TRIFECTA_VERIFY_SLOW_MS", "250"),
            ]
            .map(|(k, v)| (os(k), os(v))),
        );
        assert_eq!(
            v.trifecta_names,
            [
                os("TRIFECTA_AST_PERSIST"),
                os("TRIFECTA_MUTANT"),
                os("TRIFECTA_VERIFY_SLOW_MS")
            ]
        );
        assert_eq!(v.slow_ms, Some(250));
        assert_eq!(v.path, Some(os("/bin")));
    }

    #[test]
    fn only_our_variables_are_kept() {
        let e = env(&[("PATH", "/bin"), ("TRIFECTA_RUN_ID", "r1"), ("HOME", "/h")]);
        assert_eq!(e.str("PATH").unwrap(), None);
        assert_eq!(e.str("TRIFECTA_RUN_ID").unwrap().as_deref(), Some("r1"));
        assert_eq!(e.str("HOME").unwrap().as_deref(), Some("/h"));
    }

    #[test]
    fn flag_beats_environment_beats_default_and_every_variable_is_checked() {
        let e = env(&[
            ("TRIFECTA_TELEMETRY", "full"),
            ("TRIFECTA_AST_PERSIST", "1"),
        ]);
        let c = Config::resolve_flags(&e, None, None).unwrap();
        assert_eq!((c.telemetry.level, c.cache.persist), (Level::Full, true));
        let c = Config::resolve_flags(&e, Some(false), Some("lite")).unwrap();
        assert_eq!((c.telemetry.level, c.cache.persist), (Level::Lite, false));
        let c = Config::resolve_flags(&Env::default(), None, None).unwrap();
        assert_eq!((c.telemetry.level, c.cache.persist), (Level::Off, false));
        // A flag does not hide a malformed variable.
        let bad = env(&[("TRIFECTA_TELEMETRY", "loud")]);
        let err = Config::resolve_flags(&bad, None, Some("lite")).unwrap_err();
        assert!(
            err.message.contains("TRIFECTA_TELEMETRY"),
            "{}",
            err.message
        );
        let bad = env(&[("TRIFECTA_AST_PERSIST", "maybe")]);
        assert!(Config::resolve_flags(&bad, Some(true), None).is_err());
    }

    #[test]
    fn remote_settings_resolve_with_defaults_and_hide_passwords() {
        let none = Config::resolve_flags(&Env::default(), None, None).unwrap();
        assert_eq!(none.cache.remote, None, "no remote unless configured");
        let e = env(&[
            (
                "TRIFECTA_AST_REMOTE",
                "redis://ci:s3cret@cache.internal:6379/2",
            ),
            ("TRIFECTA_AST_TTL_DAYS", "3"),
        ]);
        let r = Config::resolve_flags(&e, None, None)
            .unwrap()
            .cache
            .remote
            .unwrap();
        assert_eq!(r.mode, RemoteMode::ReadWrite);
        assert_eq!(r.prefix, DEFAULT_REMOTE_PREFIX);
        assert_eq!(
            r.ttl,
            Duration::from_secs(3 * 86400),
            "defaults to the local TTL"
        );
        assert_eq!(
            r.connect_timeout,
            Duration::from_millis(DEFAULT_CONNECT_TIMEOUT_MS)
        );
        assert_eq!(r.display_url(), "redis://ci:***@cache.internal:6379/2");
        assert_eq!(redact_url_password("redis://tok@h/0"), "redis://***@h/0");
        assert_eq!(
            redact_url_password("unix:///run/r.sock"),
            "unix:///run/r.sock"
        );
        // A malformed remote variable is an error even without a remote URL.
        let bad = env(&[("TRIFECTA_AST_REMOTE_IO_TIMEOUT_MS", "fast")]);
        assert!(Config::resolve_flags(&bad, None, None).is_err());
        let ro = env(&[
            ("TRIFECTA_AST_REMOTE", "unix:///run/redis.sock"),
            ("TRIFECTA_AST_REMOTE_MODE", "read-only"),
            ("TRIFECTA_AST_REMOTE_TTL_DAYS", "0"),
        ]);
        let r = Config::resolve_flags(&ro, None, None)
            .unwrap()
            .cache
            .remote
            .unwrap();
        assert_eq!(
            (r.mode, r.ttl),
            (RemoteMode::ReadOnly, Duration::from_secs(1))
        );
    }
}
