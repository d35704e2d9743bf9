//! Console reporter: renders runner events. On a terminal (stderr) an indicatif progress bar;
//! otherwise plain lit-style lines for log scraping: `PASS: id (1.2s)` / `FAIL: id — reason`,
//! and for a gate still running after each interval a nextest-style
//! `SLOW [> 30s] p2-stress step 3/7 stress "storm"` line, so a CI log never goes silent.
//! The result lines always go to stdout, the bar to stderr.

use crate::verify::event::{RunEvent, RunReport, Status};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

/// Renders [`RunEvent`]s for a human or a CI log.
pub struct Console {
    bar: Option<ProgressBar>,
}

impl Console {
    /// A bar only when stderr is a terminal.
    pub fn new() -> Self {
        Console { bar: None }
    }

    fn line(&self, s: &str) {
        match &self.bar {
            Some(b) => b.println(s),
            None => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{s}");
            }
        }
    }

    /// Render one event.
    pub fn on(&mut self, ev: &RunEvent) {
        match ev {
            RunEvent::Started {
                run_id,
                seed,
                seed_source,
                selected,
                run_dir,
            } => {
                self.line(&format!(
                    "trifecta-verify: run {run_id}, {selected} gate(s), seed {seed} ({seed_source}), reports in {}",
                    run_dir.display()
                ));
                if std::io::stderr().is_terminal() {
                    let b = ProgressBar::new(*selected as u64);
                    if let Ok(st) =
                        ProgressStyle::with_template("{bar:30} {pos}/{len} gates  {elapsed}  {msg}")
                    {
                        b.set_style(st);
                    }
                    self.bar = Some(b);
                }
            }
            RunEvent::GateStarted { id } => {
                if let Some(b) = &self.bar {
                    b.set_message(id.clone());
                }
            }
            RunEvent::Slow {
                id,
                elapsed,
                step,
                steps,
                kind,
                label,
            } => {
                let s = slow_line(id, *elapsed, *step, *steps, kind, label);
                match &self.bar {
                    // On a terminal the bar already ticks; show where it is instead.
                    Some(b) => b.set_message(s),
                    None => self.line(&s),
                }
            }
            RunEvent::GateFinished(g) => {
                let s = match g.status {
                    Status::Pass => format!("PASS: {} ({:.1}s)", g.id, g.duration_s),
                    st => format!(
                        "{}: {} — {} ({:.1}s)",
                        st.label(),
                        g.id,
                        g.reason.as_deref().unwrap_or("-"),
                        g.duration_s
                    ),
                };
                self.line(&s);
                if let Some(b) = &self.bar {
                    b.inc(1);
                }
            }
            // The closing lines need to know where the report files went: [`Console::finish`].
            RunEvent::Finished(_) => {}
        }
    }

    /// The closing lines: summary, partial-run and evidence warnings, where the walkthrough is
    /// (or why the reports could not be written).
    pub fn finish(&mut self, report: &RunReport, written: &Result<PathBuf, String>) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        let t = &report.totals;
        self.line(&format!(
            "Summary: {} passed, {} failed, {} errors, {} skipped of {} gate(s) in {:.1}s; exit {}",
            t.passed, t.failed, t.errors, t.skipped, t.total, report.duration_s, report.exit_code
        ));
        if report.partial {
            self.line(&format!(
                "PARTIAL: {}: required gate(s) not run: {}",
                super::junit::PARTIAL,
                report.required_not_run.join(", ")
            ));
        }
        for w in &report.evidence.warnings {
            self.line(&format!("WARNING: {w}"));
        }
        match written {
            Ok(p) => self.line(&format!("Walkthrough: {}", p.display())),
            Err(e) => self.line(&format!("ERROR: {e}")),
        }
    }
}

/// `SLOW [> 30s] p2-stress step 3/7 stress "storm"`.
pub fn slow_line(
    id: &str,
    elapsed: std::time::Duration,
    step: usize,
    steps: usize,
    kind: &str,
    label: &str,
) -> String {
    let ms = elapsed.as_millis();
    let secs = if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", elapsed.as_secs_f64())
    };
    format!("SLOW [> {secs}] {id} step {step}/{steps} {kind} {label:?}")
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn slow_line_format() {
        assert_eq!(
            super::slow_line(
                "p2-stress",
                Duration::from_secs(30),
                3,
                7,
                "stress",
                "storm"
            ),
            r#"SLOW [> 30s] p2-stress step 3/7 stress "storm""#
        );
        assert!(
            super::slow_line("g", Duration::from_millis(200), 1, 1, "run", "x")
                .starts_with("SLOW [> 0.2s] g")
        );
    }
}
