//! `kind = "release"`.

use super::{StepFuture, StepKind};
use crate::verify::process::{self};
use crate::verify::steps::{GateCtx, StepResult};
use serde::Deserialize;

/// The `kind` spelling.
pub const KIND: &str = "release";

/// The smallest valid table of this kind (besides `kind`): the registry's test parses it.
pub const EXAMPLE: &str = "";

/// `kind = "release"` (no fields).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseStep {}

impl StepKind for ReleaseStep {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn label(&self) -> String {
        "stop lock holders".into()
    }
    fn exec<'a>(&'a self, ctx: &'a mut GateCtx, _index: usize) -> StepFuture<'a> {
        Box::pin(async move { release(ctx).await })
    }
}

/// `release`: stop lock holders early (SIGKILL to their groups; flock is released on exit).
pub async fn release(ctx: &mut GateCtx) -> StepResult {
    let n = ctx.holders.len();
    for mut h in ctx.holders.drain(..) {
        process::kill_group(&h);
        let _ = h.wait().await;
    }
    StepResult::pass(format!("{n} lock holder(s) stopped"))
}
