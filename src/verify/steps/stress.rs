//! The `stress` step: N concurrent CLI processes × iterations on tokio, each invocation
//! journaled Jepsen-style (invoke, then ok/fail/info) so a failure can be placed in time.

use super::{GateCtx, Outcome, Saved};
use crate::verify::process;
use crate::verify::report::{Status, excerpt};
use crate::verify::spec::StressStep;
use std::sync::Arc;
use std::time::Instant;

/// `stress`: `procs` concurrent workers, each running `iterations` invocations back to back.
/// Every invocation is journaled (Jepsen-style invoke/ok/fail history) to `step-N-history.jsonl`.
pub async fn stress(ctx: &mut GateCtx, s: &StressStep, index: usize) -> Outcome {
    let started = Instant::now();
    let mut specs = Vec::new();
    for p in 0..s.procs {
        let mut mine = Vec::new();
        for it in 0..s.iterations {
            let uri = if s.uris.is_empty() {
                String::new()
            } else {
                s.uris[(p + it) % s.uris.len()].clone()
            };
            let args: Vec<String> = s.args.iter().map(|a| a.replace("{uri}", &uri)).collect();
            mine.push(ctx.trifecta_spec(&args, &s.env, s.timeout_s));
        }
        specs.push(mine);
    }
    let t0 = Arc::new(Instant::now());
    let mut set = tokio::task::JoinSet::new();
    for (p, mine) in specs.iter().cloned().enumerate() {
        let t0 = t0.clone();
        set.spawn(async move {
            let mut res = Vec::new();
            for (it, spec) in mine.iter().enumerate() {
                let inv = t0.elapsed().as_secs_f64() * 1e3;
                let o = process::run(spec).await;
                let done = t0.elapsed().as_secs_f64() * 1e3;
                res.push((p, it, inv, done, o));
            }
            res
        });
    }
    let mut all = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(v) => all.extend(v),
            Err(e) => return Outcome::error(format!("stress worker panicked: {e}")),
        }
    }
    all.sort_by_key(|(p, it, ..)| (*p, *it));
    let mut history = String::new();
    let mut outputs = Vec::new();
    let mut failures = Vec::new();
    let mut spawn_errors = 0;
    for (p, it, inv, done, o) in &all {
        let (kind, status) = match o {
            Ok(o) if o.code == Some(0) && !o.timed_out => ("ok", o.status_text()),
            Ok(o) => {
                failures.push(format!(
                    "proc {p} iter {it}: {} {}",
                    o.status_text(),
                    excerpt(o.stdout.trim(), 3, 300, false)
                ));
                ("fail", o.status_text())
            }
            Err(e) => {
                spawn_errors += 1;
                ("info", format!("spawn error: {e}"))
            }
        };
        history.push_str(
            &serde_json::json!({"process": p, "iteration": it, "type": "invoke", "t_ms": inv})
                .to_string(),
        );
        history.push('\n');
        history.push_str(
            &serde_json::json!({"process": p, "iteration": it, "type": kind, "t_ms": done, "status": status})
                .to_string(),
        );
        history.push('\n');
        if let Ok(o) = o {
            outputs.push(o.stdout.clone());
        }
    }
    let mut logs: Vec<String> = ctx
        .log(&format!("step-{index}-history.jsonl"), &history)
        .into_iter()
        .collect();
    let mut full = String::new();
    for ((p, it, ..), o) in all.iter().map(|x| ((x.0, x.1, ()), &x.4)) {
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
    if let Some(n) = &s.name {
        ctx.outputs.insert(n.clone(), Saved::Many(outputs.clone()));
    }
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
    let ok = failures.is_empty() && spawn_errors == 0;
    let detail = format!(
        "{}/{} invocations exited 0 ({} failed, {} spawn errors) in {:.1}s; history in step-{index}-history.jsonl",
        total - failures.len() - spawn_errors,
        total,
        failures.len(),
        spawn_errors,
        started.elapsed().as_secs_f64()
    );
    Outcome {
        status: if spawn_errors > 0 {
            Status::Error
        } else if ok {
            Status::Pass
        } else {
            Status::Fail
        },
        commands,
        excerpt: if failures.is_empty() {
            excerpt(
                outputs.first().map(String::as_str).unwrap_or(""),
                5,
                800,
                false,
            )
        } else {
            excerpt(&failures.join("\n"), 10, 2500, false)
        },
        detail,
        logs,
    }
}
