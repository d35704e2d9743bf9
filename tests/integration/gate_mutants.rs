//! Every required gate shown failing on a deliberately broken build.
//!
//! A gate that cannot fail is not a gate. Each required gate in `gates/` is run here, with the
//! real gate file, against the debug `trifecta` with one realistic bug switched on
//! (`trifecta-verify gates --mutant <name>`, see `src/mutant.rs`), and must fail **for the
//! intended reason**: the named check fails, not merely something. The checkout gates (g1, g2)
//! run against a stand-in checkout (`tests/fixtures/crates/standin`) whose cross-run test fails
//! or whose committed state does not build. A control run shows the same gates passing on the
//! same debug build without the bug, and a census test fails when a required gate is added
//! without a row here.
//!
//! Mutants exist only in debug builds, so these tests do too.
#![cfg(debug_assertions)]

use crate::support::copy_tree;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// One required gate, the bug that must make it fail, and the check that must catch it
/// (a step's label or run name, as in `report.json`).
struct Case {
    gate: &'static str,
    mutant: &'static str,
    caught_by: &'static str,
}

/// The cache and telemetry gates, each with the bug it exists to catch.
const CASES: &[Case] = &[
    Case {
        gate: "p2-corruption",
        mutant: "no-checksum-check",
        caught_by: "flip_payload_bit detected when the damaged entry is read: corruption_recovered",
    },
    Case {
        gate: "p2-corruption",
        mutant: "verify-skips-checksums",
        caught_by: "verify-flip_payload_bit",
    },
    Case {
        gate: "p2-daemon-cli",
        mutant: "hot-tier-no-key-check",
        caught_by: "storm (10 procs × 8)",
    },
    Case {
        gate: "p2-daemon-cli",
        mutant: "daemon-keeps-db-open",
        caught_by: "storm (10 procs × 8)",
    },
    Case {
        gate: "p2-locks",
        mutant: "blocking-lock",
        caught_by: "blocked",
    },
    Case {
        gate: "p2-size",
        mutant: "size-threshold-kib",
        caught_by: "size_warning: db_bytes + wal_bytes above a ~1 KiB threshold",
    },
    Case {
        gate: "p2-stress",
        mutant: "double-flush",
        caught_by: "exactly 50 ast.symbols events and 50 hit-or-miss lookups",
    },
    Case {
        gate: "p2-stress-edits",
        mutant: "busy-timeout-zero",
        caught_by: "no corruption, no lock timeout, no fallback",
    },
    Case {
        gate: "p2-success-metrics",
        mutant: "hit-counter-typo",
        caught_by: "stats: hit_rate ≥ 0.9, 0 corruptions, 0 lock timeouts, DB+WAL < 100 MB, 5 entries",
    },
    Case {
        gate: "p2-telemetry",
        mutant: "write-event-full-only",
        caught_by: "exactly one hit (sqlite) and one write",
    },
    Case {
        gate: "p2-telemetry",
        mutant: "local-timestamps",
        caught_by: "timestamps are UTC: within 10 minutes of the verifier's clock",
    },
    Case {
        gate: "p2-telemetry",
        mutant: "segment-id-per-run",
        caught_by: "one segment id for the segment, one run id per process",
    },
    Case {
        gate: "p2-ttl",
        mutant: "ttl-off",
        caught_by: "day 8: prune expired the entry not used for 8 days, kept the one used on day 6",
    },
    Case {
        gate: "p2-ttl",
        mutant: "ttl-seconds",
        caught_by: "day 6: nothing expired yet (TTL 7 days)",
    },
    Case {
        gate: "p2-ttl",
        mutant: "access-not-refreshed",
        caught_by: "day 8: prune expired the entry not used for 8 days, kept the one used on day 6",
    },
    Case {
        gate: "p5-index",
        mutant: "index-ignores-cache",
        caught_by: "warm index: every module a hit, same symbols",
    },
    Case {
        gate: "p6-shared-tier",
        mutant: "remote-no-checksum",
        caught_by: "bit-flipped value: not served (miss), then replaced (hit)",
    },
    Case {
        gate: "p6-shared-tier",
        mutant: "read-only-writes",
        caught_by: "redis holds exactly 0 keys",
    },
    Case {
        gate: "p7-hostile-segment",
        mutant: "plain-module-open",
        caught_by: "r1-leak",
    },
    Case {
        gate: "g3-evidence-signals",
        mutant: "segment-as-spelled",
        caught_by: "DB path is <segment>/.trifecta/cache/ast_cache.db however the segment is spelled",
    },
];

/// Gates whose negative tests live elsewhere in this file (checkout gates) or in
/// `gates_fail.rs` (the seeded crash and freshness gates), by gate id → the test that shows it
/// failing; the census checks that the test exists.
const SHOWN_ELSEWHERE: &[(&str, &str)] = &[
    ("g1-main-tests", "g1_fails_when_the_cross_run_test_fails"),
    (
        "g2-clean-worktree",
        "g2_fails_when_the_committed_state_does_not_build",
    ),
    ("p2-crash", "crash_gate_fails_on_split_checksum_seed_1"),
    (
        "p2-stress-edits",
        "stress_edits_gate_fails_on_size_mtime_freshness_seed_1",
    ),
];

/// One `trifecta-verify gates` run.
struct Run {
    code: i32,
    report: Value,
    output: String,
}

impl Run {
    fn gate(&self, id: &str) -> &Value {
        self.report["gates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["id"] == id)
            .unwrap_or_else(|| panic!("no gate {id} in the report\n{}", self.output))
    }

    /// Labels (or run names) of the failed steps of gate `id`.
    fn failed_checks(&self, id: &str) -> Vec<String> {
        self.gate(id)["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "fail")
            .map(|s| s["label"].as_str().unwrap_or_default().to_string())
            .collect()
    }
}

/// Run the real gates `ids` (from `gates/`), with `extra` arguments, reports in a temp dir.
fn run(ids: &[&str], extra: &[&str]) -> Run {
    let reports = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_trifecta-verify"));
    cmd.arg("gates")
        .arg("--gates-dir")
        .arg(repo().join("gates"))
        .arg("--scenarios-dir")
        .arg(repo().join("scenarios"))
        .arg("--report-dir")
        .arg(reports.path())
        .arg("--seed")
        .arg("1")
        .arg("--trifecta")
        .arg(env!("CARGO_BIN_EXE_trifecta"))
        .args(extra)
        .current_dir(repo())
        // A nested cargo (g1, g2) must build in its own checkout's target dir, never in the
        // one this test binary came from.
        .env_remove("CARGO_TARGET_DIR");
    for id in ids {
        cmd.arg("--only").arg(id);
    }
    let out = cmd.output().unwrap();
    let output = format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let path = reports.path().join("latest/report.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}\n{output}", path.display()));
    Run {
        code: out.status.code().unwrap_or(-1),
        report: serde_json::from_str(&text).unwrap(),
        output,
    }
}

#[test]
fn every_required_gate_fails_on_its_mutant_for_the_intended_reason() {
    let mut wrong = Vec::new();
    for c in CASES {
        let r = run(&[c.gate], &["--mutant", c.mutant]);
        let failed = r.failed_checks(c.gate);
        let verdict = r.gate(c.gate)["status"].clone();
        if r.code != 1 || verdict != "fail" || !failed.iter().any(|l| l == c.caught_by) {
            wrong.push(format!(
                "{} with mutant {}: exit {}, verdict {verdict}, failed checks {failed:?}, \
                 expected {:?} among them",
                c.gate, c.mutant, r.code, c.caught_by
            ));
        }
        // The report says loudly that this was a broken build.
        assert_eq!(r.report["evidence"]["mutant"], c.mutant, "{}", r.output);
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_same_gates_pass_on_the_same_build_without_a_mutant() {
    let ids: Vec<&str> = CASES.iter().map(|c| c.gate).collect();
    let r = run(&ids, &[]);
    assert_eq!(r.code, 0, "{}", r.output);
    for id in ids {
        assert_eq!(r.gate(id)["status"], "pass", "{id}\n{}", r.output);
    }
    assert!(r.report["evidence"]["mutant"].is_null());
}

#[test]
fn an_unknown_mutant_name_is_a_configuration_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_trifecta-verify"))
        .args(["gates", "--only", "p2-ttl", "--mutant", "no-such-bug"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-bug"));
}

#[test]
fn every_required_gate_has_a_negative_test() {
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(repo().join("gates")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let spec: toml::Value = toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let id = spec["id"].as_str().unwrap();
        let required = spec.get("required").and_then(|v| v.as_bool()) == Some(true);
        let covered = CASES.iter().any(|c| c.gate == id)
            || SHOWN_ELSEWHERE
                .iter()
                .any(|(g, test)| *g == id && test_exists(test));
        if required && !covered {
            missing.push(id.to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "required gates without a test showing them fail on a broken build: {missing:?}"
    );
}

/// Whether a test function named `name` exists in this test binary's sources.
fn test_exists(name: &str) -> bool {
    let dir = repo().join("tests/integration");
    std::fs::read_dir(dir).unwrap().any(|e| {
        std::fs::read_to_string(e.unwrap().path())
            .is_ok_and(|t| t.contains(&format!("fn {name}()")))
    })
}

/// Copy the stand-in checkout to `dir`; commit it (minus `leave_out`) when `commit` is set.
fn standin_checkout(dir: &Path, commit: bool, leave_out: &[&str]) {
    copy_tree(&repo().join("tests/fixtures/crates/standin"), dir);
    if !commit {
        return;
    }
    let git = git2::Repository::init(dir).unwrap();
    let mut idx = git.index().unwrap();
    idx.add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    for p in leave_out {
        idx.remove_path(Path::new(p)).unwrap();
    }
    idx.write().unwrap();
    let tree = git.find_tree(idx.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("t", "t@example.com").unwrap();
    git.commit(Some("HEAD"), &sig, &sig, "stand-in", &tree, &[])
        .unwrap();
}

/// The step of gate `id` whose kind is `kind` (the first), as in `report.json`.
fn step<'a>(r: &'a Run, id: &str, kind: &str) -> &'a Value {
    r.gate(id)["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} step in {id}\n{}", r.output))
}

#[test]
fn g1_fails_when_the_cross_run_test_fails() {
    let d = tempfile::tempdir().unwrap();
    standin_checkout(d.path(), false, &[]);
    let r = run(&["g1-main-tests"], &["--repo", d.path().to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.output);
    let cargo = step(&r, "g1-main-tests", "cargo");
    assert_eq!(cargo["status"], "fail", "{cargo}");
    let excerpt = cargo["excerpt"].as_str().unwrap();
    assert!(
        excerpt.contains("test cache_p1_second_run_hits ... FAILED"),
        "{cargo}"
    );
}

#[test]
fn g2_fails_when_the_committed_state_does_not_build() {
    let d = tempfile::tempdir().unwrap();
    // The working tree builds (helper.rs is there), the committed state does not.
    standin_checkout(d.path(), true, &["src/helper.rs"]);
    let r = run(
        &["g2-clean-worktree"],
        &["--repo", d.path().to_str().unwrap()],
    );
    assert_eq!(r.code, 1, "{}", r.output);
    let wt = step(&r, "g2-clean-worktree", "worktree");
    assert_eq!(wt["status"], "fail", "{wt}");
    // Failed because helper.rs is not committed, not for any other reason.
    assert!(wt.to_string().contains("helper"), "{wt}");
    assert_eq!(r.report["evidence"]["dirty"], true, "{}", r.output);
}
