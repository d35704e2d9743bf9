//! `kind = "kill"`: the step's fields and rules; the crash machinery is in [`crash`].

pub mod crash;

use super::{Step, StepFuture, StepKind, ValidateCx, plain_relative};
use crate::verify::steps::GateCtx;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The `kind` spelling.
pub const KIND: &str = "kill";

/// The smallest valid table of this kind (besides `kind`): the registry's test parses it.
pub const EXAMPLE: &str = "args = [\"x\"]";

/// `kind = "kill"`: crash writers in the middle of a write transaction, one at a time, and
/// check the database right after each crash (see `steps::crash`).
///
/// Each writer is stopped (SIGSTOP of its process group) at a seeded point of its write phase
/// and observed from outside; it is SIGKILLed only when it holds SQLite's WAL write lock on an
/// existing database with rows (a *landed* kill), otherwise it is resumed and stopped again a
/// little later, until a kill lands or the writer exits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillStep {
    /// Name (unused by checks; for the report).
    pub name: Option<String>,
    /// Arguments of the writer.
    pub args: Vec<String>,
    /// Extra environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// How many writers are started (each is killed at most once).
    #[serde(default = "default_kill_times")]
    pub times: usize,
    /// At least this many kills must land inside a write transaction on a populated database;
    /// fewer fails the step (a crash test whose kills miss the writes tested nothing).
    #[serde(default = "default_min_landed")]
    pub min_landed: usize,
    /// Run once before the writers (e.g. `ast index --persist-cache`): the cache it leaves is
    /// snapshotted and restored before every writer, so each one writes to a populated DB.
    #[serde(default)]
    pub populate: Vec<String>,
    /// Generated modules that every writer finds changed (so it has entries to rewrite).
    pub generate: Option<GenerateSpec>,
    /// Checks run right after each landed kill, before the next writer (`run`, `jq`,
    /// `integrity`, `baseline`, `files`); a failing one fails the step.
    #[serde(default)]
    pub after_each: Vec<Step>,
}

/// `[steps.generate]` of a kill step: `modules` Python modules `<dir>/m0000.py…` written by the
/// harness: variant 0 before `populate`, then variant 1 (other names, so other symbols) for
/// every writer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateSpec {
    /// Segment-relative package directory (created, with an empty `__init__.py`).
    pub dir: String,
    /// Number of modules.
    pub modules: usize,
    /// Functions per module (and half as many methods): the size of each entry.
    #[serde(default = "default_defs")]
    pub defs: usize,
}

fn default_defs() -> usize {
    12
}

fn default_kill_times() -> usize {
    3
}

fn default_min_landed() -> usize {
    1
}

impl StepKind for KillStep {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn label(&self) -> String {
        format!(
            "{} × kill -9 inside a write transaction (min_landed {})",
            self.times, self.min_landed
        )
    }

    fn validate(&self, cx: &ValidateCx, err: &mut dyn FnMut(&str, String)) {
        if self.times == 0 {
            err("times", "need times ≥ 1".into());
        }
        if self.min_landed > self.times {
            err(
                "min_landed",
                format!(
                    "min_landed {} exceeds times {}",
                    self.min_landed, self.times
                ),
            );
        }
        if let Some(g) = &self.generate
            && (g.modules == 0 || !plain_relative(&g.dir))
        {
            err(
                "generate",
                "generate needs modules ≥ 1 and a plain relative dir".into(),
            );
        }
        self.validate_after_each(cx, err);
    }
    fn exec<'a>(&'a self, ctx: &'a mut GateCtx, index: usize) -> StepFuture<'a> {
        Box::pin(async move { crash::kill(ctx, self, index).await })
    }
}

impl KillStep {
    /// The checks run after each landed kill: only kinds that may run there, with names visible
    /// to later ones.
    fn validate_after_each(&self, cx: &ValidateCx, err: &mut dyn FnMut(&str, String)) {
        let mut names = cx.names.clone();
        for (i, sub) in self.after_each.iter().enumerate() {
            if !sub.runs_after_kill() {
                err(
                    "after_each",
                    format!(
                        "after_each {}: `{}` is not allowed (run, jq, integrity, baseline, files)",
                        i + 1,
                        sub.kind()
                    ),
                );
            }
            let sub_cx = ValidateCx {
                names: &names,
                has_worktree: cx.has_worktree,
            };
            sub.validate(&sub_cx, &mut |_, msg| {
                err("after_each", format!("after_each {}: {msg}", i + 1))
            });
            for n in sub.names() {
                names.insert(n.to_string());
            }
        }
    }
}
