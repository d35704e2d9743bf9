//! Freshness under concurrency, for a `stress` step with `[steps.edit]`: a module is rewritten
//! atomically while the storm runs, every rewrite is journaled, and afterwards each answer for
//! that module is checked offline against the journal (the Jepsen way: record a history, then
//! check it).
//!
//! The rule: an answer is fresh when its symbols equal the uncached answer for some version that
//! was on disk at a moment between the invocation's start and its end. The CLI reads the file
//! once and answers for those bytes, and a rename is atomic, so a correct cache can only ever
//! produce fresh answers; a cache that serves an entry for replaced content cannot, once the
//! version it serves left the disk before the invocation began.
//!
//! Every version has the same size, and with `keep_stat` some rewrites also restore the previous
//! version's modification time, so a cache that trusts (size, mtime) to mean "unchanged" serves
//! stale answers. "On disk" is therefore always judged by the journal — the harness's own clock
//! just before and after each rename — and never by the file's mtime, which those rewrites make
//! lie about when the content changed.

use super::StressEdit;
use serde_json::Value;
use std::fs::FileTimes;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

/// The marker definition's name in version `k`: fixed width, so every version has the same size.
pub fn marker(k: usize) -> String {
    format!("_stress_edit_{k:06}")
}

/// The text of version `k`: the original plus a marker definition, so versions differ in symbols
/// (and not in size, for k below a million).
pub fn version_text(original: &str, k: usize) -> String {
    let sep = if original.is_empty() || original.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    format!("{original}{sep}\n\ndef {}():\n    pass\n", marker(k))
}

/// One rewrite: version `version` was renamed into place between `before_ms` and `after_ms`
/// (milliseconds since the storm started).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rewrite {
    /// The version now on disk.
    pub version: usize,
    /// Just before the rename.
    pub before_ms: f64,
    /// Just after the rename.
    pub after_ms: f64,
    /// The file's size and modification time after the rename were those of the version it
    /// replaced (as observed by `stat`): only the content tells them apart.
    pub same_stat: bool,
}

/// One answer for the edited module: its time window and which version's symbols it carries
/// (`None`: the symbols of no version at all).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// Label for reports (`proc P iter I`).
    pub label: String,
    /// Invocation start.
    pub invoke_ms: f64,
    /// Invocation end.
    pub done_ms: f64,
    /// The version whose uncached symbols the answer equals.
    pub served: Option<usize>,
}

/// When each version may have been on disk: `(version, from, until)`, conservative at both ends
/// (from the moment just before its rename in, until just after the rename that replaced it).
/// `rewrites[0]` is the initial version, written before the storm.
pub fn on_disk_windows(rewrites: &[Rewrite]) -> Vec<(usize, f64, f64)> {
    rewrites
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let until = rewrites.get(i + 1).map_or(f64::INFINITY, |n| n.after_ms);
            (r.version, r.before_ms, until)
        })
        .collect()
}

/// `[1, 2, 3]`: a list of numbers for a message.
pub fn numbers(v: &[usize]) -> String {
    let parts: Vec<String> = v.iter().map(usize::to_string).collect();
    format!("[{}]", parts.join(", "))
}

/// The distinct versions the answers carried, ascending.
pub fn versions_served(answers: &[Answer]) -> Vec<usize> {
    let mut seen: Vec<usize> = answers.iter().filter_map(|a| a.served).collect();
    seen.sort_unstable();
    seen.dedup();
    seen
}

/// The answers whose invocation began while a same-size, same-mtime version was on disk (after
/// its rename had completed): the ones a cache trusting (size, mtime) could answer stale.
pub fn began_on_same_stat(rewrites: &[Rewrite], answers: &[Answer]) -> usize {
    let windows: Vec<(f64, f64)> = rewrites
        .iter()
        .enumerate()
        .filter(|(_, r)| r.same_stat)
        .map(|(i, r)| {
            let until = rewrites.get(i + 1).map_or(f64::INFINITY, |n| n.before_ms);
            (r.after_ms, until)
        })
        .collect();
    answers
        .iter()
        .filter(|a| {
            windows
                .iter()
                .any(|&(from, until)| from <= a.invoke_ms && a.invoke_ms < until)
        })
        .count()
}

/// The problems in a history: answers matching no version, answers serving a version that was
/// not on disk at any moment of their invocation, and a vacuous history (fewer than two
/// rewrites, or fewer than two versions served: then nothing about freshness was tested; with
/// `want_same_stat`, also no invocation that began while a same-size, same-mtime version was on
/// disk: then (size, mtime) trust was not tested).
pub fn check(rewrites: &[Rewrite], answers: &[Answer], want_same_stat: bool) -> Vec<String> {
    let windows = on_disk_windows(rewrites);
    let mut problems = Vec::new();
    let seen = versions_served(answers);
    if rewrites.len() < 2 || seen.len() < 2 {
        problems.push(format!(
            "vacuous: {} rewrites, answers served versions {}; the edits must overlap the \
             storm so that at least two versions are served",
            rewrites.len(),
            numbers(&seen)
        ));
    }
    if want_same_stat && began_on_same_stat(rewrites, answers) == 0 {
        let kept = rewrites.iter().filter(|r| r.same_stat).count();
        problems.push(format!(
            "vacuous: no invocation began while a same-size, same-mtime version was on disk \
             ({kept} rewrites kept size and mtime)"
        ));
    }
    for a in answers {
        let Some(v) = a.served else {
            problems.push(format!("{}: symbols match no version of the file", a.label));
            continue;
        };
        let fresh = windows
            .iter()
            .any(|&(w, from, until)| w == v && from <= a.done_ms && a.invoke_ms <= until);
        if !fresh {
            problems.push(format!(
                "{}: served version {v}, which was not on disk during [{:.1}, {:.1}] ms (stale)",
                a.label, a.invoke_ms, a.done_ms
            ));
        }
    }
    problems
}

/// The background rewriter. Dropping it without [`Editor::finish`] still stops the thread.
pub struct Editor {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<std::io::Result<Vec<Rewrite>>>>,
}

impl Editor {
    /// Put version 0 in place before returning (so no invocation can see the original text),
    /// then keep renaming the next version into place every `edit.every_ms` until stopped.
    /// After each rewrite that gets a new mtime, `edit.keep_stat` rewrites restore the previous
    /// version's mtime before their rename. Times are measured from `t0`.
    pub fn start(
        segment: &Path,
        edit: &StressEdit,
        original: &str,
        t0: Instant,
    ) -> std::io::Result<Self> {
        let target: PathBuf = segment.join(&edit.file);
        let tmp = target.with_extension("py.stress-tmp");
        let mut prev: Option<(u64, SystemTime)> = None;
        let mut put = move |k: usize, text: &str, keep: bool| -> std::io::Result<Rewrite> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(version_text(text, k).as_bytes())?;
            if let (true, Some((_, mtime))) = (keep, prev) {
                // futimens(2) on the new file, before it is renamed into place: it appears
                // with the replaced version's mtime (and, by construction, its size).
                f.set_times(FileTimes::new().set_modified(mtime).set_accessed(mtime))?;
            }
            drop(f);
            let before_ms = t0.elapsed().as_secs_f64() * 1e3;
            std::fs::rename(&tmp, &target)?;
            let after_ms = t0.elapsed().as_secs_f64() * 1e3;
            let m = std::fs::metadata(&target)?;
            let stat = (m.len(), m.modified()?);
            let same_stat = prev == Some(stat);
            prev = Some(stat);
            Ok(Rewrite {
                version: k,
                before_ms,
                after_ms,
                same_stat,
            })
        };
        let first = put(0, original, false)?;
        let stop = Arc::new(AtomicBool::new(false));
        let every = Duration::from_millis(edit.every_ms);
        let run = edit.keep_stat + 1;
        let original = original.to_owned();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut log = vec![first];
            let mut k = 0;
            loop {
                std::thread::sleep(every);
                if flag.load(Ordering::SeqCst) {
                    return Ok(log);
                }
                k += 1;
                log.push(put(k, &original, k % run != 0)?);
            }
        });
        Ok(Editor {
            stop,
            thread: Some(thread),
        })
    }

    /// Stop rewriting; the journal, or the I/O error that stopped the editor early.
    pub fn finish(mut self) -> Result<Vec<Rewrite>, String> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(Ok(log))) => Ok(log),
            Some(Ok(Err(e))) => Err(format!("editor stopped: {e}")),
            Some(Err(_)) => Err("editor thread panicked".into()),
            None => Err("editor already finished".into()),
        }
    }
}

impl Drop for Editor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Which version an answer is for: `k` when it is exactly version 0's uncached answer (symbols
/// and syntax errors) with version 0's marker renamed to version `k`'s; versions differ only in
/// that name, so one uncached run serves as the reference for all of them.
pub fn served_version(answer: &Value, version0: &Value) -> Option<usize> {
    let k: usize = answer
        .get("symbols")?
        .as_array()?
        .iter()
        .filter_map(|s| {
            s.get("name")?
                .as_str()?
                .strip_prefix("_stress_edit_")?
                .parse()
                .ok()
        })
        .next_back()?;
    let name = marker(k);
    let mut canonical = answer.clone();
    for s in canonical.get_mut("symbols")?.as_array_mut()? {
        if s.get("name").and_then(Value::as_str) == Some(name.as_str()) {
            s["name"] = Value::from(marker(0));
        }
    }
    let same = |f: &str| canonical.get(f) == version0.get(f);
    (same("symbols") && same("syntax_errors")).then_some(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw(version: usize, at: f64) -> Rewrite {
        Rewrite {
            version,
            before_ms: at,
            after_ms: at + 0.1,
            same_stat: false,
        }
    }

    fn answer(invoke_ms: f64, done_ms: f64, served: Option<usize>) -> Answer {
        Answer {
            label: format!("at {invoke_ms}"),
            invoke_ms,
            done_ms,
            served,
        }
    }

    #[test]
    fn answers_within_their_versions_window_are_fresh() {
        let log = [rw(0, 0.0), rw(1, 10.0), rw(2, 20.0)];
        let ok = [
            answer(1.0, 5.0, Some(0)),
            answer(8.0, 12.0, Some(0)),  // v0 until ~10.1
            answer(8.0, 12.0, Some(1)),  // v1 from 10.0
            answer(25.0, 30.0, Some(2)), // the last version stays on disk
        ];
        assert_eq!(check(&log, &ok, false), Vec::<String>::new());
    }

    #[test]
    fn a_stale_or_foreign_answer_is_reported() {
        let log = [rw(0, 0.0), rw(1, 10.0), rw(2, 20.0)];
        let bad = [
            answer(12.0, 15.0, Some(0)), // v0 left the disk at ~10.1: stale
            answer(1.0, 5.0, Some(2)),   // v2 not written yet
            answer(1.0, 5.0, None),
        ];
        let problems = check(&log, &bad, false);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("stale"), "{problems:?}");
        assert!(problems[2].contains("no version"), "{problems:?}");
    }

    #[test]
    fn a_vacuous_history_is_reported() {
        // A single version served, or a single rewrite: nothing about freshness was tested.
        let log = [rw(0, 0.0), rw(1, 10.0), rw(2, 20.0)];
        let one_version = [answer(1.0, 5.0, Some(0)), answer(2.0, 6.0, Some(0))];
        let problems = check(&log, &one_version, false);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("vacuous"), "{problems:?}");
        let one_rewrite = check(
            &log[..1],
            &[answer(1.0, 5.0, Some(0)), answer(6.0, 7.0, Some(0))],
            false,
        );
        assert_eq!(one_rewrite.len(), 1, "{one_rewrite:?}");
    }

    #[test]
    fn versions_differ_and_keep_the_original() {
        let a = version_text("def f():\n    pass", 0);
        let b = version_text("def f():\n    pass", 1);
        assert!(a.starts_with("def f():\n    pass\n"));
        assert_ne!(a, b);
        assert!(b.ends_with("def _stress_edit_000001():\n    pass\n"));
        let c = version_text("def f():\n    pass", 123_456);
        assert_eq!(a.len(), c.len(), "every version has the same size");
    }

    #[test]
    fn served_version_reads_the_marker_and_checks_everything_else() {
        let v0 = serde_json::json!({"symbols": [
            {"kind": "function", "name": "f", "line": 1, "end_line": 2},
            {"kind": "function", "name": "_stress_edit_000000", "line": 5, "end_line": 6}],
            "syntax_errors": []});
        let mut v7 = v0.clone();
        v7["symbols"][1]["name"] = "_stress_edit_000007".into();
        assert_eq!(served_version(&v7, &v0), Some(7));
        assert_eq!(served_version(&v0, &v0), Some(0));
        let mut wrong = v7.clone();
        wrong["symbols"][0]["line"] = 2.into();
        assert_eq!(
            served_version(&wrong, &v0),
            None,
            "other symbols must match too"
        );
        let mut original = v0.clone();
        original["symbols"].as_array_mut().unwrap().pop();
        assert_eq!(
            served_version(&original, &v0),
            None,
            "the unedited text is no version"
        );
    }

    #[test]
    fn the_editor_journals_rewrites_and_leaves_the_last_version() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("m.py"), "x = 1\n").unwrap();
        let edit = StressEdit {
            file: "m.py".into(),
            uri: "sym://python/mod/m".into(),
            every_ms: 1,
            keep_stat: 0,
        };
        let ed = Editor::start(d.path(), &edit, "x = 1\n", Instant::now()).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        let log = ed.finish().unwrap();
        assert!(log.len() >= 3, "{log:?}");
        let versions: Vec<usize> = log.iter().map(|r| r.version).collect();
        assert_eq!(versions, (0..log.len()).collect::<Vec<_>>(), "never reused");
        assert!(log.windows(2).all(|w| w[1].before_ms >= w[0].after_ms));
        let last = log.last().unwrap().version;
        let on_disk = std::fs::read_to_string(d.path().join("m.py")).unwrap();
        assert_eq!(on_disk, version_text("x = 1\n", last));
    }

    #[test]
    fn kept_rewrites_have_the_replaced_versions_size_and_mtime() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("m.py");
        std::fs::write(&path, "x = 1\n").unwrap();
        let edit = StressEdit {
            file: "m.py".into(),
            uri: "sym://python/mod/m".into(),
            every_ms: 2,
            keep_stat: 2,
        };
        let t0 = Instant::now();
        let ed = Editor::start(d.path(), &edit, "x = 1\n", t0).unwrap();
        // Watch the file: a kept rewrite changes the content, never the size or the mtime.
        let mut seen = Vec::new();
        while t0.elapsed() < Duration::from_millis(60) {
            if let (Ok(m), Ok(text)) = (std::fs::metadata(&path), std::fs::read_to_string(&path)) {
                seen.push((m.len(), m.modified().unwrap(), text));
            }
            std::thread::sleep(Duration::from_micros(300));
        }
        let log = ed.finish().unwrap();
        assert!(log.len() >= 6, "{log:?}");
        // Versions 1, 2, 4, 5, … restore the mtime of the version they replace.
        for r in &log[1..] {
            if r.version % 3 != 0 {
                assert!(
                    r.same_stat,
                    "version {} kept size and mtime: {log:?}",
                    r.version
                );
            }
        }
        assert!(!log[0].same_stat, "version 0 replaced nothing");
        let texts: std::collections::BTreeSet<_> = seen.iter().map(|s| s.2.clone()).collect();
        assert!(texts.len() >= 3, "the content kept changing");
        assert!(
            seen.iter().all(|s| s.0 == seen[0].0),
            "every version has the same size"
        );
    }

    #[test]
    fn a_history_without_answers_on_same_stat_versions_is_vacuous_when_wanted() {
        let mut log = vec![rw(0, 0.0), rw(1, 10.0), rw(2, 20.0)];
        log[1].same_stat = true;
        let ok = [answer(1.0, 5.0, Some(0)), answer(25.0, 30.0, Some(2))];
        assert_eq!(check(&log, &ok, false), Vec::<String>::new());
        let problems = check(&log, &ok, true);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("same-size, same-mtime"),
            "{problems:?}"
        );
        // An invocation that began while version 1 (same stat) was on disk tests it.
        let tested = [
            answer(1.0, 5.0, Some(0)),
            answer(12.0, 14.0, Some(1)),
            answer(25.0, 30.0, Some(2)),
        ];
        assert_eq!(began_on_same_stat(&log, &tested), 1);
        assert_eq!(check(&log, &tested, true), Vec::<String>::new());
        // Serving version 0 then is stale, whatever the file's mtime says.
        let stale = [answer(1.0, 5.0, Some(1)), answer(12.0, 14.0, Some(0))];
        let problems = check(&log, &stale, true);
        assert!(
            problems.iter().any(|p| p.contains("(stale)")),
            "{problems:?}"
        );
    }
}
