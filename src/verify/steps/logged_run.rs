//! Running a step's process and keeping the evidence: the log file (command, exit status,
//! stdout, stderr) and the excerpt the report shows. Shared by the kinds that run processes
//! (`worktree`, `cargo`, `run`).

use super::{GateCtx, StepResult};
use crate::verify::excerpt::excerpt;
use crate::verify::process::{self, ProcSpec, ProcessResult};

/// A process log: the command, how it ended, then stdout and stderr.
pub fn log_body(spec: &ProcSpec, o: &ProcessResult) -> String {
    format!(
        "$ {}\n# {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n",
        spec.display(),
        o.status_text(),
        o.stdout,
        o.stderr
    )
}

/// The report excerpt of a process: the start of stdout, then of stderr.
pub fn out_excerpt(o: &ProcessResult) -> String {
    let mut s = String::new();
    if !o.stdout.trim().is_empty() {
        s.push_str(&excerpt(o.stdout.trim_end(), 25, 2500, false));
    }
    if !o.stderr.trim().is_empty() {
        if !s.is_empty() {
            s.push('\n');
        }
        s.push_str("[stderr]\n");
        s.push_str(&excerpt(o.stderr.trim_end(), 25, 2500, true));
    }
    s
}

/// Run a process for a step and log it; `Err` is a harness error outcome.
pub async fn run_logged(
    ctx: &GateCtx,
    spec: &ProcSpec,
    log_name: &str,
) -> Result<(ProcessResult, Option<String>), StepResult> {
    match process::run(spec).await {
        Ok(o) => {
            let log = ctx.log(log_name, &log_body(spec, &o));
            Ok((o, log))
        }
        Err(e) => Err(StepResult {
            commands: vec![spec.display()],
            ..StepResult::error(format!("cannot spawn {}: {e}", spec.program.display()))
        }),
    }
}
