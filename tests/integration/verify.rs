//! `trifecta-verify` on tiny fixture gates (`tests/fixtures/gates/<case>/`): exit codes, report
//! contents, and — the point of a gate runner — that it FAILS when the system under test is wrong
//! (wrong jq expectation, a CLI returning wrong symbols, a CLI that breaks on a damaged DB).
//! No worktree builds of the project here: the worktree step is exercised on a throwaway repo
//! whose "build" is a shell one-liner.

use assert_cmd::Command;
use serde_json::Value;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn gates_dir(case: &str) -> PathBuf {
    fixtures().join("gates").join(case)
}

/// The real `trifecta` binary built for this test run.
fn real_trifecta() -> PathBuf {
    assert_cmd::cargo::cargo_bin("trifecta")
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    reports: tempfile::TempDir,
}

impl Run {
    fn report(&self) -> Value {
        let p = self.reports.path().join("latest/report.json");
        let t = std::fs::read_to_string(&p).unwrap_or_else(|e| {
            panic!(
                "{}: {e}\nstdout:{}\nstderr:{}",
                p.display(),
                self.stdout,
                self.stderr
            )
        });
        serde_json::from_str(&t).unwrap()
    }
    fn latest_file(&self, name: &str) -> String {
        std::fs::read_to_string(self.reports.path().join("latest").join(name)).unwrap()
    }
    fn gate<'a>(report: &'a Value, id: &str) -> &'a Value {
        report["gates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["id"] == id)
            .unwrap_or_else(|| panic!("no gate {id} in {report}"))
    }
}

fn run_gates(gates: &Path, extra: &[&str]) -> Run {
    run_gates_env(gates, extra, &[])
}

fn run_gates_env(gates: &Path, extra: &[&str], env: &[(&str, &Path)]) -> Run {
    let reports = tempfile::tempdir().unwrap();
    let mut cmd = Command::cargo_bin("trifecta-verify").unwrap();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.arg("gates")
        .arg("--gates-dir")
        .arg(gates)
        .arg("--scenarios-dir")
        .arg(fixtures().join("scenarios"))
        .arg("--report-dir")
        .arg(reports.path())
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        reports,
    }
}

/// A shell wrapper around the real binary, used as `--trifecta`.
fn wrapper(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    let script = format!("#!/bin/sh\nREAL='{}'\n{body}\n", real_trifecta().display());
    std::fs::write(&p, script).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn step_statuses(gate: &Value) -> Vec<(String, String)> {
    gate["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["kind"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn verify_passing_gate_exits_0_with_reports() {
    let r = run_gates(&gates_dir("pass"), &["--seed", "1"]);
    assert_eq!(r.code, 0, "stdout:{}\nstderr:{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("PASS: ok ("), "{}", r.stdout);
    let rep = r.report();
    assert_eq!(rep["exit_code"], 0);
    assert_eq!(rep["totals"]["passed"], 1);
    let g = Run::gate(&rep, "ok");
    assert!(
        step_statuses(g).iter().all(|(_, s)| s == "pass"),
        "{:?}",
        step_statuses(g)
    );
    let md = r.latest_file("walkthrough.md");
    for needle in [
        "## Evidence Header",
        "**Checkout commit**",
        "**Binary under test**: built from commit `",
        "**Seed**: `1`",
        "SQLite 3.",
        "rustc",
        "## Definition of Done",
        "| fixture requirement | ✅ PASS |",
        "## Known gaps",
        "## Conclusion",
    ] {
        assert!(md.contains(needle), "walkthrough lacks {needle:?}:\n{md}");
    }
    // Stable pointers to the latest run.
    let latest = std::fs::read_to_string(r.reports.path().join("LATEST")).unwrap();
    assert_eq!(latest.trim(), rep["run_id"].as_str().unwrap());
    assert!(r.reports.path().join("latest").is_symlink());
    // Raw logs beside the reports.
    let gate_dir = r.reports.path().join("latest/gates/ok");
    assert!(gate_dir.join("step-1-run.log").is_file());
    assert!(gate_dir.join("step-4-history.jsonl").is_file());
}

#[test]
fn verify_wrong_jq_expectation_fails_exit_1() {
    let r = run_gates(&gates_dir("wrong-jq"), &[]);
    assert_eq!(r.code, 1, "stdout:{}\nstderr:{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("FAIL: wrong-jq"), "{}", r.stdout);
    let rep = r.report();
    let g = Run::gate(&rep, "wrong-jq");
    assert_eq!(g["status"], "fail");
    let steps = g["steps"].as_array().unwrap();
    assert_eq!(steps[1]["status"], "fail");
    assert!(steps[1]["detail"].as_str().unwrap().contains("false"));
    // `select` over empty telemetry: no output is a failure of its own (jq -e exit 4).
    assert_eq!(steps[2]["status"], "fail");
    assert!(
        steps[2]["detail"].as_str().unwrap().contains("no output"),
        "{}",
        steps[2]["detail"]
    );
    let xml = r.latest_file("junit.xml");
    let junit = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    assert_eq!(junit.failures, 1);
    assert!(xml.contains("<failure"), "{xml}");
}

#[test]
fn verify_kill_step_fails_when_no_kill_lands_inside_a_write() {
    let r = run_gates(&gates_dir("kill-misses"), &[]);
    assert_eq!(r.code, 1, "stdout:{}\nstderr:{}", r.stdout, r.stderr);
    let rep = r.report();
    let g = Run::gate(&rep, "kill-misses");
    let step = &g["steps"][0];
    assert_eq!(step["status"], "fail", "{step}");
    assert!(
        step["detail"]
            .as_str()
            .unwrap_or("")
            .contains("vacuous: only 0 of 3 writers were killed inside a write transaction"),
        "{step}"
    );
}

#[test]
fn verify_baseline_catches_wrong_symbols() {
    // Same gate, real binary: passes (so the check is not failing for an unrelated reason).
    let ok = run_gates(&gates_dir("baseline"), &[]);
    assert_eq!(ok.code, 0, "stdout:{}\nstderr:{}", ok.stdout, ok.stderr);

    // A CLI whose *cached* path returns an extra symbol.
    let d = tempfile::tempdir().unwrap();
    let w = wrapper(
        d.path(),
        "lying-trifecta",
        r#"case " $* " in
  *" --persist-cache "*)
    "$REAL" "$@" | sed -e 's/"symbols": \[\]/"symbols": [{"name": "bogus"}]/' -e 's/"symbols": \[$/"symbols": [{"name": "bogus"},/'
    exit 0;;
esac
exec "$REAL" "$@""#,
    );
    let r = run_gates(&gates_dir("baseline"), &["--trifecta", w.to_str().unwrap()]);
    assert_eq!(r.code, 1, "stdout:{}\nstderr:{}", r.stdout, r.stderr);
    let rep = r.report();
    let g = Run::gate(&rep, "baseline");
    let base = &g["steps"][1];
    assert_eq!(base["kind"], "baseline");
    assert_eq!(base["status"], "fail");
    let detail = base["detail"].as_str().unwrap();
    assert!(detail.contains("`symbols` differs"), "{detail}");
    assert!(detail.contains("bogus"), "{detail}");
}

#[test]
fn verify_jq_disagreement_with_the_reference_jq_is_an_error() {
    // A "reference jq" that calls every predicate false: the pass fixture's jq steps (true under
    // jaq) must become harness errors (exit 2), not passes.
    let d = tempfile::tempdir().unwrap();
    let fake = d.path().join("fake-jq");
    std::fs::write(&fake, "#!/bin/sh\ncat >/dev/null\nexit 1\n").unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = run_gates_env(&gates_dir("pass"), &[], &[("TRIFECTA_VERIFY_JQ", &fake)]);
    assert_eq!(r.code, 2, "stdout:{}\nstderr:{}", r.stdout, r.stderr);
    let rep = r.report();
    let jq_step = Run::gate(&rep, "ok")["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "jq")
        .cloned()
        .unwrap();
    assert_eq!(jq_step["status"], "error", "{jq_step}");
    assert!(
        jq_step["detail"].as_str().unwrap().contains("disagree"),
        "{jq_step}"
    );

    // Where Debian's jq is installed (CI installs it), it agrees on the same gate.
    if Path::new("/usr/bin/jq").is_file() {
        let jq = Path::new("/usr/bin/jq");
        let r = run_gates_env(&gates_dir("pass"), &[], &[("TRIFECTA_VERIFY_JQ", jq)]);
        assert_eq!(r.code, 0, "stdout:{}\nstderr:{}", r.stdout, r.stderr);
        let rep = r.report();
        let detail = Run::gate(&rep, "ok")["steps"][1]["detail"].to_string();
        assert!(detail.contains("agrees"), "{detail}");
    }
}

#[test]
fn verify_stress_edits_catch_a_stale_cache() {
    // Real binary: every answer matches a version on disk during its invocation.
    let ok = run_gates(&gates_dir("stress-edits"), &[]);
    assert_eq!(ok.code, 0, "stdout:{}\nstderr:{}", ok.stdout, ok.stderr);
    let rep = ok.report();
    let detail = Run::gate(&rep, "stress-edits")["steps"][0]["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(detail.contains("0 problems"), "{detail}");

    // A CLI that remembers its first cached answer per URI and serves it forever after.
    let d = tempfile::tempdir().unwrap();
    let memo = d.path().join("memo");
    std::fs::create_dir(&memo).unwrap();
    let w = wrapper(
        d.path(),
        "stale-trifecta",
        &format!(
            r#"case " $* " in
  *" --persist-cache "*)
    f='{}'/$(printf %s "$3" | tr -c 'A-Za-z0-9' _)
    if [ ! -f "$f" ]; then "$REAL" "$@" > "$f.$$" && mv "$f.$$" "$f"; fi
    cat "$f"; exit 0;;
esac
exec "$REAL" "$@""#,
            memo.display()
        ),
    );
    let r = run_gates(
        &gates_dir("stress-edits"),
        &["--trifecta", w.to_str().unwrap()],
    );
    assert_eq!(r.code, 1, "stdout:{}\nstderr:{}", r.stdout, r.stderr);
    let rep = r.report();
    let step = &Run::gate(&rep, "stress-edits")["steps"][0];
    assert_eq!(step["status"], "fail", "{step}");
    let text = format!("{} {}", step["detail"], step["excerpt"]);
    assert!(text.contains("(stale)"), "{text}");
}

#[test]
fn verify_unrecovered_corruption_fails() {
    // Real binary: the damaged DB does not break the command.
    let ok = run_gates(&gates_dir("corrupt"), &["--seed", "5"]);
    assert_eq!(ok.code, 0, "stdout:{}\nstderr:{}", ok.stdout, ok.stderr);

    // A CLI that gives up whenever the DB header is damaged.
    let d = tempfile::tempdir().unwrap();
    let w = wrapper(
        d.path(),
        "fragile-trifecta",
        r#"SEG=.
prev=
for a in "$@"; do
  if [ "$prev" = "--segment" ]; then SEG="$a"; fi
  prev="$a"
done
DB="$SEG/.trifecta/cache/ast_cache.db"
if [ -f "$DB" ] && [ "$(head -c 15 "$DB")" != "SQLite format 3" ]; then
  echo '{"status":"error","error_code":"CACHE_CORRUPT","message":"database disk image is malformed"}'
  exit 1
fi
exec "$REAL" "$@""#,
    );
    let r = run_gates(
        &gates_dir("corrupt"),
        &["--seed", "5", "--trifecta", w.to_str().unwrap()],
    );
    assert_eq!(r.code, 1, "stdout:{}\nstderr:{}", r.stdout, r.stderr);
    let rep = r.report();
    let g = Run::gate(&rep, "corrupt");
    assert_eq!(g["status"], "fail");
    let run_after = g["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["label"] == "after")
        .unwrap();
    assert_eq!(run_after["status"], "fail");
    assert!(run_after["detail"].as_str().unwrap().contains("exit 1"));
    let junit = quick_junit::Report::deserialize_from_str(&r.latest_file("junit.xml")).unwrap();
    assert_eq!(junit.failures, 1);
}

#[test]
fn verify_same_seed_same_fault_schedule() {
    let a = run_gates(&gates_dir("corrupt"), &["--seed", "42"]);
    let b = run_gates(&gates_dir("corrupt"), &["--seed", "42"]);
    let c = run_gates(&gates_dir("corrupt"), &["--seed", "43"]);
    for r in [&a, &b, &c] {
        assert_eq!(r.code, 0, "stdout:{}\nstderr:{}", r.stdout, r.stderr);
    }
    let sched = |r: &Run| {
        let rep = r.report();
        assert!(rep["evidence"]["seed"].is_u64());
        rep["fault_schedule"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["step"].clone(),
                    f["kind"].clone(),
                    f["what"].clone(),
                    f["seed"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    let (sa, sb, sc) = (sched(&a), sched(&b), sched(&c));
    assert_eq!(sa.len(), 4, "1 corruption + 3 kills: {sa:?}");
    assert_eq!(sa, sb, "same seed must replay the same schedule");
    assert_ne!(sa, sc, "a different seed must change the schedule");
    // The corruption detail (offsets) is recorded and identical too.
    let detail = |r: &Run| r.report()["fault_schedule"][0]["detail"].clone();
    assert_eq!(detail(&a), detail(&b));
    assert!(
        a.latest_file("walkthrough.md")
            .contains("## Fault schedule (seed 42)")
    );
}

#[test]
fn verify_junit_counts_match_report_json() {
    let d = tempfile::tempdir().unwrap();
    for (case, file) in [
        ("pass", "ok.toml"),
        ("wrong-jq", "wrong.toml"),
        ("baseline", "baseline.toml"),
    ] {
        std::fs::copy(gates_dir(case).join(file), d.path().join(file)).unwrap();
    }
    // Two gates at once: parallel runs must not mix up reports.
    let r = run_gates(d.path(), &["--only", "ok", "wrong-jq", "--jobs", "2"]);
    assert_eq!(r.code, 1, "stdout:{}\nstderr:{}", r.stdout, r.stderr);
    let rep = r.report();
    let t = &rep["totals"];
    assert_eq!(
        (
            t["total"].as_u64(),
            t["passed"].as_u64(),
            t["failed"].as_u64(),
            t["skipped"].as_u64()
        ),
        (Some(3), Some(1), Some(1), Some(1))
    );
    let junit = quick_junit::Report::deserialize_from_str(&r.latest_file("junit.xml")).unwrap();
    assert_eq!(junit.tests as u64, t["total"].as_u64().unwrap());
    assert_eq!(junit.failures as u64, t["failed"].as_u64().unwrap());
    assert_eq!(junit.errors as u64, t["errors"].as_u64().unwrap());
    let skipped = junit
        .test_suites
        .iter()
        .flat_map(|s| s.test_cases.iter())
        .filter(|c| matches!(c.status, quick_junit::TestCaseStatus::Skipped { .. }))
        .count();
    assert_eq!(skipped as u64, t["skipped"].as_u64().unwrap());
    assert!(
        r.stdout
            .contains("Summary: 1 passed, 1 failed, 0 errors, 1 skipped"),
        "{}",
        r.stdout
    );
}

#[test]
fn verify_invalid_specs_exit_2_with_file_line() {
    for (case, line, needle) in [
        ("invalid-key", 8, "colour"),
        ("invalid-jq", 13, "does not compile"),
        ("invalid-scenario", 3, "no-such-scenario"),
        ("invalid-mode", 7, "set_on_fire"),
        ("invalid-edit", 5, "is not one of `uris`"),
    ] {
        let r = run_gates(&gates_dir(case), &[]);
        assert_eq!(
            r.code, 2,
            "{case}: stdout:{}\nstderr:{}",
            r.stdout, r.stderr
        );
        let want = format!("g.toml:{line}:");
        assert!(
            r.stderr.contains(&want),
            "{case}: want {want} in {}",
            r.stderr
        );
        assert!(
            r.stderr.contains(needle),
            "{case}: want {needle} in {}",
            r.stderr
        );
        // Nothing ran: no report written.
        assert!(!r.reports.path().join("LATEST").exists(), "{case}");
        // `check` agrees.
        let out = Command::cargo_bin("trifecta-verify")
            .unwrap()
            .args(["check", "--gates-dir"])
            .arg(gates_dir(case))
            .arg("--scenarios-dir")
            .arg(fixtures().join("scenarios"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{case}");
    }
}

#[test]
fn verify_filter_matching_nothing_exits_4() {
    let r = run_gates(&gates_dir("pass"), &["--tag", "no-such-tag"]);
    assert_eq!(r.code, 4, "stdout:{}\nstderr:{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("nothing to run"), "{}", r.stderr);
    // A known id whose gate lacks the tag: valid filters, empty selection.
    let r = run_gates(
        &gates_dir("pass"),
        &["--only", "ok", "--tag", "no-such-tag"],
    );
    assert_eq!(r.code, 4, "stdout:{}\nstderr:{}", r.stdout, r.stderr);
}

#[test]
fn verify_unknown_only_id_is_a_configuration_error() {
    // Alone or next to a real id: a typo never shrinks the run silently.
    for args in [
        &["--only", "no-such-gate"][..],
        &["--only", "ok", "--only", "no-such-gate"],
    ] {
        let r = run_gates(&gates_dir("pass"), args);
        assert_eq!(r.code, 2, "stdout:{}\nstderr:{}", r.stdout, r.stderr);
        assert!(
            r.stderr.contains(r#"unknown gate id(s) ["no-such-gate"]"#),
            "{}",
            r.stderr
        );
        assert!(r.stderr.contains(r#"known ids: ["ok"]"#), "{}", r.stderr);
        assert!(!r.reports.path().join("LATEST").exists());
    }
}

#[test]
fn verify_gate_timeout_fails_the_running_step_and_skips_the_rest() {
    let r = run_gates(&gates_dir("timeout"), &[]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let report = r.report();
    let g = Run::gate(&report, "slow");
    assert_eq!(g["status"], "fail", "{g}");
    let steps: Vec<(&str, &str)> = g["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["index"].as_u64().is_some_and(|i| (1..=3).contains(&i)))
        .map(|s| (s["status"].as_str().unwrap(), s["detail"].as_str().unwrap()))
        .collect();
    assert_eq!(
        steps,
        [
            ("fail", "gate timeout"),
            ("skipped", "gate timeout"),
            ("skipped", "gate timeout")
        ],
        "{g}"
    );
}

/// `[[steps.during]]`: a corruption and a clear land mid-storm (each with invocations in
/// flight, recorded in the history); an action the storm never reaches, or one that exits
/// wrongly, fails the step.
#[test]
fn verify_during_actions_land_mid_storm_or_fail_the_step() {
    let ok = run_gates(&gates_dir("during"), &[]);
    assert_eq!(ok.code, 0, "stdout:{}\nstderr:{}", ok.stdout, ok.stderr);
    let rep = ok.report();
    let detail = Run::gate(&rep, "during-ok")["steps"][0]["detail"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(detail.contains("`corrupt zero_header` at"), "{detail}");
    assert!(detail.contains("ast cache clear"), "{detail}");
    let history = ok.latest_file("gates/during-ok/step-1-history.jsonl");
    let during: Vec<Value> = history
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "during")
        .collect();
    assert_eq!(during.len(), 2, "{history}");
    for d in &during {
        assert!(d["in_flight"].as_u64().unwrap() > 0, "{d}");
        assert_eq!(d["ok"], true, "{d}");
    }

    let late = run_gates(&gates_dir("during-late"), &[]);
    assert_eq!(
        late.code, 1,
        "stdout:{}\nstderr:{}",
        late.stdout, late.stderr
    );
    let rep = late.report();
    let step = &Run::gate(&rep, "during-late")["steps"][0];
    assert_eq!(step["status"], "fail", "{step}");
    assert!(
        step["excerpt"]
            .as_str()
            .unwrap()
            .contains("did not happen during the storm"),
        "{step}"
    );

    let failing = run_gates(&gates_dir("during-fail"), &[]);
    assert_eq!(failing.code, 1, "stdout:{}", failing.stdout);
    let rep = failing.report();
    let step = &Run::gate(&rep, "during-fail")["steps"][0];
    assert_eq!(step["status"], "fail", "{step}");
    assert!(
        step["detail"]
            .as_str()
            .unwrap()
            .contains("(expected exit 0)"),
        "{step}"
    );
}

#[test]
fn verify_unwritable_reports_are_a_harness_error() {
    // The reports are written by a reporter at the run's end; when that fails (here `latest`
    // is a non-empty directory the pointer cannot replace) the run exits 2 and says why, even
    // though every gate passed.
    let reports = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(reports.path().join("latest").join("blocker")).unwrap();
    let out = Command::cargo_bin("trifecta-verify")
        .unwrap()
        .arg("gates")
        .arg("--gates-dir")
        .arg(gates_dir("pass"))
        .arg("--scenarios-dir")
        .arg(fixtures().join("scenarios"))
        .arg("--report-dir")
        .arg(reports.path())
        .args(["--seed", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(stdout.contains("PASS: ok ("), "{stdout}");
    assert!(stdout.contains("; exit 2\n"), "{stdout}");
    assert!(
        stdout.contains("ERROR: cannot write reports in "),
        "{stdout}"
    );
}

#[test]
fn verify_help_documents_exit_codes() {
    let out = Command::cargo_bin("trifecta-verify")
        .unwrap()
        .args(["gates", "--help"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let s = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "0  every required gate",
        "1  a required gate failed",
        "2  harness",
        "unknown --only id",
        "4  nothing ran",
        "partial run, not a release",
    ] {
        assert!(s.contains(needle), "{needle}: {s}");
    }
}

#[test]
fn verify_worktree_step_on_throwaway_repo() {
    let d = tempfile::tempdir().unwrap();
    let repo_dir = d.path().join("repo");
    std::fs::create_dir(&repo_dir).unwrap();
    let repo = git2::Repository::init(&repo_dir).unwrap();
    std::fs::write(repo_dir.join("committed.txt"), "v1").unwrap();
    let mut idx = repo.index().unwrap();
    idx.add_path(Path::new("committed.txt")).unwrap();
    idx.write().unwrap();
    let tree = repo.find_tree(idx.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("t", "t@example.com").unwrap();
    let oid = repo
        .commit(Some("HEAD"), &sig, &sig, "c1", &tree, &[])
        .unwrap();
    // Dirty the checkout: the worktree must not see it, the Evidence Header must.
    std::fs::write(repo_dir.join("uncommitted.txt"), "x").unwrap();

    let r = run_gates(
        &gates_dir("worktree"),
        &["--repo", repo_dir.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "stdout:{}\nstderr:{}", r.stdout, r.stderr);
    let rep = r.report();
    assert_eq!(rep["evidence"]["commit"], oid.to_string());
    assert_eq!(rep["evidence"]["dirty"], true);
    let g = Run::gate(&rep, "wt");
    assert!(
        g["steps"][0]["detail"]
            .as_str()
            .unwrap()
            .contains(&oid.to_string()),
        "{}",
        g["steps"][0]["detail"]
    );
    // Cleaned up: no worktree registered, no helper branch left.
    let repo = git2::Repository::open(&repo_dir).unwrap();
    assert_eq!(repo.worktrees().unwrap().len(), 0);
    assert_eq!(repo.branches(None).unwrap().count(), 1);

    // A failing build fails the gate.
    let gd = tempfile::tempdir().unwrap();
    let spec = std::fs::read_to_string(gates_dir("worktree").join("wt.toml"))
        .unwrap()
        .replace("cp committed.txt", "cp missing.txt");
    std::fs::write(gd.path().join("wt.toml"), spec).unwrap();
    let r = run_gates(gd.path(), &["--repo", repo_dir.to_str().unwrap()]);
    assert_eq!(r.code, 1, "stdout:{}\nstderr:{}", r.stdout, r.stderr);
}

#[test]
fn verify_repo_gates_are_valid() {
    // The real gates/ and scenarios/ of this repository validate (exit 0) and list every gate.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::cargo_bin("trifecta-verify")
        .unwrap()
        .arg("check")
        .current_dir(root)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::cargo_bin("trifecta-verify")
        .unwrap()
        .arg("list")
        .current_dir(root)
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    for id in [
        "g1-main-tests",
        "g2-clean-worktree",
        "g3-evidence-signals",
        "p2-corruption",
        "p2-stress",
        "p2-success-metrics",
        "p7-hostile-segment",
    ] {
        // Listed, and required (a failing required gate fails the release run).
        let line = s.lines().find(|l| l.split_whitespace().next() == Some(id));
        assert!(
            line.is_some_and(|l| l.split_whitespace().nth(1) == Some("required")),
            "{id}: {s}"
        );
    }
}

#[test]
fn verify_signal_checks_can_fail() {
    let r = run_gates(&gates_dir("signal"), &[]);
    assert_eq!(r.code, 1, "stdout:{}\nstderr:{}", r.stdout, r.stderr);
    let rep = r.report();
    let g = Run::gate(&rep, "signal");
    let st: Vec<String> = step_statuses(g).into_iter().map(|(_, s)| s).collect();
    assert_eq!(st, ["pass", "fail", "fail"]);
    let outside = g["steps"][1]["detail"].as_str().unwrap();
    assert!(outside.contains("src/bin/trifecta-verify.rs"), "{outside}");
    assert!(
        g["steps"][2]["detail"]
            .as_str()
            .unwrap()
            .contains("0 match(es)")
    );
}

fn step_by_index(gate: &Value, index: u64) -> &Value {
    gate["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["index"] == index)
        .unwrap_or_else(|| panic!("no step {index} in {gate}"))
}

#[test]
fn verify_tree_unchanged_catches_reads_writes_and_new_files_outside() {
    let r = run_gates(&gates_dir("outside-changed"), &[]);
    assert_eq!(r.code, 1, "stdout:{}\nstderr:{}", r.stdout, r.stderr);
    let rep = r.report();
    let g = Run::gate(&rep, "outside-changed");
    // Control: planting links in the segment touches nothing outside, and the check says so.
    let control = step_by_index(g, 3);
    assert_eq!(control["status"], "pass", "{control}");
    // Each later check fails, naming what happened.
    for (index, needle) in [
        (5, "read: evil.py"),
        (8, "written: evil.py"),
        (11, "new: new.py"),
    ] {
        let s = step_by_index(g, index);
        assert_eq!(s["kind"], "tree-unchanged", "{s}");
        assert_eq!(s["status"], "fail", "{s}");
        let d = s["detail"].as_str().unwrap();
        assert!(d.contains(needle), "step {index}: want {needle:?} in {d}");
    }
    // The write is also seen in the bytes, not only in the metadata.
    let w = step_by_index(g, 8)["detail"].as_str().unwrap().to_owned();
    assert!(w.contains("content changed: evil.py"), "{w}");
}

#[test]
fn verify_plant_refuses_a_linked_parent() {
    let r = run_gates(&gates_dir("plant-fails"), &[]);
    assert_eq!(r.code, 1, "stdout:{}\nstderr:{}", r.stdout, r.stderr);
    let rep = r.report();
    let g = Run::gate(&rep, "plant-fails");
    // The gate's own steps; the appended leak scan is tested on its own.
    let st: Vec<String> = step_statuses(g)
        .into_iter()
        .filter(|(k, _)| k != "no-abs-paths")
        .map(|(_, s)| s)
        .collect();
    assert_eq!(st, ["pass", "fail"]);
    let d = step_by_index(g, 2)["detail"].as_str().unwrap().to_owned();
    assert!(d.contains("parent `ext` is a symlink"), "{d}");
}

#[test]
fn verify_plant_bad_spec_exits_2_with_file_line() {
    let r = run_gates(&gates_dir("invalid-plant"), &[]);
    assert_eq!(r.code, 2, "stdout:{}\nstderr:{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("g.toml:7:"), "{}", r.stderr);
    assert!(
        r.stderr.contains("`target` is only for symlinks"),
        "{}",
        r.stderr
    );
}

/// The real `gates/p7-hostile-segment.toml` with the real scenarios.
fn run_p7(extra: &[&str]) -> Run {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let reports = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("trifecta-verify")
        .unwrap()
        .arg("gates")
        .args(["--only", "p7-hostile-segment", "--report-dir"])
        .arg(reports.path())
        .args(extra)
        .current_dir(root)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        reports,
    }
}

#[test]
fn verify_p7_hostile_segment_passes_and_fails_a_link_following_trifecta() {
    // The real binary passes (so the failures below are not failures for an unrelated reason).
    let ok = run_p7(&[]);
    assert_eq!(ok.code, 0, "stdout:{}\nstderr:{}", ok.stdout, ok.stderr);

    // A broken trifecta that follows links: before every command it reads whatever the
    // segment's links point at (outside files), and its cached answers include a symbol it
    // found there. Exit codes are kept, so every action still succeeds and the checks decide.
    let d = tempfile::tempdir().unwrap();
    let w = wrapper(
        d.path(),
        "link-following-trifecta",
        r#"SEG=.
prev=
for a in "$@"; do
  if [ "$prev" = "--segment" ]; then SEG="$a"; fi
  prev="$a"
done
find "$SEG" -type l | while read -r l; do [ -f "$l" ] && head -c 64 "$l" >/dev/null 2>&1; done
case " $* " in
  *" symbols "*" --persist-cache "*)
    out=$("$REAL" "$@"); rc=$?
    printf '%s\n' "$out" | sed -e 's/"symbols": \[$/"symbols": [{"kind": "function", "name": "outside_leak", "line": 2, "end_line": 3},/'
    exit $rc;;
esac
exec "$REAL" "$@""#,
    );
    let r = run_p7(&["--trifecta", w.to_str().unwrap()]);
    assert_eq!(r.code, 1, "stdout:{}\nstderr:{}", r.stdout, r.stderr);
    let rep = r.report();
    let g = Run::gate(&rep, "p7-hostile-segment");
    let steps = g["steps"].as_array().unwrap();
    let failed = |kind: &str| -> Vec<String> {
        steps
            .iter()
            .filter(|s| s["kind"] == kind && s["status"] == "fail")
            .map(|s| s["detail"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let outside = failed("tree-unchanged");
    assert!(!outside.is_empty(), "no tree-unchanged failed: {g}");
    assert!(outside[0].contains("read: "), "{outside:?}");
    let base = failed("baseline");
    assert!(!base.is_empty(), "no baseline failed: {g}");
    assert!(base[0].contains("outside_leak"), "{base:?}");
    // No action failed: the checks, not a crash, caught it.
    assert!(
        steps
            .iter()
            .all(|s| s["status"] != "skipped" && s["status"] != "error"),
        "{g}"
    );
}

#[test]
fn verify_partial_run_is_not_a_release_verdict() {
    // Both gates: a full run, no partial marks.
    let full = run_gates(&gates_dir("partial"), &[]);
    assert_eq!(
        full.code, 0,
        "stdout:{}\nstderr:{}",
        full.stdout, full.stderr
    );
    let rep = full.report();
    assert_eq!(rep["partial"], false);
    assert_eq!(rep["required_not_run"], serde_json::json!([]));
    assert!(
        !full
            .latest_file("walkthrough.md")
            .contains("not a release verdict")
    );

    // A required gate filtered out, by id and by tag: exit 0 but partial everywhere.
    for args in [&["--only", "part-a"][..], &["--tag", "a"]] {
        let r = run_gates(&gates_dir("partial"), args);
        assert_eq!(r.code, 0, "stdout:{}\nstderr:{}", r.stdout, r.stderr);
        let rep = r.report();
        assert_eq!(rep["partial"], true, "{args:?}");
        assert_eq!(rep["required_not_run"], serde_json::json!(["part-b"]));
        let md = r.latest_file("walkthrough.md");
        assert!(
            md.contains(
                "**partial run, not a release verdict**: required gate(s) not run: `part-b`"
            ),
            "{md}"
        );
        let xml = r.latest_file("junit.xml");
        assert!(
            xml.contains(r#"<property name="partial" value="true"/>"#),
            "{xml}"
        );
        assert!(xml.contains("partial run, not a release verdict"), "{xml}");
        assert!(r.stdout.contains("PARTIAL: partial run"), "{}", r.stdout);
    }
}

#[test]
fn verify_junit_names_seed_commit_digest_and_failing_output() {
    let r = run_gates(&gates_dir("wrong-jq"), &["--seed", "77"]);
    assert_eq!(r.code, 1, "stdout:{}\nstderr:{}", r.stdout, r.stderr);
    let rep = r.report();
    let xml = r.latest_file("junit.xml");
    let junit = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    assert!(junit.timestamp.is_some(), "{xml}");
    let suite = &junit.test_suites[0];
    assert!(suite.timestamp.is_some(), "{xml}");
    let prop = |name: &str| {
        suite
            .properties
            .iter()
            .find(|p| p.name.as_str() == name)
            .map(|p| p.value.as_str().to_string())
            .unwrap_or_else(|| panic!("no property {name} in {xml}"))
    };
    assert_eq!(prop("seed"), "77");
    assert_eq!(
        prop("checkout_commit"),
        rep["evidence"]["commit"].as_str().unwrap()
    );
    assert_eq!(
        prop("trifecta_blake3"),
        rep["evidence"]["trifecta_blake3"].as_str().unwrap()
    );
    assert_eq!(
        prop("trifecta_commit"),
        rep["evidence"]["trifecta_commit"].as_str().unwrap()
    );
    assert_eq!(prop("partial"), "false");
    // The failing check's own output, not just its verdict.
    let case = &suite.test_cases[0];
    let out = case
        .system_out
        .as_ref()
        .expect("system-out on a failing gate");
    assert!(out.as_str().contains("jaq -e"), "{}", out.as_str());
    assert!(out.as_str().contains("\"status\""), "{}", out.as_str());
}

#[test]
fn verify_version_names_commit_and_compiled_in_parsers() {
    for bin in ["trifecta", "trifecta-verify"] {
        let out = Command::cargo_bin(bin)
            .unwrap()
            .arg("--version")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0));
        let text = String::from_utf8_lossy(&out.stdout);
        let first = text.lines().next().unwrap();
        assert_eq!(first, format!("{bin} {}", env!("CARGO_PKG_VERSION")));
        for key in [
            "commit: ",
            "sqlite: 3.",
            "tree-sitter: 0.",
            "tree-sitter-python: 0.",
            "ruff_python_parser: 0.",
        ] {
            assert!(text.contains(key), "{bin}: {key} in {text}");
        }
        // This test runs in a checkout: the commit is a real 40-hex id, not `unknown`.
        let commit = trifecta::build_info::parse(&text).commit.unwrap();
        assert!(
            commit.len() == 40 && commit.chars().all(|c| c.is_ascii_hexdigit()),
            "{commit}"
        );
    }
}

#[test]
fn verify_evidence_names_the_tested_build_and_warns_on_mismatch_and_mutant() {
    // The real binary: its commit is recorded, and matches the checkout's.
    let r = run_gates(&gates_dir("pass"), &[]);
    assert_eq!(r.code, 0, "stdout:{}\nstderr:{}", r.stdout, r.stderr);
    let rep = r.report();
    let e = &rep["evidence"];
    assert_eq!(e["trifecta_commit"], e["commit"], "{e}");
    assert!(!e["warnings"].to_string().contains("MISMATCH"), "{e}");
    assert_eq!(e["mutant"], Value::Null);

    // A binary claiming another commit: the header says so before anything else.
    let d = tempfile::tempdir().unwrap();
    // It also notes the mutant it was given: `--mutant` reaches every trifecta the run starts.
    let seen = d.path().join("seen-mutant");
    let w = wrapper(
        d.path(),
        "other-commit-trifecta",
        &format!(
            r#"if [ "$1" = "--version" ]; then
  printf 'trifecta 0.1.0\ncommit: 0123456789abcdef0123456789abcdef01234567 (clean)\n'; exit 0
fi
printf '%s' "$TRIFECTA_MUTANT" > '{}'
# The real binary may be a release build, which refuses mutants: it runs without one.
unset TRIFECTA_MUTANT
exec "$REAL" "$@""#,
            seen.display()
        ),
    );
    let r = run_gates(
        &gates_dir("pass"),
        &[
            "--trifecta",
            w.to_str().unwrap(),
            "--mutant",
            "split-checksum",
        ],
    );
    assert_eq!(r.code, 0, "stdout:{}\nstderr:{}", r.stdout, r.stderr);
    let rep = r.report();
    let e = &rep["evidence"];
    assert_eq!(
        e["trifecta_commit"],
        "0123456789abcdef0123456789abcdef01234567"
    );
    assert_eq!(e["mutant"], "split-checksum");
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), "split-checksum");
    let md = r.latest_file("walkthrough.md");
    let header = md.split("- **Checkout commit**").next().unwrap();
    assert!(header.contains("⚠️ **Warning**: COMMIT MISMATCH"), "{md}");
    assert!(header.contains("TRIFECTA_MUTANT=split-checksum"), "{md}");
    let xml = r.latest_file("junit.xml");
    assert!(
        xml.contains(r#"<property name="mutant" value="split-checksum"/>"#),
        "{xml}"
    );
}

#[test]
fn verify_commands_are_replayable_and_in_process_checks_marked() {
    let r = run_gates(&gates_dir("pass"), &["--seed", "3"]);
    assert_eq!(r.code, 0, "stdout:{}\nstderr:{}", r.stdout, r.stderr);
    let rep = r.report();
    let g = Run::gate(&rep, "ok");
    let setup: Vec<&str> = g["setup"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(setup[0], "GATE_TMP=$(mktemp -d)");
    assert!(
        setup[1].starts_with("cp -R /") && setup[1].ends_with(r#"segment "$GATE_TMP/segment""#),
        "{setup:?}"
    );
    let commands: Vec<String> = g["steps"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| {
            s["commands"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
        })
        .collect();
    // No command names the gate's temp dir, which is deleted after the run.
    assert!(
        commands.iter().all(|c| !c.contains("/tv-ok-")),
        "{commands:#?}"
    );
    assert!(
        commands
            .iter()
            .any(|c| c.contains("--segment $GATE_TMP/segment")),
        "{commands:#?}"
    );
    for kind in ["jq", "files"] {
        let step = g["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["kind"] == kind)
            .unwrap();
        assert!(
            step["commands"][0]
                .as_str()
                .unwrap()
                .starts_with("# in-process: "),
            "{step}"
        );
    }
    let md = r.latest_file("walkthrough.md");
    assert!(
        md.contains("  # gate ok\n  GATE_TMP=$(mktemp -d)\n"),
        "{md}"
    );
}

#[test]
fn verify_leak_check_catches_home_and_working_directory_leaks() {
    // Real binary: every output (and the empty telemetry) scanned, nothing found.
    let ok = run_gates(&gates_dir("pass"), &[]);
    assert_eq!(ok.code, 0, "stdout:{}\nstderr:{}", ok.stdout, ok.stderr);
    let rep = ok.report();
    let leak_step = Run::gate(&rep, "ok")["steps"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(leak_step["kind"], "no-abs-paths");
    assert_eq!(leak_step["status"], "pass", "{leak_step}");

    let d = tempfile::tempdir().unwrap();
    // $HOME in a field that is not documented as absolute.
    let home = wrapper(
        d.path(),
        "home-leaking-trifecta",
        r#"out=$("$REAL" "$@"); rc=$?
printf '%s\n' "$out" | sed -e "s|\"status\": \"ok\"|\"status\": \"ok\", \"config\": \"$HOME/.config/trifecta\"|"
exit $rc"#,
    );
    // The working directory (the segment) in a telemetry event.
    let cwd = wrapper(
        d.path(),
        "cwd-leaking-trifecta",
        r#"mkdir -p _ctx/telemetry
printf '{"cmd":"debug","args":{"cwd":"%s/mod.py"}}\n' "$PWD" >> _ctx/telemetry/events.jsonl
exec "$REAL" "$@""#,
    );
    for (w, want) in [
        (&home, "leaks the $HOME"),
        (&cwd, "telemetry leaks the segment"),
    ] {
        let r = run_gates(&gates_dir("pass"), &["--trifecta", w.to_str().unwrap()]);
        assert_eq!(
            r.code, 1,
            "{want}: stdout:{}\nstderr:{}",
            r.stdout, r.stderr
        );
        let rep = r.report();
        let g = Run::gate(&rep, "ok");
        let leak_step = g["steps"].as_array().unwrap().last().unwrap();
        assert_eq!(leak_step["kind"], "no-abs-paths");
        assert_eq!(leak_step["status"], "fail", "{leak_step}");
        assert!(
            leak_step["detail"].as_str().unwrap().contains(want),
            "{leak_step}"
        );
        // The other checks still passed: the leak alone failed the gate.
        let others_failed = g["steps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["status"] == "fail")
            .count();
        assert_eq!(others_failed, 1, "{g}");
    }
}

#[test]
fn verify_slow_gates_get_progress_lines_off_a_terminal() {
    let d = tempfile::tempdir().unwrap();
    let w = wrapper(d.path(), "slow-trifecta", "sleep 1\nexec \"$REAL\" \"$@\"");
    let interval = Path::new("200");
    let r = run_gates_env(
        &gates_dir("partial"),
        &["--only", "part-a", "--trifecta", w.to_str().unwrap()],
        &[("TRIFECTA_VERIFY_SLOW_MS", interval)],
    );
    assert_eq!(r.code, 0, "stdout:{}\nstderr:{}", r.stdout, r.stderr);
    // The first step sleeps a second: several intervals pass while it runs.
    assert!(
        r.stdout
            .contains(r#"SLOW [> 0.2s] part-a step 1/2 run "first""#),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("SLOW [> 0.4s] part-a step 1/2"),
        "{}",
        r.stdout
    );
    // Total wall time in the summary and the walkthrough.
    assert!(r.stdout.contains("gate(s) in "), "{}", r.stdout);
    assert!(
        r.latest_file("walkthrough.md")
            .contains("- **Wall time**: ")
    );
}
