//! One module per subcommand. Each returns a serializable value or a [`crate::error::CliError`];
//! printing and exit codes are decided in `run`.

pub mod cache;
pub mod index;
pub mod symbols;
pub mod telemetry;

use crate::cli::{AstCommand, Cli, Command, TelemetryCommand};
use crate::error::{CliError, ErrorCode, ErrorEnvelope};
use crate::output::print_json;

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
        Err(CliError::new(
            ErrorCode::InternalError,
            format!("internal error (a bug; please report it): {what}"),
        ))
    });
    match outcome {
        Ok(()) => 0,
        Err(e) => {
            print_json(&ErrorEnvelope::from(&e));
            1
        }
    }
}

/// `TRIFECTA_TEST_PANIC=1` makes the command panic, so tests (in debug and release builds
/// alike: the clean-worktree gate runs the suite with `--release`) can prove the safety net
/// above turns any panic into an `INTERNAL_ERROR` envelope. Harmless in production: the
/// outcome is the same envelope a real bug would produce.
fn test_panic_hook() {
    if std::env::var_os("TRIFECTA_TEST_PANIC").is_some_and(|v| v == "1") {
        panic!("TRIFECTA_TEST_PANIC was set");
    }
}

/// Help and version go to stdout with exit 0; every other parse failure becomes a
/// `USAGE_ERROR` envelope on stdout (exit 1) with clap's explanation on stderr.
fn usage_error(e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return 0;
    }
    let rendered = e.render().to_string();
    let first = rendered
        .lines()
        .next()
        .unwrap_or("invalid command line")
        .trim_start_matches("error: ");
    eprint!("{rendered}");
    print_json(&ErrorEnvelope::from(&CliError::new(
        ErrorCode::UsageError,
        first.to_string(),
    )));
    1
}

fn run(cli: &Cli) -> Result<(), CliError> {
    test_panic_hook();
    match &cli.command {
        Command::Ast(AstCommand::Symbols(args)) => print_json(&symbols::run(args)?),
        Command::Ast(AstCommand::Index(args)) => {
            let summary = index::run(args)?;
            if args.format == index::IndexFormat::Jsonl {
                eprint!("{}", crate::output::to_cli_json(&summary));
            } else {
                print_json(&summary);
            }
        }
        Command::Ast(AstCommand::Cache(c)) => cache::run(c)?,
        Command::Telemetry(TelemetryCommand::Report(args)) => telemetry::report(args)?,
    }
    Ok(())
}
