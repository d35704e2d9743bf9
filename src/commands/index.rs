//! `trifecta ast index`: warm the cache for a whole segment and optionally stream a
//! repository-wide symbol index (one JSON line per module, like a ctags `tags` file).
//!
//! Summary on stdout as one JSON document (`--format summary`, the default), or one compact JSON
//! line per module in path order (`--format jsonl`) with the summary on stderr. A file that
//! cannot be read is reported and counted, never fatal. `file_rel` is the lossless escaped name
//! of [`crate::file_rel`] (`\xNN` for bytes that are not UTF-8, `\\` for a backslash).

use crate::cache::service::SymbolCache;
use crate::cli::{IndexArgs, OutputFormat};
use crate::commands::Failure;
use crate::config::Config;
use crate::error::{CliError, ErrorCode};
use crate::index::{self, FileOutcome, FileResult};
use crate::output::StdoutError;
use crate::symbols::resolve;
use crate::telemetry::event::IndexResult;
use crate::telemetry::{Event, Level, Telemetry};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Instant;

/// The summary document.
#[derive(Debug, Default, Serialize)]
pub struct IndexSummary {
    /// Always `"ok"`.
    pub status: &'static str,
    /// Canonical segment root.
    pub segment_root: String,
    /// Python files found.
    pub files: u64,
    /// Top-level symbols across all modules.
    pub symbols: u64,
    /// Class members across all modules (recursively).
    pub members: u64,
    /// Files served from the cache.
    pub hits: u64,
    /// Files extracted.
    pub misses: u64,
    /// Files that could not be read.
    pub errors: u64,
    /// Modules with recovered syntax errors.
    pub syntax_error_files: u64,
    /// Source bytes read.
    pub bytes: u64,
    /// Wall time of walk + index, milliseconds.
    pub wall_ms: f64,
    /// Source MB (10^6 bytes) per second of wall time.
    pub mb_per_s: f64,
    /// Worker threads used.
    pub jobs: usize,
    /// Misses by reason.
    pub miss_reasons: BTreeMap<&'static str, u64>,
    /// `memory` or `sqlite`.
    pub cache_backend: &'static str,
    /// The DB path when persistence is on.
    pub cache_db_path: Option<String>,
    /// Cache lookups/writes that failed and were served uncached.
    pub store_failures: u64,
    /// The first errors (path and reason), at most 20.
    pub error_files: Vec<FileError>,
}

/// A file that could not be indexed.
#[derive(Debug, Serialize)]
pub struct FileError {
    /// Segment-relative path, escaped losslessly ([`crate::file_rel`]).
    pub file_rel: String,
    /// Why (path-free).
    pub message: String,
}

/// One JSONL line.
#[derive(Serialize)]
struct ModuleLine<'a> {
    file_rel: &'a str,
    module: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    symbols: Option<&'a [crate::symbols::Symbol]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    syntax_errors: Option<&'a [crate::symbols::SyntaxErrorLoc]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

fn count_members(symbols: &[crate::symbols::Symbol]) -> u64 {
    symbols
        .iter()
        .filter_map(|s| s.members.as_deref())
        .map(|m| m.len() as u64 + count_members(m))
        .sum()
}

/// Most worker threads `--jobs` accepts. Each worker is an OS thread with a 64 MiB stack
/// reservation, so an unbounded value (`--jobs 100000`) spawned threads until the process was
/// killed. 256 is far above any useful value (the work is CPU-bound: more workers than cores
/// only add switching), and a fixed bound gives the same answer on every machine.
pub const MAX_JOBS: usize = 256;

/// The worker count: `--jobs` if given (1..=[`MAX_JOBS`], else `INVALID_ARGUMENT`), otherwise
/// the available parallelism (capped the same way).
fn jobs(flag: Option<usize>) -> Result<usize, CliError> {
    match flag {
        Some(n) if (1..=MAX_JOBS).contains(&n) => Ok(n),
        Some(n) => Err(CliError::new(
            ErrorCode::InvalidArgument,
            format!("--jobs {n} is not valid: expected a whole number from 1 to {MAX_JOBS}"),
        )),
        None => Ok(std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_JOBS)),
    }
}

/// Run the command; returns the summary (printed by the caller as JSON). With `--format jsonl`
/// the module lines are written to stdout as they come, and a failed write fails the command.
pub fn run(args: &IndexArgs, cfg: &Config) -> Result<IndexSummary, Failure> {
    let started = Instant::now();
    let setup = || -> Result<_, CliError> {
        let jobs = jobs(args.jobs)?;
        let root = resolve::segment_root(&args.segment)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(jobs)
            .stack_size(index::WORKER_STACK)
            .build()
            .map_err(|e| CliError::new(ErrorCode::InternalError, format!("thread pool: {e}")))?;
        Ok((jobs, root, pool))
    };
    let (jobs, root, pool) = setup().inspect_err(|e| {
        // Still the command's one `ast.index` event, with the error code and no counts.
        let result = IndexResult {
            status: "error".into(),
            error_code: Some(e.code.as_str().into()),
            ..IndexResult::default()
        };
        crate::commands::early_failure_event(cfg, &args.segment, Event::Index { result }, started)
    })?;

    let (files, walk_errors) = index::walk(&root.anchor);
    let telemetry = Telemetry::new(cfg.telemetry.for_segment(&root));
    let mut cache = SymbolCache::open(&root, &cfg.cache, &telemetry);
    let mut summary = IndexSummary {
        status: "ok",
        segment_root: root.to_string_lossy().into_owned(),
        files: files.len() as u64,
        jobs,
        cache_backend: cache.backend().as_str(),
        cache_db_path: cache.db_path().map(|p| p.to_string_lossy().into_owned()),
        ..IndexSummary::default()
    };
    for (file_rel, message) in walk_errors {
        summary.errors += 1;
        summary.error_files.push(FileError { file_rel, message });
    }
    let progress = progress_bar(files.len() as u64);
    let jsonl = args.format == OutputFormat::Jsonl;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    // The first failed stdout write: later lines are not attempted, the cache is still warmed,
    // and the command then fails (a reader must never take a truncated index for a whole one).
    let mut write_error: Option<std::io::Error> = None;
    let trouble = {
        index::run(
            &pool,
            &root.anchor,
            &files,
            &mut cache,
            crate::commands::symbols::MAX_SOURCE_BYTES,
            |r: FileResult| {
                record(&mut summary, &r);
                if jsonl
                    && write_error.is_none()
                    && let Err(e) = write_line(&mut out, &r)
                {
                    write_error = Some(e);
                }
            },
            |done| {
                if let Some(b) = &progress {
                    b.set_position(done as u64);
                }
            },
        )
    };
    cache.finish();
    if let Some(b) = progress {
        b.finish_and_clear();
    }
    let flushed = out.flush();
    drop(out);
    if let Some(e) = write_error.or(flushed.err()) {
        return Err(StdoutError(e).into());
    }
    summary.store_failures = trouble.failures;
    summary.wall_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    summary.mb_per_s = if summary.wall_ms > 0.0 {
        ((summary.bytes as f64 / 1e6) / (summary.wall_ms / 1e3) * 100.0).round() / 100.0
    } else {
        0.0
    };
    record_run(&telemetry, &summary);
    Ok(summary)
}

/// A progress bar on stderr when it is a terminal (never in pipes, logs or CI).
fn progress_bar(files: u64) -> Option<indicatif::ProgressBar> {
    std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(files);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} files  {rate}  eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .with_key(
                "rate",
                |s: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = w.write_str(&files_per_second(s.per_sec()));
                },
            ),
        );
        bar
    })
}

/// The run's one `ast.index` event.
fn record_run(telemetry: &Telemetry, summary: &IndexSummary) {
    let result = IndexResult {
        status: "ok".into(),
        error_code: None,
        files: summary.files,
        hits: summary.hits,
        misses: summary.misses,
        errors: summary.errors,
        bytes: summary.bytes,
        jobs: summary.jobs as u64,
    };
    let line = Event::Index { result }.into_line().timed(summary.wall_ms);
    telemetry.event(Level::Lite, line.cache(summary.cache_backend));
    telemetry.flush();
}

/// The progress line's rate: `6,646.3805/s` (indicatif's `{per_sec}`, with a thousands
/// separator and four decimals) became `6646 files/s`; below 10 one decimal is kept.
pub fn files_per_second(rate: f64) -> String {
    if !rate.is_finite() || rate < 0.0 {
        "- files/s".into()
    } else if rate < 10.0 {
        format!("{rate:.1} files/s")
    } else {
        format!("{rate:.0} files/s")
    }
}

fn record(summary: &mut IndexSummary, r: &FileResult) {
    summary.bytes += r.bytes;
    let table = match &r.outcome {
        FileOutcome::Hit(t) => {
            summary.hits += 1;
            t
        }
        FileOutcome::Miss(t, reason) => {
            summary.misses += 1;
            *summary.miss_reasons.entry(reason.as_str()).or_default() += 1;
            t
        }
        FileOutcome::Error(message) => {
            summary.errors += 1;
            if summary.error_files.len() < 20 {
                summary.error_files.push(FileError {
                    file_rel: r.file_rel.clone(),
                    message: message.clone(),
                });
            }
            return;
        }
    };
    summary.symbols += table.symbols.len() as u64;
    summary.members += count_members(&table.symbols);
    summary.syntax_error_files += u64::from(table.has_syntax_errors());
}

fn write_line(out: &mut impl Write, r: &FileResult) -> std::io::Result<()> {
    let (table, status, error) = match &r.outcome {
        FileOutcome::Hit(t) => (Some(t), Some("hit"), None),
        FileOutcome::Miss(t, _) => (Some(t), Some("miss"), None),
        FileOutcome::Error(e) => (None, None, Some(e.as_str())),
    };
    let line = ModuleLine {
        file_rel: &r.file_rel,
        module: index::module_name(&r.file_rel),
        symbols: table.map(|t| t.symbols.as_slice()),
        syntax_errors: table.map(|t| t.syntax_errors.as_slice()),
        cache_status: status,
        error,
    };
    serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::from)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::files_per_second;

    #[test]
    fn the_rate_is_a_plain_number_of_files_per_second() {
        // indicatif's `{per_sec}` printed this rate as `6,646.3805/s`.
        assert_eq!(files_per_second(6646.3805), "6646 files/s");
        assert_eq!(files_per_second(3.25), "3.2 files/s");
        assert_eq!(files_per_second(0.0), "0.0 files/s");
        assert_eq!(files_per_second(f64::NAN), "- files/s");
    }
}
