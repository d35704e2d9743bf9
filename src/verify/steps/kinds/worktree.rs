//! `kind = "worktree"`.

use super::{StepFuture, StepKind, ValidateCx};
use crate::verify::event::Status;
use crate::verify::process::{self, ProcSpec};
use crate::verify::steps::logged_run::{out_excerpt, run_logged};
use crate::verify::steps::{GateCtx, StepResult};
use crate::verify::workspace;
use serde::Deserialize;
use std::time::Duration;

/// The `kind` spelling.
pub const KIND: &str = "worktree";

/// The smallest valid table of this kind (besides `kind`): the registry's test parses it.
pub const EXAMPLE: &str = "";

/// `kind = "worktree"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorktreeStep {
    /// Revision to check out (default: `--rev`, itself defaulting to HEAD).
    pub rev: Option<String>,
    /// Build command run in the worktree with `CARGO_TARGET_DIR={target}` (inside the temp dir).
    #[serde(default = "default_build")]
    pub build: Vec<String>,
    /// Binary that later steps use (`{target}`, `{worktree}` expand); `""` keeps the current one.
    #[serde(default = "default_binary")]
    pub binary: Option<String>,
    /// Build timeout.
    #[serde(default = "super::default_worktree_timeout")]
    pub timeout_s: u64,
}

fn default_build() -> Vec<String> {
    ["cargo", "build", "--release", "--locked"]
        .map(String::from)
        .to_vec()
}

fn default_binary() -> Option<String> {
    Some("{target}/release/trifecta".to_string())
}

impl StepKind for WorktreeStep {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn needs_segment(&self) -> bool {
        false
    }

    fn makes_worktree(&self) -> bool {
        true
    }

    fn label(&self) -> String {
        format!("rev {}", self.rev.as_deref().unwrap_or("(--rev)"))
    }

    fn validate(&self, _cx: &ValidateCx, err: &mut dyn FnMut(&str, String)) {
        if self.build.is_empty() {
            err("build", "build command is empty".into());
        }
    }
    fn exec<'a>(&'a self, ctx: &'a mut GateCtx, index: usize) -> StepFuture<'a> {
        Box::pin(async move { worktree(ctx, self, index).await })
    }
}

/// `worktree`: clean checkout of a revision, built from scratch in its own target dir.
pub async fn worktree(ctx: &mut GateCtx, s: &WorktreeStep, index: usize) -> StepResult {
    let rev = s.rev.clone().unwrap_or_else(|| ctx.shared.rev.clone());
    let path = ctx.tmp.path().join("worktree");
    let target = ctx.tmp.path().join("target");
    let name: String = format!("tv-{}-{}-{index}", ctx.shared.run_id, ctx.gate_id)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut commands = vec![format!(
        "git worktree add --detach {} {}",
        process::quote(&path.to_string_lossy()),
        process::quote(&rev)
    )];
    let wt = match workspace::add_worktree(&ctx.shared.checkout, &rev, &path, &name) {
        Ok(w) => w,
        Err(e) => {
            return StepResult {
                commands,
                ..StepResult::error(e)
            };
        }
    };
    let commit = wt.commit.clone();
    ctx.worktree = Some(wt);
    ctx.target_dir = Some(target.clone());
    let Some((prog, args)) = s.build.split_first() else {
        return StepResult::error("empty build command");
    };
    let spec = ProcSpec {
        program: ctx.expand(prog).into(),
        args: args.iter().map(|a| ctx.expand(a)).collect(),
        env: vec![(
            "CARGO_TARGET_DIR".into(),
            target.to_string_lossy().into_owned(),
        )],
        cwd: Some(path.clone()),
        timeout: Duration::from_secs(s.timeout_s),
    };
    commands.push(spec.display());
    let (o, log) = match run_logged(ctx, &spec, &format!("step-{index}-build.log")).await {
        Ok(x) => x,
        Err(mut e) => {
            e.commands = commands;
            return e;
        }
    };
    let mut out = StepResult {
        commands,
        excerpt: out_excerpt(&o),
        logs: log.into_iter().collect(),
        ..StepResult::pass(format!(
            "worktree of `{rev}` = {commit}; build {} in {:.1}s",
            o.status_text(),
            o.duration.as_secs_f64()
        ))
    };
    if o.code != Some(0) {
        out.status = Status::Fail;
        out.detail = format!("build in clean worktree of {commit}: {}", o.status_text());
        return out;
    }
    if let Some(bin) = s.binary.as_deref().filter(|b| !b.is_empty()) {
        let bin = std::path::PathBuf::from(ctx.expand(bin));
        if !bin.is_file() {
            out.status = Status::Fail;
            out.detail = format!("build succeeded but {} is missing", bin.display());
            return out;
        }
        ctx.trifecta = bin.clone();
        out.detail
            .push_str(&format!("; later steps use {}", bin.display()));
    }
    out
}
