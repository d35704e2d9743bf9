//! `[[steps.during]]` of a stress step: actions that happen *while* the storm runs (a fault
//! injected into the database, a CLI command such as `ast cache clear`), not between two
//! storms.
//!
//! Each action waits for its trigger (at least `after_ms` after the storm began and at least
//! `after_invocations` invocations of the storm finished, so it lands mid-storm on a fast
//! machine and a slow one alike), then runs; the actions of one step run one after another, in
//! order, on one background task. Afterwards the journal says, for each action, how many of the
//! storm's invocations were in flight while it ran (begun before it ended, ended after it
//! began): an action with none in flight did not happen during the storm, and the step fails,
//! so a storm too short for its actions cannot pass vacuously.

use crate::verify::event::ScheduledFault;
use crate::verify::process::{self, ProcSpec, ProcessResult};
use crate::verify::steps::faults::{self, CorruptionMode};
use crate::verify::steps::{GateCtx, Saved, StepResult, leaks};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// One `[[steps.during]]` table: exactly one of `corrupt` and `args`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct During {
    /// Not before this many ms after the storm began.
    #[serde(default)]
    pub after_ms: u64,
    /// Not before this many of the storm's invocations have finished.
    #[serde(default)]
    pub after_invocations: usize,
    /// Inject this catalog fault into the segment's database (as `kind = "corrupt"`).
    pub corrupt: Option<String>,
    /// Run `trifecta` with these arguments (placeholders expand as in `run`).
    pub args: Option<Vec<String>>,
    /// For `args`: save the stdout under this name (for a later `jq` step).
    pub name: Option<String>,
    /// For `args`: extra environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// For `args`: the expected exit code.
    #[serde(default)]
    pub expect_exit: i32,
}

impl During {
    /// What the action does, for reports.
    pub fn label(&self) -> String {
        match (&self.corrupt, &self.args) {
            (Some(mode), _) => format!("corrupt {mode}"),
            (None, Some(args)) => format!("trifecta {}", args.join(" ")),
            (None, None) => "nothing".into(),
        }
    }

    /// The table's mistakes, as (field, message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        match (&self.corrupt, &self.args) {
            (Some(_), Some(_)) | (None, None) => out.push((
                "during",
                "each [[steps.during]] needs exactly one of `corrupt` and `args`".into(),
            )),
            (Some(mode), None) if CorruptionMode::parse(mode).is_none() => {
                out.push(("corrupt", format!("unknown corruption mode `{mode}`")));
            }
            (None, Some(args)) if args.is_empty() => {
                out.push(("args", "during `args` must not be empty".into()));
            }
            _ => {}
        }
        if self.corrupt.is_some() && (self.name.is_some() || !self.env.is_empty()) {
            out.push((
                "name",
                "`name` and `env` go with `args`, not `corrupt`".into(),
            ));
        }
        out
    }
}

/// An action ready to run without the gate's context.
enum Prepared {
    Corrupt {
        mode: CorruptionMode,
        db: PathBuf,
        seed: u64,
    },
    Run(ProcSpec),
}

/// What one action did, and when (ms after the storm began).
pub struct Done {
    begin_ms: f64,
    end_ms: f64,
    outcome: Result<Outcome, String>,
}

enum Outcome {
    /// The fault's description and the seed it was injected with.
    Injected(String, u64),
    Ran(ProcessResult),
}

/// The background task of a storm's actions, and the count of the storm's finished
/// invocations it waits on (the storm increments it).
pub struct Running {
    handle: tokio::task::JoinHandle<Vec<Done>>,
    finished: Arc<AtomicUsize>,
}

/// Prepare the actions of step `index` (placeholders, database path, fault seeds) and start
/// them on a background task that waits for each trigger.
pub fn start(
    ctx: &GateCtx,
    actions: &[During],
    index: usize,
    timeout_s: u64,
    t0: Instant,
    finished: Arc<AtomicUsize>,
) -> Result<Option<Running>, StepResult> {
    if actions.is_empty() {
        return Ok(None);
    }
    let mut prepared = Vec::new();
    for (k, a) in actions.iter().enumerate() {
        let p = match (&a.corrupt, &a.args) {
            (Some(mode), _) => Prepared::Corrupt {
                mode: CorruptionMode::parse(mode)
                    .ok_or_else(|| StepResult::error(format!("unknown mode {mode}")))?,
                db: ctx.db()?,
                // Sub-index 1000+k: apart from any fault the storm itself might schedule.
                seed: ctx.fault_seed(index, 1000 + k),
            },
            (None, Some(args)) => Prepared::Run(ctx.trifecta_spec(args, &a.env, timeout_s)),
            (None, None) => return Err(StepResult::error("during action without an action")),
        };
        prepared.push((a.after_ms, a.after_invocations, p));
    }
    let count = Arc::clone(&finished);
    let handle = tokio::spawn(async move {
        let mut done = Vec::new();
        for (after_ms, after_inv, p) in prepared {
            while t0.elapsed() < Duration::from_millis(after_ms)
                || count.load(Ordering::SeqCst) < after_inv
            {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let begin_ms = t0.elapsed().as_secs_f64() * 1e3;
            let outcome = match p {
                Prepared::Corrupt { mode, db, seed } => {
                    tokio::task::spawn_blocking(move || faults::inject(mode, &db, seed))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.map_err(|e| e.to_string()))
                        .map(|inj| Outcome::Injected(inj.detail, seed))
                }
                Prepared::Run(spec) => process::run(&spec)
                    .await
                    .map(Outcome::Ran)
                    .map_err(|e| format!("cannot spawn: {e}")),
            };
            let end_ms = t0.elapsed().as_secs_f64() * 1e3;
            done.push(Done {
                begin_ms,
                end_ms,
                outcome,
            });
        }
        done
    });
    Ok(Some(Running { handle, finished }))
}

impl Running {
    /// Wait for the actions; an action whose trigger the storm never reached (the storm ended
    /// first) is still run, then found not to have overlapped the storm.
    pub async fn finish(self) -> Result<Vec<Done>, String> {
        // The storm is over: make every remaining trigger reachable at once.
        self.finished.store(usize::MAX, Ordering::SeqCst);
        self.handle
            .await
            .map_err(|e| format!("during task panicked: {e}"))
    }
}

/// Check and record the actions: journal lines, saved outputs, faults, and the problems (an
/// action that failed, or that no invocation overlapped). `spans` are the storm's invocations
/// as (begin, end) ms.
pub fn account(
    ctx: &mut GateCtx,
    actions: &[During],
    done: &[Done],
    index: usize,
    spans: &[(f64, f64)],
    history: &mut String,
) -> (Vec<String>, String) {
    let mut problems = Vec::new();
    let mut parts = Vec::new();
    for (k, (a, d)) in actions.iter().zip(done).enumerate() {
        let overlapping = spans
            .iter()
            .filter(|(b, e)| *b < d.end_ms && *e > d.begin_ms)
            .count();
        let (ok, what) = record_outcome(ctx, a, d, index, k);
        history.push_str(
            &serde_json::json!({"type": "during", "action": a.label(), "t_ms": d.begin_ms,
                                "t_after_ms": d.end_ms, "in_flight": overlapping, "ok": ok})
            .to_string(),
        );
        history.push('\n');
        if !ok {
            problems.push(format!("during action `{}`: {what}", a.label()));
        }
        if overlapping == 0 {
            problems.push(format!(
                "during action `{}` ran at {:.0}–{:.0} ms with no invocation of the storm in flight: it did not happen during the storm (trigger after_ms={} after_invocations={})",
                a.label(),
                d.begin_ms,
                d.end_ms,
                a.after_ms,
                a.after_invocations
            ));
        }
        parts.push(format!(
            "`{}` at {:.0} ms with {overlapping} invocations in flight: {what}",
            a.label(),
            d.begin_ms
        ));
    }
    let detail = if parts.is_empty() {
        String::new()
    } else {
        format!("; during the storm: {}", parts.join("; "))
    };
    (problems, detail)
}

/// Record one action's outcome in the gate (fault list, saved output, leak scan); whether it
/// went as expected and a short description.
fn record_outcome(
    ctx: &mut GateCtx,
    a: &During,
    d: &Done,
    index: usize,
    k: usize,
) -> (bool, String) {
    match &d.outcome {
        Err(e) => (false, e.clone()),
        Ok(Outcome::Injected(detail, seed)) => {
            ctx.faults.push(ScheduledFault {
                gate: ctx.gate_id.clone(),
                step: index,
                kind: "corrupt".into(),
                what: a.corrupt.clone().unwrap_or_default(),
                seed: *seed,
                detail: detail.clone(),
            });
            (true, detail.clone())
        }
        Ok(Outcome::Ran(o)) => {
            ctx.stdouts.push(leaks::Scanned {
                what: format!("step {index} during #{}", k + 1),
                args: a.args.clone().unwrap_or_default(),
                stdout: o.stdout.clone(),
            });
            if let Some(n) = &a.name {
                ctx.outputs.insert(n.clone(), Saved::One(o.stdout.clone()));
            }
            let ok = o.code == Some(a.expect_exit) && !o.timed_out;
            let what = format!(
                "{} (expected exit {}) in {:.0} ms",
                o.status_text(),
                a.expect_exit,
                o.duration.as_secs_f64() * 1e3
            );
            if ok {
                (true, what)
            } else {
                let out = crate::verify::excerpt::excerpt(o.stdout.trim(), 3, 300, false);
                (false, format!("{what}: {out}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> During {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn a_during_table_needs_exactly_one_known_action() {
        assert!(parse("corrupt = \"zero_header\"").problems().is_empty());
        assert!(
            parse("args = [\"ast\", \"cache\", \"clear\"]\nname = \"c\"")
                .problems()
                .is_empty()
        );
        let fields = |t: &str| -> Vec<&'static str> {
            parse(t).problems().into_iter().map(|(f, _)| f).collect()
        };
        assert_eq!(fields("after_ms = 3"), ["during"]);
        assert_eq!(
            fields("corrupt = \"zero_header\"\nargs = [\"x\"]"),
            ["during"]
        );
        assert_eq!(fields("corrupt = \"no-such-mode\""), ["corrupt"]);
        assert_eq!(fields("args = []"), ["args"]);
        assert_eq!(fields("corrupt = \"truncate\"\nname = \"n\""), ["name"]);
        assert!(toml::from_str::<During>("corupt = \"truncate\"").is_err());
    }
}
