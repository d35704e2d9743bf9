//! The `daemon` step: start the segment's daemon for the rest of the gate, or SIGKILL it.
//!
//! `start` gives the gate a private runtime directory (`<gate tmp>/run`, mode 0700) and sets it
//! as `XDG_RUNTIME_DIR` for every later `trifecta` of the gate, so clients find the daemon
//! exactly as they would on a user's machine; it then spawns `trifecta serve` (own process
//! group, registered with the gate's other long-lived children, so the gate kills it at the end
//! whatever happens) and waits until it accepts connections. `kill` reads the daemon's pid from
//! its pid file and sends SIGKILL from a background thread `after_ms` later and once the daemon
//! has answered `after_requests` more requests, so a storm that follows is hit mid-way by the
//! daemon's death on a fast machine and a slow one alike.

use super::{GateCtx, Outcome};
use crate::daemon::runtime_dir;
use crate::verify::process;
use crate::verify::spec::{DaemonAction, DaemonStep};
use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long `start` waits for the daemon to accept.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The step's label in reports.
pub fn label(s: &DaemonStep) -> String {
    match s.action {
        DaemonAction::Start => "start the segment's daemon".into(),
        DaemonAction::Kill => format!(
            "kill -9 the daemon after {} ms and {} more requests",
            s.after_ms, s.after_requests
        ),
    }
}

/// The gate's runtime directory (the daemon's `XDG_RUNTIME_DIR`).
fn runtime(ctx: &GateCtx) -> PathBuf {
    ctx.tmp.path().join("run")
}

/// Run the step.
pub async fn daemon(ctx: &mut GateCtx, s: &DaemonStep) -> Outcome {
    let seg = match ctx.segment() {
        Ok(p) => p.to_path_buf(),
        Err(o) => return o,
    };
    let run = runtime(ctx);
    let dir = runtime_dir::private_dir(Some(&run));
    let paths = match runtime_dir::paths_in(&dir, &seg) {
        Ok(p) => p,
        Err(e) => return Outcome::error(e.message),
    };
    match s.action {
        DaemonAction::Start => start(ctx, run, paths).await,
        DaemonAction::Kill => {
            let Some(pid) = crate::daemon::server::read_pid(&paths.pid) else {
                return Outcome::error("no daemon pid file: was the daemon started?");
            };
            let after = Duration::from_millis(s.after_ms);
            let (socket, wanted) = (paths.socket.clone(), s.after_requests);
            std::thread::spawn(move || {
                std::thread::sleep(after);
                wait_for_requests(&socket, wanted);
                // SAFETY: kill(2) on the daemon this gate started; it stays our (unreaped)
                // child in `ctx.holders` until the gate ends, so the pid cannot be reused.
                unsafe {
                    libc::kill(pid as i32, libc::SIGKILL);
                }
            });
            Outcome {
                commands: vec![format!("sleep {:.3}; kill -9 {pid} &", after.as_secs_f64())],
                ..Outcome::pass(format!(
                    "SIGKILL of daemon pid {pid} scheduled in {} ms",
                    s.after_ms
                ))
            }
        }
    }
}

/// Block until the daemon at `socket` has answered `wanted` requests more than at the first
/// poll, not counting these `cache.stats` polls themselves (each reply reports the requests
/// answered before it). Gives up after 60 s, or when the daemon stops answering.
fn wait_for_requests(socket: &std::path::Path, wanted: u64) {
    if wanted == 0 {
        return;
    }
    let poll = |s: &std::path::Path| -> Option<u64> {
        let r: Result<serde_json::Value, _> = crate::daemon::client::call(
            s,
            crate::daemon::protocol::Method::Stats,
            &serde_json::json!({}),
            Duration::from_secs(2),
        )
        .ok()?;
        r.ok()?["daemon"]["requests"].as_u64()
    };
    let Some(first) = poll(socket) else {
        return;
    };
    let t = Instant::now();
    let mut polls = 1;
    while t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(2));
        let Some(now) = poll(socket) else {
            return;
        };
        if now.saturating_sub(first + polls) >= wanted {
            return;
        }
        polls += 1;
    }
}

async fn start(ctx: &mut GateCtx, run: PathBuf, paths: runtime_dir::DaemonPaths) -> Outcome {
    if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(&run)
        && e.kind() != std::io::ErrorKind::AlreadyExists
    {
        return Outcome::error(format!("runtime dir: {e}"));
    }
    ctx.scenario_env
        .insert("XDG_RUNTIME_DIR".into(), run.to_string_lossy().into_owned());
    let args = ["serve", "--segment", "{segment}"].map(String::from);
    let spec = ctx.trifecta_spec(&args, &BTreeMap::new(), 3600);
    let cmd = spec.display();
    let child = match process::command(&spec).spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::error(format!("cannot spawn the daemon: {e}")),
    };
    let pid = child.id().unwrap_or(0);
    ctx.holders.push(child);
    let t = Instant::now();
    while std::os::unix::net::UnixStream::connect(&paths.socket).is_err() {
        if t.elapsed() > START_TIMEOUT {
            return Outcome {
                commands: vec![cmd],
                ..Outcome::error(format!(
                    "the daemon did not accept within {START_TIMEOUT:?}"
                ))
            };
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Outcome {
        commands: vec![format!("XDG_RUNTIME_DIR={} {cmd} &", run.display())],
        ..Outcome::pass(format!(
            "daemon pid {pid} accepting after {} ms",
            t.elapsed().as_millis()
        ))
    }
}
