//! `kind = "baseline"`.

use super::{StepFuture, StepKind, ValidateCx};
use crate::verify::excerpt::excerpt;
use crate::verify::process::{self, ProcSpec};
use crate::verify::steps::inputs::{copy_sources, uncached_spec};
use crate::verify::steps::{GateCtx, Saved, StepResult};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

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
    let outputs = match saved_outputs(ctx, &s.steps) {
        Ok(o) => o,
        Err(o) => return o,
    };
    let n = ctx.faults.len() + outputs.len();
    let fresh = ctx
        .tmp
        .path()
        .join(format!("baseline-{n}-{}", crate::clock::real_now_ms()));
    if let Err(o) = copy_reference(ctx, s, &seg, &fresh) {
        return o;
    }
    let mut base: HashMap<String, Result<Value, String>> = HashMap::new();
    let mut commands = Vec::new();
    let mut problems = Vec::new();
    for (label, text) in &outputs {
        let (got, uri) = match parse_output(label, text) {
            Ok(p) => p,
            Err(p) => {
                problems.push(p);
                continue;
            }
        };
        if !base.contains_key(&uri) {
            let spec = uncached_spec(&ctx.trifecta, &uri, &fresh);
            commands.push(spec.display());
            base.insert(uri.clone(), reference_run(&spec).await);
        }
        match base.get(&uri) {
            Some(Ok(b)) => compare(label, &uri, &got, b, &mut problems),
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

/// The outputs saved by the named steps, labelled `name` (or `name[i]` for a stress step's
/// many); failing when a step saved nothing or there is nothing at all to compare.
fn saved_outputs(ctx: &GateCtx, names: &[String]) -> Result<Vec<(String, String)>, StepResult> {
    let mut outputs: Vec<(String, String)> = Vec::new();
    for name in names {
        match ctx.outputs.get(name) {
            Some(Saved::One(o)) => outputs.push((name.clone(), o.clone())),
            Some(Saved::Many(v)) => outputs.extend(
                v.iter()
                    .enumerate()
                    .map(|(i, o)| (format!("{name}[{i}]"), o.clone())),
            ),
            None => return Err(StepResult::fail(format!("step `{name}` saved no output"))),
        }
    }
    if outputs.is_empty() {
        return Err(StepResult::fail("nothing to compare (no outputs)"));
    }
    Ok(outputs)
}

/// Fill `fresh` with the sources the reference runs on: the scenario's original segment
/// (`clean`) or a copy of the segment's current sources.
fn copy_reference(
    ctx: &GateCtx,
    s: &BaselineStep,
    seg: &Path,
    fresh: &Path,
) -> Result<(), StepResult> {
    let copied = if s.clean {
        match &ctx.scenario_segment {
            Some(orig) => crate::verify::workspace::copy_tree(orig, fresh),
            None => return Err(StepResult::error("baseline `clean` needs a scenario")),
        }
    } else {
        copy_sources(seg, fresh)
    };
    copied.map_err(|e| StepResult::error(format!("copy sources for baseline: {e}")))
}

/// A saved output as JSON and its `uri`, or the problem to report for it.
fn parse_output(label: &str, text: &str) -> Result<(Value, String), String> {
    let got: Value = serde_json::from_str(text)
        .map_err(|e| format!("{label}: not JSON ({e}): {}", excerpt(text, 2, 200, false)))?;
    let Some(uri) = got.get("uri").and_then(Value::as_str).map(str::to_string) else {
        return Err(format!(
            "{label}: no `uri` in output: {}",
            excerpt(text, 2, 200, false)
        ));
    };
    Ok((got, uri))
}

/// Run the uncached reference: its JSON output, or why there is none.
async fn reference_run(spec: &ProcSpec) -> Result<Value, String> {
    match process::run(spec).await {
        Ok(o) if o.code == Some(0) => serde_json::from_str::<Value>(&o.stdout)
            .map_err(|e| format!("baseline output not JSON: {e}")),
        Ok(o) => Err(format!(
            "baseline run failed: {} {}",
            o.status_text(),
            excerpt(o.stdout.trim(), 2, 300, false)
        )),
        Err(e) => Err(format!("cannot spawn baseline: {e}")),
    }
}

/// Push a problem for each [`COMPARED`] field where `got` differs from the reference `b`.
fn compare(label: &str, uri: &str, got: &Value, b: &Value, problems: &mut Vec<String>) {
    let shown = |v: Option<&Value>| {
        excerpt(
            &v.map(|v| v.to_string()).unwrap_or("(missing)".into()),
            1,
            300,
            false,
        )
    };
    for f in COMPARED {
        if got.get(f) != b.get(f) {
            problems.push(format!(
                "{label}: `{f}` differs from the uncached run of {uri}: got {} expected {}",
                shown(got.get(f)),
                shown(b.get(f))
            ));
        }
    }
}
