//! `kind = "jq"`.

use super::{StepFuture, StepKind, ValidateCx, clip};
use crate::verify::excerpt::excerpt;
use crate::verify::jq::{self, Globals, JqVerdict, VerdictKind};
use crate::verify::process::{self};
use crate::verify::steps::in_process;
use crate::verify::steps::inputs::telemetry_text;
use crate::verify::steps::{GateCtx, Saved, StepResult};
use serde::Deserialize;

/// The `kind` spelling.
pub const KIND: &str = "jq";

/// The smallest valid table of this kind (besides `kind`): the registry's test parses it.
pub const EXAMPLE: &str = "filter = \".\"";

/// Input of a jq check.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum StepInput {
    /// `"telemetry"` (all events, slurped) or one step's name.
    One(String),
    /// Several step names: input is the array of their outputs.
    Many(Vec<String>),
}

/// `kind = "jq"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JqStep {
    /// What the check means, for the report.
    pub label: Option<String>,
    /// `"telemetry"` (array of every events line), a step name, or a list of step names.
    #[serde(default = "default_telemetry")]
    pub on: StepInput,
    /// The filter; passes when its last output is neither false nor null (no output fails).
    pub filter: String,
}

fn default_telemetry() -> StepInput {
    StepInput::One("telemetry".to_string())
}

impl StepKind for JqStep {
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
        self.label.clone().unwrap_or_else(|| clip(&self.filter))
    }

    fn validate(&self, cx: &ValidateCx, err: &mut dyn FnMut(&str, String)) {
        if let Err(e) = crate::verify::jq::compile_check(&self.filter) {
            err("filter", format!("jq filter does not compile: {e}"));
        }
        match &self.on {
            StepInput::One(s) if s == "telemetry" => {}
            StepInput::One(s) if !cx.names.contains(s) => err(
                "on",
                format!("`on = \"{s}\"`: no earlier step has that name"),
            ),
            StepInput::Many(v) => {
                for s in v.iter().filter(|s| !cx.names.contains(*s)) {
                    err("on", format!("`on`: no earlier step named `{s}`"));
                }
            }
            _ => {}
        }
    }
    fn exec<'a>(&'a self, ctx: &'a mut GateCtx, _index: usize) -> StepFuture<'a> {
        Box::pin(std::future::ready(jq(ctx, self)))
    }
}

fn saved_json(ctx: &GateCtx, name: &str) -> Result<String, String> {
    match ctx.outputs.get(name) {
        Some(Saved::One(s)) => jq::parse_json(s).map(|v| v.to_string()).map_err(|e| {
            format!(
                "output of step `{name}` is not JSON ({e}): {}",
                excerpt(s, 3, 300, false)
            )
        }),
        Some(Saved::Many(v)) => {
            let mut parts = Vec::new();
            for (i, s) in v.iter().enumerate() {
                parts.push(
                    jq::parse_json(s)
                        .map(|v| v.to_string())
                        .map_err(|e| format!("output {i} of step `{name}` is not JSON ({e})"))?,
                );
            }
            Ok(format!("[{}]", parts.join(",")))
        }
        None => Err(format!("step `{name}` saved no output (did it run?)")),
    }
}

/// With a reference jq installed ([`jq::reference_jq`]), evaluate the predicate there too. A
/// disagreement makes the step an error (the verdict is unknown), never a pass.
fn cross_check(
    out: &mut StepResult,
    ours: VerdictKind,
    filter: &str,
    input: &str,
    globals: &Globals,
) {
    let Some(bin) = jq::reference_jq() else {
        return;
    };
    // A real process, but fed the in-memory input on stdin: a comment, like the in-process line.
    out.commands.push(format!(
        "# cross-check, same input on stdin: {} -e {}",
        bin.display(),
        process::quote(filter)
    ));
    let problem = match jq::reference_verdict(&bin, filter, input, globals) {
        Ok(theirs) if theirs == ours => {
            out.detail.push_str(&format!("; {} agrees", bin.display()));
            return;
        }
        Ok(theirs) => format!(
            "jaq and {} disagree: {} vs {} ({})",
            bin.display(),
            ours.as_str(),
            theirs.as_str(),
            out.detail
        ),
        Err(e) => format!("reference jq: {e}"),
    };
    let commands = std::mem::take(&mut out.commands);
    *out = StepResult::error(problem);
    out.commands = commands;
}

/// `jq`: evaluate a predicate with `jq -e` semantics.
pub fn jq(ctx: &mut GateCtx, s: &JqStep) -> StepResult {
    let (input, what) = match &s.on {
        StepInput::One(t) if t == "telemetry" => {
            let seg = match ctx.segment() {
                Ok(p) => p,
                Err(o) => return o,
            };
            let text = match telemetry_text(seg) {
                Ok(t) => t,
                // The telemetry folder is not a real folder in the segment: the tool left a
                // planted link in place, a finding about the tool.
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    return StepResult::fail(format!("telemetry: {e}"));
                }
                Err(e) => return StepResult::error(format!("read telemetry: {e}")),
            };
            let n = text.lines().filter(|l| !l.trim().is_empty()).count();
            match jq::slurp_lines(&text) {
                Ok(j) => (j, format!("telemetry ({n} events)")),
                Err(e) => return StepResult::fail(format!("telemetry does not parse: {e}")),
            }
        }
        StepInput::One(name) => match saved_json(ctx, name) {
            Ok(j) => (j, format!("output of `{name}`")),
            Err(e) => return StepResult::fail(e),
        },
        StepInput::Many(names) => {
            let mut parts = Vec::new();
            for n in names {
                match saved_json(ctx, n) {
                    Ok(j) => parts.push(j),
                    Err(e) => return StepResult::fail(e),
                }
            }
            (
                format!("[{}]", parts.join(",")),
                format!("outputs of {}", crate::output::quoted_list(names)),
            )
        }
    };
    let globals = match (ctx.segment.as_ref(), ctx.db()) {
        (Some(seg), Ok(db)) => Globals {
            segment: seg.to_string_lossy().into_owned(),
            cache_dir: db
                .parent()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            db: db.to_string_lossy().into_owned(),
        },
        _ => Globals::default(),
    };
    let cmd = in_process(format!("jaq -e {} <{what}>", process::quote(&s.filter)));
    let verdict = jq::eval(&s.filter, &input, &globals);
    let ours = verdict.as_ref().ok().map(JqVerdict::kind);
    let mut out = match verdict {
        Ok(JqVerdict::Pass(v)) => StepResult::pass(format!(
            "true on {what}; last output {}",
            v.last().map(String::as_str).unwrap_or("")
        )),
        Ok(JqVerdict::False(v)) => StepResult::fail(format!(
            "jq -e: last output is {} on {what} (expected true)",
            v.last().map(String::as_str).unwrap_or("")
        )),
        Ok(JqVerdict::NoOutput) => StepResult::fail(format!(
            "jq -e: the filter produced no output on {what} (jq exit 4)"
        )),
        Ok(JqVerdict::Error(e)) => StepResult::fail(format!("jq runtime error on {what}: {e}")),
        Err(e) => StepResult::error(format!("jq: {e}")),
    };
    out.commands = vec![cmd];
    if let Some(ours) = ours {
        cross_check(&mut out, ours, &s.filter, &input, &globals);
    }
    out.excerpt = excerpt(&input, 1, 1500, false);
    out
}
