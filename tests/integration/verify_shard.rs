//! `trifecta-verify gates --shard K/N` and `merge` on the fixture gates in
//! `tests/fixtures/gates/shard/` (five quick gates selected by `--tag shard` — passing, a failing
//! required one, a failing optional one, one with a seeded corruption — plus one left out by the
//! tag): shards 1..3 merged must say exactly what one unsharded run says, and merges of shards
//! that are not one run (other binary, missing or repeated shard) must be refused.

use assert_cmd::Command;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn verify(args: &[&str]) -> Out {
    let out = Command::cargo_bin("trifecta-verify")
        .unwrap()
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `gates` on the shard fixtures with `--tag shard --seed 7`, reports under `report_dir`.
fn gates(report_dir: &Path, extra: &[&str]) -> Out {
    let gates = fixtures().join("gates/shard");
    let scenarios = fixtures().join("scenarios");
    let mut args = vec![
        "gates",
        "--gates-dir",
        gates.to_str().unwrap(),
        "--scenarios-dir",
        scenarios.to_str().unwrap(),
        "--tag",
        "shard",
        "--seed",
        "7",
        "--report-dir",
        report_dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    verify(&args)
}

fn merge(report_dir: &Path, dirs: &[PathBuf]) -> Out {
    let mut args = vec!["merge", "--report-dir", report_dir.to_str().unwrap()];
    args.extend(dirs.iter().map(|d| d.to_str().unwrap()));
    verify(&args)
}

fn report(report_dir: &Path) -> Value {
    let p = report_dir.join("latest/report.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

/// Run shards 1..=n (each in `root/shard-K`), assert each exit code is a verdict, return dirs.
fn run_shards(root: &Path, n: usize, extra: &[&str]) -> Vec<PathBuf> {
    (1..=n)
        .map(|k| {
            let dir = root.join(format!("shard-{k}"));
            let spec = format!("{k}/{n}");
            let mut args = vec!["--shard", spec.as_str()];
            args.extend_from_slice(extra);
            let r = gates(&dir, &args);
            assert!(
                [0, 1].contains(&r.code),
                "shard {spec}: exit {}\n{}\n{}",
                r.code,
                r.stdout,
                r.stderr
            );
            dir.join("latest")
        })
        .collect()
}

/// What must not differ between a merged and an unsharded run: per gate the verdict,
/// requiredness and step kinds + statuses; the totals; the exit code; the fault schedule.
fn verdicts(rep: &Value) -> Value {
    let gates: Vec<Value> = rep["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let steps: Vec<Value> = g["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| serde_json::json!([s["kind"], s["status"]]))
                .collect();
            serde_json::json!([g["id"], g["status"], g["required"], steps])
        })
        .collect();
    let faults: Vec<Value> = rep["fault_schedule"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| serde_json::json!([f["gate"], f["step"], f["what"], f["seed"], f["detail"]]))
        .collect();
    serde_json::json!({
        "gates": gates,
        "totals": rep["totals"],
        "exit_code": rep["exit_code"],
        "faults": faults,
    })
}

/// JUnit counts and per-case outcome, from the file itself.
fn junit_summary(run_dir: &Path) -> (usize, usize, usize, Vec<(String, String)>) {
    let xml = std::fs::read_to_string(run_dir.join("junit.xml")).unwrap();
    let r = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    let cases = r
        .test_suites
        .iter()
        .flat_map(|s| s.test_cases.iter())
        .map(|c| {
            let kind = match &c.status {
                quick_junit::TestCaseStatus::Success { .. } => "success".to_string(),
                quick_junit::TestCaseStatus::NonSuccess { kind, .. } => format!("{kind:?}"),
                quick_junit::TestCaseStatus::Skipped { .. } => "skipped".to_string(),
            };
            (c.name.to_string(), kind)
        })
        .collect();
    (r.tests, r.failures, r.errors, cases)
}

fn assert_merge_equals_unsharded(unsharded: &Path, shard_dirs: &[PathBuf], merged_root: &Path) {
    let m = merge(merged_root, shard_dirs);
    let u = report(unsharded);
    assert_eq!(
        Some(i64::from(m.code)),
        u["exit_code"].as_i64(),
        "merge exit code\n{}\n{}",
        m.stdout,
        m.stderr
    );
    let merged = report(merged_root);
    assert_eq!(verdicts(&merged), verdicts(&u));
    assert_eq!(
        junit_summary(&merged_root.join("latest")),
        junit_summary(&unsharded.join("latest"))
    );
    assert_eq!(merged["merged_from"].as_array().unwrap().len(), 3);
    assert!(merged.get("shard").is_none(), "a merged run is not a shard");
    // Logs come along, so the walkthrough's "logs beside this file" holds.
    assert!(
        merged_root
            .join("latest/gates/sc-fail/step-1-run.log")
            .is_file()
    );
    let md = std::fs::read_to_string(merged_root.join("latest/walkthrough.md")).unwrap();
    assert!(
        md.contains("# shard 3/3: "),
        "shard command lines missing:\n{md}"
    );
    // Same renderer, same model: the walkthroughs have the same sections and verdict lines.
    let skeleton = |md: &str| -> Vec<String> {
        md.lines()
            .filter(|l| l.starts_with('#') || l.starts_with("**Verdict**") || l.starts_with("| "))
            .filter(|l| !l.starts_with("**Run**"))
            .map(str::to_string)
            .collect()
    };
    let u_md = std::fs::read_to_string(unsharded.join("latest/walkthrough.md")).unwrap();
    assert_eq!(skeleton(&md), skeleton(&u_md));
}

#[test]
fn verify_shard_merge_equals_unsharded_run() {
    let root = tempfile::tempdir().unwrap();
    let unsharded = root.path().join("unsharded");
    let u = gates(&unsharded, &[]);
    assert_eq!(u.code, 1, "{}\n{}", u.stdout, u.stderr);
    // The fixture must exercise every kind of verdict, or the comparison proves little.
    let statuses: Vec<Value> = report(&unsharded)["gates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["status"].clone())
        .collect();
    for s in ["pass", "fail", "skipped"] {
        assert!(statuses.contains(&Value::from(s)), "{statuses:?}");
    }
    assert_eq!(
        report(&unsharded)["fault_schedule"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Without durations: sorted ids round-robin.
    let rr = run_shards(&root.path().join("rr"), 3, &[]);
    let s1 = report(rr[0].parent().unwrap());
    assert_eq!(s1["shard"]["method"], "round-robin");
    assert_eq!(s1["shard"]["selected"].as_array().unwrap().len(), 5);
    assert_merge_equals_unsharded(&unsharded, &rr, &root.path().join("merged-rr"));

    // With durations from the unsharded run: LPT.
    let durations = unsharded.join("latest/report.json");
    let lpt = run_shards(
        &root.path().join("lpt"),
        3,
        &["--durations", durations.to_str().unwrap()],
    );
    let mut assigned = Vec::new();
    for d in &lpt {
        let r = report(d.parent().unwrap());
        assert_eq!(r["shard"]["method"], "durations");
        assigned.extend(r["shard"]["assigned"].as_array().unwrap().iter().cloned());
    }
    assigned.sort_by_key(|v| v.as_str().unwrap().to_string());
    assert_eq!(
        assigned,
        s1["shard"]["selected"].as_array().unwrap().clone()
    );
    assert_merge_equals_unsharded(&unsharded, &lpt, &root.path().join("merged-lpt"));
}

/// A shell wrapper around the real binary: same behaviour, different bytes (BLAKE3).
fn wrapper(dir: &Path) -> PathBuf {
    let p = dir.join("trifecta-wrapper");
    let real = assert_cmd::cargo::cargo_bin("trifecta");
    std::fs::write(&p, format!("#!/bin/sh\nexec '{}' \"$@\"\n", real.display())).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn assert_refused(m: &Out, needle: &str, out_root: &Path) {
    assert_eq!(m.code, 2, "{}\n{}", m.stdout, m.stderr);
    assert!(
        m.stderr.contains(needle),
        "{needle:?} not in:\n{}",
        m.stderr
    );
    assert!(
        !out_root.join("LATEST").exists(),
        "a refused merge must write no report"
    );
}

#[test]
fn verify_merge_refuses_shards_of_different_binaries() {
    let root = tempfile::tempdir().unwrap();
    let w = wrapper(root.path());
    let a = gates(&root.path().join("a"), &["--shard", "1/2"]);
    let b = gates(
        &root.path().join("b"),
        &["--shard", "2/2", "--trifecta", w.to_str().unwrap()],
    );
    assert!([0, 1].contains(&a.code) && [0, 1].contains(&b.code));
    let dirs = [root.path().join("a/latest"), root.path().join("b/latest")];
    let out = root.path().join("merged");
    assert_refused(
        &merge(&out, &dirs),
        "binary under test (trifecta_blake3)",
        &out,
    );
}

#[test]
fn verify_merge_refuses_incomplete_repeated_and_unsharded_sets() {
    let root = tempfile::tempdir().unwrap();
    let dirs = run_shards(root.path(), 3, &[]);
    let out = root.path().join("merged");
    assert_refused(
        &merge(&out, &[dirs[0].clone(), dirs[2].clone()]),
        "incomplete set: missing shard 2/3",
        &out,
    );
    assert_refused(
        &merge(&out, &[dirs[0].clone(), dirs[1].clone(), dirs[1].clone()]),
        "shard 2/3 given 2 times",
        &out,
    );
    let plain = root.path().join("plain");
    gates(&plain, &[]);
    assert_refused(
        &merge(&out, &[plain.join("latest")]),
        "not a shard report",
        &out,
    );
    // The same shards, complete, do merge: the refusals above are about the set, not the files.
    let ok = merge(&out, &dirs);
    assert_eq!(ok.code, 1, "{}\n{}", ok.stdout, ok.stderr);
}

#[test]
fn verify_bad_shard_values_exit_2() {
    let root = tempfile::tempdir().unwrap();
    for bad in ["0/3", "4/3", "1/0", "x/3", "2", "-1/3", "2/3/4"] {
        let r = gates(root.path(), &[&format!("--shard={bad}")]);
        assert_eq!(r.code, 2, "--shard {bad}: {}\n{}", r.stdout, r.stderr);
        assert!(r.stderr.contains("--shard"), "{}", r.stderr);
    }
    let r = gates(root.path(), &["--durations", "x.json"]);
    assert_eq!(r.code, 2, "--durations without --shard: {}", r.stderr);
    let r = gates(
        root.path(),
        &["--shard", "1/2", "--durations", "missing.json"],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("cannot read durations"), "{}", r.stderr);
    assert!(!root.path().join("LATEST").exists(), "nothing may run");
    // More shards than gates: the empty shard runs nothing (exit 4) but still writes the
    // report that merge needs to know the set is complete.
    let r = gates(root.path(), &["--only", "sa-pass", "--shard", "2/2"]);
    assert_eq!(r.code, 4, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(
        report(root.path())["shard"]["assigned"],
        serde_json::json!([])
    );
}

#[test]
fn verify_merge_help_documents_exit_codes() {
    let r = verify(&["merge", "--help"]);
    assert_eq!(r.code, 0);
    for needle in [
        "Exit codes",
        "trifecta_blake3",
        "incomplete set is never merged",
    ] {
        assert!(
            r.stdout.contains(needle),
            "{needle:?} not in:\n{}",
            r.stdout
        );
    }
}
