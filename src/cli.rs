//! The `trifecta` command line (clap). Raw flags only: each command resolves them against the
//! environment through [`crate::config`]. One [`OutputFormat`] serves every `--format` flag;
//! each flag accepts only the formats its command can write ([`formats`]).

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Python symbols from a shared, self-healing cache.
#[derive(Debug, Parser)]
#[command(
    name = "trifecta",
    version,
    long_version = crate::build_info::long_version(),
    about,
    long_about = None,
    after_help = "Run with no arguments to print this help (exit 0, like cargo). Every failure \
                  prints a JSON envelope on stdout, one `error[CODE]: ...` line on stderr, and \
                  exits 1."
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
    /// Every setting, its effective value and where it came from (default, environment, flag).
    Config(ConfigArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to stdout.
    Completions(CompletionsArgs),
    /// Print the man page (roff) to stdout, or write one page per command into `--dir`.
    Man(ManArgs),
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

/// Every output format of every command. Each `--format` flag accepts only a subset
/// ([`formats`]), so `--format html` on a command that cannot write HTML is a usage error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Stable-key JSON.
    Json,
    /// A readable summary.
    Text,
    /// A self-contained HTML page with inline SVG charts.
    Html,
    /// One JSON summary document (`ast index`).
    Summary,
    /// One JSON line per module, then the summary on stderr (`ast index`).
    Jsonl,
}

impl OutputFormat {
    /// The flag spelling: `json`, `text`, `html`, `summary` or `jsonl`.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Json => "json",
            OutputFormat::Text => "text",
            OutputFormat::Html => "html",
            OutputFormat::Summary => "summary",
            OutputFormat::Jsonl => "jsonl",
        }
    }
}

/// A `--format` value parser accepting only `allowed` (shown in `--help` and completions).
pub fn formats(allowed: &'static [OutputFormat]) -> impl TypedValueParser<Value = OutputFormat> {
    PossibleValuesParser::new(allowed.iter().filter_map(|f| f.to_possible_value())).map(
        move |s: String| {
            // The parser above admits only the spellings of `allowed`.
            *allowed
                .iter()
                .find(|f| f.as_str() == s)
                .unwrap_or(&allowed[0])
        },
    )
}

const JSON_TEXT_HTML: &[OutputFormat] =
    &[OutputFormat::Json, OutputFormat::Text, OutputFormat::Html];
const JSON_TEXT: &[OutputFormat] = &[OutputFormat::Json, OutputFormat::Text];
const TEXT_JSON: &[OutputFormat] = &[OutputFormat::Text, OutputFormat::Json];
const SUMMARY_JSONL: &[OutputFormat] = &[OutputFormat::Summary, OutputFormat::Jsonl];

/// `trifecta config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The flags `ast symbols` takes, to see what they change.
    #[command(flatten)]
    pub cache: CacheFlags,
    /// Output format.
    #[arg(long, value_parser = formats(TEXT_JSON), default_value = "text")]
    pub format: OutputFormat,
}

/// `trifecta completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write completions for.
    pub shell: clap_complete::Shell,
}

/// `trifecta man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write `<name>.1` for the command and each subcommand into this directory instead.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// `trifecta telemetry …`.
#[derive(Debug, Subcommand)]
pub enum TelemetryCommand {
    /// Hit rate, misses by reason, latency percentiles, incidents, DB size and runs.
    Report(TelemetryReportArgs),
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
    #[arg(long, value_parser = formats(JSON_TEXT_HTML), default_value = "json")]
    pub format: OutputFormat,
    /// Write the report to this file (atomically) and print a JSON receipt instead.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// `trifecta ast …`.
#[derive(Debug, Subcommand)]
pub enum AstCommand {
    /// Print the symbols of a module, class or member as JSON.
    Symbols(SymbolsArgs),
    /// Index every Python file of a segment into the persistent cache (`--no-persist-cache`
    /// only parses; `--format jsonl` streams an index).
    Index(IndexArgs),
    /// Inspect and maintain the persistent symbol cache.
    #[command(subcommand)]
    Cache(CacheCommand),
}

/// `trifecta ast cache …`.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Entries, sizes, hit rate, misses by reason, limits and incidents (`--zero` resets the
    /// counters).
    Stats(CacheStatsArgs),
    /// Full `integrity_check` plus every entry's checksum; exit 1 (`CACHE_CORRUPT`) on damage.
    Verify(CacheReportArgs),
    /// Remove expired entries, entries of deleted files and LRU entries above the size limit.
    Prune(CacheArgs),
    /// Delete the cache database (never while another process uses it).
    Clear(CacheArgs),
    /// Print the cache database's path (`--format json` for its directory, lock and existence).
    Path(CachePathArgs),
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
    #[arg(long, value_parser = formats(JSON_TEXT), default_value = "json")]
    pub format: OutputFormat,
}

/// `ast cache stats`.
#[derive(Debug, Args)]
pub struct CacheStatsArgs {
    /// Segment root whose cache to work on.
    #[arg(long, default_value = ".")]
    pub segment: PathBuf,
    /// Output format.
    #[arg(long, value_parser = formats(JSON_TEXT), default_value = "json")]
    pub format: OutputFormat,
    /// Reset the hit/miss and incident counters to zero (entries are kept), then show them.
    #[arg(long, short = 'z')]
    pub zero: bool,
}

/// `ast cache path`.
#[derive(Debug, Args)]
pub struct CachePathArgs {
    /// Segment root whose cache to locate.
    #[arg(long, default_value = ".")]
    pub segment: PathBuf,
    /// `text` (the bare path, the default) or `json`.
    #[arg(long, value_parser = formats(TEXT_JSON), default_value = "text")]
    pub format: OutputFormat,
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
    #[arg(long, value_parser = formats(SUMMARY_JSONL), default_value = "summary")]
    pub format: OutputFormat,
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
    /// Use the persistent SQLite cache (also `TRIFECTA_AST_PERSIST=1`; `ast index` persists
    /// unless told otherwise).
    #[arg(long, overrides_with = "no_persist_cache")]
    pub persist_cache: bool,
    /// Use the in-memory cache even when `TRIFECTA_AST_PERSIST` is set (nothing is kept).
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
