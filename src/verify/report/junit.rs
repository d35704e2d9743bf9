//! `junit.xml` (Jenkins flavour via quick-junit): one suite, one test case per gate. Output is
//! kept only for failures (nextest's default), so the file stays small. The suite carries the
//! run's identity as `<properties>` (seed, checkout commit, the commit and BLAKE3 of the binary
//! tested, mutant, partial-run flag) and a timestamp, so a CI page alone names what was gated.

use crate::verify::event::{GateReport, RunReport, Status};
use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

/// The sentence every reporter uses for a run that filtered out required gates.
pub const PARTIAL: &str = "partial run, not a release verdict";

/// Render the run as JUnit XML. Counts equal [`RunReport::totals`] by construction.
pub fn render(run: &RunReport) -> Result<String, quick_junit::SerializeError> {
    let mut report = Report::new("trifecta-verify");
    let mut suite = TestSuite::new("gates");
    suite.add_properties(properties(run));
    if let Ok(ts) = chrono::DateTime::parse_from_rfc3339(&run.evidence.date_utc) {
        report.set_timestamp(ts);
        suite.set_timestamp(ts);
    }
    if run.partial {
        suite.set_system_out(format!(
            "{PARTIAL}: required gate(s) not run: {}",
            run.required_not_run.join(", ")
        ));
    }
    for g in &run.gates {
        suite.add_test_case(test_case(g, run.partial));
    }
    report.add_test_suite(suite);
    report.set_time(Duration::from_secs_f64(run.duration_s.max(0.0)));
    report.to_string()
}

fn properties(run: &RunReport) -> Vec<Property> {
    let e = &run.evidence;
    let mut p = vec![
        Property::new("seed", e.seed.to_string()),
        Property::new("checkout_commit", e.commit.clone()),
        Property::new("checkout_dirty", e.dirty.to_string()),
        Property::new(
            "trifecta_commit",
            e.trifecta_commit
                .clone()
                .unwrap_or_else(|| "unknown".into()),
        ),
        Property::new(
            "trifecta_tree",
            e.trifecta_tree.clone().unwrap_or_else(|| "unknown".into()),
        ),
        Property::new("trifecta_blake3", e.trifecta_blake3.clone()),
        Property::new("partial", run.partial.to_string()),
    ];
    if run.partial {
        p.push(Property::new("verdict", PARTIAL));
        p.push(Property::new(
            "required_not_run",
            run.required_not_run.join(","),
        ));
    }
    if let Some(m) = &e.mutant {
        p.push(Property::new("mutant", m.clone()));
    }
    for (i, w) in e.warnings.iter().enumerate() {
        p.push(Property::new(format!("warning.{}", i + 1), w.clone()));
    }
    p
}

/// Message, description and output of a failed or errored gate: the first failure as the
/// message, every bad step's detail as the body, and their output excerpts plus log paths in
/// `<system-out>` so the CI page shows what the check saw.
fn non_success(g: &GateReport) -> (TestCaseStatus, String) {
    let kind = if g.status == Status::Fail {
        NonSuccessKind::Failure
    } else {
        NonSuccessKind::Error
    };
    let mut s = TestCaseStatus::non_success(kind);
    s.set_message(g.reason.clone().unwrap_or_default());
    let bad: Vec<_> = g
        .steps
        .iter()
        .filter(|s| matches!(s.status, Status::Fail | Status::Error))
        .collect();
    let detail: Vec<String> = bad
        .iter()
        .map(|s| format!("step {} ({}) {}: {}", s.index, s.kind, s.label, s.detail))
        .collect();
    s.set_description(detail.join("\n\n"));
    let out: Vec<String> = bad
        .iter()
        .map(|s| {
            let logs = if s.logs.is_empty() {
                String::new()
            } else {
                format!("\nlogs (relative to the report dir): {}", s.logs.join(", "))
            };
            format!(
                "--- step {} ({}) {}\n{}\n{}{logs}",
                s.index,
                s.kind,
                s.label,
                s.commands.join("\n"),
                s.excerpt
            )
        })
        .collect();
    (s, out.join("\n\n"))
}

fn test_case(g: &GateReport, partial: bool) -> TestCase {
    let (status, system_out) = match g.status {
        Status::Pass => (TestCaseStatus::success(), String::new()),
        Status::Fail | Status::Error => non_success(g),
        Status::Skipped => {
            let mut s = TestCaseStatus::skipped();
            let why = g.reason.clone().unwrap_or_else(|| "not run".into());
            s.set_message(if partial && g.required {
                format!("{why} ({PARTIAL})")
            } else {
                why
            });
            (s, String::new())
        }
    };
    let mut tc = TestCase::new(g.id.clone(), status);
    tc.set_classname(format!(
        "gates.{}",
        if g.required { "required" } else { "optional" }
    ));
    tc.set_time(Duration::from_secs_f64(g.duration_s.max(0.0)));
    if !system_out.is_empty() {
        tc.set_system_out(system_out);
    }
    tc
}
