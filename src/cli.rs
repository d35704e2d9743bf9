//! The `trifecta` command line (clap). Raw flags only: each command resolves them against the
//! environment through [`crate::config`].

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Python symbols from a shared, self-healing cache.
#[derive(Debug, Parser)]
#[command(name = "trifecta", version, about, long_about = None)]
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
}

/// `trifecta ast …`.
#[derive(Debug, Subcommand)]
pub enum AstCommand {
    /// Print the symbols of a module, class or member as JSON.
    Symbols(SymbolsArgs),
    /// Index every Python file of a segment (warms the cache; `--format jsonl` streams an index).
    Index(crate::commands::index::IndexArgs),
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

/// `trifecta ast symbols`.
#[derive(Debug, Args)]
pub struct SymbolsArgs {
    /// `sym://python/mod/<dotted.module>` or `sym://python/type/<dotted.module>.<Class>[#member]`.
    pub uri: String,
    /// Segment root (the directory modules are resolved in).
    #[arg(long, default_value = ".")]
    pub segment: PathBuf,
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

impl SymbolsArgs {
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
