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
use crate::daemon::runtime_dir::{self, DaemonPaths};
use crate::daemon::server::{self, ServeSummary};
use crate::error::{CliError, ErrorCode};
use crate::telemetry::event::DaemonReason;
use crate::telemetry::{Event, Level, Telemetry};
use serde::Serialize;
use serde_json::{Value, json};
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

/// One `ast.symbols` request to the segment's daemon.
fn ask_daemon(
    args: &SymbolsArgs,
    cfg: &Config,
) -> Result<Result<SymbolsOutput, CliError>, DaemonFailure> {
    let paths = match server::paths_for(&args.segment, cfg) {
        Ok((_, p)) => p,
        // A bad segment: the local run reports it exactly as usual.
        Err(e) if e.code != ErrorCode::DaemonUnavailable => return Ok(symbols::run(args, cfg)),
        Err(e) => return Err(DaemonFailure::Io(e.message)),
    };
    if let Err(e) = runtime_dir::check_private(&paths.dir) {
        if !paths.dir.exists() {
            return Err(DaemonFailure::NotRunning);
        }
        return Err(DaemonFailure::Io(e.message));
    }
    let params = json!({"uri": args.uri, "persist": cfg.cache.persist});
    client::call(
        &paths.socket,
        Method::Symbols,
        &params,
        cfg.daemon.reply_timeout,
    )
}

/// What `daemon start|stop|status` print.
#[derive(Debug, Serialize)]
pub struct DaemonStatus {
    /// Always `"ok"`.
    pub status: &'static str,
    /// `started`, `already_running`, `stopped`, `not_running` or `running`.
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
            let running = answers(&paths);
            Ok(report(
                if running { "running" } else { "not_running" },
                &root,
                &paths,
                running,
            ))
        }
    }
}

fn report(daemon: &'static str, root: &Path, paths: &DaemonPaths, with_pid: bool) -> DaemonStatus {
    DaemonStatus {
        status: "ok",
        daemon,
        pid: if with_pid {
            runtime_dir::read_pid(&paths.pid)
        } else {
            None
        },
        socket: paths.socket.to_string_lossy().into_owned(),
        segment_root: root.to_string_lossy().into_owned(),
    }
}

/// True when a daemon accepts a connection on the segment's socket (in a safe directory).
fn answers(paths: &DaemonPaths) -> bool {
    runtime_dir::check_private(&paths.dir).is_ok() && client::connect(&paths.socket).is_ok()
}

/// Launch `trifecta serve` detached (own process group, no terminal), wait until it accepts.
fn start(a: &DaemonArgs, cfg: &Config) -> Result<DaemonStatus, CliError> {
    use std::os::unix::process::CommandExt;
    let (root, paths) = server::paths_for(&a.segment, cfg)?;
    runtime_dir::ensure_private(&paths.dir)?;
    if answers(&paths) {
        return Ok(report("already_running", &root, &paths, true));
    }
    let exe = std::env::current_exe()
        .map_err(|e| runtime_dir::unavailable(format!("cannot find the trifecta binary: {e}")))?;
    let log_path = paths.socket.with_extension("log");
    let log = std::fs::File::create(&log_path)
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
        if answers(&paths) {
            return Ok(report("started", &root, &paths, true));
        }
        if let Ok(Some(_)) = child.try_wait() {
            // It exited: another daemon won a start race, or it could not start. Say which.
            if answers(&paths) {
                return Ok(report("already_running", &root, &paths, true));
            }
            let why = std::fs::read_to_string(&log_path).unwrap_or_default();
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

/// Ask the daemon to shut down and wait until it has drained and let go of the segment.
fn stop(a: &DaemonArgs, cfg: &Config) -> Result<DaemonStatus, CliError> {
    let (root, paths) = server::paths_for(&a.segment, cfg)?;
    if runtime_dir::check_private(&paths.dir).is_err() {
        return Ok(report("not_running", &root, &paths, false));
    }
    let pid = runtime_dir::read_pid(&paths.pid);
    let asked: Result<Result<Value, CliError>, DaemonFailure> = client::call(
        &paths.socket,
        Method::Shutdown,
        &json!({}),
        cfg.daemon.reply_timeout,
    );
    if asked.is_err() {
        return Ok(report("not_running", &root, &paths, false));
    }
    let t = Instant::now();
    // The pid file goes when the drain is over and the instance lock is let go.
    while paths.pid.exists() && t.elapsed() < server::DRAIN_TIMEOUT + Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut out = report("stopped", &root, &paths, false);
    out.pid = pid;
    Ok(out)
}
