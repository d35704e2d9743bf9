//! One module per subcommand. Each returns a serializable value or a [`crate::error::CliError`];
//! printing and exit codes are decided in `run`.
//!
//! A failure prints the JSON envelope on stdout (the contract) and one human line on stderr,
//! `error[CODE]: message (detail)`. `trifecta` alone, or a command group alone (`trifecta ast`),
//! prints its help on stdout and exits 0, as cargo does: it asks what there is, it is not a
//! mistake.

pub mod cache;
pub mod config;
pub mod daemon;
pub mod index;
pub mod symbols;
pub mod telemetry;

use crate::cli::{AstCommand, Cli, Command, TelemetryCommand};
use crate::config::{Config, Env};
use crate::error::{CliError, ErrorCode, ErrorEnvelope};
use crate::output::{StdoutError, print_json, write_stderr, write_stdout};
use crate::telemetry::{Event, Level, Telemetry};
use serde_json::json;
use std::path::Path;
use std::time::Instant;

/// Why a command did not succeed.
#[derive(Debug)]
pub enum Failure {
    /// A failure with a stable code: printed as the JSON envelope on stdout, exit 1.
    Cli(CliError),
    /// The output could not be written to stdout, so no envelope can reach the reader either:
    /// a message on stderr and exit 1, or exit 0 quietly for a closed pipe.
    Stdout(StdoutError),
}

impl From<CliError> for Failure {
    fn from(e: CliError) -> Self {
        Failure::Cli(e)
    }
}

impl From<StdoutError> for Failure {
    fn from(e: StdoutError) -> Self {
        Failure::Stdout(e)
    }
}

/// Parse `args` (including the program name), run, print, and return the process exit code.
pub fn main_with_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    use clap::Parser;
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    // A panic is a bug, but the user still gets the JSON envelope and exit 1, never a backtrace:
    // the hook stays silent and the unwind is caught here.
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(|| run(&cli)).unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        Err(Failure::Cli(CliError::new(
            ErrorCode::InternalError,
            format!("internal error (a bug; please report it): {what}"),
        )))
    });
    match outcome {
        Ok(()) => 0,
        Err(Failure::Cli(e)) => {
            write_stderr(&e.stderr_line());
            if let Err(out) = print_json(&ErrorEnvelope::from(&e)) {
                // Neither the result nor the envelope can be delivered: say both on stderr.
                if !out.is_broken_pipe() {
                    write_stderr(&format!("trifecta: {}: {}; {out}\n", e.code, e.message));
                }
            }
            1
        }
        Err(Failure::Stdout(e)) => stdout_failed(&e),
    }
}

/// The exit code for output that could not be written: 0 for a pipe the reader closed (the
/// reader chose to stop, as with `| head`; ripgrep does the same), else 1 with the reason on
/// stderr.
fn stdout_failed(e: &StdoutError) -> i32 {
    if e.is_broken_pipe() {
        return 0;
    }
    write_stderr(&format!("trifecta: {e}\n"));
    1
}

/// `TRIFECTA_TEST_PANIC=1` makes the command panic, so tests (in debug and release builds
/// alike: the clean-worktree gate runs the suite with `--release`) can prove the safety net
/// above turns any panic into an `INTERNAL_ERROR` envelope. Harmless in production: the
/// outcome is the same envelope a real bug would produce.
fn test_panic_hook(cfg: &Config) {
    if cfg.test_panic {
        panic!("TRIFECTA_TEST_PANIC was set");
    }
}

/// Help and version go to stdout with exit 0, and so does the help a bare command group
/// (`trifecta`, `trifecta ast`) shows; every other parse failure becomes a `USAGE_ERROR`
/// envelope on stdout (exit 1) with clap's explanation on stderr, its first line
/// `error[USAGE_ERROR]: …` like every other failure's.
fn usage_error(e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            return match e.print() {
                Ok(()) => 0,
                Err(io) => stdout_failed(&StdoutError(io)),
            };
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            return match write_stdout(e.render().to_string().as_bytes()) {
                Ok(()) => 0,
                Err(out) => stdout_failed(&out),
            };
        }
        _ => {}
    }
    let rendered = e.render().to_string();
    let first = rendered
        .lines()
        .next()
        .unwrap_or("invalid command line")
        .trim_start_matches("error: ");
    let human = match rendered.strip_prefix("error: ") {
        Some(rest) => format!("error[{}]: {rest}", ErrorCode::UsageError),
        None => rendered.clone(),
    };
    write_stderr(&human);
    let _ = print_json(&ErrorEnvelope::from(&CliError::new(
        ErrorCode::UsageError,
        first.to_string(),
    )));
    1
}

fn run(cli: &Cli) -> Result<(), Failure> {
    // Completions and man pages are documentation of the command line, like `--help`: they
    // read no setting, so a bad variable in the environment does not stop them.
    match &cli.command {
        Command::Completions(a) => {
            return Ok(crate::cli_docs::print_completions(cli_command(), a.shell)?);
        }
        Command::Man(a) => return man(a),
        _ => {}
    }
    let cfg = Config::resolve(cli, &Env::from_process())?;
    cfg.install();
    test_panic_hook(&cfg);
    match &cli.command {
        Command::Ast(AstCommand::Symbols(args)) => {
            print_json(&daemon::symbols_routed(args, &cfg)?)?
        }
        Command::Ast(AstCommand::Index(args)) => {
            let summary = index::run(args, &cfg)?;
            if args.format == crate::cli::OutputFormat::Jsonl {
                write_stderr(&crate::output::to_cli_json(&summary));
            } else {
                print_json(&summary)?;
            }
        }
        Command::Ast(AstCommand::Cache(c)) => cache::run(c, &cfg)?,
        Command::Telemetry(TelemetryCommand::Report(args)) => telemetry::report(args, &cfg)?,
        Command::Daemon(c) => print_json(&daemon::run(c, &cfg)?)?,
        Command::Serve(args) => print_json(&daemon::serve(args, &cfg)?)?,
        Command::Config(args) => config::run(args, &cfg)?,
        Command::Completions(_) | Command::Man(_) => {} // answered above
    }
    Ok(())
}

/// The clap definition of `trifecta`, for completions and man pages.
pub fn cli_command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// `trifecta man [--dir DIR]`.
fn man(a: &crate::cli::ManArgs) -> Result<(), Failure> {
    let io_err = |what: &str, e: std::io::Error| {
        CliError::new(ErrorCode::InvalidArgument, format!("{what}: {e}"))
    };
    match &a.dir {
        None => {
            let page = crate::cli_docs::man_page(cli_command()).map_err(|e| io_err("man", e))?;
            write_stdout(&page)?;
        }
        Some(dir) => {
            let files = crate::cli_docs::write_man_pages(cli_command(), dir)
                .map_err(|e| io_err(&format!("--dir {}", dir.display()), e))?;
            print_json(&json!({"status": "ok", "dir": dir.to_string_lossy(), "pages": files}))?;
        }
    }
    Ok(())
}

/// The command's one event when it failed before it could write its own (bad URI, missing
/// segment or module, bad `--jobs`): built by the command with the error code and, when it
/// parsed, the canonical URI; never a path. Written where the command's events go: the
/// segment's telemetry directory, or `TRIFECTA_TELEMETRY_DIR`; with neither (no segment) there
/// is nowhere to write and nothing is created.
pub fn early_failure_event(cfg: &Config, segment: &Path, ev: Event, started: Instant) {
    if cfg.telemetry.level == Level::Off {
        return;
    }
    let settings = match crate::symbols::resolve::segment_root(segment) {
        Ok(root) => cfg.telemetry.for_segment(&root),
        Err(_) if cfg.telemetry.dir.is_some() => {
            let abs = std::path::absolute(segment).unwrap_or_else(|_| segment.to_path_buf());
            cfg.telemetry.for_segment(&abs)
        }
        Err(_) => return,
    };
    let telemetry = Telemetry::new(settings);
    let line = ev
        .into_line()
        .timed(crate::cache::service::elapsed_ms(started));
    telemetry.event(Level::Lite, line);
    telemetry.flush();
}
