//! A throwaway `redis-server` for the remote-cache gate and tests: bound to 127.0.0.1 on a free
//! port, no persistence (`--save '' --appendonly no`), killed by pid when dropped, even when the
//! gate or test fails. It can be killed and restarted on the same port, which is how the gate
//! shows a fleet surviving a dead server.
//!
//! [`RedisServer::start_tls`] starts one that speaks only TLS (`--port 0 --tls-port N`), with
//! certificates from [`TestPki`]: a throwaway CA made with the `openssl` CLI at run time, so no
//! key material is ever checked in.

use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
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

/// How a TLS server is set up (the files come from [`TestPki`]).
#[derive(Debug, Clone)]
pub struct TlsServer {
    /// The server's certificate (chain) and key.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// The CA that client certificates must chain to; also what [`RedisServer::connection`]
    /// trusts.
    pub ca: PathBuf,
    /// `--tls-auth-clients yes`: a client without a certificate from `ca` is refused.
    pub require_client_cert: bool,
    /// The certificate and key [`RedisServer::connection`] presents (needed when required).
    pub client: Option<(PathBuf, PathBuf)>,
}

/// One running (or deliberately stopped) server.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    log: Option<PathBuf>,
    tls: Option<TlsServer>,
}

impl RedisServer {
    /// Start on a free port; its output goes to `log` if given (else nowhere).
    pub fn start(log: Option<PathBuf>) -> io::Result<Self> {
        Self::start_with(log, None)
    }

    /// Start a TLS-only server on a free port (no plain-text port at all).
    pub fn start_tls(log: Option<PathBuf>, tls: TlsServer) -> io::Result<Self> {
        Self::start_with(log, Some(tls))
    }

    fn start_with(log: Option<PathBuf>, tls: Option<TlsServer>) -> io::Result<Self> {
        let mut last = io::Error::other("no attempt");
        // The port is free when probed, but another process may take it before the server
        // binds: try a few ports.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let mut s = RedisServer {
                port,
                child: None,
                log: log.clone(),
                tls: tls.clone(),
            };
            match s.restart() {
                Ok(()) => return Ok(s),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// `redis://127.0.0.1:<port>/0`, or `rediss://…` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
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
        let mut cmd = Command::new(PROGRAM);
        match &self.tls {
            None => cmd.args(["--port", &port]),
            Some(t) => {
                let auth = if t.require_client_cert { "yes" } else { "no" };
                cmd.args(["--port", "0", "--tls-port", &port])
                    .arg("--tls-cert-file")
                    .arg(&t.cert)
                    .arg("--tls-key-file")
                    .arg(&t.key)
                    .arg("--tls-ca-cert-file")
                    .arg(&t.ca)
                    .args(["--tls-auth-clients", auth])
            }
        };
        let child = cmd
            .args(["--bind", "127.0.0.1", "--save", ""])
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

    /// A fresh connection that has answered `PING` (over TLS, trusting the test CA, for a
    /// TLS server).
    pub fn connection(&self) -> redis::RedisResult<redis::Connection> {
        let client = match &self.tls {
            None => redis::Client::open(self.url())?,
            Some(t) => {
                let client_tls = match &t.client {
                    Some((cert, key)) => Some(redis::ClientTlsConfig {
                        client_cert: std::fs::read(cert)?,
                        client_key: std::fs::read(key)?,
                    }),
                    None => None,
                };
                let certs = redis::TlsCertificates {
                    client_tls,
                    root_cert: Some(std::fs::read(&t.ca)?),
                };
                redis::Client::build_with_tls(self.url(), certs)?
            }
        };
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

/// Throwaway TLS material, made with the `openssl` CLI in a temporary directory that is
/// deleted on drop: one CA (P-256, valid 3 days) and the certificates it issues.
pub struct TestPki {
    dir: tempfile::TempDir,
    ca: PathBuf,
}

impl TestPki {
    /// The `openssl` program used.
    pub const PROGRAM: &'static str = "openssl";

    /// Whether `openssl` can be run here.
    pub fn available() -> bool {
        Command::new(Self::PROGRAM)
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// A new CA named `name` (`ca.pem`, `ca.key` in its directory).
    pub fn new(name: &str) -> io::Result<Self> {
        let dir = tempfile::tempdir()?;
        let ca = dir.path().join("ca.pem");
        let pki = TestPki { dir, ca };
        let subj = format!("/CN={name}");
        pki.openssl(&["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "3"])
            .args(["-keyout", "ca.key", "-out", "ca.pem", "-subj", &subj])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            .run()?;
        Ok(pki)
    }

    /// The CA certificate (PEM).
    pub fn ca(&self) -> &Path {
        &self.ca
    }

    /// Issue `<name>.pem` / `<name>.key` for the subject alternative names `san`
    /// (`DNS:localhost,IP:127.0.0.1`), usable by a server and as a client certificate.
    pub fn issue(&self, name: &str, san: &str) -> io::Result<(PathBuf, PathBuf)> {
        let ext = self.dir.path().join(format!("{name}.ext"));
        std::fs::write(
            &ext,
            format!(
                "subjectAltName={san}\nextendedKeyUsage=serverAuth,clientAuth\n\
                 basicConstraints=critical,CA:FALSE\n"
            ),
        )?;
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        let subj = format!("/CN={name}");
        self.openssl(&["req", "-new", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-subj", &subj])
            .args(["-keyout", &key, "-out", &csr])
            .run()?;
        self.openssl(&[
            "x509", "-req", "-in", &csr, "-CA", "ca.pem", "-CAkey", "ca.key",
        ])
        .args(["-CAcreateserial", "-days", "3", "-out", &pem, "-extfile"])
        .arg(&ext)
        .run()?;
        Ok((self.dir.path().join(pem), self.dir.path().join(key)))
    }

    /// A server set-up for `cert`, with this CA for client certificates.
    pub fn server(&self, cert: (PathBuf, PathBuf), require_client_cert: bool) -> TlsServer {
        TlsServer {
            cert: cert.0,
            key: cert.1,
            ca: self.ca.clone(),
            require_client_cert,
            client: None,
        }
    }

    fn openssl(&self, args: &[&str]) -> Openssl {
        let mut c = Command::new(Self::PROGRAM);
        c.args(args).current_dir(self.dir.path());
        Openssl(c)
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// One `openssl` invocation being built.
struct Openssl(Command);

impl Openssl {
    fn args<const N: usize>(mut self, a: [&str; N]) -> Self {
        self.0.args(a);
        self
    }

    fn arg(mut self, a: &Path) -> Self {
        self.0.arg(a);
        self
    }

    /// Run it; a failure carries openssl's own message.
    fn run(mut self) -> io::Result<()> {
        let out = self.0.stdin(Stdio::null()).output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "openssl failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }
}
