//! `kind = "snapshot"`.

use super::{StepFuture, StepKind};
use crate::verify::steps::{GateCtx, StepResult};
use serde::Deserialize;

/// The `kind` spelling.
pub const KIND: &str = "snapshot";

/// The smallest valid table of this kind (besides `kind`): the registry's test parses it.
pub const EXAMPLE: &str = "name = \"s\"\nfile = \"a.py\"";

/// `kind = "snapshot"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotStep {
    /// Name for `files.unchanged`.
    pub name: String,
    /// Segment-relative file.
    pub file: String,
}

impl StepKind for SnapshotStep {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }

    fn label(&self) -> String {
        format!("{} = {}", self.name, self.file)
    }
    fn exec<'a>(&'a self, ctx: &'a mut GateCtx, _index: usize) -> StepFuture<'a> {
        Box::pin(std::future::ready(snapshot(ctx, self)))
    }
}

/// `snapshot`: remember a file's digest.
pub fn snapshot(ctx: &mut GateCtx, s: &SnapshotStep) -> StepResult {
    let seg = match ctx.segment() {
        Ok(s) => s.to_path_buf(),
        Err(o) => return o,
    };
    let p = seg.join(ctx.expand(&s.file));
    match std::fs::read(&p) {
        Ok(b) => {
            let h = blake3::hash(&b).to_hex().to_string();
            ctx.snapshots.insert(s.name.clone(), (p, h.clone()));
            StepResult::pass(format!("{} = blake3 {h} ({} bytes)", s.file, b.len()))
        }
        Err(e) => StepResult::fail(format!("cannot read {}: {e}", s.file)),
    }
}
