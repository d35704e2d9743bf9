//! The `stress` step: N concurrent CLI processes × iterations on tokio, each invocation
//! journaled Jepsen-style (invoke, then ok/fail/info) so a failure can be placed in time.
//! With `[steps.edit]`, a module is rewritten during the storm and the answers for it are
//! checked against the edit journal afterwards ([`super::freshness`]). With `[[steps.during]]`,
//! actions run mid-storm ([`super::during`]) and must overlap invocations of it.

use super::during;
use super::freshness::{self, Answer, Editor};
use super::{StressEdit, StressStep};
use crate::verify::event::Status;
use crate::verify::excerpt::excerpt;
use crate::verify::process;
use crate::verify::steps::{GateCtx, Saved, StepResult, inputs};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// One invocation's record: process, iteration, invoke and completion times (ms after the
/// storm started), and how it ended.
type Invocation = (
    usize,
    usize,
    f64,
    f64,
    std::io::Result<process::ProcessResult>,
);

/// What the journal of a storm says.
struct Journal {
    /// Jepsen-style history, one JSON object per line.
    history: String,
    /// Stdouts of the invocations that ran, in process/iteration order.
    outputs: Vec<String>,
    /// Invocations that did not exit 0, described.
    failures: Vec<String>,
    /// Invocations that could not be spawned.
    spawn_errors: usize,
}

/// `stress`: `procs` concurrent workers, each running `iterations` invocations back to back.
/// Every invocation is journaled (Jepsen-style invoke/ok/fail history) to `step-N-history.jsonl`.
pub async fn stress(ctx: &mut GateCtx, s: &StressStep, index: usize) -> StepResult {
    let started = Instant::now();
    let specs = plan(ctx, s);
    let storm_start = Instant::now();
    let editing = match &s.edit {
        Some(edit) => match start_editing(ctx, edit, storm_start) {
            Ok(e) => Some(e),
            Err(o) => return o,
        },
        None => None,
    };
    let finished = Arc::new(AtomicUsize::new(0));
    let actions = match during::start(
        ctx,
        &s.during,
        index,
        s.timeout_s,
        storm_start,
        finished.clone(),
    ) {
        Ok(a) => a,
        Err(o) => return o,
    };
    let all = match storm(&specs, storm_start, &finished).await {
        Ok(all) => all,
        Err(o) => return o,
    };
    let done = match actions {
        Some(a) => match a.finish().await {
            Ok(d) => d,
            Err(e) => return StepResult::error(e),
        },
        None => Vec::new(),
    };
    let rewrites = match editing.map(|(editor, original)| (editor.finish(), original)) {
        Some((Ok(log), original)) => Some((log, original)),
        Some((Err(e), _)) => return StepResult::error(e),
        None => None,
    };
    let mut j = journal(&all);
    let spans: Vec<(f64, f64)> = all.iter().map(|(_, _, b, e, _)| (*b, *e)).collect();
    let (during_problems, during_detail) =
        during::account(ctx, &s.during, &done, index, &spans, &mut j.history);
    let (freshness_problems, freshness_detail) = match (&s.edit, &rewrites) {
        (Some(edit), Some((log, original))) => {
            match check_freshness(ctx, s, edit, log, original, &all, &mut j.history).await {
                Ok(found) => found,
                Err(o) => return o,
            }
        }
        _ => (Vec::new(), String::new()),
    };
    let logs = keep_evidence(ctx, s, index, &specs, &all, &j);
    let total = s.procs * s.iterations;
    let first = specs
        .first()
        .and_then(|v| v.first())
        .map(|sp| sp.display())
        .unwrap_or_default();
    let commands = vec![format!(
        "# {} concurrent processes × {} iterations of:\n{first}",
        s.procs, s.iterations
    )];
    let ok = j.failures.is_empty()
        && j.spawn_errors == 0
        && freshness_problems.is_empty()
        && during_problems.is_empty();
    let detail = format!(
        "{}/{} invocations exited 0 ({} failed, {} spawn errors) in {:.1}s; history in step-{index}-history.jsonl{freshness_detail}{during_detail}",
        total - j.failures.len() - j.spawn_errors,
        total,
        j.failures.len(),
        j.spawn_errors,
        started.elapsed().as_secs_f64()
    );
    // Stale answers exited 0; they join the excerpt, not the exit-code count above.
    j.failures.extend(freshness_problems);
    j.failures.extend(during_problems);
    StepResult {
        status: if j.spawn_errors > 0 {
            Status::Error
        } else if ok {
            Status::Pass
        } else {
            Status::Fail
        },
        commands,
        excerpt: if j.failures.is_empty() {
            excerpt(
                j.outputs.first().map(String::as_str).unwrap_or(""),
                5,
                800,
                false,
            )
        } else {
            excerpt(&j.failures.join("\n"), 10, 2500, false)
        },
        detail,
        logs,
    }
}

/// The URI invocation `it` of process `p` reads (also used to pick the answers to check).
fn uri_of(s: &StressStep, p: usize, it: usize) -> Option<String> {
    s.uris.get((p + it) % s.uris.len().max(1)).cloned()
}

/// Every process's invocations, in order.
fn plan(ctx: &GateCtx, s: &StressStep) -> Vec<Vec<process::ProcSpec>> {
    let mut specs = Vec::new();
    for p in 0..s.procs {
        let mut mine = Vec::new();
        for it in 0..s.iterations {
            let uri = uri_of(s, p, it).unwrap_or_default();
            // Odd-numbered processes may be a second kind of client (`odd_args`).
            let template = match &s.odd_args {
                Some(odd) if p % 2 == 1 => odd,
                _ => &s.args,
            };
            let args: Vec<String> = template.iter().map(|a| a.replace("{uri}", &uri)).collect();
            mine.push(ctx.trifecta_spec(&args, &s.env, s.timeout_s));
        }
        specs.push(mine);
    }
    specs
}

/// Run every process's invocations concurrently (one tokio task per process); the records,
/// sorted by process and iteration.
async fn storm(
    specs: &[Vec<process::ProcSpec>],
    storm_start: Instant,
    finished: &Arc<AtomicUsize>,
) -> Result<Vec<Invocation>, StepResult> {
    let t0 = Arc::new(storm_start);
    let mut set = tokio::task::JoinSet::new();
    for (p, mine) in specs.iter().cloned().enumerate() {
        let t0 = t0.clone();
        let finished = finished.clone();
        set.spawn(async move {
            let mut res = Vec::new();
            for (it, spec) in mine.iter().enumerate() {
                let inv = t0.elapsed().as_secs_f64() * 1e3;
                let o = process::run(spec).await;
                let done = t0.elapsed().as_secs_f64() * 1e3;
                finished.fetch_add(1, Ordering::SeqCst);
                res.push((p, it, inv, done, o));
            }
            res
        });
    }
    let mut all = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(v) => all.extend(v),
            Err(e) => return Err(StepResult::error(format!("stress worker panicked: {e}"))),
        }
    }
    all.sort_by_key(|(p, it, ..)| (*p, *it));
    Ok(all)
}

/// The invoke/ok/fail/info history and the outcome counts.
fn journal(all: &[Invocation]) -> Journal {
    let mut j = Journal {
        history: String::new(),
        outputs: Vec::new(),
        failures: Vec::new(),
        spawn_errors: 0,
    };
    for (p, it, inv, done, o) in all {
        let (kind, status) = match o {
            Ok(o) if o.code == Some(0) && !o.timed_out => ("ok", o.status_text()),
            Ok(o) => {
                j.failures.push(format!(
                    "proc {p} iter {it}: {} {}",
                    o.status_text(),
                    excerpt(o.stdout.trim(), 3, 300, false)
                ));
                ("fail", o.status_text())
            }
            Err(e) => {
                j.spawn_errors += 1;
                ("info", format!("spawn error: {e}"))
            }
        };
        j.history.push_str(
            &serde_json::json!({"process": p, "iteration": it, "type": "invoke", "t_ms": inv})
                .to_string(),
        );
        j.history.push('\n');
        j.history.push_str(
            &serde_json::json!({"process": p, "iteration": it, "type": kind, "t_ms": done, "status": status})
                .to_string(),
        );
        j.history.push('\n');
        if let Ok(o) = o {
            j.outputs.push(o.stdout.clone());
        }
    }
    j
}

/// Journal the rewrites, then check every answer for the edited URI against them; the
/// problems and the detail sentence.
async fn check_freshness(
    ctx: &mut GateCtx,
    s: &StressStep,
    edit: &StressEdit,
    log: &[freshness::Rewrite],
    original: &str,
    all: &[Invocation],
    history: &mut String,
) -> Result<(Vec<String>, String), StepResult> {
    for r in log {
        history.push_str(
            &serde_json::json!({"type": "edit", "version": r.version, "t_ms": r.before_ms,
                                "t_after_ms": r.after_ms, "same_stat": r.same_stat})
            .to_string(),
        );
        history.push('\n');
    }
    let mut answers: Vec<Answer> = Vec::new();
    let version0 = version0_answer(ctx, edit, original).await?;
    for (p, it, inv, done, o) in all {
        let (Some(uri), Ok(o)) = (uri_of(s, *p, *it), o) else {
            continue;
        };
        if uri != edit.uri || o.code != Some(0) {
            continue;
        }
        let got: Option<Value> = serde_json::from_str(&o.stdout).ok();
        let served = got
            .as_ref()
            .and_then(|g| freshness::served_version(g, &version0));
        answers.push(Answer {
            label: format!("proc {p} iter {it}"),
            invoke_ms: *inv,
            done_ms: *done,
            served,
        });
    }
    let problems = freshness::check(log, &answers, edit.keep_stat > 0);
    let seen = freshness::versions_served(&answers);
    let detail = format!(
        "; freshness: {} answers for {} checked against {} rewrites of {} ({} kept size and mtime; {} answers began on such a version; versions served: {}), {} problems",
        answers.len(),
        edit.uri,
        log.len(),
        edit.file,
        log.iter().filter(|r| r.same_stat).count(),
        freshness::began_on_same_stat(log, &answers),
        freshness::numbers(&seen),
        problems.len()
    );
    Ok((problems, detail))
}

/// Write the history and the full output log, hand every stdout to the leak check and save the
/// outputs under the step's name; the log paths.
fn keep_evidence(
    ctx: &mut GateCtx,
    s: &StressStep,
    index: usize,
    specs: &[Vec<process::ProcSpec>],
    all: &[Invocation],
    j: &Journal,
) -> Vec<String> {
    let mut logs: Vec<String> = ctx
        .log(&format!("step-{index}-history.jsonl"), &j.history)
        .into_iter()
        .collect();
    let mut full = String::new();
    for (p, it, _, _, o) in all {
        if let Ok(o) = o {
            full.push_str(&format!(
                "## proc {p} iter {it}: {}\n{}\n{}\n",
                o.status_text(),
                o.stdout,
                o.stderr
            ));
        }
    }
    logs.extend(ctx.log(&format!("step-{index}-stress.log"), &full));
    let args: Vec<String> = specs
        .iter()
        .flatten()
        .flat_map(|sp| sp.args.iter().cloned())
        .collect();
    for (k, o) in j.outputs.iter().enumerate() {
        ctx.stdouts.push(crate::verify::steps::leaks::Scanned {
            what: format!("step {index} stress #{}", k + 1),
            args: args.clone(),
            stdout: o.clone(),
        });
    }
    if let Some(n) = &s.name {
        ctx.outputs
            .insert(n.clone(), Saved::Many(j.outputs.clone()));
    }
    logs
}

/// Read the module's original text and start the editor (version 0 is on disk on return).
fn start_editing(
    ctx: &GateCtx,
    edit: &StressEdit,
    t0: Instant,
) -> Result<(Editor, String), StepResult> {
    let seg = ctx.segment()?;
    let original = std::fs::read_to_string(seg.join(&edit.file))
        .map_err(|e| StepResult::error(format!("edit: cannot read {}: {e}", edit.file)))?;
    let editor = Editor::start(seg, edit, &original, t0)
        .map_err(|e| StepResult::error(format!("edit: cannot rewrite {}: {e}", edit.file)))?;
    Ok((editor, original))
}

/// The uncached answer for version 0, on a copy of the segment's sources (the reference for
/// every version: see [`freshness::served_version`]).
async fn version0_answer(
    ctx: &GateCtx,
    edit: &StressEdit,
    original: &str,
) -> Result<Value, StepResult> {
    let seg = ctx.segment()?.to_path_buf();
    let fresh = ctx
        .tmp
        .path()
        .join(format!("edit-v0-{}", crate::clock::real_now_ms()));
    inputs::copy_sources(&seg, &fresh)
        .and_then(|()| std::fs::write(fresh.join(&edit.file), freshness::version_text(original, 0)))
        .map_err(|e| StepResult::error(format!("edit: prepare version 0: {e}")))?;
    let spec = inputs::uncached_spec(&ctx.trifecta, &edit.uri, &fresh);
    match process::run(&spec).await {
        Ok(o) if o.code == Some(0) => serde_json::from_str::<Value>(&o.stdout).ok(),
        _ => None,
    }
    .ok_or_else(|| {
        StepResult::error(format!(
            "edit: the uncached run of version 0 failed: {}",
            spec.display()
        ))
    })
}
