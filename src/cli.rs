//! The `trifecta` command line (clap). Raw flags only: each command resolves them against the
//! environment through [`crate::config`].

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Python symbols from a shared, self-healing cache.
#[derive(Debug, Parser)]
#[command(
    name = "trifecta",
    version,
    long_version = crate::build_info::long_version(),
    about,
    long_about = None
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Python AST symbols and their cache.
    #[command(subcommand)]
    Ast(AstCommand),
    /// Telemetry: reports over the segment's event log.
    #[command(subcommand)]
    Telemetry(TelemetryCommand),
    /// The per-segment daemon that answers `ast symbols` from a warm, shared cache.
    #[command(subcommand)]
    Daemon(DaemonCommand),
    /// Run the segment's daemon in the foreground (what `daemon start` launches).
    Serve(ServeArgs),
}

/// `trifecta daemon …`.
#[derive(Debug, Subcommand)]
pub enum DaemonCommand {
    /// Start the segment's daemon in the background (a no-op if it already runs).
    Start(DaemonArgs),
    /// Ask the segment's daemon to finish its requests and exit.
    Stop(DaemonArgs),
    /// Whether the segment's daemon runs, its pid and socket.
    Status(DaemonArgs),
}

/// `--segment` for daemon commands.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Segment root the daemon serves.
    #[arg(long, default_value = ".")]
    pub segment: PathBuf,
}

/// `trifecta serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Segment root to serve.
    #[arg(long, default_value = ".")]
    pub segment: PathBuf,
    /// Telemetry level: off, lite or full (also `TRIFECTA_TELEMETRY`; default off).
    #[arg(long)]
    pub telemetry: Option<String>,
}

/// `trifecta telemetry …`.
#[derive(Debug, Subcommand)]
pub enum TelemetryCommand {
    /// Hit rate, misses by reason, latency percentiles, incidents, DB size and runs.
    Report(TelemetryReportArgs),
}

/// Output format of `telemetry report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TelemetryFormat {
    /// Stable-key JSON (the default).
    Json,
    /// A readable summary.
    Text,
    /// A self-contained HTML page with inline SVG charts.
    Html,
}

impl TelemetryFormat {
    /// `json`, `text` or `html`.
    pub fn as_str(self) -> &'static str {
        match self {
            TelemetryFormat::Json => "json",
            TelemetryFormat::Text => "text",
            TelemetryFormat::Html => "html",
        }
    }
}

/// `trifecta telemetry report`.
#[derive(Debug, Args)]
pub struct TelemetryReportArgs {
    /// Segment root whose `_ctx/telemetry` is read (or `TRIFECTA_TELEMETRY_DIR`).
    #[arg(long, default_value = ".")]
    pub segment: PathBuf,
    /// Only events at or after this: a duration back from now (`30m`, `24h`, `7d`) or an
    /// RFC 3339 timestamp (`2026-11-21T00:00:00Z`).
    #[arg(long)]
    pub since: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    pub format: TelemetryFormat,
    /// Write the report to this file (atomically) and print a JSON receipt instead.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// `trifecta ast …`.
#[derive(Debug, Subcommand)]
pub enum AstCommand {
    /// Print the symbols of a module, class or member as JSON.
    Symbols(SymbolsArgs),
    /// Index every Python file of a segment (warms the cache; `--format jsonl` streams an index).
    Index(IndexArgs),
    /// Inspect and maintain the persistent symbol cache.
    #[command(subcommand)]
    Cache(CacheCommand),
}

/// `trifecta ast cache …`.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Entries, sizes, real hit/miss counters and incidents.
    Stats(CacheReportArgs),
    /// Full `integrity_check` plus every entry's checksum; exit 1 (`CACHE_CORRUPT`) on damage.
    Verify(CacheReportArgs),
    /// Remove expired entries, entries of deleted files and LRU entries above the size limit.
    Prune(CacheArgs),
    /// Delete the cache database (never while another process uses it).
    Clear(CacheArgs),
    /// Print where the cache lives.
    Path(CacheArgs),
}

/// `--segment` for cache commands.
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// Segment root whose cache to work on.
    #[arg(long, default_value = ".")]
    pub segment: PathBuf,
}

/// `--segment` and `--format` for cache commands that report.
#[derive(Debug, Args)]
pub struct CacheReportArgs {
    /// Segment root whose cache to work on.
    #[arg(long, default_value = ".")]
    pub segment: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Json)]
    pub format: ReportFormat,
}

/// `--format` of `ast cache stats|verify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// A readable table.
    Text,
    /// One JSON document (the default).
    Json,
}

/// Output format of `ast index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IndexFormat {
    /// One JSON summary document.
    Summary,
    /// One JSON line per module, then the summary on stderr.
    Jsonl,
}

/// `trifecta ast index`.
#[derive(Debug, Args)]
pub struct IndexArgs {
    /// Segment root to index.
    #[arg(long, default_value = ".")]
    pub segment: PathBuf,
    /// Worker threads, 1 to 256 (default: all cores).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Persistence and telemetry.
    #[command(flatten)]
    pub cache: CacheFlags,
    /// `summary` (default) or `jsonl`.
    #[arg(long, value_enum, default_value = "summary")]
    pub format: IndexFormat,
}

/// `trifecta ast symbols`.
#[derive(Debug, Args)]
pub struct SymbolsArgs {
    /// `sym://python/mod/<dotted.module>` or `sym://python/type/<dotted.module>.<Class>[#member]`.
    pub uri: String,
    /// Segment root (the directory modules are resolved in).
    #[arg(long, default_value = ".")]
    pub segment: PathBuf,
    /// Persistence and telemetry.
    #[command(flatten)]
    pub cache: CacheFlags,
    /// Ask the segment's daemon: auto (default: if one runs), never, or require
    /// (also `TRIFECTA_DAEMON`).
    #[arg(long)]
    pub daemon: Option<String>,
}

/// The persistence and telemetry flags `ast symbols` and `ast index` share.
#[derive(Debug, Args)]
pub struct CacheFlags {
    /// Use the persistent SQLite cache (also `TRIFECTA_AST_PERSIST=1`).
    #[arg(long, overrides_with = "no_persist_cache")]
    pub persist_cache: bool,
    /// Use the in-memory cache even when `TRIFECTA_AST_PERSIST` is set.
    #[arg(long, overrides_with = "persist_cache")]
    pub no_persist_cache: bool,
    /// Telemetry level: off, lite or full (also `TRIFECTA_TELEMETRY`; default off).
    #[arg(long)]
    pub telemetry: Option<String>,
}

impl CacheFlags {
    /// The command line's say on persistence, if any.
    pub fn persist_flag(&self) -> Option<bool> {
        if self.persist_cache {
            Some(true)
        } else if self.no_persist_cache {
            Some(false)
        } else {
            None
        }
    }
}
