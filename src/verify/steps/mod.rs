//! Executing one gate: its private context ([`GateCtx`]) and the step dispatcher. Actions live
//! in [`actions`], checks in [`checks`]. A step returns an [`Outcome`]; it never prints.
//!
//! Semantics: a failing *action* (a run with the wrong exit code, a build that fails) stops the
//! gate — later steps are reported as skipped, since they would test a state that was never
//! reached. A failing *check* does not stop the gate, so one run shows every broken property.

pub mod actions;
pub mod checks;
pub mod crash;
pub mod freshness;
pub mod hostile;
pub mod leaks;
pub mod redis;
pub mod stress;

use super::process::{ProcSpec, kill_group};
use super::report::{Fault, Status, StepReport};
use super::spec::{Gate, Scenario, Step};
use super::workspace::Worktree;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What a step produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Verdict.
    pub status: Status,
    /// Commands run, shell-quoted.
    pub commands: Vec<String>,
    /// Output excerpt.
    pub excerpt: String,
    /// Explanation.
    pub detail: String,
    /// Logs (relative to the run dir).
    pub logs: Vec<String>,
}

impl Outcome {
    /// A pass with a detail line.
    pub fn pass(detail: impl Into<String>) -> Self {
        Outcome {
            status: Status::Pass,
            commands: vec![],
            excerpt: String::new(),
            detail: detail.into(),
            logs: vec![],
        }
    }
    /// A failure with a reason.
    pub fn fail(detail: impl Into<String>) -> Self {
        Outcome {
            status: Status::Fail,
            ..Outcome::pass(detail)
        }
    }
    /// A harness error.
    pub fn error(detail: impl Into<String>) -> Self {
        Outcome {
            status: Status::Error,
            ..Outcome::pass(detail)
        }
    }
    /// Pass when `ok`, else fail; same detail either way.
    pub fn check(ok: bool, detail: impl Into<String>) -> Self {
        if ok {
            Outcome::pass(detail)
        } else {
            Outcome::fail(detail)
        }
    }
}

/// Mark a recorded command as done inside the harness (jaq, rusqlite, file walks, fault
/// injection): the shell text shows the equivalent, but replaying it is not what ran.
pub fn in_process(cmd: impl AsRef<str>) -> String {
    format!("{IN_PROCESS}{}", cmd.as_ref())
}

/// Prefix of [`in_process`] commands (a shell comment, so pasting it runs nothing).
pub const IN_PROCESS: &str = "# in-process: ";

/// Saved output of a named step.
#[derive(Debug, Clone)]
pub enum Saved {
    /// One process's stdout.
    One(String),
    /// Many processes' stdouts (stress), in process/iteration order.
    Many(Vec<String>),
}

/// Run-wide settings every gate sees.
#[derive(Debug, Clone)]
pub struct Shared {
    /// Run id.
    pub run_id: String,
    /// Run seed.
    pub seed: u64,
    /// Binary under test (until a worktree step replaces it for its gate).
    pub trifecta: PathBuf,
    /// The verifier itself (spawned for `hold-lock`).
    pub verify_exe: PathBuf,
    /// Repository checkout.
    pub checkout: PathBuf,
    /// Default revision for worktrees.
    pub rev: String,
    /// Keep worktrees after the gate.
    pub keep_worktrees: bool,
    /// `reports/<run-id>/`.
    pub run_dir: PathBuf,
    /// `--mutant`: the deliberate bug(s) switched on in every `trifecta` this run starts
    /// (`TRIFECTA_MUTANT`, debug builds only; see `crate::mutant`). `None` for a real run.
    pub mutant: Option<String>,
}

/// One gate's private state.
pub struct GateCtx {
    /// Run-wide settings.
    pub shared: Shared,
    /// Gate id.
    pub gate_id: String,
    /// Temp dir owning the segment, baselines, worktree and its target dir.
    pub tmp: tempfile::TempDir,
    /// The gate's segment copy (canonical), when it has a scenario.
    pub segment: Option<PathBuf>,
    /// Scenario environment, then the gate's.
    pub scenario_env: BTreeMap<String, String>,
    /// Binary used by run/stress/kill steps.
    pub trifecta: PathBuf,
    /// Worktree of an earlier step.
    pub worktree: Option<Worktree>,
    /// Its cargo target dir.
    pub target_dir: Option<PathBuf>,
    /// Test clock (`TRIFECTA_TEST_NOW_MS`) once an `age` step ran.
    pub now_ms: Option<i64>,
    /// Outputs by step name.
    pub outputs: HashMap<String, Saved>,
    /// Every trifecta stdout of the gate, named or not, for the [`leaks`] check.
    pub stdouts: Vec<leaks::Scanned>,
    /// Snapshots by name: (file, BLAKE3).
    pub snapshots: HashMap<String, (PathBuf, String)>,
    /// Tree snapshots by name (`tree-snapshot`).
    pub trees: HashMap<String, hostile::TreeState>,
    /// The scenario's `outside` folder copy, beside the segment (`{outside}`).
    pub outside: Option<PathBuf>,
    /// The scenario's original segment folder in the repository (for `baseline` `clean`).
    pub scenario_segment: Option<PathBuf>,
    /// Lock holders still running.
    pub holders: Vec<tokio::process::Child>,
    /// Faults injected.
    pub faults: Vec<Fault>,
    /// `gates/<id>/` inside the run dir.
    pub log_dir: PathBuf,
    /// The gate's own `redis-server`, once a `redis` step started it (killed with the gate).
    pub redis: redis::RedisState,
}

impl GateCtx {
    /// Prepare the context: temp dir, segment copy, log dir.
    pub fn new(shared: Shared, gate: &Gate, scenario: Option<&Scenario>) -> Result<Self, String> {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("tv-{}-", gate.id))
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let log_dir = shared.run_dir.join("gates").join(&gate.id);
        std::fs::create_dir_all(&log_dir).map_err(|e| format!("log dir: {e}"))?;
        let (segment, scenario_env) = match scenario {
            Some(sc) => {
                let seg = tmp.path().join("segment");
                super::workspace::copy_tree(&sc.dir.join(&sc.segment), &seg)
                    .map_err(|e| format!("copy scenario segment: {e}"))?;
                let seg = seg
                    .canonicalize()
                    .map_err(|e| format!("canonicalize segment: {e}"))?;
                (Some(seg), sc.env.clone())
            }
            None => (None, BTreeMap::new()),
        };
        // Beside the segment, never inside it: links planted in the segment point here.
        let outside = match scenario.and_then(|sc| sc.outside.as_ref().map(|o| sc.dir.join(o))) {
            Some(src) => {
                let dest = tmp.path().join("outside");
                super::workspace::copy_tree(&src, &dest)
                    .map_err(|e| format!("copy scenario outside folder: {e}"))?;
                Some(
                    dest.canonicalize()
                        .map_err(|e| format!("canonicalize outside: {e}"))?,
                )
            }
            None => None,
        };
        let mut scenario_env = scenario_env;
        scenario_env.extend(gate.env.clone());
        Ok(GateCtx {
            trifecta: shared.trifecta.clone(),
            shared,
            gate_id: gate.id.clone(),
            tmp,
            segment,
            scenario_env,
            worktree: None,
            target_dir: None,
            now_ms: None,
            outputs: HashMap::new(),
            stdouts: Vec::new(),
            snapshots: HashMap::new(),
            trees: HashMap::new(),
            outside,
            scenario_segment: scenario.map(|sc| sc.dir.join(&sc.segment)),
            holders: Vec::new(),
            faults: Vec::new(),
            log_dir,
            redis: redis::RedisState::default(),
        })
    }

    /// The segment, or an error outcome (validation guarantees it for steps that need it).
    pub fn segment(&self) -> Result<&Path, Outcome> {
        self.segment
            .as_deref()
            .ok_or_else(|| Outcome::error("this step needs a scenario segment"))
    }

    /// `<segment>/.trifecta/cache/ast_cache.db`.
    pub fn db(&self) -> Result<PathBuf, Outcome> {
        Ok(crate::cache::cache_db_path(self.segment()?))
    }

    /// Placeholders available in args, env values and paths.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        let s = |p: &Path| p.to_string_lossy().into_owned();
        let mut v = vec![
            ("{trifecta}", s(&self.trifecta)),
            ("{checkout}", s(&self.shared.checkout)),
        ];
        if let Some(seg) = &self.segment {
            let db = crate::cache::cache_db_path(seg);
            let cache_dir = db.parent().map(s).unwrap_or_default();
            v.push(("{lock}", format!("{cache_dir}/ast_cache.lock")));
            v.push(("{db}", s(&db)));
            v.push(("{cache_dir}", cache_dir));
            v.push(("{segment}", s(seg)));
        }
        if let Some(o) = &self.outside {
            v.push(("{outside}", s(o)));
        }
        if let Some(w) = &self.worktree {
            v.push(("{worktree}", s(&w.path)));
        }
        if let Some(t) = &self.target_dir {
            v.push(("{target}", s(t)));
        }
        if let Some(url) = self.redis.url() {
            v.push(("{redis}", url));
        }
        v
    }

    /// Expand placeholders in `text`.
    pub fn expand(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (k, v) in self.vars() {
            out = out.replace(k, &v);
        }
        out
    }

    /// A trifecta invocation with the scenario env, `extra` env and the test clock.
    pub fn trifecta_spec(
        &self,
        args: &[String],
        extra: &BTreeMap<String, String>,
        timeout_s: u64,
    ) -> ProcSpec {
        // Placeholders expand in the gate's `[env]` too (`TRIFECTA_AST_REMOTE = "{redis}"`).
        let mut env: BTreeMap<String, String> = (self.scenario_env.iter())
            .map(|(k, v)| (k.clone(), self.expand(v)))
            .collect();
        for (k, v) in extra {
            env.insert(k.clone(), self.expand(v));
        }
        if let Some(now) = self.now_ms {
            env.insert("TRIFECTA_TEST_NOW_MS".into(), now.to_string());
        }
        if let Some(m) = &self.shared.mutant {
            env.insert(crate::mutant::ENV_MUTANT.into(), m.clone());
        }
        ProcSpec {
            program: self.trifecta.clone(),
            args: args.iter().map(|a| self.expand(a)).collect(),
            env: env.into_iter().collect(),
            cwd: self.segment.clone(),
            timeout: Duration::from_secs(timeout_s),
        }
    }

    /// Write a log file under the gate's log dir; returns its run-dir-relative path.
    pub fn log(&self, name: &str, body: &str) -> Option<String> {
        let p = self.log_dir.join(name);
        std::fs::write(&p, body).ok()?;
        p.strip_prefix(&self.shared.run_dir)
            .ok()
            .map(|r| r.to_string_lossy().into_owned())
    }

    /// Per-fault seed: BLAKE3(run seed, gate id, step index, sub-index). Independent of gate
    /// order and `--jobs`, so the same `--seed` replays the same schedule.
    pub fn fault_seed(&self, step: usize, sub: usize) -> u64 {
        let mut h = blake3::Hasher::new();
        h.update(&self.shared.seed.to_le_bytes());
        h.update(self.gate_id.as_bytes());
        h.update(&(step as u64).to_le_bytes());
        h.update(&(sub as u64).to_le_bytes());
        let b = h.finalize();
        let mut a = [0u8; 8];
        a.copy_from_slice(&b.as_bytes()[..8]);
        u64::from_le_bytes(a)
    }

    /// Copy telemetry files of the segment next to the logs (evidence), then stop lock
    /// holders and remove the worktree unless asked to keep it.
    pub async fn finish(&mut self) -> Vec<String> {
        let mut notes = Vec::new();
        if let Some(seg) = &self.segment {
            let tdir = seg.join(crate::telemetry::DEFAULT_DIR);
            // `lstat`, not `stat`: a planted link must not make the evidence copy read outside.
            let real_dir = !seg.join("_ctx").is_symlink()
                && std::fs::symlink_metadata(&tdir).is_ok_and(|m| m.file_type().is_dir());
            if real_dir {
                let dest = self.log_dir.join("telemetry");
                if let Err(e) = super::workspace::copy_tree(&tdir, &dest) {
                    notes.push(format!("telemetry not copied: {e}"));
                }
            }
        }
        for mut h in self.holders.drain(..) {
            kill_group(&h);
            let _ = h.wait().await;
        }
        if let Some(w) = self.worktree.take() {
            if self.shared.keep_worktrees {
                // Keep the temp dir too (it owns the target dir the worktree build used).
                let kept = std::mem::replace(
                    &mut self.tmp,
                    match tempfile::tempdir() {
                        Ok(t) => t,
                        Err(e) => {
                            notes.push(format!("temp dir: {e}"));
                            return notes;
                        }
                    },
                );
                notes.push(format!("worktree kept at {}", w.path.display()));
                let _ = kept.keep();
            } else if let Err(e) = w.remove() {
                notes.push(format!("worktree not removed: {e}"));
            }
        }
        notes
    }
}

impl Drop for GateCtx {
    fn drop(&mut self) {
        // A gate that timed out is dropped mid-step: never leave a lock holder behind.
        for h in &self.holders {
            kill_group(h);
        }
    }
}

/// Short label of a step for reports.
pub fn label(step: &Step) -> String {
    let clip = |s: &str| {
        let s = s.replace('\n', " ");
        if s.chars().count() > 90 {
            format!("{}…", s.chars().take(90).collect::<String>())
        } else {
            s
        }
    };
    match step {
        Step::Worktree(w) => format!("rev {}", w.rev.as_deref().unwrap_or("(--rev)")),
        Step::Cargo(c) => format!("cargo {}", c.args.join(" ")),
        Step::Run(r) => r.name.clone().unwrap_or_else(|| clip(&r.args.join(" "))),
        Step::Stress(s) => format!(
            "{} ({} procs × {})",
            s.name.as_deref().unwrap_or("stress"),
            s.procs,
            s.iterations
        ),
        Step::Corrupt(c) => c.mode.clone(),
        Step::HoldLock(h) => format!("{} {} ms", h.mode.as_str(), h.ms),
        Step::Release(_) => "stop lock holders".into(),
        Step::Kill(k) => format!(
            "{} × kill -9 inside a write transaction (min_landed {})",
            k.times, k.min_landed
        ),
        Step::Edit(e) => format!("{} {}", e.action.as_str(), e.file),
        Step::Age(a) => format!("+{} days", a.days),
        Step::Signal(s) => format!("`{}`", s.pattern),
        Step::Sqlite(s) => clip(&s.sql),
        Step::Snapshot(s) => format!("{} = {}", s.name, s.file),
        Step::Jq(j) => j.label.clone().unwrap_or_else(|| clip(&j.filter)),
        Step::Integrity(_) => "PRAGMA integrity_check".into(),
        Step::Files(f) => clip(
            &f.exist
                .iter()
                .map(|g| format!("+{g}"))
                .chain(f.absent.iter().map(|g| format!("-{g}")))
                .chain(f.count.iter().map(|g| format!("#{g}")))
                .chain(f.unchanged.iter().map(|g| format!("={g}")))
                .collect::<Vec<_>>()
                .join(" "),
        ),
        Step::Baseline(b) => b.steps.join(", "),
        Step::Plant(p) => clip(
            &p.entries
                .iter()
                .map(|e| e.path.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        Step::TreeSnapshot(t) => format!("{} = {}", t.name, t.dir),
        Step::TreeUnchanged(t) => format!("`{}` unchanged", t.snapshot),
        Step::Redis(r) => redis::label(r),
    }
}

/// Execute one step.
pub async fn exec(ctx: &mut GateCtx, step: &Step, index: usize) -> Outcome {
    match step {
        Step::Worktree(s) => actions::worktree(ctx, s, index).await,
        Step::Cargo(s) => actions::cargo(ctx, s, index).await,
        Step::Run(s) => actions::run(ctx, s, index).await,
        Step::Stress(s) => stress::stress(ctx, s, index).await,
        Step::Corrupt(s) => actions::corrupt(ctx, s, index),
        Step::HoldLock(s) => actions::hold_lock(ctx, s).await,
        Step::Release(_) => actions::release(ctx).await,
        Step::Kill(s) => crash::kill(ctx, s, index).await,
        Step::Edit(s) => actions::edit(ctx, s),
        Step::Age(s) => actions::age(ctx, s),
        Step::Sqlite(s) => actions::sqlite(ctx, s),
        Step::Snapshot(s) => actions::snapshot(ctx, s),
        Step::Signal(s) => checks::signal(ctx, s),
        Step::Jq(s) => checks::jq(ctx, s),
        Step::Integrity(s) => checks::integrity(ctx, s),
        Step::Files(s) => checks::files(ctx, s),
        Step::Baseline(s) => checks::baseline(ctx, s).await,
        Step::Plant(s) => hostile::plant(ctx, s),
        Step::TreeSnapshot(s) => hostile::tree_snapshot(ctx, s),
        Step::TreeUnchanged(s) => hostile::tree_unchanged(ctx, s),
        Step::Redis(s) => redis::exec(ctx, s, index).await,
    }
}

/// Run every step of `gate` in `ctx`, calling `on_step` after each.
pub async fn run_steps(
    ctx: &mut GateCtx,
    gate: &Gate,
    on_step: &mut (dyn FnMut(&StepReport) + Send),
) -> Vec<StepReport> {
    let mut reports = Vec::new();
    let mut stopped: Option<String> = None;
    for (i, spec) in gate.steps.iter().enumerate() {
        let index = i + 1;
        let started = Instant::now();
        let out = match &stopped {
            Some(why) => Outcome {
                status: Status::Skipped,
                ..Outcome::pass(format!("not run: {why}"))
            },
            None => exec(ctx, &spec.step, index).await,
        };
        if stopped.is_none()
            && matches!(out.status, Status::Fail | Status::Error)
            && !spec.step.is_check()
        {
            stopped = Some(format!(
                "step {index} ({}) did not succeed",
                spec.step.kind()
            ));
        }
        let r = StepReport {
            index,
            line: spec.line,
            kind: spec.step.kind().to_string(),
            label: label(&spec.step),
            status: out.status,
            duration_s: started.elapsed().as_secs_f64(),
            commands: out.commands,
            excerpt: out.excerpt,
            detail: out.detail,
            logs: out.logs,
        };
        on_step(&r);
        reports.push(r);
    }
    reports
}
