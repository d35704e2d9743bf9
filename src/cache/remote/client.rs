//! The Redis connection: lazy, bounded, and given up after the first failure.
//!
//! Nothing connects until the first command (an L1 hit never gets here, so it never touches the
//! network). Every connect and every command is bounded by the configured timeouts. The first
//! failure of any kind (refused, timed out, `NOAUTH`, `OOM`, `READONLY`, a dropped socket)
//! opens the circuit for the rest of the process: a dead server costs one timeout per process,
//! not one per file, and the caller carries on with L1 alone. A `rediss://` server is reached
//! through [`super::tls`]; a certificate that does not verify is one more such failure.

use super::tls;
use crate::config::{RemoteSettings, RemoteTls};
use redis::{Connection, RedisError};
use std::time::Duration;

/// How a remote operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailKind {
    /// The connect or a command ran into its timeout.
    Timeout,
    /// Anything else: refused, reset, an error reply (auth, OOM, read-only replica), protocol.
    Error,
}

impl FailKind {
    /// `timeout` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailKind::Timeout => "timeout",
            FailKind::Error => "error",
        }
    }
}

/// A failed remote operation: what kind, and the client's message (no secrets: the URL is
/// never part of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFailure {
    /// Timeout or error.
    pub kind: FailKind,
    /// What the client said.
    pub message: String,
}

impl RemoteFailure {
    fn from_redis(e: &RedisError) -> Self {
        let kind = if e.is_timeout() {
            FailKind::Timeout
        } else {
            FailKind::Error
        };
        RemoteFailure {
            kind,
            message: e.to_string(),
        }
    }
}

/// A lazily connected client with a circuit breaker.
pub struct RemoteClient {
    url: String,
    tls: Option<RemoteTls>,
    connect_timeout: Duration,
    io_timeout: Duration,
    conn: Option<Connection>,
    tripped: bool,
}

impl RemoteClient {
    /// A client for `settings`; nothing is connected yet.
    pub fn new(settings: &RemoteSettings) -> Self {
        RemoteClient {
            url: settings.url.clone(),
            tls: settings.tls.clone(),
            connect_timeout: settings.connect_timeout,
            io_timeout: settings.io_timeout,
            conn: None,
            tripped: false,
        }
    }

    /// False once an operation failed: no further attempt is made in this process.
    pub fn usable(&self) -> bool {
        !self.tripped
    }

    /// Whether a connection was ever made (tests: an L1 hit must not connect).
    pub fn connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Connect (TCP, the TLS handshake for `rediss://`, the setup commands), all within the
    /// connect timeout.
    fn connect(&self) -> Result<Connection, RemoteFailure> {
        let client = match &self.tls {
            Some(t) => tls::client(&self.url, t).map_err(|message| RemoteFailure {
                kind: FailKind::Error,
                message,
            })?,
            None => {
                redis::Client::open(self.url.as_str()).map_err(|e| RemoteFailure::from_redis(&e))?
            }
        };
        let conn = client
            .get_connection_with_timeout(self.connect_timeout)
            .and_then(|c| {
                c.set_read_timeout(Some(self.io_timeout))?;
                c.set_write_timeout(Some(self.io_timeout))?;
                Ok(c)
            });
        conn.map_err(|e| {
            let mut f = RemoteFailure::from_redis(&e);
            if let Some(t) = &self.tls {
                f.message = tls::explain(&f.message, t);
            }
            f
        })
    }

    /// Run `op` on the connection (made on first use) unless the circuit is open; a failure
    /// opens it.
    fn guarded<T>(
        &mut self,
        op: impl FnOnce(&mut Connection) -> Result<T, RedisError>,
    ) -> Result<T, RemoteFailure> {
        if self.tripped {
            return Err(RemoteFailure {
                kind: FailKind::Error,
                message: "remote cache disabled after an earlier failure".into(),
            });
        }
        let r = match self.conn.take() {
            Some(c) => Ok(c),
            None => self.connect(),
        }
        .and_then(|mut c| {
            let out = op(&mut c).map_err(|e| RemoteFailure::from_redis(&e))?;
            self.conn = Some(c);
            Ok(out)
        });
        if r.is_err() {
            self.tripped = true;
            self.conn = None;
        }
        r
    }

    /// `MGET keys…`: one round trip for a whole chunk.
    pub fn mget(&mut self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, RemoteFailure> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.guarded(|c| redis::cmd("MGET").arg(keys).query(c))
    }

    /// `SET key value EX ttl` for each item, pipelined: one round trip for a whole chunk.
    pub fn set_many(
        &mut self,
        items: &[(String, Vec<u8>)],
        ttl: Duration,
    ) -> Result<(), RemoteFailure> {
        if items.is_empty() {
            return Ok(());
        }
        let secs = ttl.as_secs().max(1);
        self.guarded(|c| {
            let mut p = redis::pipe();
            for (k, v) in items {
                p.cmd("SET").arg(k).arg(v).arg("EX").arg(secs).ignore();
            }
            p.query::<()>(c)
        })
    }
}
