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

use super::{StepFuture, StepKind};
use crate::daemon::runtime_dir;
use crate::verify::process;
use crate::verify::steps::{GateCtx, StepResult};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The `kind` spelling.
pub const KIND: &str = "daemon";

/// The smallest valid table of this kind (besides `kind`): the registry's test parses it.
pub const EXAMPLE: &str = "action = \"start\"";

/// What a `daemon` step does.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum DaemonAction {
    /// `trifecta serve` for the segment, in a private runtime directory of the gate (later
    /// `trifecta` processes of the gate get it as `XDG_RUNTIME_DIR`); waits until it accepts.
    Start,
    /// SIGKILL the daemon in the background, `after_ms` after the step and once it answered
    /// `after_requests` more requests (the next steps run meanwhile: a kill mid-storm).
    Kill,
}

/// `kind = "daemon"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonStep {
    /// `start` or `kill`.
    pub action: DaemonAction,
    /// For `kill`: delay before the SIGKILL.
    #[serde(default)]
    pub after_ms: u64,
    /// For `kill`: and only once the daemon has answered this many more requests than when the
    /// step ran (its own `cache.stats` polls not counted), so the kill lands mid-storm however
    /// fast or slow the machine is.
    #[serde(default)]
    pub after_requests: u64,
}

impl StepKind for DaemonStep {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn label(&self) -> String {
        label(self)
    }

    fn exec<'a>(&'a self, ctx: &'a mut GateCtx, _index: usize) -> StepFuture<'a> {
        Box::pin(async move { daemon(ctx, self).await })
    }
}

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
pub async fn daemon(ctx: &mut GateCtx, s: &DaemonStep) -> StepResult {
    let seg = match ctx.segment() {
        Ok(p) => p.to_path_buf(),
        Err(o) => return o,
    };
    let run = runtime(ctx);
    let dir = runtime_dir::private_dir(Some(&run));
    let paths = match runtime_dir::paths_in(&dir, &seg) {
        Ok(p) => p,
        Err(e) => return StepResult::error(e.message),
    };
    match s.action {
        DaemonAction::Start => start(ctx, run, paths).await,
        DaemonAction::Kill => {
            let Some(pid) = runtime_dir::read_pid(&paths.pid) else {
                return StepResult::error("no daemon pid file: was the daemon started?");
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
            StepResult {
                commands: vec![format!("sleep {:.3}; kill -9 {pid} &", after.as_secs_f64())],
                ..StepResult::pass(format!(
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

async fn start(ctx: &mut GateCtx, run: PathBuf, paths: runtime_dir::DaemonPaths) -> StepResult {
    if let Err(e) = std::fs::DirBuilder::new().mode(0o700).create(&run)
        && e.kind() != std::io::ErrorKind::AlreadyExists
    {
        return StepResult::error(format!("runtime dir: {e}"));
    }
    ctx.scenario_env
        .insert("XDG_RUNTIME_DIR".into(), run.to_string_lossy().into_owned());
    let args = ["serve", "--segment", "{segment}"].map(String::from);
    let spec = ctx.trifecta_spec(&args, &BTreeMap::new(), 3600);
    let cmd = spec.display();
    let child = match process::command(&spec).spawn() {
        Ok(c) => c,
        Err(e) => return StepResult::error(format!("cannot spawn the daemon: {e}")),
    };
    let pid = child.id().unwrap_or(0);
    ctx.holders.push(child);
    let t = Instant::now();
    while std::os::unix::net::UnixStream::connect(&paths.socket).is_err() {
        if t.elapsed() > START_TIMEOUT {
            return StepResult {
                commands: vec![cmd],
                ..StepResult::error(format!(
                    "the daemon did not accept within {START_TIMEOUT:?}"
                ))
            };
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    StepResult {
        commands: vec![format!("XDG_RUNTIME_DIR={} {cmd} &", run.display())],
        ..StepResult::pass(format!(
            "daemon pid {pid} accepting after {} ms",
            t.elapsed().as_millis()
        ))
    }
}
