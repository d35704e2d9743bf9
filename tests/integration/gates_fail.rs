//! Every required gate shown failing on a broken build: the repository's own gates run against
//! the debug `trifecta` with one deliberate bug from `src/mutant.rs` switched on
//! (`TRIFECTA_MUTANT`), and each must fail for the reason it exists — the intended step, not just
//! any step. Each case also runs the real debug build on the same seed as a control, so the
//! failure cannot come from the gate being broken for everyone.
//!
//! Mutants exist only in debug builds, hence `cfg(debug_assertions)` (a release build refuses
//! the variable, so these tests could only fail there).
#![cfg(debug_assertions)]

use serde_json::Value;
use std::path::Path;

/// One `trifecta-verify gates --only <id>` run on the repository's gates and scenarios.
struct GateRun {
    code: i32,
    report: Value,
    output: String,
}

impl GateRun {
    /// The gate's entry of `report.json`.
    fn gate(&self, id: &str) -> &Value {
        self.report["gates"]
            .as_array()
            .and_then(|gs| gs.iter().find(|g| g["id"] == id))
            .unwrap_or_else(|| panic!("no gate {id} in the report\n{}", self.output))
    }

    /// The gate's steps of `kind` that failed.
    fn failed_steps(&self, id: &str, kind: &str) -> Vec<&Value> {
        self.gate(id)["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["kind"] == kind && s["status"] == "fail")
            .collect()
    }
}

/// Run gate `gate_id` of this repository with `--seed seed` against the debug `trifecta`, with
/// `--mutant mutant` when given (the real code when `None`).
fn gate_on_mutant(gate_id: &str, mutant: Option<&str>, seed: u64) -> GateRun {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let reports = tempfile::tempdir().unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_trifecta-verify"));
    cmd.arg("gates")
        .arg("--gates-dir")
        .arg(repo.join("gates"))
        .arg("--scenarios-dir")
        .arg(repo.join("scenarios"))
        .args(["--only", gate_id, "--seed", &seed.to_string()])
        .arg("--report-dir")
        .arg(reports.path())
        .arg("--trifecta")
        .arg(env!("CARGO_BIN_EXE_trifecta"))
        .current_dir(repo)
        .env_remove("TRIFECTA_MUTANT");
    if let Some(m) = mutant {
        cmd.arg("--mutant").arg(m);
    }
    let out = cmd.output().unwrap();
    let output = format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(reports.path().join("latest/report.json"))
        .unwrap_or_else(|e| panic!("report.json: {e}\n{output}"));
    let report: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        report["evidence"]["mutant"].as_str(),
        mutant,
        "the report records which mutant ran"
    );
    GateRun {
        code: out.status.code().unwrap_or(-1),
        report,
        output,
    }
}

/// `p2-crash` on the split-checksum writer: a landed kill between the row's transaction and its
/// checksum's leaves a row whose checksum does not match, which `ast cache verify` right after
/// the kill reports.
fn crash_gate_fails_on_split_checksum(seed: u64) {
    let run = gate_on_mutant("p2-crash", Some("split-checksum"), seed);
    assert_eq!(run.code, 1, "{}", run.output);
    assert_eq!(run.gate("p2-crash")["status"], "fail");
    let kills = run.failed_steps("p2-crash", "kill");
    assert_eq!(
        kills.len(),
        1,
        "the kill step fails: {}",
        run.gate("p2-crash")
    );
    let detail = kills[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("`cache-verify` (run) failed") && detail.contains("checksum_mismatch"),
        "the failure is `ast cache verify` finding a checksum mismatch right after a kill: {detail}"
    );
    assert!(
        !detail.contains("vacuous"),
        "enough kills landed, so the failure is not vacuity: {detail}"
    );
}

#[test]
fn crash_gate_fails_on_split_checksum_seed_1() {
    crash_gate_fails_on_split_checksum(1);
}

#[test]
fn crash_gate_fails_on_split_checksum_seed_2() {
    crash_gate_fails_on_split_checksum(2);
}

#[test]
fn crash_gate_passes_the_real_build_seed_1() {
    let run = gate_on_mutant("p2-crash", None, 1);
    assert_eq!(run.code, 0, "{}", run.output);
    assert_eq!(run.gate("p2-crash")["status"], "pass");
}

/// `p2-stress-edits` on a cache that keys freshness on (size, mtime): after a rewrite that keeps
/// both, it serves the replaced version's symbols, which the journal shows were no longer on disk
/// when the invocation began.
fn stress_edits_gate_fails_on_size_mtime_freshness(seed: u64) {
    let run = gate_on_mutant("p2-stress-edits", Some("size-mtime-freshness"), seed);
    assert_eq!(run.code, 1, "{}", run.output);
    assert_eq!(run.gate("p2-stress-edits")["status"], "fail");
    let storms = run.failed_steps("p2-stress-edits", "stress");
    assert_eq!(
        storms.len(),
        1,
        "the storm fails: {}",
        run.gate("p2-stress-edits")
    );
    let text = format!("{} {}", storms[0]["detail"], storms[0]["excerpt"]);
    // A cache that keeps serving one old version may also make the history look vacuous (too
    // few versions served); the failure that must be there is the stale answer.
    assert!(
        text.contains("which was not on disk during")
            && text.contains("(stale)")
            && text.contains("100/100 invocations exited 0"),
        "the failure is a stale answer from a CLI that exited 0: {text}"
    );
}

#[test]
fn stress_edits_gate_fails_on_size_mtime_freshness_seed_1() {
    stress_edits_gate_fails_on_size_mtime_freshness(1);
}

#[test]
fn stress_edits_gate_fails_on_size_mtime_freshness_seed_2() {
    stress_edits_gate_fails_on_size_mtime_freshness(2);
}

#[test]
fn stress_edits_gate_passes_the_real_build_seed_1() {
    let run = gate_on_mutant("p2-stress-edits", None, 1);
    assert_eq!(run.code, 0, "{}", run.output);
    assert_eq!(run.gate("p2-stress-edits")["status"], "pass");
}
