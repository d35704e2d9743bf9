//! `kind = "tree-unchanged"`.

use super::{StepFuture, StepKind, ValidateCx};
use crate::verify::excerpt::excerpt;
use crate::verify::process;
use crate::verify::steps::hostile::{Content, Meta, set_old_atime, walk_content, walk_meta};
use crate::verify::steps::in_process;
use crate::verify::steps::{GateCtx, StepResult};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The `kind` spelling.
pub const KIND: &str = "tree-unchanged";

/// The smallest valid table of this kind (besides `kind`): the registry's test parses it.
pub const EXAMPLE: &str = "snapshot = \"t\"";

/// `kind = "tree-unchanged"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeUnchangedStep {
    /// Name of an earlier `tree-snapshot`.
    pub snapshot: String,
    /// Fail when this file system does not record reads (atime), since reads then cannot be
    /// detected. Default true: a gate claiming "nothing read" must be able to see a read.
    #[serde(default = "super::yes")]
    pub require_read_detection: bool,
}

impl StepKind for TreeUnchangedStep {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn is_check(&self) -> bool {
        true
    }

    fn label(&self) -> String {
        format!("`{}` unchanged", self.snapshot)
    }

    fn validate(&self, cx: &ValidateCx, err: &mut dyn FnMut(&str, String)) {
        if !cx.names.contains(&self.snapshot) {
            err(
                "snapshot",
                format!("no earlier tree-snapshot named `{}`", self.snapshot),
            );
        }
    }
    fn exec<'a>(&'a self, ctx: &'a mut GateCtx, _index: usize) -> StepFuture<'a> {
        Box::pin(std::future::ready(tree_unchanged(ctx, self)))
    }
}

/// `tree-unchanged`: the tree equals its snapshot — no entry read (atime), written (mtime,
/// ctime, size, bytes), retyped, relinked, added or removed.
pub fn tree_unchanged(ctx: &mut GateCtx, s: &TreeUnchangedStep) -> StepResult {
    let Some(before) = ctx.trees.get(&s.snapshot).cloned() else {
        return StepResult::error(format!("no tree snapshot `{}`", s.snapshot));
    };
    let root = &before.root;
    // Metadata first: a content pass reads files and links and would move their atimes.
    let now = match walk_meta(root) {
        Ok(m) => m,
        Err(e) => {
            return StepResult::fail(format!(
                "cannot walk {} any more: {e} (removed or replaced?)",
                root.display()
            ));
        }
    };
    let mut problems = meta_differences(&before.meta, &now);
    let content = walk_content(root, &now);
    let compared = content_differences(&before.content, &content, &mut problems);
    let mut detail = format!(
        "{} entries of {}: names, types, sizes, modes, link counts, mtime/ctime, link targets and {compared} files' BLAKE3 compared",
        before.meta.len(),
        root.display()
    );
    if before.reads_detectable {
        detail.push_str("; atime shows any read or listing");
    } else {
        detail.push_str(
            "; reads are NOT detectable on this mount (atime not updated), only writes and deletions",
        );
        if s.require_read_detection {
            problems.push(
                "this file system does not record reads (noatime?): `nothing outside is read` cannot be shown"
                    .into(),
            );
        }
    }
    if problems.is_empty() {
        // This check listed every folder (moving their atimes): age them again and record the
        // new state, so a later `tree-unchanged` on the same snapshot sees only later reads.
        if let Err(e) = reage(ctx, &s.snapshot) {
            return StepResult::error(format!("re-age {}: {e}", root.display()));
        }
    }
    verdict(&problems, &detail, root, &s.snapshot)
}

/// How an entry is named in messages: its relative path, or `.` for the root itself.
fn display_name(rel: &str) -> String {
    if rel.is_empty() {
        ".".to_string()
    } else {
        rel.to_string()
    }
}

/// Every metadata difference between the snapshot and now: removed, retyped, read (atime),
/// written (size, mtime), inode-changed (mode, links, ctime) and new entries.
fn meta_differences(before: &BTreeMap<String, Meta>, now: &BTreeMap<String, Meta>) -> Vec<String> {
    let mut problems = Vec::new();
    for (rel, b) in before {
        let Some(a) = now.get(rel) else {
            problems.push(format!("removed: {}", display_name(rel)));
            continue;
        };
        entry_differences(&display_name(rel), b, a, &mut problems);
    }
    for rel in now.keys().filter(|r| !before.contains_key(*r)) {
        problems.push(format!("new: {} ({})", display_name(rel), now[rel].kind));
    }
    problems
}

/// The differences of one entry present in both states (`b` before, `a` after).
fn entry_differences(name: &str, b: &Meta, a: &Meta, problems: &mut Vec<String>) {
    if a.kind != b.kind {
        // A retyped entry's other fields are not comparable.
        problems.push(format!("type changed: {name} ({} → {})", b.kind, a.kind));
        return;
    }
    if a.atime != b.atime {
        let what = if a.kind == "directory" {
            "listed"
        } else {
            "read"
        };
        problems.push(format!(
            "{what}: {name} (atime {} → {})",
            b.atime.0, a.atime.0
        ));
    }
    if a.size != b.size || a.mtime != b.mtime {
        problems.push(format!(
            "written: {name} (size {} → {}, mtime {} → {})",
            b.size, a.size, b.mtime.0, a.mtime.0
        ));
    }
    if a.mode != b.mode || a.nlink != b.nlink || a.ctime != b.ctime {
        problems.push(format!(
            "inode changed: {name} (mode {:o} → {:o}, links {} → {}, ctime {} → {})",
            b.mode, a.mode, b.nlink, a.nlink, b.ctime.0, a.ctime.0
        ));
    }
}

/// Push a problem per entry whose content changed; returns how many files' digests were
/// compared equal. Entries gone by now were already reported as removed.
fn content_differences(
    before: &BTreeMap<String, Content>,
    now: &BTreeMap<String, Content>,
    problems: &mut Vec<String>,
) -> usize {
    let mut compared = 0;
    for (rel, b) in before {
        match now.get(rel) {
            Some(a) if a == b => {
                if matches!(b, Content::Digest(_)) {
                    compared += 1;
                }
            }
            Some(a) => problems.push(format!(
                "content changed: {} ({b:?} → {a:?})",
                display_name(rel)
            )),
            None => {}
        }
    }
    compared
}

/// The step's result: pass with `detail`, or fail listing `problems`.
fn verdict(problems: &[String], detail: &str, root: &Path, snapshot: &str) -> StepResult {
    let mut out = if problems.is_empty() {
        StepResult::pass(format!("unchanged: {detail}"))
    } else {
        StepResult::fail(format!(
            "{} difference(s): {}",
            problems.len(),
            excerpt(&problems.join("; "), 1, 2500, false)
        ))
    };
    out.excerpt = excerpt(&problems.join("\n"), 40, 4000, false);
    out.commands = vec![in_process(format!(
        "find {} -exec stat … ; b3sum (files) ; compare with snapshot `{}`",
        process::quote(&root.to_string_lossy()),
        snapshot
    ))];
    out
}

/// Age every atime of a snapshot's tree again and record the resulting metadata.
fn reage(ctx: &mut GateCtx, name: &str) -> std::io::Result<()> {
    let Some(t) = ctx.trees.get_mut(name) else {
        return Ok(());
    };
    for (rel, m) in t.meta.iter_mut() {
        let p = t.root.join(rel);
        set_old_atime(&p)?;
        *m = Meta::of(&std::fs::symlink_metadata(&p)?);
    }
    Ok(())
}
