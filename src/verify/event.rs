//! The run model and the run's events: what happened, as data. The runner only emits
//! [`RunEvent`]s; the reporters (console progress, `walkthrough.md`, `report.json`,
//! `junit.xml`, in `report`) consume them and the final [`RunReport`], so they cannot
//! disagree: every claim in them comes from this model. Steps produce [`StepReport`]s and
//! [`ScheduledFault`]s; nothing here imports the runner, the renderers or the steps.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Exit code: every required gate that ran passed.
pub const EXIT_OK: i32 = 0;
/// Exit code: a required gate failed.
pub const EXIT_FAILED: i32 = 1;
/// Exit code: harness or configuration error (invalid specs, unusable environment, a gate whose
/// verdict is unknown because the harness broke).
pub const EXIT_HARNESS: i32 = 2;
/// Exit code: nothing ran (the filters matched no gate).
pub const EXIT_NOTHING_RAN: i32 = 4;

/// Exit code for a finished set of gate reports.
pub fn exit_code(gates: &[GateReport]) -> i32 {
    let ran = gates.iter().any(|g| g.status != Status::Skipped);
    if !ran {
        EXIT_NOTHING_RAN
    } else if gates.iter().any(|g| g.status == Status::Error) {
        EXIT_HARNESS
    } else if gates.iter().any(|g| g.required && g.status == Status::Fail) {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

/// What happened, as it happens.
#[derive(Debug, Clone)]
pub enum RunEvent {
    /// The run began.
    Started {
        /// Run id.
        run_id: String,
        /// Seed.
        seed: u64,
        /// `flag` or `default`.
        seed_source: String,
        /// Gates that will run.
        selected: usize,
        /// Report folder.
        run_dir: PathBuf,
    },
    /// A gate began.
    GateStarted {
        /// Gate id.
        id: String,
    },
    /// A gate has been running for another slow interval (`runner::slow_interval`; nextest's
    /// `SLOW` lines).
    Slow {
        /// Gate id.
        id: String,
        /// Whole intervals elapsed (the `[> 30s]` threshold just crossed).
        elapsed: Duration,
        /// 1-based step now running.
        step: usize,
        /// Steps in the gate.
        steps: usize,
        /// Kind of the running step.
        kind: String,
        /// Its label.
        label: String,
    },
    /// A gate ended.
    GateFinished(Box<GateReport>),
    /// The run ended: every gate is in the report.
    Finished(Box<RunReport>),
}

/// Verdict of a step or gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Everything checked held.
    Pass,
    /// The system under test did not do what the gate requires.
    Fail,
    /// The harness could not do its job (spawn failed, I/O): the verdict is unknown.
    Error,
    /// Not run (filtered out, or an earlier action failed).
    Skipped,
}

impl Status {
    /// `PASS`, `FAIL`, `ERROR`, `SKIP`.
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Error => "ERROR",
            Status::Skipped => "SKIP",
        }
    }
    /// Emoji-free verdict word for Markdown.
    pub fn badge(self) -> &'static str {
        match self {
            Status::Pass => "✅ PASS",
            Status::Fail => "❌ FAIL",
            Status::Error => "⚠️ ERROR",
            Status::Skipped => "⏭️ SKIPPED",
        }
    }
}

/// One executed (or skipped) step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepReport {
    /// 1-based position in the gate.
    pub index: usize,
    /// Line in the gate file.
    pub line: usize,
    /// Step kind.
    pub kind: String,
    /// Short human label (name, filter, mode…).
    pub label: String,
    /// Verdict.
    pub status: Status,
    /// Wall time.
    pub duration_s: f64,
    /// Exact commands run (shell-quoted).
    pub commands: Vec<String>,
    /// A real, truncated excerpt of the output.
    pub excerpt: String,
    /// Why it failed, or what it established.
    pub detail: String,
    /// Log files, relative to the run directory.
    pub logs: Vec<String>,
}

/// One gate's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GateReport {
    /// Gate id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Source file.
    pub file: String,
    /// Required gates decide the exit code.
    pub required: bool,
    /// Tags.
    pub tags: Vec<String>,
    /// Scenario, if any.
    pub scenario: Option<String>,
    /// Verdict.
    pub status: Status,
    /// First failing step, summarised.
    pub reason: Option<String>,
    /// Wall time.
    pub duration_s: f64,
    /// Steps in order.
    pub steps: Vec<StepReport>,
    /// DoD requirements this gate evidences.
    pub dod: Vec<String>,
    /// Shell lines that recreate the gate's starting state (`GATE_TMP`, the segment copy), so
    /// the step commands — which name the gate's temp dir as `$GATE_TMP` — can be replayed after
    /// the temp dir is gone.
    pub setup: Vec<String>,
}

/// One injected fault (the seeded schedule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledFault {
    /// Gate id.
    pub gate: String,
    /// Step index.
    pub step: usize,
    /// `corrupt` or `kill`.
    pub kind: String,
    /// Corruption mode, or `kill -9 @ N ms`.
    pub what: String,
    /// Seed used for this fault (derived from the run seed, gate id and step).
    pub seed: u64,
    /// What was done (offsets, lengths, outcome).
    pub detail: String,
}

/// The Evidence Header.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Evidence {
    /// HEAD commit of the checkout.
    pub commit: String,
    /// Whether the checkout had uncommitted changes.
    pub dirty: bool,
    /// Some of the changed paths.
    pub dirty_paths: Vec<String>,
    /// UTC start time.
    pub date_utc: String,
    /// The verifier's own command line.
    pub command_line: String,
    /// `trifecta --version` of the binary under test.
    pub trifecta_version: String,
    /// Path of the binary under test.
    pub trifecta_path: String,
    /// BLAKE3 (hex) of the binary under test: names exactly which build was gated.
    pub trifecta_blake3: String,
    /// Commit the binary under test was built from (the `commit:` line of its `--version`);
    /// `None` when the binary does not say (an older build, a wrapper script).
    pub trifecta_commit: Option<String>,
    /// `clean`, `dirty` or `unknown`: the state of the build inputs when the binary was built.
    pub trifecta_tree: Option<String>,
    /// `--mutant`: the deliberate bugs switched on in every `trifecta` the run started
    /// (`TRIFECTA_MUTANT`); the run tested a broken build on purpose and is no release verdict.
    pub mutant: Option<String>,
    /// `trifecta-verify`'s own build commit (`commit (tree)`).
    pub verifier_commit: String,
    /// Facts that weaken what the run proves (binary built from another commit or a dirty tree,
    /// unknown build commit, a mutant). Printed prominently in the walkthrough header.
    pub warnings: Vec<String>,
    /// `rustc --version`.
    pub rustc: String,
    /// SQLite library version linked into trifecta-verify (same bundled copy as trifecta).
    pub sqlite: String,
    /// libgit2 version used for worktrees.
    pub libgit2: String,
    /// OS description.
    pub os: String,
    /// The run seed.
    pub seed: u64,
    /// `flag` (`--seed`) or `default` (chosen by the run; rerun with `--seed`).
    pub seed_source: String,
    /// Revision used by worktree steps.
    pub rev: String,
}

/// Counts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Totals {
    /// All gates known.
    pub total: usize,
    /// Passed.
    pub passed: usize,
    /// Failed.
    pub failed: usize,
    /// Harness errors.
    pub errors: usize,
    /// Not run.
    pub skipped: usize,
}

/// The whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// Run id (also the report folder name).
    pub run_id: String,
    /// Evidence Header.
    pub evidence: Evidence,
    /// Wall time.
    pub duration_s: f64,
    /// Gates in file order (skipped ones included).
    pub gates: Vec<GateReport>,
    /// Every fault injected, in gate/step order.
    pub fault_schedule: Vec<ScheduledFault>,
    /// Counts.
    pub totals: Totals,
    /// Process exit code of the run.
    pub exit_code: i32,
    /// Required gates were filtered out (`--only`, `--tag`) or fell to other shards: the run
    /// is not a release verdict, whatever its exit code.
    #[serde(default)]
    pub partial: bool,
    /// Ids of the required gates that were not run here, in file order.
    #[serde(default)]
    pub required_not_run: Vec<String>,
    /// Sharded run (`gates --shard K/N`): which part this report holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<super::shard::ShardInfo>,
    /// Merged run (`merge`): the shard reports it was joined from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_from: Option<Vec<MergedShard>>,
}

impl RunReport {
    /// Recount [`Totals`] from the gates.
    pub fn count(gates: &[GateReport]) -> Totals {
        let mut t = Totals {
            total: gates.len(),
            ..Totals::default()
        };
        for g in gates {
            match g.status {
                Status::Pass => t.passed += 1,
                Status::Fail => t.failed += 1,
                Status::Error => t.errors += 1,
                Status::Skipped => t.skipped += 1,
            }
        }
        t
    }
}

/// One shard a merged report was joined from (`merged_from` in `report.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergedShard {
    /// K.
    pub index: usize,
    /// N.
    pub count: usize,
    /// The shard's run id.
    pub run_id: String,
    /// Where its report was read from.
    pub dir: String,
    /// The shard's command line.
    pub command_line: String,
    /// The shard's start time (UTC).
    pub date_utc: String,
    /// The shard's wall time.
    pub duration_s: f64,
    /// The shard's own exit code.
    pub exit_code: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(id: &str, required: bool, status: Status) -> GateReport {
        GateReport {
            id: id.into(),
            title: String::new(),
            description: String::new(),
            file: String::new(),
            required,
            tags: vec![],
            scenario: None,
            status,
            reason: None,
            duration_s: 0.0,
            steps: vec![],
            dod: vec![],
            setup: vec![],
        }
    }

    #[test]
    fn exit_codes() {
        assert_eq!(
            exit_code(&[g("a", true, Status::Skipped)]),
            EXIT_NOTHING_RAN
        );
        assert_eq!(exit_code(&[g("a", true, Status::Pass)]), EXIT_OK);
        // Optional failures are reported, not fatal.
        assert_eq!(
            exit_code(&[g("a", true, Status::Pass), g("b", false, Status::Fail)]),
            EXIT_OK
        );
        assert_eq!(
            exit_code(&[g("a", true, Status::Fail), g("b", true, Status::Pass)]),
            EXIT_FAILED
        );
        // Unknown verdicts beat failures.
        assert_eq!(
            exit_code(&[g("a", true, Status::Fail), g("b", false, Status::Error)]),
            EXIT_HARNESS
        );
    }
}
