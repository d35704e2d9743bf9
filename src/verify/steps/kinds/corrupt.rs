//! `kind = "corrupt"`.

use super::{StepFuture, StepKind, ValidateCx};
use crate::verify::event::ScheduledFault;
use crate::verify::steps::faults::{self, CorruptionMode};
use crate::verify::steps::in_process;
use crate::verify::steps::{GateCtx, StepResult};
use serde::Deserialize;

/// The `kind` spelling.
pub const KIND: &str = "corrupt";

/// The smallest valid table of this kind (besides `kind`): the registry's test parses it.
pub const EXAMPLE: &str = "mode = \"truncate\"";

/// `kind = "corrupt"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorruptStep {
    /// Catalog mode name (`crate::verify::steps::faults`).
    pub mode: String,
}

impl StepKind for CorruptStep {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn label(&self) -> String {
        self.mode.clone()
    }

    fn validate(&self, _cx: &ValidateCx, err: &mut dyn FnMut(&str, String)) {
        if CorruptionMode::parse(&self.mode).is_none() {
            let all: Vec<&str> = CorruptionMode::ALL.iter().map(|m| m.as_str()).collect();
            err(
                "mode",
                format!(
                    "unknown corruption mode `{}` (catalog: {})",
                    self.mode,
                    all.join(", ")
                ),
            );
        }
    }
    fn exec<'a>(&'a self, ctx: &'a mut GateCtx, index: usize) -> StepFuture<'a> {
        Box::pin(std::future::ready(corrupt(ctx, self, index)))
    }
}

/// `corrupt`: inject a catalog fault with a seed derived from the run seed.
pub fn corrupt(ctx: &mut GateCtx, s: &CorruptStep, index: usize) -> StepResult {
    let Some(mode) = CorruptionMode::parse(&s.mode) else {
        return StepResult::error(format!("unknown mode {}", s.mode));
    };
    let db = match ctx.db() {
        Ok(d) => d,
        Err(o) => return o,
    };
    let seed = ctx.fault_seed(index, 0);
    let cmd = in_process(format!(
        "trifecta::verify::steps::faults::inject({}, {}, seed={seed})",
        mode.as_str(),
        db.display()
    ));
    match faults::inject(mode, &db, seed) {
        Ok(inj) => {
            ctx.faults.push(ScheduledFault {
                gate: ctx.gate_id.clone(),
                step: index,
                kind: "corrupt".into(),
                what: mode.as_str().into(),
                seed,
                detail: inj.detail.clone(),
            });
            StepResult {
                commands: vec![cmd],
                ..StepResult::pass(format!("{}: {}", mode.as_str(), inj.detail))
            }
        }
        Err(e) => StepResult {
            commands: vec![cmd],
            // No DB to damage means an earlier run did not create the cache: a finding.
            ..StepResult::fail(format!("cannot inject {}: {e}", mode.as_str()))
        },
    }
}
