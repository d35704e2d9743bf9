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
