//! One request to a segment's daemon, with every wait bounded.
//!
//! The outer `Result` says whether the daemon answered at all ([`DaemonFailure`] otherwise: the
//! caller answers locally, or fails under `--daemon require`); the inner one is the command's
//! own outcome, the success document or the CLI error the daemon ran into, so a client prints
//! exactly what a local run would.
//!
//! A reply is only believed when it is a JSON-RPC response to *this* request (`id` echoed); the
//! caller also checks it is about its segment. [`connect_in`] reaches the socket through the
//! checked private directory's handle and only when the name is a socket owned by this user:
//! a regular file, FIFO or link planted at the socket path is no daemon.

use super::protocol::{self, Method};
use super::runtime_dir::{self, PrivateDir};
use crate::error::{CliError, ErrorCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Longest reply line read: far above any symbol document (the daemon's answers are the CLI's
/// output, bounded by the source size cap), far below what would hurt a client.
const MAX_REPLY: u64 = 256 * 1024 * 1024;

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

/// The id every request from this client carries (one request per connection).
const REQUEST_ID: u64 = 1;

#[derive(Deserialize)]
struct Reply<T> {
    jsonrpc: String,
    #[serde(default)]
    id: Value,
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
///
/// The connect is non-blocking: a blocking `connect(2)` on a Unix socket whose listen backlog
/// is full waits until the listener accepts, that is forever when the daemon is wedged. A full
/// backlog is a refusal here, and the caller answers locally at once.
pub fn connect(socket: &Path) -> Result<UnixStream, DaemonFailure> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let bytes = socket.as_os_str().as_encoded_bytes();
    // SAFETY: an all-zero sockaddr_un is a valid value of the type.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() {
        return Err(DaemonFailure::Io(format!(
            "socket path above {} bytes",
            addr.sun_path.len() - 1
        )));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    let flags = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: socket(2) has no memory preconditions; the fd is owned right below.
    let raw = unsafe { libc::socket(libc::AF_UNIX, flags, 0) };
    if raw < 0 {
        return Err(DaemonFailure::Io(
            std::io::Error::last_os_error().to_string(),
        ));
    }
    // SAFETY: `raw` is a fresh descriptor nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let len = (std::mem::size_of::<libc::sa_family_t>() + bytes.len() + 1) as libc::socklen_t;
    // SAFETY: `addr` is a valid sockaddr_un and `len` does not exceed its size.
    let rc = unsafe { libc::connect(raw, (&addr as *const libc::sockaddr_un).cast(), len) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(match e.kind() {
            ErrorKind::NotFound => DaemonFailure::NotRunning,
            ErrorKind::ConnectionRefused => DaemonFailure::Refused(e.to_string()),
            ErrorKind::WouldBlock => DaemonFailure::Refused(
                "the daemon's backlog is full: it is not accepting connections".into(),
            ),
            _ => DaemonFailure::Io(e.to_string()),
        });
    }
    let stream = UnixStream::from(fd);
    stream
        .set_nonblocking(false)
        .map_err(|e| DaemonFailure::Io(e.to_string()))?;
    Ok(stream)
}

/// Connect to the daemon's `socket` inside the checked directory `dir`: no socket there means
/// no daemon; anything else at the name (a file, a FIFO, a link, someone else's socket) is
/// refused without being connected to.
pub fn connect_in(dir: &PrivateDir, socket: &Path) -> Result<UnixStream, DaemonFailure> {
    match dir.kind_of(socket) {
        Ok(None) => Err(DaemonFailure::NotRunning),
        Ok(Some((rustix::fs::FileType::Socket, uid))) if uid == runtime_dir::current_uid() => {
            connect(&dir.at(socket))
        }
        Ok(Some((kind, uid))) => Err(DaemonFailure::Io(format!(
            "{} is a {kind:?} owned by uid {uid}, not this user's socket",
            socket.display()
        ))),
        Err(e) => Err(DaemonFailure::Io(e.to_string())),
    }
}

/// One request on a fresh connection to the socket in the checked directory `dir`.
pub fn call_in<T: DeserializeOwned>(
    dir: &PrivateDir,
    socket: &Path,
    method: Method,
    params: &Value,
    timeout: Duration,
) -> Result<Result<T, CliError>, DaemonFailure> {
    let mut stream = connect_in(dir, socket)?;
    call_on(&mut stream, method, params, timeout)
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
        .write_all(protocol::request_line(REQUEST_ID, method, params).as_bytes())
        .map_err(io)?;
    // A reply is one line; a "daemon" that streams more than any reply could be is cut off.
    let mut line = Vec::new();
    BufReader::new(&*stream)
        .take(MAX_REPLY)
        .read_until(b'\n', &mut line)
        .map_err(io)?;
    if !line.ends_with(b"\n") && line.len() as u64 >= MAX_REPLY {
        return Err(DaemonFailure::BadReply(format!(
            "a reply line above {MAX_REPLY} bytes"
        )));
    }
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
    if reply.id != REQUEST_ID {
        return Err(bad(format!(
            "a reply for id {}, not for this request's id {REQUEST_ID}",
            reply.id
        )));
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
