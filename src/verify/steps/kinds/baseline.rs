//! `kind = "baseline"`.

use crate::verify::steps::{GateCtx, StepResult, Saved};
use crate::verify::process::{self};
use crate::verify::excerpt::excerpt;
use serde_json::Value;
use std::collections::HashMap;
use crate::verify::steps::inputs::{copy_sources, uncached_spec};
use super::{StepFuture, StepKind, ValidateCx};
use serde::Deserialize;

/// The `kind` spelling.
pub const KIND: &str = "baseline";

/// The smallest valid table of this kind (besides `kind`): the registry's test parses it.
pub const EXAMPLE: &str = "steps = [\"a\"]";

/// `kind = "baseline"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineStep {
    /// Names of run/stress steps whose outputs must equal an uncached run of the same URI.
    pub steps: Vec<String>,
    /// Run the reference on a fresh copy of the scenario's *original* segment instead of the
    /// segment's current sources. Needed once steps have planted links, FIFOs or devices in the
    /// segment: copying those would follow them out of the segment or block on a FIFO.
    #[serde(default)]
    pub clean: bool,
}

impl StepKind for BaselineStep {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn is_check(&self) -> bool {
        true
    }

    fn runs_after_kill(&self) -> bool {
        true
    }

    fn label(&self) -> String {
        self.steps.join(", ")
    }

    fn validate(&self, cx: &ValidateCx, err: &mut dyn FnMut(&str, String)) {
        if self.steps.is_empty() {
            err("steps", "baseline needs at least one step name".into());
        }
        for s in self.steps.iter().filter(|s| !cx.names.contains(*s)) {
            err("steps", format!("no earlier step named `{s}`"));
        }
    }
    fn exec<'a>(&'a self, ctx: &'a mut GateCtx, _index: usize) -> StepFuture<'a> {
        Box::pin(async move { baseline(ctx, self).await })
    }
}

/// Fields that must equal the uncached run; cache fields and the absolute root are ignored.
const COMPARED: [&str; 3] = ["symbols", "file_rel", "syntax_errors"];

/// `baseline`: each saved output equals an uncached run (`--no-persist-cache`, telemetry off)
/// of the same URI on a fresh copy of the segment's current sources.
pub async fn baseline(ctx: &mut GateCtx, s: &BaselineStep) -> StepResult {
    let seg = match ctx.segment() {
        Ok(p) => p.to_path_buf(),
        Err(o) => return o,
    };
    let mut outputs: Vec<(String, String)> = Vec::new();
    for name in &s.steps {
        match ctx.outputs.get(name) {
            Some(Saved::One(o)) => outputs.push((name.clone(), o.clone())),
            Some(Saved::Many(v)) => outputs.extend(
                v.iter()
                    .enumerate()
                    .map(|(i, o)| (format!("{name}[{i}]"), o.clone())),
            ),
            None => return StepResult::fail(format!("step `{name}` saved no output")),
        }
    }
    if outputs.is_empty() {
        return StepResult::fail("nothing to compare (no outputs)");
    }
    let n = ctx.faults.len() + outputs.len();
    let fresh = ctx
        .tmp
        .path()
        .join(format!("baseline-{n}-{}", crate::clock::real_now_ms()));
    let copied = if s.clean {
        match &ctx.scenario_segment {
            Some(orig) => crate::verify::workspace::copy_tree(orig, &fresh),
            None => return StepResult::error("baseline `clean` needs a scenario"),
        }
    } else {
        copy_sources(&seg, &fresh)
    };
    if let Err(e) = copied {
        return StepResult::error(format!("copy sources for baseline: {e}"));
    }
    let mut base: HashMap<String, Result<Value, String>> = HashMap::new();
    let mut commands = Vec::new();
    let mut problems = Vec::new();
    for (label, text) in &outputs {
        let got: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!(
                    "{label}: not JSON ({e}): {}",
                    excerpt(text, 2, 200, false)
                ));
                continue;
            }
        };
        let Some(uri) = got.get("uri").and_then(Value::as_str).map(str::to_string) else {
            problems.push(format!(
                "{label}: no `uri` in output: {}",
                excerpt(text, 2, 200, false)
            ));
            continue;
        };
        if !base.contains_key(&uri) {
            let spec = uncached_spec(&ctx.trifecta, &uri, &fresh);
            commands.push(spec.display());
            let r = match process::run(&spec).await {
                Ok(o) if o.code == Some(0) => serde_json::from_str::<Value>(&o.stdout)
                    .map_err(|e| format!("baseline output not JSON: {e}")),
                Ok(o) => Err(format!(
                    "baseline run failed: {} {}",
                    o.status_text(),
                    excerpt(o.stdout.trim(), 2, 300, false)
                )),
                Err(e) => Err(format!("cannot spawn baseline: {e}")),
            };
            base.insert(uri.clone(), r);
        }
        match base.get(&uri) {
            Some(Ok(b)) => {
                for f in COMPARED {
                    if got.get(f) != b.get(f) {
                        problems.push(format!(
                            "{label}: `{f}` differs from the uncached run of {uri}: got {} expected {}",
                            excerpt(&got.get(f).map(|v| v.to_string()).unwrap_or("(missing)".into()), 1, 300, false),
                            excerpt(&b.get(f).map(|v| v.to_string()).unwrap_or("(missing)".into()), 1, 300, false)
                        ));
                    }
                }
            }
            Some(Err(e)) => problems.push(format!("{label}: {e}")),
            None => {}
        }
    }
    let _ = std::fs::remove_dir_all(&fresh);
    let mut out = if problems.is_empty() {
        StepResult::pass(format!(
            "{} output(s) equal the uncached run on {} ({} URI(s)) on {}",
            outputs.len(),
            COMPARED.join(", "),
            base.len(),
            if s.clean {
                "a clean copy of the scenario"
            } else {
                "a copy of the segment's current sources"
            }
        ))
    } else {
        StepResult::fail(excerpt(&problems.join("\n"), 10, 3000, false))
    };
    out.commands = commands;
    out
}
