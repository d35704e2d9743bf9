//! Process supervision (tokio): every child runs in its own process group, output is captured
//! concurrently with the wait (so a chatty child never blocks on a full pipe), and a timeout
//! kills the whole group with SIGKILL — cargo's and the CLI's grandchildren included.
//!
//! Children inherit the verifier's environment minus every `TRIFECTA_*` variable, so a developer's
//! shell settings can never change a gate's outcome; gates add what they need explicitly (a
//! negative test's mutant, too, comes only from `gates --mutant`, never from the shell).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

/// What to run.
#[derive(Debug, Clone)]
pub struct ProcSpec {
    /// Program.
    pub program: PathBuf,
    /// Arguments.
    pub args: Vec<String>,
    /// Added environment (after `TRIFECTA_*` is removed).
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// Kill the group after this long.
    pub timeout: Duration,
}

impl ProcSpec {
    /// Shell-like rendering for reports (`KEY=v prog arg…`).
    pub fn display(&self) -> String {
        let mut parts: Vec<String> = self
            .env
            .iter()
            .map(|(k, v)| format!("{k}={}", quote(v)))
            .collect();
        parts.push(quote(&self.program.to_string_lossy()));
        parts.extend(self.args.iter().map(|a| quote(a)));
        let cmd = parts.join(" ");
        match &self.cwd {
            Some(d) => format!("(cd {} && {cmd})", quote(&d.to_string_lossy())),
            None => cmd,
        }
    }
}

/// Quote for a POSIX shell when needed.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// How a child ended.
#[derive(Debug, Clone)]
pub struct ProcessResult {
    /// Exit code, when it exited normally.
    pub code: Option<i32>,
    /// Terminating signal, when killed.
    pub signal: Option<i32>,
    /// True when we killed it for exceeding the timeout.
    pub timed_out: bool,
    /// Captured stdout (lossy UTF-8).
    pub stdout: String,
    /// Captured stderr (lossy UTF-8).
    pub stderr: String,
    /// Wall time.
    pub duration: Duration,
}

impl ProcessResult {
    /// One-line description: `exit 0`, `killed by signal 9`, `timed out after 5s`.
    pub fn status_text(&self) -> String {
        if self.timed_out {
            format!("timed out after {:.1}s", self.duration.as_secs_f64())
        } else if let Some(c) = self.code {
            format!("exit {c}")
        } else if let Some(s) = self.signal {
            format!("killed by signal {s}")
        } else {
            "unknown status".into()
        }
    }
}

/// Build the tokio command for `spec` (own process group, piped output, cleaned env).
pub fn command(spec: &ProcSpec) -> Command {
    let mut std_cmd = base(spec);
    std_cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut cmd = Command::from(std_cmd);
    cmd.kill_on_drop(true);
    cmd
}

/// The same process as [`command`] as a blocking `std` command, for callers that supervise a
/// child from a thread (the crash step polls and signals it every few hundred microseconds).
/// Output goes to `out` (one file for stdout and stderr), so no pipe needs draining.
pub fn std_command(spec: &ProcSpec, out: std::fs::File) -> std::io::Result<std::process::Command> {
    let mut cmd = base(spec);
    cmd.stdout(out.try_clone()?).stderr(out);
    Ok(cmd)
}

/// What every child shares: its own process group, no stdin, the verifier's environment minus
/// every `TRIFECTA_*` variable plus what the gate sets, and the gate's working directory.
fn base(spec: &ProcSpec) -> std::process::Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(&spec.program);
    cmd.args(&spec.args).stdin(Stdio::null()).process_group(0);
    for k in &crate::config::VerifyEnv::get().trifecta_names {
        cmd.env_remove(k);
    }
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    if let Some(d) = &spec.cwd {
        cmd.current_dir(d);
    }
    cmd
}

/// SIGKILL the process group led by `child` (no-op when it already exited and was reaped).
pub fn kill_group(child: &Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) with a negative pid signals the process group we created with
        // process_group(0); it touches no memory.
        unsafe {
            libc::kill(-(pid as i32), libc::SIGKILL);
        }
    }
}

/// Kills a child's process group when dropped unless disarmed: if a gate times out, its
/// in-flight step future is dropped, and this guard makes sure grandchildren (rustc under cargo,
/// a CLI under a wrapper script) die with it instead of outliving the run.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            // SAFETY: see `kill_group`.
            unsafe {
                libc::kill(-(pid as i32), libc::SIGKILL);
            }
        }
    }
}

/// Spawn `spec`, capture its output and wait, killing the group on timeout.
pub async fn run(spec: &ProcSpec) -> std::io::Result<ProcessResult> {
    let started = Instant::now();
    let child = command(spec).spawn()?;
    finish(child, spec.timeout, started, None).await
}

/// Wait for a spawned child; when `kill_after` is set, SIGKILL its group after that delay
/// (the `kill` step's crash point). Output is drained concurrently.
pub async fn finish(
    mut child: Child,
    timeout: Duration,
    started: Instant,
    kill_after: Option<Duration>,
) -> std::io::Result<ProcessResult> {
    let mut guard = GroupGuard(child.id());
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let out_task = tokio::spawn(async move {
        let mut b = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut b).await;
        }
        b
    });
    let err_task = tokio::spawn(async move {
        let mut b = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut b).await;
        }
        b
    });
    let limit = kill_after.map_or(timeout, |k| k.min(timeout));
    let mut timed_out = false;
    let status = match tokio::time::timeout(limit, child.wait()).await {
        Ok(s) => s?,
        Err(_) => {
            timed_out = kill_after.is_none_or(|k| k >= timeout);
            kill_group(&child);
            child.wait().await?
        }
    };
    // The leader is reaped; its pid (= pgid) may be reused, so never signal it again.
    guard.0 = None;
    // A grandchild that inherited the pipes could keep them open; bound the drain.
    let drain = Duration::from_secs(5);
    let stdout = tokio::time::timeout(drain, out_task)
        .await
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default();
    let stderr = tokio::time::timeout(drain, err_task)
        .await
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default();
    use std::os::unix::process::ExitStatusExt;
    Ok(ProcessResult {
        code: status.code(),
        signal: status.signal(),
        timed_out,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        duration: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout_ms: u64) -> ProcSpec {
        ProcSpec {
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![],
            cwd: None,
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    #[tokio::test]
    async fn captures_and_exits() {
        let o = run(&sh("echo out; echo err >&2; exit 3", 5000))
            .await
            .unwrap();
        assert_eq!(o.code, Some(3));
        assert_eq!(o.stdout, "out\n");
        assert_eq!(o.stderr, "err\n");
        assert!(!o.timed_out);
    }

    #[tokio::test]
    async fn timeout_kills_the_group() {
        // The grandchild `sleep` would keep the pipe open forever if only `sh` were killed.
        let o = run(&sh("sleep 30 & sleep 30", 300)).await.unwrap();
        assert!(o.timed_out);
        assert_eq!(o.signal, Some(libc::SIGKILL));
        assert!(o.duration < Duration::from_secs(10));
    }

    #[test]
    fn quoting() {
        assert_eq!(quote("a/b"), "a/b");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
    }
}
