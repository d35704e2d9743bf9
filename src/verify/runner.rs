//! The runner: selects gates, runs them (up to `--jobs` at once, on tokio), and emits
//! [`RunEvent`]s. It never prints nor writes reports — reporters consume the events (nextest
//! style) — and a gate's failure is data in the [`RunReport`], not an error.

use super::event::{
    Evidence, GateReport, RunEvent, RunReport, ScheduledFault, Status, StepReport, exit_code,
};
use super::excerpt::excerpt;
use super::spec::{Gate, Specs};
use super::steps::{self, GateCtx, GateSetup, Shared};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Gate selection.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// `--only` ids (empty = all).
    pub only: Vec<String>,
    /// `--tag` tags (a gate needs any of them; empty = all).
    pub tags: Vec<String>,
}

impl Filter {
    /// Whether `g` is selected.
    pub fn selects(&self, g: &Gate) -> bool {
        (self.only.is_empty() || self.only.contains(&g.id))
            && (self.tags.is_empty() || g.tags.iter().any(|t| self.tags.contains(t)))
    }
}

/// How often a still-running gate is reported: 30 s, or `TRIFECTA_VERIFY_SLOW_MS`
/// ([`crate::config::VerifyEnv`]).
pub fn slow_interval() -> Duration {
    crate::config::VerifyEnv::get()
        .slow_ms
        .map_or(Duration::from_secs(30), Duration::from_millis)
}

/// A gate in flight, for `SLOW` reports.
struct Running {
    started: Instant,
    /// Next elapsed time at which to report it.
    next: Duration,
}

/// `Slow` events for every gate that crossed its next threshold.
fn slow_events(
    running: &mut HashMap<usize, Running>,
    gates: &[Gate],
    progress: &[Arc<AtomicUsize>],
    every: Duration,
) -> Vec<RunEvent> {
    let mut out = Vec::new();
    let mut ids: Vec<&usize> = running.keys().collect();
    ids.sort();
    let ids: Vec<usize> = ids.into_iter().copied().collect();
    for i in ids {
        let Some(r) = running.get_mut(&i) else {
            continue;
        };
        if r.started.elapsed() < r.next {
            continue;
        }
        let elapsed = r.next;
        r.next += every;
        let g = &gates[i];
        let done = progress[i].load(Ordering::Relaxed);
        let step = (done + 1).min(g.steps.len().max(1));
        let (kind, label) = g
            .steps
            .get(step - 1)
            .map(|s| (s.step.kind().to_string(), s.step.label()))
            .unwrap_or_default();
        out.push(RunEvent::Slow {
            id: g.id.clone(),
            elapsed,
            step,
            steps: g.steps.len(),
            kind,
            label,
        });
    }
    out
}

/// Everything a run needs besides the specs.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Selection.
    pub filter: Filter,
    /// Shared gate settings (run id, seed, binaries, checkout, …).
    pub shared: Shared,
    /// `reports/`.
    pub report_dir: PathBuf,
    /// Parallel gates.
    pub jobs: usize,
    /// Evidence Header (filled by the caller from the environment).
    pub evidence: Evidence,
    /// `--shard K/N`: the part of the selection this process runs (None = all of it).
    pub shard: Option<super::shard::ShardInfo>,
}

impl RunOptions {
    /// Whether gate `g` runs here: selected by the filter and, when sharded, in this shard.
    pub fn runs(&self, g: &Gate) -> bool {
        self.filter.selects(g) && self.shard.as_ref().is_none_or(|s| s.runs(&g.id))
    }
}

fn skipped(g: &Gate, why: &str) -> GateReport {
    GateReport {
        id: g.id.clone(),
        title: g.title.clone(),
        description: g.description.clone(),
        file: g.file.to_string_lossy().into_owned(),
        required: g.required,
        tags: g.tags.clone(),
        scenario: g.scenario.clone(),
        status: Status::Skipped,
        reason: Some(why.to_string()),
        duration_s: 0.0,
        steps: vec![],
        dod: g.dod.clone(),
        setup: vec![],
    }
}

/// Name of the shell variable that stands for a gate's temp dir in recorded commands.
pub const GATE_TMP: &str = "$GATE_TMP";

/// Shell lines recreating what [`GateCtx::new`] prepared: a temp dir, the scenario's segment
/// (and `outside`) copied into it.
fn replay_setup(scenario: Option<&super::spec::Scenario>) -> Vec<String> {
    // Absolute: the replay may start anywhere, not in the directory the harness ran from.
    let q = |p: &std::path::Path| {
        let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        super::process::quote(&abs.to_string_lossy())
    };
    let mut v = vec!["GATE_TMP=$(mktemp -d)".to_string()];
    if let Some(sc) = scenario {
        v.push(format!(
            "cp -R {} \"$GATE_TMP/segment\"",
            q(&sc.dir.join(&sc.segment))
        ));
        if let Some(o) = &sc.outside {
            v.push(format!(
                "cp -R {} \"$GATE_TMP/outside\"",
                q(&sc.dir.join(o))
            ));
        }
    }
    v
}

/// Replace the gate's temp dir (as created and canonical) with [`GATE_TMP`] in every command,
/// so recorded commands stay meaningful once the temp dir is deleted.
fn name_temp_dir(steps: &mut [StepReport], tmp: &std::path::Path) {
    let mut prefixes = vec![tmp.to_string_lossy().into_owned()];
    if let Ok(c) = tmp.canonicalize() {
        prefixes.push(c.to_string_lossy().into_owned());
    }
    // Longest first: a canonical path may extend the other one.
    prefixes.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for s in steps {
        for c in &mut s.commands {
            for p in &prefixes {
                *c = c.replace(p.as_str(), GATE_TMP);
            }
        }
    }
}

/// What [`GateCtx::new`] needs of a gate and its scenario: the scenario's folders and the
/// environment (the scenario's, then the gate's).
fn gate_setup(gate: &Gate, scenario: Option<&super::spec::Scenario>) -> GateSetup {
    let mut env = scenario.map(|sc| sc.env.clone()).unwrap_or_default();
    env.extend(gate.env.clone());
    GateSetup {
        id: gate.id.clone(),
        segment: scenario.map(|sc| sc.dir.join(&sc.segment)),
        outside: scenario.and_then(|sc| sc.outside.as_ref().map(|o| sc.dir.join(o))),
        env,
    }
}

/// Run one gate to completion (bounded by its timeout).
async fn run_gate(
    gate: Gate,
    scenario: Option<super::spec::Scenario>,
    shared: Shared,
    progress: Arc<AtomicUsize>,
) -> (GateReport, Vec<ScheduledFault>) {
    let started = Instant::now();
    let mut report = skipped(&gate, "");
    report.reason = None;
    report.setup = replay_setup(scenario.as_ref());
    let mut ctx = match GateCtx::new(shared, &gate_setup(&gate, scenario.as_ref())) {
        Ok(c) => c,
        Err(e) => {
            report.status = Status::Error;
            report.reason = Some(format!("cannot prepare gate: {e}"));
            return (report, vec![]);
        }
    };
    let collected = Arc::new(std::sync::Mutex::new(Vec::<StepReport>::new()));
    let sink = collected.clone();
    let mut on_step = move |r: &StepReport| {
        if let Ok(mut v) = sink.lock() {
            v.push(r.clone());
        }
        progress.fetch_add(1, Ordering::Relaxed);
    };
    let timed = tokio::time::timeout(
        Duration::from_secs(gate.timeout_s),
        steps::run_steps(&mut ctx, &gate.steps, &mut on_step),
    )
    .await;
    let mut steps_done = collected.lock().map(|v| v.clone()).unwrap_or_default();
    let mut timeout_reason = None;
    if timed.is_err() {
        timeout_reason = Some(format!("gate timed out after {} s", gate.timeout_s));
        report_unfinished_steps(&gate, &mut steps_done);
    }
    // Every gate ends with the leak scan, whatever its steps: one mechanism, no opt-in.
    if let Some(leaks) = leak_scan(&ctx, steps_done.len() + 1) {
        steps_done.push(leaks);
    }
    name_temp_dir(&mut steps_done, ctx.tmp.path());
    let notes = ctx.finish().await;
    let faults = std::mem::take(&mut ctx.faults);
    drop(ctx);
    report.status = gate_status(&steps_done, timeout_reason.is_some());
    report.reason = timeout_reason.or_else(|| first_failure(&steps_done));
    add_notes(&mut report, &notes);
    report.steps = steps_done;
    report.duration_s = started.elapsed().as_secs_f64();
    (report, faults)
}

/// After a gate timeout, add a report for each step that did not report itself.
fn report_unfinished_steps(gate: &Gate, steps_done: &mut Vec<StepReport>) {
    // The step that was running when time ran out failed; the ones after it never started.
    let running = steps_done.len();
    for (i, s) in gate.steps.iter().enumerate().skip(running) {
        steps_done.push(StepReport {
            index: i + 1,
            line: s.line,
            kind: s.step.kind().into(),
            label: s.step.label(),
            status: if i == running {
                Status::Fail
            } else {
                Status::Skipped
            },
            duration_s: 0.0,
            commands: vec![],
            excerpt: String::new(),
            detail: "gate timeout".into(),
            logs: vec![],
        });
    }
}

/// The leak scan's step report (numbered `index`), if the gate had anything to scan.
fn leak_scan(ctx: &GateCtx, index: usize) -> Option<StepReport> {
    let out = steps::leaks::check(ctx)?;
    Some(StepReport {
        index,
        line: 0,
        kind: steps::leaks::KIND.into(),
        label: "no absolute path in telemetry or outputs".into(),
        status: out.status,
        duration_s: 0.0,
        commands: out.commands,
        excerpt: out.excerpt,
        detail: out.detail,
        logs: vec![],
    })
}

/// A gate's status from its steps: any error makes it an error, else a timeout or any failure
/// a failure.
fn gate_status(steps_done: &[StepReport], timed_out: bool) -> Status {
    if steps_done.iter().any(|s| s.status == Status::Error) {
        Status::Error
    } else if timed_out || steps_done.iter().any(|s| s.status == Status::Fail) {
        Status::Fail
    } else {
        Status::Pass
    }
}

/// The gate's reason: the first failed or errored step, briefly.
fn first_failure(steps_done: &[StepReport]) -> Option<String> {
    steps_done
        .iter()
        .find(|s| matches!(s.status, Status::Fail | Status::Error))
        .map(|s| {
            format!(
                "step {} ({}) {}: {}",
                s.index,
                s.kind,
                s.label,
                excerpt(&s.detail, 3, 400, false)
            )
        })
}

/// Append the gate context's closing notes (if any) to the report's description.
fn add_notes(report: &mut GateReport, notes: &[String]) {
    if !notes.is_empty() {
        let extra = notes.join("; ");
        report.description = if report.description.is_empty() {
            extra
        } else {
            format!("{}\n\n({extra})", report.description)
        };
    }
}

/// Run the selected gates, emitting events as they happen (the reporters write the files at
/// [`RunEvent::Finished`]); returns the report.
pub fn run(specs: &Specs, opts: &RunOptions, emit: &mut dyn FnMut(&RunEvent)) -> RunReport {
    let started = Instant::now();
    let selected = specs.gates.iter().filter(|g| opts.runs(g)).count();
    emit(&RunEvent::Started {
        run_id: opts.shared.run_id.clone(),
        seed: opts.shared.seed,
        seed_source: opts.evidence.seed_source.clone(),
        selected,
        run_dir: opts.shared.run_dir.clone(),
    });
    let mut results: Vec<Option<GateResult>> = vec![None; specs.gates.len()];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    match rt {
        Ok(rt) => rt.block_on(drive(specs, opts, emit, &mut results)),
        Err(e) => {
            for (i, g) in specs.gates.iter().enumerate() {
                if opts.runs(g) {
                    let mut r = skipped(g, "");
                    r.status = Status::Error;
                    r.reason = Some(format!("no async runtime: {e}"));
                    results[i] = Some((r, vec![]));
                }
            }
        }
    }
    let report = assemble(specs, opts, results, started);
    emit(&RunEvent::Finished(Box::new(report.clone())));
    report
}

/// A finished gate: its report and the faults it injected.
type GateResult = (GateReport, Vec<ScheduledFault>);

/// What a gate task reports to the loop of [`drive`]: its index, an event, and at the end its
/// result.
type GateMessage = (usize, RunEvent, Option<GateResult>);

/// Spawn the selected gates in file order, at most `--jobs` at once: a dispatcher takes a
/// permit, then spawns the next gate (a permit per task would let the runtime start them in
/// any order). Returns the dispatcher, whose output is every gate task.
fn dispatch(
    specs: &Specs,
    opts: &RunOptions,
    tx: tokio::sync::mpsc::UnboundedSender<GateMessage>,
    progress: &[Arc<AtomicUsize>],
) -> tokio::task::JoinHandle<Vec<tokio::task::JoinHandle<()>>> {
    let sem = Arc::new(tokio::sync::Semaphore::new(opts.jobs.max(1)));
    let work: Vec<(usize, Gate, Option<super::spec::Scenario>)> = specs
        .gates
        .iter()
        .enumerate()
        .filter(|(_, g)| opts.runs(g))
        .map(|(i, g)| {
            let sc = g
                .scenario
                .as_ref()
                .and_then(|s| specs.scenarios.get(s))
                .cloned();
            (i, g.clone(), sc)
        })
        .collect();
    let shared = opts.shared.clone();
    let task_progress = progress.to_vec();
    tokio::spawn(async move {
        let mut handles = Vec::new();
        for (i, gate, scenario) in work {
            let Ok(permit) = sem.clone().acquire_owned().await else {
                break;
            };
            let tx = tx.clone();
            let shared = shared.clone();
            let progress = task_progress[i].clone();
            handles.push(tokio::spawn(async move {
                let _permit = permit;
                let _ = tx.send((
                    i,
                    RunEvent::GateStarted {
                        id: gate.id.clone(),
                    },
                    None,
                ));
                let (rep, faults) = run_gate(gate, scenario, shared, progress).await;
                let _ = tx.send((
                    i,
                    RunEvent::GateFinished(Box::new(rep.clone())),
                    Some((rep, faults)),
                ));
            }));
        }
        handles
    })
}

/// Run the selected gates ([`dispatch`]) and forward their events (plus `Slow` ones) as they
/// come; each gate's result lands in `results[i]`.
async fn drive(
    specs: &Specs,
    opts: &RunOptions,
    emit: &mut dyn FnMut(&RunEvent),
    results: &mut [Option<GateResult>],
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<GateMessage>();
    let progress: Vec<Arc<AtomicUsize>> = specs
        .gates
        .iter()
        .map(|_| Arc::new(AtomicUsize::new(0)))
        .collect();
    let dispatcher = dispatch(specs, opts, tx, &progress);
    let every = slow_interval();
    // Ticks finer than the interval, so a threshold is reported close to when it passes.
    let mut tick = tokio::time::interval(every.min(Duration::from_secs(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut running: HashMap<usize, Running> = HashMap::new();
    loop {
        tokio::select! {
            msg = rx.recv() => {
                let Some((i, ev, res)) = msg else { break };
                match &ev {
                    RunEvent::GateStarted { .. } => {
                        running.insert(i, Running { started: Instant::now(), next: every });
                    }
                    RunEvent::GateFinished(_) => {
                        running.remove(&i);
                    }
                    _ => {}
                }
                emit(&ev);
                if let Some(r) = res {
                    results[i] = Some(r);
                }
            }
            _ = tick.tick() => {
                for ev in slow_events(&mut running, &specs.gates, &progress, every) {
                    emit(&ev);
                }
            }
        }
    }
    if let Ok(handles) = dispatcher.await {
        for h in handles {
            let _ = h.await;
        }
    }
}

/// The run report from the gates' results: skipped gates with the reason, faults in gate/step
/// order, totals, exit code and what a partial run did not cover.
fn assemble(
    specs: &Specs,
    opts: &RunOptions,
    mut results: Vec<Option<GateResult>>,
    started: Instant,
) -> RunReport {
    let mut gates = Vec::new();
    let mut faults = Vec::new();
    for (i, g) in specs.gates.iter().enumerate() {
        match results[i].take() {
            Some((r, f)) => {
                gates.push(r);
                faults.extend(f);
            }
            None if opts.runs(g) => {
                let mut r = skipped(g, "");
                r.status = Status::Error;
                r.reason = Some("gate task did not report (panicked?)".into());
                gates.push(r);
            }
            None if opts.filter.selects(g) => {
                let why = opts.shard.as_ref().map(|s| {
                    format!(
                        "in another shard (this report is shard {}/{})",
                        s.index, s.count
                    )
                });
                gates.push(skipped(g, why.as_deref().unwrap_or("in another shard")));
            }
            None => gates.push(skipped(g, "not selected by --only/--tag")),
        }
    }
    faults.sort_by(|a, b| (a.gate.as_str(), a.step).cmp(&(b.gate.as_str(), b.step)));
    // A shard's required gates that fell to other shards count too: one shard alone is never
    // a release verdict (`merge` keeps only those no shard ran).
    let required_not_run: Vec<String> = specs
        .gates
        .iter()
        .filter(|g| g.required && !opts.runs(g))
        .map(|g| g.id.clone())
        .collect();
    let totals = RunReport::count(&gates);
    let code = exit_code(&gates);
    RunReport {
        run_id: opts.shared.run_id.clone(),
        evidence: opts.evidence.clone(),
        duration_s: started.elapsed().as_secs_f64(),
        gates,
        fault_schedule: faults,
        totals,
        exit_code: code,
        partial: !required_not_run.is_empty(),
        required_not_run,
        shard: opts.shard.clone(),
        merged_from: None,
    }
}
