//! `walkthrough.md`: the audit-grade walkthrough of the P1 seed, generated from a captured run —
//! Evidence Header (with warnings when the binary is not the checkout's commit, a mutant, or a
//! partial run), replayable commands, per-gate real output excerpts + verdicts, a DoD table,
//! known gaps and a conclusion. Kept under GitHub's 1 MiB step-summary limit.

use crate::verify::event::{RunReport, Status};
use std::fmt::Write;

/// GitHub rejects step summaries over 1024 KiB; stay clearly below.
pub const MAX_BYTES: usize = 1_000_000;
/// Per-excerpt cap inside the document.
const EXCERPT_BYTES: usize = 3000;

fn fence(s: &str) -> String {
    // Never let captured output close our code fence.
    let body = crate::verify::excerpt::excerpt(&s.replace("```", "ʼʼʼ"), 40, EXCERPT_BYTES, true);
    format!("```text\n{body}\n```\n")
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Render the walkthrough.
pub fn render(run: &RunReport) -> String {
    let mut md = String::new();
    title(&mut md, run);
    evidence_header(&mut md, run);
    commands_executed(&mut md, run);
    let _ = writeln!(md, "## Verification results\n");
    for g in &run.gates {
        gate_section(&mut md, g);
    }
    fault_schedule(&mut md, run);
    dod_table(&mut md, run);
    known_gaps(&mut md, run);
    conclusion(&mut md, run);
    cap(md)
}

/// The "not a release verdict" sentence for a partial run, naming the gates left out.
fn partial_note(run: &RunReport) -> Option<String> {
    run.partial.then(|| {
        format!(
            "**{}**: required gate(s) not run: {}",
            super::junit::PARTIAL,
            run.required_not_run
                .iter()
                .map(|g| format!("`{g}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

fn title(md: &mut String, run: &RunReport) {
    let _ = writeln!(md, "# trifecta — gate walkthrough (audit grade)\n");
    let _ = writeln!(
        md,
        "**Run**: `{}` · **Result**: {} passed, {} failed, {} errors, {} skipped · **exit {}** · wall time {:.1}s\n",
        run.run_id,
        run.totals.passed,
        run.totals.failed,
        run.totals.errors,
        run.totals.skipped,
        run.exit_code,
        run.duration_s
    );
    if let Some(n) = partial_note(run) {
        let _ = writeln!(md, "> ⚠️ {n}\n");
    }
    if let Some(s) = &run.shard {
        let _ = writeln!(
            md,
            "> This report is **shard {}/{}** ({} gates of {}); `trifecta-verify merge` of all {} shards gives the release verdict.\n",
            s.index,
            s.count,
            s.assigned.len(),
            s.selected.len(),
            s.count
        );
    }
    if let Some(m) = &run.merged_from {
        let _ = writeln!(
            md,
            "> Merged from {} shard reports ({}); wall time is the slowest shard's.\n",
            m.len(),
            m.iter()
                .map(|s| format!("{}/{} `{}`", s.index, s.count, s.run_id))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
}

fn evidence_header(md: &mut String, run: &RunReport) {
    let e = &run.evidence;
    let _ = writeln!(md, "## Evidence Header\n");
    // Warnings first: a reader who stops at the first lines must not miss a mismatch.
    for w in &e.warnings {
        let _ = writeln!(md, "> ⚠️ **Warning**: {w}\n");
    }
    let dirty = if e.dirty {
        format!(
            "**dirty** (uncommitted: {})",
            e.dirty_paths
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        "clean".to_string()
    };
    let _ = writeln!(
        md,
        "- **Checkout commit**: `{}` — working tree {dirty}",
        e.commit
    );
    let _ = writeln!(
        md,
        "- **Binary under test**: built from commit `{}` ({}), BLAKE3 `{}`, path `{}`",
        e.trifecta_commit.as_deref().unwrap_or("unknown"),
        e.trifecta_tree.as_deref().unwrap_or("unknown tree state"),
        e.trifecta_blake3,
        e.trifecta_path
    );
    if let Some(m) = &e.mutant {
        let _ = writeln!(
            md,
            "- **Mutant**: `TRIFECTA_MUTANT={m}` (deliberately broken build)"
        );
    }
    let _ = writeln!(md, "- **Revision for worktree gates**: `{}`", e.rev);
    let _ = writeln!(md, "- **Verification date (UTC)**: {}", e.date_utc);
    let _ = writeln!(
        md,
        "- **Seed**: `{}` ({}; rerun with `--seed {}` for the same fault schedule)",
        e.seed, e.seed_source, e.seed
    );
    let _ = writeln!(
        md,
        "- **Versions**: trifecta `{}`, {}, SQLite {}, libgit2 {}, OS {}; trifecta-verify built from `{}`",
        e.trifecta_version.replace('\n', "; "),
        e.rustc,
        e.sqlite,
        e.libgit2,
        e.os,
        e.verifier_commit
    );
    let _ = writeln!(md, "- **Wall time**: {:.1}s", run.duration_s);
}

/// Every command, per gate, preceded by the lines that recreate the gate's temp dir. In-process
/// checks are shell comments (`# in-process: …`), so pasting the block replays only real runs.
fn commands_executed(md: &mut String, run: &RunReport) {
    let _ = writeln!(
        md,
        "- **Commands executed** (`$GATE_TMP` is each gate's temp dir, recreated by the lines after `# gate`):\n  ```bash\n  {}",
        run.evidence.command_line
    );
    for g in run.gates.iter().filter(|g| g.status != Status::Skipped) {
        let _ = writeln!(md, "  # gate {}", g.id);
        for line in &g.setup {
            let _ = writeln!(md, "  {line}");
        }
        for s in &g.steps {
            for c in &s.commands {
                let _ = writeln!(md, "  {}", c.replace('\n', "\n  "));
            }
        }
    }
    let _ = writeln!(md, "  ```");
    let _ = writeln!(
        md,
        "- **Logs and telemetry**: `gates/<gate-id>/` beside this file (log paths below are relative to this file's folder); machine-readable: `report.json`, `junit.xml`\n"
    );
}

fn gate_section(md: &mut String, g: &crate::verify::event::GateReport) {
    let _ = writeln!(md, "### {} — {}\n", g.id, g.title);
    if !g.description.is_empty() {
        let _ = writeln!(md, "{}\n", g.description.trim());
    }
    let _ = writeln!(
        md,
        "`{}` · {} · tags: {} · {:.1}s\n",
        g.file,
        if g.required { "required" } else { "optional" },
        if g.tags.is_empty() {
            "-".to_string()
        } else {
            g.tags.join(", ")
        },
        g.duration_s
    );
    if g.status == Status::Skipped {
        let _ = writeln!(
            md,
            "**Verdict**: {} — {}\n",
            g.status.badge(),
            g.reason.as_deref().unwrap_or("not run")
        );
        return;
    }
    for s in &g.steps {
        step_section(md, s);
    }
    let _ = writeln!(
        md,
        "**Verdict**: {}{}\n\n---\n",
        g.status.badge(),
        g.reason
            .as_deref()
            .map(|r| format!(" — {r}"))
            .unwrap_or_default()
    );
}

fn step_section(md: &mut String, s: &crate::verify::event::StepReport) {
    let _ = writeln!(
        md,
        "**Step {} · {}** `{}` — {} ({:.2}s)\n",
        s.index,
        s.kind,
        cell(&s.label),
        s.status.badge(),
        s.duration_s
    );
    if !s.commands.is_empty() {
        let cmds = s.commands.iter().take(5).cloned().collect::<Vec<_>>();
        let more = s.commands.len().saturating_sub(5);
        let _ = write!(md, "```bash\n{}\n", cmds.join("\n"));
        if more > 0 {
            let _ = writeln!(md, "# … {more} more (see report.json)");
        }
        let _ = writeln!(md, "```\n");
    }
    if !s.detail.is_empty() {
        let _ = writeln!(md, "{}\n", s.detail.trim());
    }
    if !s.logs.is_empty() {
        let logs: Vec<String> = s.logs.iter().map(|l| format!("`{l}`")).collect();
        let _ = writeln!(md, "Logs: {}\n", logs.join(", "));
    }
    if !s.excerpt.trim().is_empty() {
        let _ = writeln!(md, "Output (excerpt):\n\n{}", fence(&s.excerpt));
    }
}

fn fault_schedule(md: &mut String, run: &RunReport) {
    if run.fault_schedule.is_empty() {
        return;
    }
    let _ = writeln!(md, "## Fault schedule (seed {})\n", run.evidence.seed);
    let _ = writeln!(
        md,
        "| gate | step | kind | what | seed | detail |\n|---|---|---|---|---|---|"
    );
    for f in &run.fault_schedule {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} |",
            f.gate,
            f.step,
            f.kind,
            cell(&f.what),
            f.seed,
            cell(&f.detail)
        );
    }
    md.push('\n');
}

fn dod_table(md: &mut String, run: &RunReport) {
    let _ = writeln!(md, "## Definition of Done\n");
    let _ = writeln!(md, "| Requirement | Status | Evidence |\n|---|---|---|");
    for g in &run.gates {
        for req in &g.dod {
            let ev = match g.status {
                Status::Skipped => format!("gate `{}` not run", g.id),
                _ => format!(
                    "gate `{}`: {}/{} steps passed",
                    g.id,
                    g.steps.iter().filter(|s| s.status == Status::Pass).count(),
                    g.steps.len()
                ),
            };
            let _ = writeln!(md, "| {} | {} | {} |", cell(req), g.status.badge(), ev);
        }
    }
    md.push('\n');
}

fn known_gaps(md: &mut String, run: &RunReport) {
    let _ = writeln!(md, "## Known gaps\n");
    let gaps: Vec<_> = run
        .gates
        .iter()
        .filter(|g| g.status != Status::Pass)
        .collect();
    if gaps.is_empty() {
        let _ = writeln!(md, "None: every gate ran and passed.\n");
    }
    for g in gaps {
        let _ = writeln!(
            md,
            "- **{}** ({}, {}): {}",
            g.id,
            g.status.label(),
            if g.required { "required" } else { "optional" },
            g.reason.as_deref().unwrap_or("-")
        );
    }
    md.push('\n');
}

fn conclusion(md: &mut String, run: &RunReport) {
    let _ = writeln!(md, "## Conclusion\n");
    let required_bad = run
        .gates
        .iter()
        .filter(|g| g.required && matches!(g.status, Status::Fail | Status::Error))
        .count();
    let concl = match run.exit_code {
        0 => format!(
            "All {} required gates that ran passed (exit 0). {} gate(s) skipped.",
            run.gates
                .iter()
                .filter(|g| g.required && g.status == Status::Pass)
                .count(),
            run.totals.skipped
        ),
        1 => format!("**NOT releasable**: {required_bad} required gate(s) failed (exit 1)."),
        2 => "**Unknown**: the harness hit an error; verdicts are incomplete (exit 2).".into(),
        c => format!("Exit {c}."),
    };
    let _ = writeln!(md, "{concl}");
    if let Some(n) = partial_note(run) {
        let _ = writeln!(md, "\n{n}.");
    }
    for w in &run.evidence.warnings {
        let _ = writeln!(md, "\n⚠️ {w}.");
    }
}

/// Cut to [`MAX_BYTES`] on a char boundary with a visible note.
fn cap(mut md: String) -> String {
    if md.len() <= MAX_BYTES {
        return md;
    }
    let note = "\n\n[… walkthrough truncated to stay under GitHub's 1 MiB step-summary limit; see report.json …]\n";
    let mut end = MAX_BYTES - note.len();
    while !md.is_char_boundary(end) {
        end -= 1;
    }
    md.truncate(end);
    md.push_str(note);
    md
}

#[cfg(test)]
mod tests {
    #[test]
    fn cap_limits_size() {
        let s = "é".repeat(super::MAX_BYTES);
        let c = super::cap(s);
        assert!(c.len() <= super::MAX_BYTES);
        assert!(c.ends_with("see report.json …]\n"));
    }
}
