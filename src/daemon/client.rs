//! One request to a segment's daemon, with every wait bounded.
//!
//! The outer `Result` says whether the daemon answered at all ([`DaemonFailure`] otherwise: the
//! caller answers locally, or fails under `--daemon require`); the inner one is the command's
//! own outcome, the success document or the CLI error the daemon ran into, so a client prints
//! exactly what a local run would.

use super::protocol::{self, Method};
use crate::error::{CliError, ErrorCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Why the daemon did not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonFailure {
    /// No socket: no daemon runs for this segment (the normal case, not an incident).
    NotRunning,
    /// A socket file with nobody listening (a daemon died), or the daemon refused us.
    Refused(String),
    /// No reply within the timeout.
    Timeout,
    /// A reply that is not a valid response.
    BadReply(String),
    /// Any other I/O failure, or an unsafe socket directory.
    Io(String),
}

impl DaemonFailure {
    /// Stable reason for events: `not_running`, `refused`, `timeout`, `bad_reply`, `io`.
    pub fn reason(&self) -> &'static str {
        match self {
            DaemonFailure::NotRunning => "not_running",
            DaemonFailure::Refused(_) => "refused",
            DaemonFailure::Timeout => "timeout",
            DaemonFailure::BadReply(_) => "bad_reply",
            DaemonFailure::Io(_) => "io",
        }
    }
}

impl std::fmt::Display for DaemonFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DaemonFailure::NotRunning => write!(f, "no daemon runs for this segment"),
            DaemonFailure::Refused(m) => write!(f, "the daemon refused the connection: {m}"),
            DaemonFailure::Timeout => write!(f, "the daemon did not reply in time"),
            DaemonFailure::BadReply(m) => write!(f, "the daemon's reply is not valid: {m}"),
            DaemonFailure::Io(m) => write!(f, "cannot talk to the daemon: {m}"),
        }
    }
}

#[derive(Deserialize)]
struct Reply<T> {
    jsonrpc: String,
    // A missing `Option` field is `None` (serde's rule), so neither needs `#[serde(default)]`.
    result: Option<T>,
    error: Option<RpcError>,
}

#[derive(Deserialize)]
struct RpcError {
    code: i64,
    message: String,
    data: Option<AppError>,
}

#[derive(Deserialize)]
struct AppError {
    error_code: String,
    message: String,
}

/// Connect to the daemon's socket (no retry: a refused connect is an answer).
pub fn connect(socket: &Path) -> Result<UnixStream, DaemonFailure> {
    UnixStream::connect(socket).map_err(|e| match e.kind() {
        ErrorKind::NotFound => DaemonFailure::NotRunning,
        ErrorKind::ConnectionRefused => DaemonFailure::Refused(e.to_string()),
        _ => DaemonFailure::Io(e.to_string()),
    })
}

/// Send one request on `stream` and read its reply.
pub fn call_on<T: DeserializeOwned>(
    stream: &mut UnixStream,
    method: Method,
    params: &Value,
    timeout: Duration,
) -> Result<Result<T, CliError>, DaemonFailure> {
    let io = |e: std::io::Error| match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => DaemonFailure::Timeout,
        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset => DaemonFailure::Refused(e.to_string()),
        _ => DaemonFailure::Io(e.to_string()),
    };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    stream
        .write_all(protocol::request_line(1, method, params).as_bytes())
        .map_err(io)?;
    let mut line = Vec::new();
    BufReader::new(&*stream)
        .read_until(b'\n', &mut line)
        .map_err(io)?;
    if !line.ends_with(b"\n") {
        return Err(DaemonFailure::Refused(
            "the daemon closed the connection".into(),
        ));
    }
    parse_reply(&line)
}

/// One request on a fresh connection.
pub fn call<T: DeserializeOwned>(
    socket: &Path,
    method: Method,
    params: &Value,
    timeout: Duration,
) -> Result<Result<T, CliError>, DaemonFailure> {
    let mut stream = connect(socket)?;
    call_on(&mut stream, method, params, timeout)
}

fn parse_reply<T: DeserializeOwned>(line: &[u8]) -> Result<Result<T, CliError>, DaemonFailure> {
    let bad = |m: String| DaemonFailure::BadReply(m);
    let reply: Reply<T> = serde_json::from_slice(line).map_err(|e| bad(e.to_string()))?;
    if reply.jsonrpc != "2.0" {
        return Err(bad("jsonrpc is not \"2.0\"".into()));
    }
    match (reply.result, reply.error) {
        (Some(r), None) => Ok(Ok(r)),
        (None, Some(e)) if e.code == protocol::APP_ERROR => {
            let data = e
                .data
                .ok_or_else(|| bad("an application error without data".into()))?;
            let code = ErrorCode::ALL
                .into_iter()
                .find(|c| c.as_str() == data.error_code)
                .ok_or_else(|| bad(format!("unknown error code {:?}", data.error_code)))?;
            Ok(Err(CliError::new(code, data.message)))
        }
        (None, Some(e)) if e.code == protocol::REFUSED => Err(DaemonFailure::Refused(e.message)),
        (None, Some(e)) => Err(bad(format!("error {}: {}", e.code, e.message))),
        _ => Err(bad("neither a result nor an error".into())),
    }
}
