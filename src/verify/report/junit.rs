//! `junit.xml` (Jenkins flavour via quick-junit): one suite, one test case per gate. Output is
//! kept only for failures (nextest's default), so the file stays small.

use super::{RunReport, Status};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

/// Render the run as JUnit XML. Counts equal [`RunReport::totals`] by construction.
pub fn render(run: &RunReport) -> Result<String, quick_junit::SerializeError> {
    let mut report = Report::new("trifecta-verify");
    let mut suite = TestSuite::new("gates");
    for g in &run.gates {
        let status = match g.status {
            Status::Pass => TestCaseStatus::success(),
            Status::Fail | Status::Error => {
                let kind = if g.status == Status::Fail {
                    NonSuccessKind::Failure
                } else {
                    NonSuccessKind::Error
                };
                let mut s = TestCaseStatus::non_success(kind);
                s.set_message(g.reason.clone().unwrap_or_default());
                let detail: Vec<String> = g
                    .steps
                    .iter()
                    .filter(|s| matches!(s.status, Status::Fail | Status::Error))
                    .map(|s| {
                        format!(
                            "step {} ({}) {}: {}\n{}",
                            s.index, s.kind, s.label, s.detail, s.excerpt
                        )
                    })
                    .collect();
                s.set_description(detail.join("\n\n"));
                s
            }
            Status::Skipped => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(g.reason.clone().unwrap_or_else(|| "not run".into()));
                s
            }
        };
        let mut tc = TestCase::new(g.id.clone(), status);
        tc.set_classname(format!(
            "gates.{}",
            if g.required { "required" } else { "optional" }
        ));
        tc.set_time(Duration::from_secs_f64(g.duration_s.max(0.0)));
        suite.add_test_case(tc);
    }
    report.add_test_suite(suite);
    report.set_time(Duration::from_secs_f64(run.duration_s.max(0.0)));
    report.to_string()
}
