//! `trifecta daemon start|stop|status`, `trifecta serve`, and the routing of `ast symbols`
//! through a running daemon (`--daemon auto|never|require`).
//!
//! Routing rule: `never` answers locally; `auto` asks the daemon only when the persistent cache
//! is in use (the daemon adds nothing to an in-memory run) and answers locally on any daemon
//! failure, with a `daemon.fallback` event unless there simply was no daemon; `require` fails
//! with `DAEMON_UNAVAILABLE` instead. Either way the printed document is the one a local run
//! prints: the daemon ran the same code ([`super::symbols::run_with`]).

use super::symbols::{self, SymbolsOutput};
use crate::cli::{DaemonArgs, DaemonCommand, ServeArgs, SymbolsArgs};
use crate::config::{Config, DaemonMode};
use crate::daemon::client::{self, DaemonFailure};
use crate::daemon::protocol::Method;
use crate::daemon::runtime_dir::{self, DaemonPaths, PrivateDir};
use crate::daemon::server::{self, ServeSummary};
use crate::error::{CliError, ErrorCode};
use crate::telemetry::event::DaemonReason;
use crate::telemetry::{Event, Level, Telemetry};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long `daemon start` waits for the new daemon to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// `ast symbols`, through the daemon when the mode and the situation say so.
pub fn symbols_routed(args: &SymbolsArgs, cfg: &Config) -> Result<SymbolsOutput, CliError> {
    let mode = cfg.daemon.mode;
    if mode == DaemonMode::Never || (mode == DaemonMode::Auto && !cfg.cache.persist) {
        return symbols::run(args, cfg);
    }
    let failure = match ask_daemon(args, cfg) {
        Ok(answer) => return answer,
        Err(f) => f,
    };
    if mode == DaemonMode::Require {
        return Err(runtime_dir::unavailable(format!(
            "--daemon require: {failure}"
        )));
    }
    if failure != DaemonFailure::NotRunning
        && let Ok(root) = crate::symbols::resolve::segment_root(&args.segment)
    {
        let telemetry = Telemetry::new(cfg.telemetry.for_segment(&root));
        let ev = Event::DaemonFallback {
            result: DaemonReason {
                status: "local".into(),
                reason: failure.reason().into(),
            },
        };
        telemetry.event(Level::Lite, ev.into_line().warn(failure.to_string()));
        telemetry.flush();
    }
    symbols::run(args, cfg)
}

/// One `ast.symbols` request to the segment's daemon. The request names the segment and the
/// answer must be about it: a socket that leads to another segment's daemon (or to anything
/// that answers with someone else's document) is a bad reply, and the CLI answers itself.
fn ask_daemon(
    args: &SymbolsArgs,
    cfg: &Config,
) -> Result<Result<SymbolsOutput, CliError>, DaemonFailure> {
    let (root, paths) = match server::paths_for(&args.segment, cfg) {
        Ok(found) => found,
        // A bad segment: the local run reports it exactly as usual.
        Err(e) if e.code != ErrorCode::DaemonUnavailable => return Ok(symbols::run(args, cfg)),
        Err(e) => return Err(DaemonFailure::Io(e.message)),
    };
    let dir = match runtime_dir::check_private(&paths.dir) {
        Ok(d) => d,
        Err(_) if !paths.dir.exists() => return Err(DaemonFailure::NotRunning),
        Err(e) => return Err(DaemonFailure::Io(e.message)),
    };
    let root_text = root.to_string_lossy().into_owned();
    let params = json!({"uri": args.uri, "persist": cfg.cache.persist, "segment": root_text});
    let answer: Result<SymbolsOutput, CliError> = client::call_in(
        &dir,
        &paths.socket,
        Method::Symbols,
        &params,
        cfg.daemon.reply_timeout,
    )?;
    if let Ok(out) = &answer
        && out.segment_root != root_text
    {
        return Err(DaemonFailure::BadReply(format!(
            "an answer about segment {}, not {root_text}",
            out.segment_root
        )));
    }
    Ok(answer)
}

/// What the daemon says about itself (`daemon.status`, `shutdown`).
#[derive(Debug, Deserialize)]
struct Identity {
    pid: u32,
    segment_root: String,
}

/// Ask the segment's daemon `method` and check that the daemon that answers serves this
/// segment; its own word is the only source of the pid reported (a pid file can say anything).
fn ask_identity(
    dir: &PrivateDir,
    root: &Path,
    paths: &DaemonPaths,
    method: Method,
    cfg: &Config,
) -> Option<Identity> {
    let seg = root.to_string_lossy().into_owned();
    let timeout = cfg.daemon.reply_timeout;
    let who: Identity = client::call_in(
        dir,
        &paths.socket,
        method,
        &json!({"segment": seg}),
        timeout,
    )
    .ok()?
    .ok()?;
    (who.segment_root == seg).then_some(who)
}

/// What `daemon start|stop|status` print.
#[derive(Debug, Serialize)]
pub struct DaemonStatus {
    /// Always `"ok"`.
    pub status: &'static str,
    /// `started`, `already_running`, `stopped`, `not_running`, `running`, or `unresponsive`
    /// (a live daemon holds the segment's instance lock but does not answer on its socket).
    pub daemon: &'static str,
    /// The daemon's pid, when one runs (or ran).
    pub pid: Option<u32>,
    /// The socket path.
    pub socket: String,
    /// Canonical segment root.
    pub segment_root: String,
}

/// `trifecta serve`: the daemon in the foreground; prints its summary when it stops.
pub fn serve(args: &ServeArgs, cfg: &Config) -> Result<ServeSummary, CliError> {
    server::serve(&args.segment, cfg)
}

/// `trifecta daemon start|stop|status`.
pub fn run(cmd: &DaemonCommand, cfg: &Config) -> Result<DaemonStatus, CliError> {
    match cmd {
        DaemonCommand::Start(a) => start(a, cfg),
        DaemonCommand::Stop(a) => stop(a, cfg),
        DaemonCommand::Status(a) => {
            let (root, paths) = server::paths_for(&a.segment, cfg)?;
            let Ok(dir) = runtime_dir::check_private(&paths.dir) else {
                return Ok(report("not_running", &root, &paths, None));
            };
            Ok(
                match ask_identity(&dir, &root, &paths, Method::Status, cfg) {
                    Some(who) => report("running", &root, &paths, Some(who.pid)),
                    None if dir.lock_held(&paths.lock) => {
                        report("unresponsive", &root, &paths, None)
                    }
                    None => report("not_running", &root, &paths, None),
                },
            )
        }
    }
}

fn report(
    daemon: &'static str,
    root: &Path,
    paths: &DaemonPaths,
    pid: Option<u32>,
) -> DaemonStatus {
    DaemonStatus {
        status: "ok",
        daemon,
        pid,
        socket: paths.socket.to_string_lossy().into_owned(),
        segment_root: root.to_string_lossy().into_owned(),
    }
}

/// Launch `trifecta serve` detached (own process group, no terminal), wait until it answers.
fn start(a: &DaemonArgs, cfg: &Config) -> Result<DaemonStatus, CliError> {
    use std::os::unix::process::CommandExt;
    let (root, paths) = server::paths_for(&a.segment, cfg)?;
    let dir = runtime_dir::ensure_private(&paths.dir)?;
    if let Some(who) = ask_identity(&dir, &root, &paths, Method::Status, cfg) {
        return Ok(report("already_running", &root, &paths, Some(who.pid)));
    }
    let exe = std::env::current_exe()
        .map_err(|e| runtime_dir::unavailable(format!("cannot find the trifecta binary: {e}")))?;
    let log_path = paths.socket.with_extension("log");
    // A fresh file through the checked directory: a link planted at the name is not followed.
    let log = dir
        .create_file(&log_path)
        .map_err(|e| runtime_dir::unavailable(format!("cannot create the daemon log: {e}")))?;
    let log2 = log
        .try_clone()
        .map_err(|e| runtime_dir::unavailable(e.to_string()))?;
    let mut child = std::process::Command::new(exe)
        .arg("serve")
        .arg("--segment")
        .arg(&root.path)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .spawn()
        .map_err(|e| runtime_dir::unavailable(format!("cannot start the daemon: {e}")))?;
    let t = Instant::now();
    while t.elapsed() < START_TIMEOUT {
        if let Some(who) = ask_identity(&dir, &root, &paths, Method::Status, cfg) {
            return Ok(report("started", &root, &paths, Some(who.pid)));
        }
        if let Ok(Some(_)) = child.try_wait() {
            // It exited: another daemon won a start race, or it could not start. Say which.
            if let Some(who) = ask_identity(&dir, &root, &paths, Method::Status, cfg) {
                return Ok(report("already_running", &root, &paths, Some(who.pid)));
            }
            let why = read_log(&dir, &log_path);
            return Err(runtime_dir::unavailable(format!(
                "the daemon exited at start: {}",
                why.trim()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(runtime_dir::unavailable(format!(
        "the daemon did not accept connections within {} s",
        START_TIMEOUT.as_secs()
    )))
}

/// The start log's first 4 KiB (what a daemon that failed to start said), read without
/// following a link.
fn read_log(dir: &PrivateDir, log_path: &Path) -> String {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut text = String::new();
    if let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(dir.at(log_path))
    {
        let _ = f.take(4096).read_to_string(&mut text);
    }
    text
}

/// Ask the daemon over its socket to shut down, then wait until it has drained and let go of
/// the instance lock. Nothing is ever signalled: the pid file is not trusted (it may name any
/// process), and a daemon that holds the lock but does not answer is reported, not killed.
fn stop(a: &DaemonArgs, cfg: &Config) -> Result<DaemonStatus, CliError> {
    let (root, paths) = server::paths_for(&a.segment, cfg)?;
    let Ok(dir) = runtime_dir::check_private(&paths.dir) else {
        return Ok(report("not_running", &root, &paths, None));
    };
    let Some(who) = ask_identity(&dir, &root, &paths, Method::Shutdown, cfg) else {
        if dir.lock_held(&paths.lock) {
            return Err(runtime_dir::unavailable(format!(
                "a daemon holds this segment's instance lock but did not answer the shutdown \
                 request on {} within {} ms; nothing was signalled (it stops if it ever reads \
                 the request)",
                paths.socket.display(),
                cfg.daemon.reply_timeout.as_millis()
            )));
        }
        return Ok(report("not_running", &root, &paths, None));
    };
    let t = Instant::now();
    // The lock goes when the drain is over and the process lets go of the segment.
    while dir.lock_held(&paths.lock) && t.elapsed() < server::DRAIN_TIMEOUT + Duration::from_secs(1)
    {
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(report("stopped", &root, &paths, Some(who.pid)))
}
