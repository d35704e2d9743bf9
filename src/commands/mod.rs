//! One module per subcommand. Each returns a serializable value or a [`crate::error::CliError`];
//! printing and exit codes are decided in `run`.

pub mod cache;
pub mod daemon;
pub mod index;
pub mod symbols;
pub mod telemetry;

use crate::cli::{AstCommand, Cli, Command, TelemetryCommand};
use crate::config::{Config, Env};
use crate::error::{CliError, ErrorCode, ErrorEnvelope};
use crate::output::{StdoutError, print_json, write_stderr};

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

/// Help and version go to stdout with exit 0; every other parse failure becomes a
/// `USAGE_ERROR` envelope on stdout (exit 1) with clap's explanation on stderr.
fn usage_error(e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        return match e.print() {
            Ok(()) => 0,
            Err(io) => stdout_failed(&StdoutError(io)),
        };
    }
    let rendered = e.render().to_string();
    let first = rendered
        .lines()
        .next()
        .unwrap_or("invalid command line")
        .trim_start_matches("error: ");
    write_stderr(&rendered);
    let _ = print_json(&ErrorEnvelope::from(&CliError::new(
        ErrorCode::UsageError,
        first.to_string(),
    )));
    1
}

fn run(cli: &Cli) -> Result<(), Failure> {
    let cfg = Config::resolve(cli, &Env::from_process())?;
    cfg.install();
    test_panic_hook(&cfg);
    match &cli.command {
        Command::Ast(AstCommand::Symbols(args)) => {
            print_json(&daemon::symbols_routed(args, &cfg)?)?
        }
        Command::Ast(AstCommand::Index(args)) => {
            let summary = index::run(args, &cfg)?;
            if args.format == crate::cli::IndexFormat::Jsonl {
                write_stderr(&crate::output::to_cli_json(&summary));
            } else {
                print_json(&summary)?;
            }
        }
        Command::Ast(AstCommand::Cache(c)) => cache::run(c, &cfg)?,
        Command::Telemetry(TelemetryCommand::Report(args)) => telemetry::report(args, &cfg)?,
        Command::Daemon(c) => print_json(&daemon::run(c, &cfg)?)?,
        Command::Serve(args) => print_json(&daemon::serve(args, &cfg)?)?,
    }
    Ok(())
}
