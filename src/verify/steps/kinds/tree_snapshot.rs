//! `kind = "tree-snapshot"`.

use super::{StepFuture, StepKind, ValidateCx};
use crate::verify::excerpt::excerpt;
use crate::verify::process;
use crate::verify::steps::hostile::{
    Content, Meta, OLD_ATIME_S, TreeState, kind_name, reads_detectable, set_old_atime, tree_root,
    walk_content, walk_meta,
};
use crate::verify::steps::in_process;
use crate::verify::steps::{GateCtx, StepResult};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// The `kind` spelling.
pub const KIND: &str = "tree-snapshot";

/// The smallest valid table of this kind (besides `kind`): the registry's test parses it.
pub const EXAMPLE: &str = "name = \"t\"\ndir = \"d\"";

/// `kind = "tree-snapshot"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeSnapshotStep {
    /// Name for `tree-unchanged`.
    pub name: String,
    /// The directory (placeholders expand; relative means segment-relative), e.g. `{outside}`.
    pub dir: String,
}

impl StepKind for TreeSnapshotStep {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn name(&self) -> Option<&str> {
        Some(&self.name)
    }

    fn label(&self) -> String {
        format!("{} = {}", self.name, self.dir)
    }

    fn validate(&self, _cx: &ValidateCx, err: &mut dyn FnMut(&str, String)) {
        if self.dir.trim().is_empty() {
            err("dir", "tree-snapshot needs a directory".into());
        }
    }
    fn exec<'a>(&'a self, ctx: &'a mut GateCtx, _index: usize) -> StepFuture<'a> {
        Box::pin(std::future::ready(tree_snapshot(ctx, self)))
    }
}

/// `tree-snapshot`: record names, types, sizes, modes, link targets and digests of every entry
/// below `dir`, then age every atime so a later read shows.
pub fn tree_snapshot(ctx: &mut GateCtx, s: &TreeSnapshotStep) -> StepResult {
    let root = match tree_root(ctx, &s.dir) {
        Ok(r) => r,
        Err(o) => return o,
    };
    if let Err(o) = require_directory(&root) {
        return o;
    }
    let meta = match walk_meta(&root) {
        Ok(m) => m,
        Err(e) => return StepResult::error(format!("walk {}: {e}", root.display())),
    };
    let content = walk_content(&root, &meta);
    let aged = match age(&root, &meta) {
        Ok(a) => a,
        Err(o) => return o,
    };
    let reads = reads_detectable(ctx.tmp.path());
    let files = aged.values().filter(|m| m.kind == "file").count();
    let listing = listing(&aged, &content);
    let n = aged.len();
    ctx.trees.insert(
        s.name.clone(),
        TreeState {
            root: root.clone(),
            meta: aged,
            content,
            reads_detectable: reads,
        },
    );
    StepResult {
        commands: vec![in_process(format!(
            "find {} -exec stat … ; b3sum (files) ; touch -a -h -d @{OLD_ATIME_S} (every entry)",
            process::quote(&root.to_string_lossy())
        ))],
        excerpt: excerpt(&listing.join("\n"), 40, 4000, false),
        ..StepResult::pass(format!(
            "{n} entries ({files} files) recorded under {}; reads {}",
            root.display(),
            if reads {
                "are detectable (atime is updated by a read on this mount)"
            } else {
                "are NOT detectable here (the mount does not update atime)"
            }
        ))
    }
}

/// Refuse a `root` that is not a real directory (a link to one included).
fn require_directory(root: &Path) -> Result<(), StepResult> {
    match std::fs::symlink_metadata(root) {
        Ok(m) if m.file_type().is_dir() => Ok(()),
        Ok(m) => Err(StepResult::error(format!(
            "{} is a {}, not a directory",
            root.display(),
            kind_name(&m.file_type())
        ))),
        Err(e) => Err(StepResult::error(format!("{}: {e}", root.display()))),
    }
}

/// Age the atime of every entry in `meta` and return their metadata as it is afterwards.
fn age(root: &Path, meta: &BTreeMap<String, Meta>) -> Result<BTreeMap<String, Meta>, StepResult> {
    for rel in meta.keys() {
        if let Err(e) = set_old_atime(&root.join(rel)) {
            return Err(StepResult::error(format!("set atime of {rel:?}: {e}")));
        }
    }
    // Re-`lstat` by name (no listing, no reading), so the recorded atime/ctime are the aged ones.
    let mut aged = BTreeMap::new();
    for rel in meta.keys() {
        match std::fs::symlink_metadata(root.join(rel)) {
            Ok(m) => {
                aged.insert(rel.clone(), Meta::of(&m));
            }
            Err(e) => return Err(StepResult::error(format!("lstat {rel:?}: {e}"))),
        }
    }
    Ok(aged)
}

/// One line per entry for the step's excerpt: name, type, size and digest or link target.
fn listing(aged: &BTreeMap<String, Meta>, content: &BTreeMap<String, Content>) -> Vec<String> {
    aged.iter()
        .map(|(rel, m)| {
            let c = match content.get(rel) {
                Some(Content::Digest(d)) => format!(" blake3 {}", &d[..d.len().min(16)]),
                Some(Content::Target(t)) => format!(" → {}", t.display()),
                _ => String::new(),
            };
            format!(
                "{:<30} {:<9} {:>7} B{c}",
                if rel.is_empty() { "." } else { rel.as_str() },
                m.kind,
                m.size
            )
        })
        .collect()
}
