//! The run model (what happened, as data) and the files rendered from it. One model feeds every
//! reporter, so the console, `walkthrough.md`, `report.json` and `junit.xml` cannot disagree:
//! every claim in them comes from a captured [`RunReport`].

pub mod console;
pub mod junit;
pub mod markdown;

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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

/// Where the files of a run went.
#[derive(Debug, Clone)]
pub struct Written {
    /// `reports/<run-id>/`.
    pub dir: PathBuf,
    /// The Markdown walkthrough.
    pub walkthrough: PathBuf,
}

/// Write `walkthrough.md`, `report.json`, `junit.xml` into `run_dir` and point
/// `<report_dir>/latest` (symlink) and `<report_dir>/LATEST` (text) at it.
pub fn write_all(
    report: &RunReport,
    report_dir: &Path,
    run_dir: &Path,
) -> std::io::Result<Written> {
    std::fs::create_dir_all(run_dir)?;
    let json = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    write_atomic(&run_dir.join("report.json"), (json + "\n").as_bytes())?;
    let xml = junit::render(report).map_err(std::io::Error::other)?;
    write_atomic(&run_dir.join("junit.xml"), xml.as_bytes())?;
    let md = markdown::render(report);
    let walkthrough = run_dir.join("walkthrough.md");
    write_atomic(&walkthrough, md.as_bytes())?;
    // Stable pointers: replace atomically so a concurrent reader never sees a missing link.
    let tmp_link = report_dir.join(format!(".latest.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp_link);
    std::os::unix::fs::symlink(&report.run_id, &tmp_link)?;
    std::fs::rename(&tmp_link, report_dir.join("latest"))?;
    write_atomic(
        &report_dir.join("LATEST"),
        format!("{}\n", report.run_id).as_bytes(),
    )?;
    Ok(Written {
        dir: run_dir.to_path_buf(),
        walkthrough,
    })
}

/// Write `bytes` to a temporary sibling, then rename it over `path`: a reader (or a CI job
/// collecting artifacts) sees the old file or the whole new one, never a torn one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp.{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Keep at most `max_bytes` of `text` (tail or head), cut on a char boundary, marking the cut.
pub fn excerpt(text: &str, max_lines: usize, max_bytes: usize, tail: bool) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let (picked, cut_lines) = if lines.len() > max_lines {
        if tail {
            (
                lines[lines.len() - max_lines..].to_vec(),
                lines.len() - max_lines,
            )
        } else {
            (lines[..max_lines].to_vec(), lines.len() - max_lines)
        }
    } else {
        (lines, 0)
    };
    let mut s = picked.join("\n");
    let mut cut_bytes = false;
    if s.len() > max_bytes {
        let mut end = max_bytes;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        cut_bytes = true;
    }
    if cut_lines > 0 {
        let note = format!("[… {cut_lines} lines omitted …]");
        s = if tail {
            format!("{note}\n{s}")
        } else {
            format!("{s}\n{note}")
        };
    }
    if cut_bytes {
        s.push_str("\n[… truncated …]");
    }
    s
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

    #[test]
    fn excerpt_tail_and_bytes() {
        let t = (1..=10)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        let e = excerpt(&t, 3, 1000, true);
        assert!(e.starts_with("[… 7 lines omitted …]"));
        assert!(e.ends_with("8\n9\n10"));
        let e = excerpt("ééééé", 10, 3, false);
        assert!(e.starts_with('é') && e.contains("truncated"));
    }
}
