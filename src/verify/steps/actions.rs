//! Action steps: they change the world (build, run, corrupt, kill, lock, edit, age). Each one
//! records the exact commands and a real output excerpt for the report.

use super::{GateCtx, Outcome, Saved};
use crate::cache::faults::{self, CorruptionMode};
use crate::verify::process::{self, Outcome as ProcOutcome, ProcSpec};
use crate::verify::report::{Fault, Status, excerpt};
use crate::verify::spec::{
    AgeStep, CargoDir, CargoStep, CorruptStep, EditAction, EditStep, HoldLockStep, LockMode,
    RunStep, SnapshotStep, SqliteStep, WorktreeStep,
};
use crate::verify::workspace;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

fn log_body(spec: &ProcSpec, o: &ProcOutcome) -> String {
    format!(
        "$ {}\n# {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n",
        spec.display(),
        o.status_text(),
        o.stdout,
        o.stderr
    )
}

fn out_excerpt(o: &ProcOutcome) -> String {
    let mut s = String::new();
    if !o.stdout.trim().is_empty() {
        s.push_str(&excerpt(o.stdout.trim_end(), 25, 2500, false));
    }
    if !o.stderr.trim().is_empty() {
        if !s.is_empty() {
            s.push('\n');
        }
        s.push_str("[stderr]\n");
        s.push_str(&excerpt(o.stderr.trim_end(), 25, 2500, true));
    }
    s
}

/// Run a process for a step and log it; `Err` is a harness error outcome.
async fn run_logged(
    ctx: &GateCtx,
    spec: &ProcSpec,
    log_name: &str,
) -> Result<(ProcOutcome, Option<String>), Outcome> {
    match process::run(spec).await {
        Ok(o) => {
            let log = ctx.log(log_name, &log_body(spec, &o));
            Ok((o, log))
        }
        Err(e) => Err(Outcome {
            commands: vec![spec.display()],
            ..Outcome::error(format!("cannot spawn {}: {e}", spec.program.display()))
        }),
    }
}

/// `worktree`: clean checkout of a revision, built from scratch in its own target dir.
pub async fn worktree(ctx: &mut GateCtx, s: &WorktreeStep, index: usize) -> Outcome {
    let rev = s.rev.clone().unwrap_or_else(|| ctx.shared.rev.clone());
    let path = ctx.tmp.path().join("worktree");
    let target = ctx.tmp.path().join("target");
    let name: String = format!("tv-{}-{}-{index}", ctx.shared.run_id, ctx.gate_id)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut commands = vec![format!(
        "git worktree add --detach {} {}",
        process::quote(&path.to_string_lossy()),
        process::quote(&rev)
    )];
    let wt = match workspace::add_worktree(&ctx.shared.checkout, &rev, &path, &name) {
        Ok(w) => w,
        Err(e) => {
            return Outcome {
                commands,
                ..Outcome::error(e)
            };
        }
    };
    let commit = wt.commit.clone();
    ctx.worktree = Some(wt);
    ctx.target_dir = Some(target.clone());
    let Some((prog, args)) = s.build.split_first() else {
        return Outcome::error("empty build command");
    };
    let spec = ProcSpec {
        program: ctx.expand(prog).into(),
        args: args.iter().map(|a| ctx.expand(a)).collect(),
        env: vec![(
            "CARGO_TARGET_DIR".into(),
            target.to_string_lossy().into_owned(),
        )],
        cwd: Some(path.clone()),
        timeout: Duration::from_secs(s.timeout_s),
    };
    commands.push(spec.display());
    let (o, log) = match run_logged(ctx, &spec, &format!("step-{index}-build.log")).await {
        Ok(x) => x,
        Err(mut e) => {
            e.commands = commands;
            return e;
        }
    };
    let mut out = Outcome {
        commands,
        excerpt: out_excerpt(&o),
        logs: log.into_iter().collect(),
        ..Outcome::pass(format!(
            "worktree of `{rev}` = {commit}; build {} in {:.1}s",
            o.status_text(),
            o.duration.as_secs_f64()
        ))
    };
    if o.code != Some(0) {
        out.status = Status::Fail;
        out.detail = format!("build in clean worktree of {commit}: {}", o.status_text());
        return out;
    }
    if let Some(bin) = s.binary.as_deref().filter(|b| !b.is_empty()) {
        let bin = std::path::PathBuf::from(ctx.expand(bin));
        if !bin.is_file() {
            out.status = Status::Fail;
            out.detail = format!("build succeeded but {} is missing", bin.display());
            return out;
        }
        ctx.trifecta = bin.clone();
        out.detail
            .push_str(&format!("; later steps use {}", bin.display()));
    }
    out
}

/// Sum `N passed` over cargo's `test result:` lines.
pub fn passed_tests(output: &str) -> usize {
    output
        .lines()
        .filter(|l| l.trim_start().starts_with("test result:"))
        .filter_map(|l| {
            let idx = l.find(" passed")?;
            l[..idx].rsplit(' ').next()?.parse::<usize>().ok()
        })
        .sum()
}

/// `cargo`: run cargo in the checkout or the worktree.
pub async fn cargo(ctx: &mut GateCtx, s: &CargoStep, index: usize) -> Outcome {
    let (cwd, env) = match s.dir {
        CargoDir::Checkout => (ctx.shared.checkout.clone(), vec![]),
        CargoDir::Worktree => match (&ctx.worktree, &ctx.target_dir) {
            (Some(w), Some(t)) => (
                w.path.clone(),
                vec![("CARGO_TARGET_DIR".into(), t.to_string_lossy().into_owned())],
            ),
            _ => return Outcome::error("no worktree"),
        },
    };
    let spec = ProcSpec {
        program: "cargo".into(),
        args: s.args.iter().map(|a| ctx.expand(a)).collect(),
        env,
        cwd: Some(cwd),
        timeout: Duration::from_secs(s.timeout_s),
    };
    let (o, log) = match run_logged(ctx, &spec, &format!("step-{index}-cargo.log")).await {
        Ok(x) => x,
        Err(e) => return e,
    };
    let passed = passed_tests(&o.stdout);
    // cargo test prints results on stdout and progress on stderr: show the test summary lines.
    let summary: Vec<&str> = o
        .stdout
        .lines()
        .filter(|l| {
            l.starts_with("test result:") || l.starts_with("running ") || l.contains("FAILED")
        })
        .collect();
    let mut ex = excerpt(&summary.join("\n"), 30, 2500, true);
    if o.code != Some(0) {
        ex.push_str("\n[stderr]\n");
        ex.push_str(&excerpt(o.stderr.trim_end(), 20, 2500, true));
    }
    let ok_exit = o.code == Some(0);
    let ok_count = passed >= s.min_tests;
    let detail = if !ok_exit {
        format!("cargo {}: {}", s.args.join(" "), o.status_text())
    } else if !ok_count {
        format!(
            "only {passed} test(s) passed, at least {} required (a filter matching nothing must not pass)",
            s.min_tests
        )
    } else {
        format!("{passed} test(s) passed, {}", o.status_text())
    };
    Outcome {
        status: if ok_exit && ok_count {
            Status::Pass
        } else {
            Status::Fail
        },
        commands: vec![spec.display()],
        excerpt: ex,
        detail,
        logs: log.into_iter().collect(),
    }
}

/// `run`: one CLI invocation; output saved under `name`.
pub async fn run(ctx: &mut GateCtx, s: &RunStep, index: usize) -> Outcome {
    let spec = ctx.trifecta_spec(&s.args, &s.env, s.timeout_s);
    let (o, log) = match run_logged(ctx, &spec, &format!("step-{index}-run.log")).await {
        Ok(x) => x,
        Err(e) => return e,
    };
    ctx.stdouts.push(super::leaks::Scanned {
        what: format!("step {index} run"),
        args: spec.args.clone(),
        stdout: o.stdout.clone(),
    });
    if let Some(n) = &s.name {
        let saved = if s.jsonl {
            Saved::Many(
                o.stdout
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_string)
                    .collect(),
            )
        } else {
            Saved::One(o.stdout.clone())
        };
        ctx.outputs.insert(n.clone(), saved);
    }
    let missing: Vec<&String> = s
        .stderr_has
        .iter()
        .filter(|t| !o.stderr.contains(t.as_str()))
        .collect();
    let ok = o.code == Some(s.expect_exit) && !o.timed_out && missing.is_empty();
    let mut detail = format!(
        "{} (expected exit {}) in {:.0} ms",
        o.status_text(),
        s.expect_exit,
        o.duration.as_secs_f64() * 1e3
    );
    if !missing.is_empty() {
        detail.push_str(&format!("; stderr lacks {missing:?}"));
    } else if !s.stderr_has.is_empty() {
        detail.push_str(&format!("; stderr has {:?}", s.stderr_has));
    }
    Outcome {
        status: if ok { Status::Pass } else { Status::Fail },
        commands: vec![spec.display()],
        excerpt: out_excerpt(&o),
        detail,
        logs: log.into_iter().collect(),
    }
}

/// `corrupt`: inject a catalog fault with a seed derived from the run seed.
pub fn corrupt(ctx: &mut GateCtx, s: &CorruptStep, index: usize) -> Outcome {
    let Some(mode) = CorruptionMode::parse(&s.mode) else {
        return Outcome::error(format!("unknown mode {}", s.mode));
    };
    let db = match ctx.db() {
        Ok(d) => d,
        Err(o) => return o,
    };
    let seed = ctx.fault_seed(index, 0);
    let cmd = super::in_process(format!(
        "trifecta::cache::faults::inject({}, {}, seed={seed})",
        mode.as_str(),
        db.display()
    ));
    match faults::inject(mode, &db, seed) {
        Ok(inj) => {
            ctx.faults.push(Fault {
                gate: ctx.gate_id.clone(),
                step: index,
                kind: "corrupt".into(),
                what: mode.as_str().into(),
                seed,
                detail: inj.detail.clone(),
            });
            Outcome {
                commands: vec![cmd],
                ..Outcome::pass(format!("{}: {}", mode.as_str(), inj.detail))
            }
        }
        Err(e) => Outcome {
            commands: vec![cmd],
            // No DB to damage means an earlier run did not create the cache: a finding.
            ..Outcome::fail(format!("cannot inject {}: {e}", mode.as_str()))
        },
    }
}

/// `hold-lock`: spawn `trifecta-verify hold-lock` and wait until it reports the lock held.
pub async fn hold_lock(ctx: &mut GateCtx, s: &HoldLockStep) -> Outcome {
    let lock = match ctx.db() {
        // contracts.md: `<segment>/.trifecta/cache/ast_cache.lock` beside the DB.
        Ok(db) => db.with_file_name("ast_cache.lock"),
        Err(o) => return o,
    };
    let mut args = vec![
        "hold-lock".to_string(),
        lock.to_string_lossy().into_owned(),
        "--ms".into(),
        s.ms.to_string(),
    ];
    if s.mode == LockMode::Exclusive {
        args.push("--exclusive".into());
    }
    let spec = ProcSpec {
        program: ctx.shared.verify_exe.clone(),
        args,
        env: vec![],
        cwd: None,
        timeout: Duration::from_millis(s.ms + 10_000),
    };
    let cmd = spec.display();
    let mut child = match process::command(&spec).spawn() {
        Ok(c) => c,
        Err(e) => return Outcome::error(format!("cannot spawn lock holder: {e}")),
    };
    let Some(out) = child.stdout.take() else {
        return Outcome::error("lock holder has no stdout");
    };
    let mut lines = tokio::io::BufReader::new(out).lines();
    let first = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await;
    let res = match first {
        Ok(Ok(Some(l))) if l.trim() == "locked" => Outcome {
            commands: vec![format!("{cmd} &")],
            ..Outcome::pass(format!(
                "{} lock on {} held for {} ms by pid {}",
                s.mode.as_str(),
                lock.display(),
                s.ms,
                child.id().unwrap_or(0)
            ))
        },
        other => {
            process::kill_group(&child);
            let what = match other {
                Ok(Ok(Some(line))) => format!("it printed {}", crate::output::quoted(&line)),
                Ok(Ok(None)) => "it exited without output".to_string(),
                Ok(Err(e)) => format!("reading its output failed: {e}"),
                Err(_) => "no line within 10 s".to_string(),
            };
            Outcome {
                commands: vec![cmd],
                ..Outcome::error(format!("lock holder did not report `locked`: {what}"))
            }
        }
    };
    ctx.holders.push(child);
    res
}

/// `release`: stop lock holders early (SIGKILL to their groups; flock is released on exit).
pub async fn release(ctx: &mut GateCtx) -> Outcome {
    let n = ctx.holders.len();
    for mut h in ctx.holders.drain(..) {
        process::kill_group(&h);
        let _ = h.wait().await;
    }
    Outcome::pass(format!("{n} lock holder(s) stopped"))
}

/// `edit`: change a segment source file.
pub fn edit(ctx: &mut GateCtx, s: &EditStep) -> Outcome {
    let seg = match ctx.segment() {
        Ok(s) => s.to_path_buf(),
        Err(o) => return o,
    };
    let path = seg.join(&s.file);
    let res = match s.action {
        EditAction::Append => std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, s.text.as_bytes())),
        EditAction::Touch => std::fs::read(&path).and_then(|b| std::fs::write(&path, b)),
        EditAction::Replace => std::fs::write(&path, &s.text),
        EditAction::Delete => std::fs::remove_file(&path),
    };
    match res {
        Ok(()) => Outcome::pass(format!("{} {}", s.action.as_str(), s.file)),
        Err(e) => Outcome::error(format!("edit {}: {e}", s.file)),
    }
}

/// `age`: move the test clock forward for later trifecta processes.
pub fn age(ctx: &mut GateCtx, s: &AgeStep) -> Outcome {
    let base = ctx.now_ms.unwrap_or_else(crate::clock::real_now_ms);
    let now = base + (s.days * 86_400_000.0) as i64;
    ctx.now_ms = Some(now);
    Outcome::pass(format!(
        "TRIFECTA_TEST_NOW_MS={now} (+{} days) for later steps",
        s.days
    ))
}

/// `sqlite`: run SQL on the cache DB (creating it and its directory).
pub fn sqlite(ctx: &mut GateCtx, s: &SqliteStep) -> Outcome {
    let db = match ctx.db() {
        Ok(d) => d,
        Err(o) => return o,
    };
    if let Some(p) = db.parent()
        && let Err(e) = std::fs::create_dir_all(p)
    {
        return Outcome::error(format!("create {}: {e}", p.display()));
    }
    let cmd = super::in_process(format!(
        "sqlite3 {} {}",
        db.display(),
        process::quote(&s.sql)
    ));
    let res = rusqlite::Connection::open(&db).and_then(|c| c.execute_batch(&s.sql));
    match res {
        Ok(()) => Outcome {
            commands: vec![cmd],
            ..Outcome::pass("SQL applied")
        },
        Err(e) => Outcome {
            commands: vec![cmd],
            ..Outcome::error(format!("sqlite: {e}"))
        },
    }
}

/// `snapshot`: remember a file's digest.
pub fn snapshot(ctx: &mut GateCtx, s: &SnapshotStep) -> Outcome {
    let seg = match ctx.segment() {
        Ok(s) => s.to_path_buf(),
        Err(o) => return o,
    };
    let p = seg.join(ctx.expand(&s.file));
    match std::fs::read(&p) {
        Ok(b) => {
            let h = blake3::hash(&b).to_hex().to_string();
            ctx.snapshots.insert(s.name.clone(), (p, h.clone()));
            Outcome::pass(format!("{} = blake3 {h} ({} bytes)", s.file, b.len()))
        }
        Err(e) => Outcome::fail(format!("cannot read {}: {e}", s.file)),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_passed_tests() {
        let out = "running 2 tests\ntest a ... ok\ntest result: ok. 2 passed; 0 failed; 0 ignored\n\nrunning 0 tests\ntest result: ok. 0 passed; 0 failed\n";
        assert_eq!(super::passed_tests(out), 2);
        assert_eq!(super::passed_tests("no tests"), 0);
    }
}
