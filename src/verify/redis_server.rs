//! A throwaway `redis-server` for the remote-cache gate and tests: bound to 127.0.0.1 on a free
//! port, no persistence (`--save '' --appendonly no`), killed by pid when dropped, even when the
//! gate or test fails. It can be killed and restarted on the same port, which is how the gate
//! shows a fleet surviving a dead server.

use std::io;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The program started (Debian's `redis-server` on `PATH`).
pub const PROGRAM: &str = "redis-server";

/// How long a start may take before it counts as failed.
const START_WAIT: Duration = Duration::from_secs(10);

/// Whether `redis-server` can be run here.
pub fn available() -> bool {
    Command::new(PROGRAM)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// One running (or deliberately stopped) server.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    log: Option<PathBuf>,
}

impl RedisServer {
    /// Start on a free port; its output goes to `log` if given (else nowhere).
    pub fn start(log: Option<PathBuf>) -> io::Result<Self> {
        let mut last = io::Error::other("no attempt");
        // The port is free when probed, but another process may take it before the server
        // binds: try a few ports.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let mut s = RedisServer {
                port,
                child: None,
                log: log.clone(),
            };
            match s.restart() {
                Ok(()) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// The port (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -9` the server (by its pid) and reap it. Its data is gone (no persistence).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Start the server (again) on the same port and wait until it answers `PING`.
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill();
        let out = match &self.log {
            Some(p) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ),
            None => Stdio::null(),
        };
        let port = self.port.to_string();
        let child = Command::new(PROGRAM)
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if self.connection().is_ok() {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if exited.is_some() || started.elapsed() > START_WAIT {
                self.kill();
                return Err(io::Error::other(format!(
                    "{PROGRAM} did not come up on port {port}"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A fresh connection that has answered `PING`.
    pub fn connection(&self) -> redis::RedisResult<redis::Connection> {
        let client = redis::Client::open(self.url())?;
        let mut c = client.get_connection_with_timeout(Duration::from_secs(1))?;
        c.set_read_timeout(Some(Duration::from_secs(5)))?;
        redis::cmd("PING").query::<String>(&mut c)?;
        Ok(c)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
