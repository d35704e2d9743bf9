//! Typed errors and the stable error codes of the CLI contract.
//!
//! Messages may change between versions; the `error_code` strings never do. Every failure of
//! the `trifecta` CLI is rendered as the envelope `{"status":"error","error_code":…,"message":…}`
//! on stdout with exit code 1 (see [`crate::output`]).

use serde::Serialize;

/// The stable error codes. Their `as_str` spelling is the public contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The sym:// URI does not follow the grammar (see [`crate::symbols::uri`]).
    InvalidUri,
    /// A flag or environment variable has a value the tool does not accept.
    InvalidArgument,
    /// The command line could not be parsed (unknown flag, missing argument).
    UsageError,
    /// `--segment` does not exist or is not a directory.
    SegmentNotFound,
    /// No `<p>.py` nor `<p>/__init__.py` exists for the module.
    FileNotFound,
    /// The URI would resolve to a file outside the segment (symlink escape and the like).
    PathOutsideSegment,
    /// The module exists but the class or member selected by a `type` URI does not.
    SymbolNotFound,
    /// The source file exists but could not be read.
    FileReadError,
    /// A cache maintenance command could not do its work (lock busy, newer schema, …).
    CacheUnavailable,
    /// The cache database failed an integrity check (`trifecta ast cache verify`).
    CacheCorrupt,
    /// The telemetry log could not be read (`trifecta telemetry report`).
    TelemetryUnavailable,
    /// Anything else: a bug or an environment failure we did not anticipate.
    InternalError,
    /// `--daemon require` found no daemon that answered, or a daemon command could not reach
    /// or start one (also an unsafe socket directory).
    DaemonUnavailable,
    /// `trifecta serve` found another daemon already serving the segment.
    DaemonAlreadyRunning,
}

impl ErrorCode {
    /// The wire spelling of the code.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidUri => "INVALID_URI",
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::UsageError => "USAGE_ERROR",
            ErrorCode::SegmentNotFound => "SEGMENT_NOT_FOUND",
            ErrorCode::FileNotFound => "FILE_NOT_FOUND",
            ErrorCode::PathOutsideSegment => "PATH_OUTSIDE_SEGMENT",
            ErrorCode::SymbolNotFound => "SYMBOL_NOT_FOUND",
            ErrorCode::FileReadError => "FILE_READ_ERROR",
            ErrorCode::CacheUnavailable => "CACHE_UNAVAILABLE",
            ErrorCode::CacheCorrupt => "CACHE_CORRUPT",
            ErrorCode::TelemetryUnavailable => "TELEMETRY_UNAVAILABLE",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::DaemonUnavailable => "DAEMON_UNAVAILABLE",
            ErrorCode::DaemonAlreadyRunning => "DAEMON_ALREADY_RUNNING",
        }
    }

    /// Every code, for documentation and exhaustive tests.
    pub const ALL: [ErrorCode; 14] = [
        ErrorCode::InvalidUri,
        ErrorCode::InvalidArgument,
        ErrorCode::UsageError,
        ErrorCode::SegmentNotFound,
        ErrorCode::FileNotFound,
        ErrorCode::PathOutsideSegment,
        ErrorCode::SymbolNotFound,
        ErrorCode::FileReadError,
        ErrorCode::CacheUnavailable,
        ErrorCode::CacheCorrupt,
        ErrorCode::TelemetryUnavailable,
        ErrorCode::InternalError,
        ErrorCode::DaemonUnavailable,
        ErrorCode::DaemonAlreadyRunning,
    ];
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user-facing failure: a stable code plus a human message.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct CliError {
    /// The stable code.
    pub code: ErrorCode,
    /// A human-readable explanation; never contains a backtrace.
    pub message: String,
}

impl CliError {
    /// Build an error from a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        CliError {
            code,
            message: message.into(),
        }
    }
}

/// The JSON error envelope printed on stdout. Keys in this order, exactly as the original.
#[derive(Debug, Serialize)]
pub struct ErrorEnvelope<'a> {
    /// Always `"error"`.
    pub status: &'static str,
    /// The stable code.
    pub error_code: ErrorCode,
    /// The human message.
    pub message: &'a str,
}

impl<'a> From<&'a CliError> for ErrorEnvelope<'a> {
    fn from(e: &'a CliError) -> Self {
        ErrorEnvelope {
            status: "error",
            error_code: e.code,
            message: &e.message,
        }
    }
}
