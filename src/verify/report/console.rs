//! Console reporter: renders runner events. On a terminal (stderr) an indicatif progress bar;
//! otherwise plain lit-style lines for log scraping: `PASS: id (1.2s)` / `FAIL: id — reason`.
//! The result lines always go to stdout, the bar to stderr.

use super::Status;
use crate::verify::runner::RunEvent;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{IsTerminal, Write};

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
            RunEvent::Finished { report, written } => {
                if let Some(b) = self.bar.take() {
                    b.finish_and_clear();
                }
                let t = &report.totals;
                self.line(&format!(
                    "Summary: {} passed, {} failed, {} errors, {} skipped of {} gate(s); exit {}",
                    t.passed, t.failed, t.errors, t.skipped, t.total, report.exit_code
                ));
                match written {
                    Ok(p) => self.line(&format!("Walkthrough: {}", p.display())),
                    Err(e) => self.line(&format!("ERROR: {e}")),
                }
            }
        }
    }
}

impl Default for Console {
    fn default() -> Self {
        Self::new()
    }
}
