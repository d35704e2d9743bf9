//! `trifecta telemetry report`: read the segment's event log (live and rotated files) and
//! print cache-effectiveness figures as JSON (default), text or a self-contained HTML page.
//!
//! Reading is strictly read-only. A missing or empty log is a normal "no telemetry" result
//! (exit 0); only an unreadable log (e.g. the telemetry path is a file) is an error.

use crate::cli::{OutputFormat, TelemetryReportArgs};
use crate::commands::Failure;
use crate::config::Config;
use crate::error::{CliError, ErrorCode};
use crate::output::{print_json, to_cli_json, write_stdout};
use crate::symbols::resolve;
use crate::telemetry::report::{self, html, text};
use serde_json::json;

/// Run the report and print it (or write it to `--output` and print a JSON receipt).
pub fn report(args: &TelemetryReportArgs, cfg: &Config) -> Result<(), Failure> {
    // Validate everything cheap before touching the file system.
    let since_ms = match args.since.as_deref() {
        None => None,
        Some(s) => Some(
            report::parse_since(s, crate::clock::real_now_ms())
                .map_err(|e| CliError::new(ErrorCode::InvalidArgument, format!("--since: {e}")))?,
        ),
    };
    let root = resolve::segment_root(&args.segment)?;
    let dir = cfg.telemetry.dir_for(&root);
    let rep = report::build(&dir, since_ms).map_err(|e| {
        // Segment-relative when inside the segment: output never names absolute locations the
        // caller did not give (a `TRIFECTA_TELEMETRY_DIR` outside it is the caller's own path).
        let full = dir.path();
        let shown = full.strip_prefix(&root.path).unwrap_or(&full);
        CliError::new(
            ErrorCode::TelemetryUnavailable,
            format!("cannot read telemetry in {}: {e}", shown.display()),
        )
    })?;
    let rendered = match args.format {
        OutputFormat::Text => text::render(&rep),
        OutputFormat::Html => html::render(&rep),
        // `json`; the flag admits no other format.
        _ => to_cli_json(&rep),
    };
    match args.output.as_deref().filter(|p| p.as_os_str() != "-") {
        // A failed write is the caller's to report (a closed pipe quietly, see commands::run).
        None => write_stdout(rendered.as_bytes())?,
        Some(path) => {
            write_atomically(path, rendered.as_bytes()).map_err(|e| {
                CliError::new(
                    ErrorCode::InvalidArgument,
                    format!("--output {}: {e}", path.display()),
                )
            })?;
            print_json(&json!({
                "status": "ok",
                "format": args.format.as_str(),
                "output": path.to_string_lossy(),
                "bytes": rendered.len(),
                "no_telemetry": rep.no_telemetry,
                "events_in_window": rep.events_in_window,
                "malformed": rep.malformed.count,
            }))?;
        }
    }
    Ok(())
}

/// Write via a temporary file (`O_EXCL`) in the same directory, synced, then renamed, so a reader
/// never sees half a report and a failed write leaves any previous report intact. An existing
/// regular file keeps its mode; anything else at the path (a device, a FIFO, a directory, a
/// link) is refused and left as it was.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::segment_fs::Anchored::user_path(path)?
        .write_atomic(bytes)
        .map_err(std::io::Error::from)
}
