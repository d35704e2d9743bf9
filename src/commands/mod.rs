//! One module per subcommand. Each returns a serializable value or a [`crate::error::CliError`];
//! printing and exit codes are decided in [`run`].

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
    match run(&cli) {
        Ok(()) => 0,
        Err(e) => {
            print_json(&ErrorEnvelope::from(&e));
            1
        }
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
    match &cli.command {
        Command::Ast(AstCommand::Symbols(args)) => print_json(&symbols::run(args)?),
        Command::Telemetry(TelemetryCommand::Report(args)) => telemetry::report(args)?,
    }
    Ok(())
}
