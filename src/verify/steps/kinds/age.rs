//! `kind = "age"`.

use super::{StepFuture, StepKind, ValidateCx};
use crate::verify::steps::{GateCtx, StepResult};
use serde::Deserialize;

/// The `kind` spelling.
pub const KIND: &str = "age";

/// The smallest valid table of this kind (besides `kind`): the registry's test parses it.
pub const EXAMPLE: &str = "days = 1";

/// `kind = "age"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgeStep {
    /// Days to add to the test clock (`TRIFECTA_TEST_NOW_MS`) for later steps.
    pub days: f64,
}

impl StepKind for AgeStep {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn needs_segment(&self) -> bool {
        false
    }

    fn label(&self) -> String {
        format!("+{} days", self.days)
    }

    fn validate(&self, _cx: &ValidateCx, err: &mut dyn FnMut(&str, String)) {
        if !self.days.is_finite() || self.days < 0.0 {
            err("days", "days must be a finite number ≥ 0".into());
        }
    }
    fn exec<'a>(&'a self, ctx: &'a mut GateCtx, _index: usize) -> StepFuture<'a> {
        Box::pin(std::future::ready(age(ctx, self)))
    }
}

/// `age`: move the test clock forward for later trifecta processes.
pub fn age(ctx: &mut GateCtx, s: &AgeStep) -> StepResult {
    let base = ctx.now_ms.unwrap_or_else(crate::clock::real_now_ms);
    let now = base + (s.days * 86_400_000.0) as i64;
    ctx.now_ms = Some(now);
    StepResult::pass(format!(
        "TRIFECTA_TEST_NOW_MS={now} (+{} days) for later steps",
        s.days
    ))
}
