//! `trifecta-verify merge DIR…`: join the reports of `gates --shard K/N` into one run. The merged
//! [`RunReport`] is built from the shards' own gate reports (each gate taken from the one shard
//! that ran it) and written by the same [`report::write_all`] as an unsharded run, so verdicts,
//! counts, exit code and file structure match what one process would have produced.
//!
//! A merge is refused (exit 2) unless the shards provably belong to one run: same commit and
//! dirty flag, same binary under test (BLAKE3), same seed and revision, same N, method and gate
//! selection, no shard twice, none missing, and partitions that cover the selection exactly once.
//! An incomplete set is never merged: its verdict would read as a full release verdict.

use super::event::{self, EXIT_HARNESS, GateReport, RunReport};
use super::report;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use super::event::MergedShard;

/// A shard report and the run directory it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Run directory (holds `report.json` and `gates/<id>/` logs).
    pub dir: PathBuf,
    /// The parsed report.
    pub report: RunReport,
}

/// Read `DIR/report.json` (a `report.json` path is accepted too); it must be a shard report.
pub fn load(path: &Path) -> Result<Loaded, String> {
    let (dir, file) = if path.is_dir() {
        (path.to_path_buf(), path.join("report.json"))
    } else {
        let parent = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        (parent, path.to_path_buf())
    };
    let text = std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let report: RunReport = serde_json::from_str(&text)
        .map_err(|e| format!("{}: not a trifecta-verify report: {e}", file.display()))?;
    if report.shard.is_none() {
        return Err(format!(
            "{}: not a shard report (no `shard`; produce shards with `gates --shard K/N`)",
            file.display()
        ));
    }
    Ok(Loaded { dir, report })
}

/// A fact every shard of one run must share, rendered for comparison and for the message.
type Fact = (&'static str, fn(&RunReport) -> String);

const SHARED_FACTS: &[Fact] = &[
    ("commit", |r| r.evidence.commit.clone()),
    ("dirty working tree", |r| r.evidence.dirty.to_string()),
    ("binary under test (trifecta_blake3)", |r| {
        r.evidence.trifecta_blake3.clone()
    }),
    ("seed", |r| r.evidence.seed.to_string()),
    ("worktree revision", |r| r.evidence.rev.clone()),
    ("shard count N", |r| shard_of(r).count.to_string()),
    ("partition method", |r| format!("{:?}", shard_of(r).method)),
    ("gate selection", |r| shard_of(r).selected.join(",")),
    ("gate list", |r| {
        r.gates
            .iter()
            .map(|g| g.id.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }),
];

fn shard_of(r: &RunReport) -> &super::shard::ShardInfo {
    r.shard.as_ref().expect("load() admits shard reports only")
}

/// Every reason `shards` cannot be merged into one run (empty = they can).
pub fn problems(shards: &[Loaded]) -> Vec<String> {
    let mut out = Vec::new();
    let Some(first) = shards.first() else {
        return vec!["no shard reports given".into()];
    };
    for (what, fact) in SHARED_FACTS {
        let want = fact(&first.report);
        if shards.iter().any(|s| fact(&s.report) != want) {
            let seen: Vec<String> = shards
                .iter()
                .map(|s| format!("{}: {}", s.dir.display(), fact(&s.report)))
                .collect();
            out.push(format!(
                "shards disagree on {what} — not one run:\n    {}",
                seen.join("\n    ")
            ));
        }
    }
    if !out.is_empty() {
        return out;
    }
    out.extend(set_problems(shards));
    if out.is_empty() {
        out.extend(partition_problems(shards));
    }
    out
}

/// Duplicates and gaps in 1..=N.
fn set_problems(shards: &[Loaded]) -> Vec<String> {
    let n = shard_of(&shards[0].report).count;
    let mut by_index: BTreeMap<usize, Vec<&Path>> = BTreeMap::new();
    for s in shards {
        by_index
            .entry(shard_of(&s.report).index)
            .or_default()
            .push(&s.dir);
    }
    let mut out = Vec::new();
    for (k, dirs) in &by_index {
        if dirs.len() > 1 {
            let list: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            out.push(format!(
                "shard {k}/{n} given {} times: {}",
                dirs.len(),
                list.join(", ")
            ));
        }
    }
    let missing: Vec<String> = (1..=n)
        .filter(|k| !by_index.contains_key(k))
        .map(|k| format!("{k}/{n}"))
        .collect();
    if !missing.is_empty() {
        out.push(format!(
            "incomplete set: missing shard {} — refusing to merge, since a partial merge would \
             read as a full release verdict",
            missing.join(", ")
        ));
    }
    out
}

/// Each selected gate assigned to exactly one shard (the gate lists already agree, so the
/// owner has a result for it).
fn partition_problems(shards: &[Loaded]) -> Vec<String> {
    let selected = &shard_of(&shards[0].report).selected;
    let mut owners: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut out = Vec::new();
    for s in shards {
        let info = shard_of(&s.report);
        for id in &info.assigned {
            owners.entry(id).or_default().push(info.index);
        }
    }
    for id in selected {
        match owners.get(id.as_str()).map(Vec::as_slice) {
            Some([_]) => {}
            Some(many) => out.push(format!(
                "gate `{id}` ran in shards {many:?}: the shards computed different partitions \
                 (different --durations files?)"
            )),
            None => out.push(format!(
                "gate `{id}` ran in no shard: the shards computed different partitions \
                 (different --durations files?)"
            )),
        }
    }
    for id in owners.keys() {
        if !selected.iter().any(|s| s == id) {
            out.push(format!("gate `{id}` ran but is not in the selection"));
        }
    }
    out
}

/// Join checked shards into one run report: each selected gate from the shard that ran it,
/// the rest (not selected by `--only`/`--tag`) as every shard recorded them.
pub fn combine(shards: &[Loaded], run_id: String, command_line: &str) -> RunReport {
    let mut sorted: Vec<&Loaded> = shards.iter().collect();
    sorted.sort_by_key(|s| shard_of(&s.report).index);
    let base = &sorted[0].report;
    let owner_of = |id: &str| {
        sorted
            .iter()
            .find(|s| shard_of(&s.report).runs(id))
            .map(|s| &s.report)
    };
    let gates: Vec<GateReport> = base
        .gates
        .iter()
        .map(|g| {
            owner_of(&g.id)
                .and_then(|r| r.gates.iter().find(|x| x.id == g.id))
                .unwrap_or(g)
                .clone()
        })
        .collect();
    let mut faults: Vec<event::ScheduledFault> = sorted
        .iter()
        .flat_map(|s| s.report.fault_schedule.iter().cloned())
        .collect();
    faults.sort_by(|a, b| (a.gate.as_str(), a.step).cmp(&(b.gate.as_str(), b.step)));
    let mut evidence = base.evidence.clone();
    // The walkthrough prints the command line inside an indented code block, so shard lines are
    // indented to stay inside it; each is a shell comment, runnable as-is.
    evidence.command_line = std::iter::once(command_line.to_string())
        .chain(sorted.iter().map(|s| {
            let i = shard_of(&s.report);
            format!(
                "# shard {}/{}: {}",
                i.index, i.count, s.report.evidence.command_line
            )
        }))
        .collect::<Vec<_>>()
        .join("\n  ");
    evidence.date_utc = sorted
        .iter()
        .map(|s| s.report.evidence.date_utc.clone())
        .min()
        .unwrap_or_default();
    let merged_from = sorted.iter().map(|s| merged_shard(s)).collect();
    // Required gates no shard ran: each shard lists those it did not run itself.
    let required_not_run: Vec<String> = base
        .required_not_run
        .iter()
        .filter(|id| {
            sorted
                .iter()
                .all(|s| s.report.required_not_run.contains(id))
        })
        .cloned()
        .collect();
    RunReport {
        run_id,
        evidence,
        // Shards run side by side in a CI matrix: the wall time is the slowest shard.
        duration_s: sorted
            .iter()
            .map(|s| s.report.duration_s)
            .fold(0.0, f64::max),
        totals: RunReport::count(&gates),
        exit_code: event::exit_code(&gates),
        gates,
        fault_schedule: faults,
        partial: !required_not_run.is_empty(),
        required_not_run,
        shard: None,
        merged_from: Some(merged_from),
    }
}

fn merged_shard(s: &Loaded) -> MergedShard {
    let i = shard_of(&s.report);
    MergedShard {
        index: i.index,
        count: i.count,
        run_id: s.report.run_id.clone(),
        dir: s.dir.display().to_string(),
        command_line: s.report.evidence.command_line.clone(),
        date_utc: s.report.evidence.date_utc.clone(),
        duration_s: s.report.duration_s,
        exit_code: s.report.exit_code,
    }
}

/// Copy each gate's logs (`gates/<id>/`) from the shard that ran it, so the merged walkthrough's
/// "logs beside this file" holds.
fn copy_logs(shards: &[Loaded], run_dir: &Path) -> std::io::Result<()> {
    for s in shards {
        for id in &shard_of(&s.report).assigned {
            let src = s.dir.join("gates").join(id);
            if src.is_dir() {
                super::workspace::copy_tree(&src, &run_dir.join("gates").join(id))?;
            }
        }
    }
    Ok(())
}

/// The `merge` command: load, check, combine, write. Returns the exit code (the merged run's,
/// or 2 when the shards cannot be merged or the reports cannot be written).
pub fn run(dirs: &[PathBuf], report_dir: &Path, command_line: &str) -> i32 {
    let mut shards = Vec::new();
    let mut errors = Vec::new();
    for d in dirs {
        match load(d) {
            Ok(l) => shards.push(l),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        errors = problems(&shards);
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("error: {e}");
        }
        eprintln!("trifecta-verify merge: refused; nothing was written");
        return EXIT_HARNESS;
    }
    let run_id = format!(
        "{}-{}-merged",
        jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ"),
        std::process::id()
    );
    let run_dir = report_dir.join(&run_id);
    let merged = combine(&shards, run_id, command_line);
    let written =
        copy_logs(&shards, &run_dir).and_then(|_| report::write_all(&merged, report_dir, &run_dir));
    match written {
        Ok(w) => {
            let t = &merged.totals;
            println!(
                "trifecta-verify merge: {} shard(s), {} gate(s): {} passed, {} failed, {} errors, \
                 {} skipped — exit {}\n{}",
                shards.len(),
                t.total,
                t.passed,
                t.failed,
                t.errors,
                t.skipped,
                merged.exit_code,
                w.walkthrough.display()
            );
            merged.exit_code
        }
        Err(e) => {
            eprintln!(
                "trifecta-verify merge: cannot write reports in {}: {e}",
                run_dir.display()
            );
            EXIT_HARNESS
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::event::{Evidence, Status};
    use crate::verify::shard::{Durations, ShardSpec, plan};

    const IDS: [&str; 4] = ["a", "b", "c", "d"];

    fn gate(id: &str, status: Status) -> GateReport {
        GateReport {
            id: id.into(),
            title: String::new(),
            description: String::new(),
            file: String::new(),
            required: true,
            tags: vec![],
            scenario: None,
            status,
            reason: None,
            duration_s: 1.0,
            steps: vec![],
            dod: vec![],
            setup: vec![],
        }
    }

    fn evidence() -> Evidence {
        Evidence {
            commit: "c0ffee".into(),
            dirty: false,
            dirty_paths: vec![],
            date_utc: "2026-11-29T10:00:00Z".into(),
            command_line: "trifecta-verify gates".into(),
            trifecta_version: "trifecta 0".into(),
            trifecta_path: "/bin/trifecta".into(),
            trifecta_blake3: "b3".into(),
            trifecta_commit: Some("c0ffee".into()),
            trifecta_tree: Some("clean".into()),
            mutant: None,
            verifier_commit: "c0ffee (clean)".into(),
            warnings: vec![],
            rustc: String::new(),
            sqlite: String::new(),
            libgit2: String::new(),
            os: String::new(),
            seed: 7,
            seed_source: "flag".into(),
            rev: "HEAD".into(),
        }
    }

    /// Shard `k` of `n` over IDS ("c" fails, "d" is not selected), as the runner would write it.
    fn shard(k: usize, n: usize) -> Loaded {
        let selected: Vec<String> = IDS[..3].iter().map(|s| s.to_string()).collect();
        let info = plan(
            &selected,
            ShardSpec { index: k, count: n },
            None::<(&Durations, &str)>,
        );
        let gates: Vec<GateReport> = IDS
            .iter()
            .map(|id| match (info.runs(id), *id) {
                (true, "c") => gate(id, Status::Fail),
                (true, _) => gate(id, Status::Pass),
                (false, _) => gate(id, Status::Skipped),
            })
            .collect();
        Loaded {
            dir: PathBuf::from(format!("shard-{k}")),
            report: RunReport {
                run_id: format!("r{k}"),
                evidence: evidence(),
                duration_s: k as f64,
                totals: RunReport::count(&gates),
                exit_code: event::exit_code(&gates),
                gates,
                fault_schedule: vec![],
                partial: true,
                required_not_run: IDS
                    .iter()
                    .filter(|id| !info.runs(id))
                    .map(|s| s.to_string())
                    .collect(),
                shard: Some(info),
                merged_from: None,
            },
        }
    }

    fn refused(shards: &[Loaded], needle: &str) {
        let p = problems(shards);
        assert!(
            p.iter().any(|m| m.contains(needle)),
            "{needle:?} not in {p:?}"
        );
    }

    #[test]
    fn complete_set_merges_with_unsharded_verdicts() {
        let shards = vec![shard(2, 2), shard(1, 2)];
        assert!(problems(&shards).is_empty(), "{:?}", problems(&shards));
        let m = combine(&shards, "m".into(), "trifecta-verify merge x y");
        let st: Vec<Status> = m.gates.iter().map(|g| g.status).collect();
        assert_eq!(
            st,
            [Status::Pass, Status::Pass, Status::Fail, Status::Skipped]
        );
        assert_eq!(m.exit_code, event::EXIT_FAILED);
        assert_eq!(
            (m.totals.passed, m.totals.failed, m.totals.skipped),
            (2, 1, 1)
        );
        assert_eq!(m.duration_s, 2.0);
        let from = m.merged_from.unwrap();
        assert_eq!(from.iter().map(|s| s.index).collect::<Vec<_>>(), [1, 2]);
        assert!(m.shard.is_none());
    }

    #[test]
    fn refuses_different_binaries_commits_seeds_and_selections() {
        let mut s = vec![shard(1, 2), shard(2, 2)];
        s[1].report.evidence.trifecta_blake3 = "other".into();
        refused(&s, "binary under test");
        let mut s = vec![shard(1, 2), shard(2, 2)];
        s[1].report.evidence.commit = "deadbeef".into();
        refused(&s, "commit");
        let mut s = vec![shard(1, 2), shard(2, 2)];
        s[0].report.evidence.dirty = true;
        refused(&s, "dirty");
        let mut s = vec![shard(1, 2), shard(2, 2)];
        s[1].report.evidence.seed = 8;
        refused(&s, "seed");
        let mut s = vec![shard(1, 2), shard(2, 2)];
        s[1].report.evidence.rev = "v1".into();
        refused(&s, "revision");
        let mut s = vec![shard(1, 2), shard(2, 2)];
        s[1].report.shard.as_mut().unwrap().selected.pop();
        refused(&s, "gate selection");
        let mut s = vec![shard(1, 2), shard(2, 2)];
        s[1].report.shard.as_mut().unwrap().method = crate::verify::shard::Method::Durations;
        refused(&s, "partition method");
        let mut s = vec![shard(1, 2), shard(2, 2)];
        s[1].report.gates.pop();
        refused(&s, "gate list");
    }

    #[test]
    fn refuses_duplicates_gaps_and_mixed_n() {
        refused(&[shard(1, 2), shard(1, 2)], "shard 1/2 given 2 times");
        refused(&[shard(1, 3), shard(3, 3)], "missing shard 2/3");
        refused(&[shard(2, 2)], "missing shard 1/2");
        refused(&[shard(1, 2), shard(2, 3)], "shard count N");
        refused(&[], "no shard reports");
    }

    #[test]
    fn refuses_partitions_that_overlap_or_leave_gaps() {
        let mut s = vec![shard(1, 2), shard(2, 2)];
        // Shard 2 claims shard 1's gate too (e.g. computed from another durations file).
        let extra = s[0].report.shard.as_ref().unwrap().assigned[0].clone();
        s[1].report.shard.as_mut().unwrap().assigned.push(extra);
        refused(&s, "ran in shards [1, 2]");
        let mut s = vec![shard(1, 2), shard(2, 2)];
        s[1].report.shard.as_mut().unwrap().assigned.clear();
        refused(&s, "ran in no shard");
        let mut s = vec![shard(1, 2), shard(2, 2)];
        s[1].report
            .shard
            .as_mut()
            .unwrap()
            .assigned
            .push("zz".into());
        refused(&s, "`zz` ran but is not in the selection");
    }

    #[test]
    fn load_refuses_reports_that_are_not_shards() {
        let d = tempfile::tempdir().unwrap();
        let mut r = shard(1, 1).report;
        r.shard = None;
        std::fs::write(
            d.path().join("report.json"),
            serde_json::to_string(&r).unwrap(),
        )
        .unwrap();
        assert!(load(d.path()).unwrap_err().contains("not a shard report"));
        r.shard = shard(1, 1).report.shard;
        std::fs::write(
            d.path().join("report.json"),
            serde_json::to_string(&r).unwrap(),
        )
        .unwrap();
        let l = load(d.path()).unwrap();
        assert_eq!(l.report.shard, r.shard);
        assert!(load(&d.path().join("nope")).is_err());
    }
}
