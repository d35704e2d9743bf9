//! `kind = "cargo"`.

use super::{StepFuture, StepKind, ValidateCx};
use crate::verify::event::Status;
use crate::verify::excerpt::excerpt;
use crate::verify::process::ProcSpec;
use crate::verify::steps::logged_run::run_logged;
use crate::verify::steps::{GateCtx, StepResult};
use serde::Deserialize;
use std::time::Duration;

/// The `kind` spelling.
pub const KIND: &str = "cargo";

/// The smallest valid table of this kind (besides `kind`): the registry's test parses it.
pub const EXAMPLE: &str = "args = [\"build\"]";

/// Where a cargo step runs.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CargoDir {
    /// The repository the verifier was started in (`--repo`).
    Checkout,
    /// The worktree made by an earlier `worktree` step (same target dir as its build).
    Worktree,
}

/// `kind = "cargo"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CargoStep {
    /// Arguments after `cargo`.
    pub args: Vec<String>,
    /// Where to run.
    #[serde(default = "default_cargo_dir")]
    pub dir: CargoDir,
    /// At least this many tests must pass (summed over `test result:` lines), so a filter that
    /// matches nothing cannot pass vacuously. 0 disables the check (e.g. for builds).
    #[serde(default)]
    pub min_tests: usize,
    /// Timeout.
    #[serde(default = "super::default_worktree_timeout")]
    pub timeout_s: u64,
}

fn default_cargo_dir() -> CargoDir {
    CargoDir::Checkout
}

impl StepKind for CargoStep {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn needs_segment(&self) -> bool {
        false
    }

    fn label(&self) -> String {
        format!("cargo {}", self.args.join(" "))
    }

    fn validate(&self, cx: &ValidateCx, err: &mut dyn FnMut(&str, String)) {
        if self.dir == CargoDir::Worktree && !cx.has_worktree {
            err(
                "dir",
                "dir = \"worktree\" needs an earlier worktree step".into(),
            );
        }
        if self.args.is_empty() {
            err("args", "cargo needs arguments".into());
        }
    }
    fn exec<'a>(&'a self, ctx: &'a mut GateCtx, index: usize) -> StepFuture<'a> {
        Box::pin(async move { cargo(ctx, self, index).await })
    }
}

/// Sum `N passed` over cargo's `test result:` lines.
pub fn passed_tests(output: &str) -> usize {
    output
        .lines()
        .filter(|l| l.trim_start().starts_with("test result:"))
        .filter_map(|l| {
            let idx = l.find(" passed")?;
            l[..idx].rsplit(' ').next()?.parse::<usize>().ok()
        })
        .sum()
}

/// `cargo`: run cargo in the checkout or the worktree.
pub async fn cargo(ctx: &mut GateCtx, s: &CargoStep, index: usize) -> StepResult {
    let (cwd, env) = match s.dir {
        CargoDir::Checkout => (ctx.shared.checkout.clone(), vec![]),
        CargoDir::Worktree => match (&ctx.worktree, &ctx.target_dir) {
            (Some(w), Some(t)) => (
                w.path.clone(),
                vec![("CARGO_TARGET_DIR".into(), t.to_string_lossy().into_owned())],
            ),
            _ => return StepResult::error("no worktree"),
        },
    };
    let spec = ProcSpec {
        program: "cargo".into(),
        args: s.args.iter().map(|a| ctx.expand(a)).collect(),
        env,
        cwd: Some(cwd),
        timeout: Duration::from_secs(s.timeout_s),
    };
    let (o, log) = match run_logged(ctx, &spec, &format!("step-{index}-cargo.log")).await {
        Ok(x) => x,
        Err(e) => return e,
    };
    let passed = passed_tests(&o.stdout);
    // cargo test prints results on stdout and progress on stderr: show the test summary lines.
    let summary: Vec<&str> = o
        .stdout
        .lines()
        .filter(|l| {
            l.starts_with("test result:") || l.starts_with("running ") || l.contains("FAILED")
        })
        .collect();
    let mut ex = excerpt(&summary.join("\n"), 30, 2500, true);
    if o.code != Some(0) {
        ex.push_str("\n[stderr]\n");
        ex.push_str(&excerpt(o.stderr.trim_end(), 20, 2500, true));
    }
    let ok_exit = o.code == Some(0);
    let ok_count = passed >= s.min_tests;
    let detail = if !ok_exit {
        format!("cargo {}: {}", s.args.join(" "), o.status_text())
    } else if !ok_count {
        format!(
            "only {passed} test(s) passed, at least {} required (a filter matching nothing must not pass)",
            s.min_tests
        )
    } else {
        format!("{passed} test(s) passed, {}", o.status_text())
    };
    StepResult {
        status: if ok_exit && ok_count {
            Status::Pass
        } else {
            Status::Fail
        },
        commands: vec![spec.display()],
        excerpt: ex,
        detail,
        logs: log.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_passed_tests() {
        let out = "running 2 tests\ntest a ... ok\ntest result: ok. 2 passed; 0 failed; 0 ignored\n\nrunning 0 tests\ntest result: ok. 0 passed; 0 failed\n";
        assert_eq!(super::passed_tests(out), 2);
        assert_eq!(super::passed_tests("no tests"), 0);
    }
}
