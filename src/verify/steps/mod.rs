//! Executing one gate: its private context ([`GateCtx`]) and the loop over its steps. Each step
//! kind (fields, validation, execution) is one file in [`kinds`]; the modules beside it are what
//! several kinds share. A step returns a [`StepResult`]; it never prints.
//!
//! Semantics: a failing *action* (a run with the wrong exit code, a build that fails) stops the
//! gate — later steps are reported as skipped, since they would test a state that was never
//! reached. A failing *check* does not stop the gate, so one run shows every broken property.

pub mod faults;
pub mod hostile;
pub mod inputs;
pub mod kinds;
pub mod leaks;
pub mod logged_run;

use super::event::{ScheduledFault, Status, StepReport};
use super::process::{ProcSpec, kill_group};
use super::workspace::Worktree;
use kinds::StepSpec;
use std::any::{Any, TypeId};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What a step produced.
#[derive(Debug, Clone)]
pub struct StepResult {
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

impl StepResult {
    /// A pass with a detail line.
    pub fn pass(detail: impl Into<String>) -> Self {
        StepResult {
            status: Status::Pass,
            commands: vec![],
            excerpt: String::new(),
            detail: detail.into(),
            logs: vec![],
        }
    }
    /// A failure with a reason.
    pub fn fail(detail: impl Into<String>) -> Self {
        StepResult {
            status: Status::Fail,
            ..StepResult::pass(detail)
        }
    }
    /// A harness error.
    pub fn error(detail: impl Into<String>) -> Self {
        StepResult {
            status: Status::Error,
            ..StepResult::pass(detail)
        }
    }
    /// Pass when `ok`, else fail; same detail either way.
    pub fn check(ok: bool, detail: impl Into<String>) -> Self {
        if ok {
            StepResult::pass(detail)
        } else {
            StepResult::fail(detail)
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

/// What a gate's context is made from (its id and its scenario's folders), so this layer
/// needs nothing of the gate-file model.
#[derive(Debug, Clone)]
pub struct GateSetup {
    /// Gate id.
    pub id: String,
    /// The scenario's segment folder, copied for the gate.
    pub segment: Option<PathBuf>,
    /// The scenario's `outside` folder, copied beside the segment.
    pub outside: Option<PathBuf>,
    /// Scenario environment, then the gate's.
    pub env: BTreeMap<String, String>,
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
    pub faults: Vec<ScheduledFault>,
    /// `gates/<id>/` inside the run dir.
    pub log_dir: PathBuf,
    /// Placeholders a step kind defined for the rest of the gate (e.g. `{redis}`), beside the
    /// built-in ones of [`GateCtx::vars`].
    pub extra_vars: BTreeMap<&'static str, String>,
    /// Per-gate state a step kind keeps between its steps (a server it started, say), one
    /// value per type; dropped with the gate, so a kind's `Drop` cleans up after it.
    kind_state: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
}

impl GateCtx {
    /// The gate's state of type `T` (a step kind's own), created empty on first use.
    pub fn state<T: Default + Send + Sync + 'static>(&mut self) -> &mut T {
        self.kind_state
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()))
            .downcast_mut::<T>()
            .expect("kind_state is keyed by the value's own type")
    }

    /// Prepare the context: temp dir, segment copy, log dir.
    pub fn new(shared: Shared, gate: &GateSetup) -> Result<Self, String> {
        let tmp = tempfile::Builder::new()
            .prefix(&format!("tv-{}-", gate.id))
            .tempdir()
            .map_err(|e| format!("temp dir: {e}"))?;
        let log_dir = shared.run_dir.join("gates").join(&gate.id);
        std::fs::create_dir_all(&log_dir).map_err(|e| format!("log dir: {e}"))?;
        let segment = match &gate.segment {
            Some(src) => {
                let seg = tmp.path().join("segment");
                super::workspace::copy_tree(src, &seg)
                    .map_err(|e| format!("copy scenario segment: {e}"))?;
                Some(
                    seg.canonicalize()
                        .map_err(|e| format!("canonicalize segment: {e}"))?,
                )
            }
            None => None,
        };
        // Beside the segment, never inside it: links planted in the segment point here.
        let outside = match &gate.outside {
            Some(src) => {
                let dest = tmp.path().join("outside");
                super::workspace::copy_tree(src, &dest)
                    .map_err(|e| format!("copy scenario outside folder: {e}"))?;
                Some(
                    dest.canonicalize()
                        .map_err(|e| format!("canonicalize outside: {e}"))?,
                )
            }
            None => None,
        };
        Ok(GateCtx {
            trifecta: shared.trifecta.clone(),
            shared,
            gate_id: gate.id.clone(),
            tmp,
            segment,
            scenario_env: gate.env.clone(),
            worktree: None,
            target_dir: None,
            now_ms: None,
            outputs: HashMap::new(),
            stdouts: Vec::new(),
            snapshots: HashMap::new(),
            trees: HashMap::new(),
            outside,
            scenario_segment: gate.segment.clone(),
            holders: Vec::new(),
            faults: Vec::new(),
            log_dir,
            extra_vars: BTreeMap::new(),
            kind_state: HashMap::new(),
        })
    }

    /// The segment, or an error outcome (validation guarantees it for steps that need it).
    pub fn segment(&self) -> Result<&Path, StepResult> {
        self.segment
            .as_deref()
            .ok_or_else(|| StepResult::error("this step needs a scenario segment"))
    }

    /// `<segment>/.trifecta/cache/ast_cache.db`.
    pub fn db(&self) -> Result<PathBuf, StepResult> {
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
        v.extend(self.extra_vars.iter().map(|(k, val)| (*k, val.clone())));
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

/// Run `steps` (a gate's) in `ctx`, calling `on_step` after each.
pub async fn run_steps(
    ctx: &mut GateCtx,
    steps: &[StepSpec],
    on_step: &mut (dyn FnMut(&StepReport) + Send),
) -> Vec<StepReport> {
    let mut reports = Vec::new();
    let mut stopped: Option<String> = None;
    for (i, spec) in steps.iter().enumerate() {
        let index = i + 1;
        let started = Instant::now();
        let out = match &stopped {
            Some(why) => StepResult {
                status: Status::Skipped,
                ..StepResult::pass(format!("not run: {why}"))
            },
            None => spec.step.exec(ctx, index).await,
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
            label: spec.step.label(),
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
