//! `kind = "hold-lock"`.

use super::{StepFuture, StepKind};
use crate::verify::process::{self, ProcSpec};
use crate::verify::steps::{GateCtx, StepResult};
use serde::Deserialize;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

/// The `kind` spelling.
pub const KIND: &str = "hold-lock";

/// The smallest valid table of this kind (besides `kind`): the registry's test parses it.
pub const EXAMPLE: &str = "mode = \"shared\"\nms = 1";

/// Lock mode for `hold-lock`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    /// `flock(LOCK_SH)`.
    Shared,
    /// `flock(LOCK_EX)`.
    Exclusive,
}

/// `kind = "hold-lock"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldLockStep {
    /// Shared or exclusive.
    pub mode: LockMode,
    /// How long the holder keeps it (it is started and continues in the background).
    pub ms: u64,
}

impl LockMode {
    /// `shared` or `exclusive`, as spelled in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Shared => "shared",
            LockMode::Exclusive => "exclusive",
        }
    }
}

impl StepKind for HoldLockStep {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn label(&self) -> String {
        format!("{} {} ms", self.mode.as_str(), self.ms)
    }
    fn exec<'a>(&'a self, ctx: &'a mut GateCtx, _index: usize) -> StepFuture<'a> {
        Box::pin(async move { hold_lock(ctx, self).await })
    }
}

/// `hold-lock`: spawn `trifecta-verify hold-lock` and wait until it reports the lock held.
pub async fn hold_lock(ctx: &mut GateCtx, s: &HoldLockStep) -> StepResult {
    let lock = match ctx.db() {
        // contracts.md: `<segment>/.trifecta/cache/ast_cache.lock` beside the DB.
        Ok(db) => db.with_file_name("ast_cache.lock"),
        Err(o) => return o,
    };
    let mut args = vec![
        "hold-lock".to_string(),
        lock.to_string_lossy().into_owned(),
        "--ms".into(),
        s.ms.to_string(),
    ];
    if s.mode == LockMode::Exclusive {
        args.push("--exclusive".into());
    }
    let spec = ProcSpec {
        program: ctx.shared.verify_exe.clone(),
        args,
        env: vec![],
        cwd: None,
        timeout: Duration::from_millis(s.ms + 10_000),
    };
    let cmd = spec.display();
    let mut child = match process::command(&spec).spawn() {
        Ok(c) => c,
        Err(e) => return StepResult::error(format!("cannot spawn lock holder: {e}")),
    };
    let Some(out) = child.stdout.take() else {
        return StepResult::error("lock holder has no stdout");
    };
    let mut lines = tokio::io::BufReader::new(out).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await;
    let res = match first {
        Ok(Ok(Some(l))) if l.trim() == "locked" => StepResult {
            commands: vec![format!("{cmd} &")],
            ..StepResult::pass(format!(
                "{} lock on {} held for {} ms by pid {}",
                s.mode.as_str(),
                lock.display(),
                s.ms,
                child.id().unwrap_or(0)
            ))
        },
        other => {
            process::kill_group(&child);
            let what = match other {
                Ok(Ok(Some(line))) => format!("it printed {}", crate::output::quoted(&line)),
                Ok(Ok(None)) => "it exited without output".to_string(),
                Ok(Err(e)) => format!("reading its output failed: {e}"),
                Err(_) => "no line within 10 s".to_string(),
            };
            StepResult {
                commands: vec![cmd],
                ..StepResult::error(format!("lock holder did not report `locked`: {what}"))
            }
        }
    };
    ctx.holders.push(child);
    res
}
