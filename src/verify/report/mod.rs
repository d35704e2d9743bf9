//! The reporters: they consume the runner's [`RunEvent`]s and the final [`RunReport`] (in
//! `event`) and render them: console progress ([`console`]), `walkthrough.md` ([`markdown`]),
//! `report.json` and `junit.xml` ([`junit`]). Files are written atomically (a temporary sibling,
//! then a rename in the same directory). [`Reporters`] is the set a `gates` run feeds.

pub mod console;
pub mod junit;
pub mod markdown;

use super::event::{EXIT_HARNESS, RunEvent, RunReport};
use std::path::{Path, PathBuf};

/// Every reporter of a `gates` run, fed the runner's events in order: the console renders each
/// one; at [`RunEvent::Finished`] the report files are written first, so the console's last
/// lines can say where they are (or why they are not).
pub struct Reporters {
    console: console::Console,
    report_dir: PathBuf,
    run_dir: PathBuf,
    exit_code: Option<i32>,
}

impl Reporters {
    /// Console plus report files in `run_dir` (pointers `latest`/`LATEST` in `report_dir`).
    pub fn new(report_dir: PathBuf, run_dir: PathBuf) -> Self {
        Reporters {
            console: console::Console::new(),
            report_dir,
            run_dir,
            exit_code: None,
        }
    }

    /// Handle one event.
    pub fn on(&mut self, ev: &RunEvent) {
        let RunEvent::Finished(report) = ev else {
            return self.console.on(ev);
        };
        let written = write_all(report, &self.report_dir, &self.run_dir)
            .map(|w| w.walkthrough)
            .map_err(|e| format!("cannot write reports in {}: {e}", self.run_dir.display()));
        let mut report = report.as_ref().clone();
        if written.is_err() {
            // Reports that cannot be written are a harness failure, whatever the gates said.
            report.exit_code = EXIT_HARNESS;
        }
        self.console.finish(&report, &written);
        self.exit_code = Some(report.exit_code);
    }

    /// The run's exit code once [`RunEvent::Finished`] was handled (the report's, or
    /// `EXIT_HARNESS` when its files could not be written).
    pub fn exit_code(&self) -> Option<i32> {
        self.exit_code
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
