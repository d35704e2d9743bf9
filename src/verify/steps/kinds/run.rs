//! `kind = "run"`.

use super::{StepFuture, StepKind, ValidateCx, clip};
use crate::verify::event::Status;
use crate::verify::steps::logged_run::{out_excerpt, run_logged};
use crate::verify::steps::{GateCtx, Saved, StepResult};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The `kind` spelling.
pub const KIND: &str = "run";

/// The smallest valid table of this kind (besides `kind`): the registry's test parses it.
pub const EXAMPLE: &str = "args = [\"x\"]";

/// `kind = "run"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunStep {
    /// Name under which the output is saved.
    pub name: Option<String>,
    /// Arguments after the trifecta binary (`{segment}`, `{db}`, … expand).
    pub args: Vec<String>,
    /// Extra environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Expected exit code.
    #[serde(default)]
    pub expect_exit: i32,
    /// Timeout.
    #[serde(default = "super::default_run_timeout")]
    pub timeout_s: u64,
    /// The output is JSON Lines (`ast index --format jsonl`): save it as one output per line,
    /// so a jq check sees an array of the lines' values.
    #[serde(default)]
    pub jsonl: bool,
    /// Each of these texts must appear in the process's stderr (e.g. the one line that says
    /// telemetry was dropped).
    #[serde(default)]
    pub stderr_has: Vec<String>,
}

impl StepKind for RunStep {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn runs_after_kill(&self) -> bool {
        true
    }

    fn label(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| clip(&self.args.join(" ")))
    }

    fn validate(&self, _cx: &ValidateCx, err: &mut dyn FnMut(&str, String)) {
        if self.args.is_empty() {
            err("args", "run needs arguments".into());
        }
    }
    fn exec<'a>(&'a self, ctx: &'a mut GateCtx, index: usize) -> StepFuture<'a> {
        Box::pin(async move { run(ctx, self, index).await })
    }
}

/// `run`: one CLI invocation; output saved under `name`.
pub async fn run(ctx: &mut GateCtx, s: &RunStep, index: usize) -> StepResult {
    let spec = ctx.trifecta_spec(&s.args, &s.env, s.timeout_s);
    let (o, log) = match run_logged(ctx, &spec, &format!("step-{index}-run.log")).await {
        Ok(x) => x,
        Err(e) => return e,
    };
    ctx.stdouts.push(crate::verify::steps::leaks::Scanned {
        what: format!("step {index} run"),
        args: spec.args.clone(),
        stdout: o.stdout.clone(),
    });
    if let Some(n) = &s.name {
        let saved = if s.jsonl {
            Saved::Many(
                o.stdout
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_string)
                    .collect(),
            )
        } else {
            Saved::One(o.stdout.clone())
        };
        ctx.outputs.insert(n.clone(), saved);
    }
    let missing: Vec<&String> = s
        .stderr_has
        .iter()
        .filter(|t| !o.stderr.contains(t.as_str()))
        .collect();
    let ok = o.code == Some(s.expect_exit) && !o.timed_out && missing.is_empty();
    let mut detail = format!(
        "{} (expected exit {}) in {:.0} ms",
        o.status_text(),
        s.expect_exit,
        o.duration.as_secs_f64() * 1e3
    );
    if !missing.is_empty() {
        detail.push_str(&format!("; stderr lacks {missing:?}"));
    } else if !s.stderr_has.is_empty() {
        detail.push_str(&format!("; stderr has {:?}", s.stderr_has));
    }
    StepResult {
        status: if ok { Status::Pass } else { Status::Fail },
        commands: vec![spec.display()],
        excerpt: out_excerpt(&o),
        detail,
        logs: log.into_iter().collect(),
    }
}
