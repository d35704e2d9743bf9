//! `kind = "files"`.

use super::{StepFuture, StepKind, ValidateCx, clip};
use crate::verify::excerpt::excerpt;
use crate::verify::process::{self};
use crate::verify::steps::in_process;
use crate::verify::steps::{GateCtx, StepResult};
use serde::Deserialize;
use std::path::Path;

/// The `kind` spelling.
pub const KIND: &str = "files";

/// The smallest valid table of this kind (besides `kind`): the registry's test parses it.
pub const EXAMPLE: &str = "";

/// Where `files` globs are rooted.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FilesRoot {
    /// The gate's segment copy.
    #[default]
    Segment,
    /// The worktree of an earlier `worktree` step.
    Worktree,
    /// The repository checkout.
    Checkout,
}

/// `kind = "files"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesStep {
    /// Root of the globs.
    #[serde(default)]
    pub root: FilesRoot,
    /// Each glob must match at least one path.
    #[serde(default)]
    pub exist: Vec<String>,
    /// Each glob must match nothing.
    #[serde(default)]
    pub absent: Vec<String>,
    /// Glob whose matches are counted against `min`/`max`.
    pub count: Option<String>,
    /// Minimum matches of `count`.
    pub min: Option<usize>,
    /// Maximum matches of `count`.
    pub max: Option<usize>,
    /// Snapshot names whose files must be byte-for-byte unchanged.
    #[serde(default)]
    pub unchanged: Vec<String>,
}

impl StepKind for FilesStep {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn is_check(&self) -> bool {
        true
    }

    fn needs_segment(&self) -> bool {
        self.root == FilesRoot::Segment
    }

    fn runs_after_kill(&self) -> bool {
        true
    }

    fn label(&self) -> String {
        clip(
            &self
                .exist
                .iter()
                .map(|g| format!("+{g}"))
                .chain(self.absent.iter().map(|g| format!("-{g}")))
                .chain(self.count.iter().map(|g| format!("#{g}")))
                .chain(self.unchanged.iter().map(|g| format!("={g}")))
                .collect::<Vec<_>>()
                .join(" "),
        )
    }

    fn validate(&self, cx: &ValidateCx, err: &mut dyn FnMut(&str, String)) {
        for g in self
            .exist
            .iter()
            .chain(&self.absent)
            .chain(self.count.iter())
        {
            if let Err(e) = globset::Glob::new(g) {
                err("exist", format!("bad glob `{g}`: {e}"));
            }
        }
        if self.count.is_none() && (self.min.is_some() || self.max.is_some()) {
            err("min", "`min`/`max` need `count`".into());
        }
        if self.exist.is_empty()
            && self.absent.is_empty()
            && self.count.is_none()
            && self.unchanged.is_empty()
        {
            err("kind", "files check with nothing to check".into());
        }
        for s in self.unchanged.iter().filter(|s| !cx.names.contains(*s)) {
            err("unchanged", format!("no earlier snapshot named `{s}`"));
        }
        if self.root == FilesRoot::Worktree && !cx.has_worktree {
            err(
                "root",
                "root = \"worktree\" needs an earlier worktree step".into(),
            );
        }
    }
    fn exec<'a>(&'a self, ctx: &'a mut GateCtx, _index: usize) -> StepFuture<'a> {
        Box::pin(std::future::ready(files(ctx, self)))
    }
}

fn walk(root: &Path) -> Vec<String> {
    fn go(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if let Ok(rel) = p.strip_prefix(base) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                go(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    go(root, root, &mut out);
    out.sort();
    out
}

fn glob_matches(glob: &str, paths: &[String]) -> Result<Vec<String>, String> {
    let m = globset::GlobBuilder::new(glob)
        .literal_separator(true)
        .build()
        .map_err(|e| e.to_string())?
        .compile_matcher();
    Ok(paths.iter().filter(|p| m.is_match(p)).cloned().collect())
}

/// `files`: globs that must exist, be absent, or match a bounded number of paths; snapshots
/// that must be unchanged.
pub fn files(ctx: &mut GateCtx, s: &FilesStep) -> StepResult {
    let root = match s.root {
        FilesRoot::Segment => match ctx.segment() {
            Ok(p) => p.to_path_buf(),
            Err(o) => return o,
        },
        FilesRoot::Worktree => match &ctx.worktree {
            Some(w) => w.path.clone(),
            None => return StepResult::error("no worktree"),
        },
        FilesRoot::Checkout => ctx.shared.checkout.clone(),
    };
    let paths = walk(&root);
    let mut problems = Vec::new();
    let mut facts = Vec::new();
    for g in &s.exist {
        match glob_matches(g, &paths) {
            Ok(m) if m.is_empty() => problems.push(format!("`{g}` matches nothing")),
            Ok(m) => facts.push(format!("`{g}` → {}", m.join(", "))),
            Err(e) => problems.push(format!("bad glob {g}: {e}")),
        }
    }
    for g in &s.absent {
        match glob_matches(g, &paths) {
            Ok(m) if m.is_empty() => facts.push(format!("`{g}` absent")),
            Ok(m) => problems.push(format!(
                "`{g}` should be absent but matches {}",
                m.join(", ")
            )),
            Err(e) => problems.push(format!("bad glob {g}: {e}")),
        }
    }
    if let Some(g) = &s.count {
        match glob_matches(g, &paths) {
            Ok(m) => {
                let n = m.len();
                let lo = s.min.unwrap_or(0);
                let hi = s.max.unwrap_or(usize::MAX);
                let txt = format!(
                    "`{g}` matches {n} (allowed {lo}..={})",
                    s.max.map_or("∞".into(), |h| h.to_string())
                );
                if n < lo || n > hi {
                    problems.push(txt);
                } else {
                    facts.push(txt);
                }
            }
            Err(e) => problems.push(format!("bad glob {g}: {e}")),
        }
    }
    for name in &s.unchanged {
        match ctx.snapshots.get(name) {
            Some((p, h)) => match std::fs::read(p) {
                Ok(b) if blake3::hash(&b).to_hex().as_str() == h => {
                    facts.push(format!("snapshot `{name}` unchanged"))
                }
                Ok(_) => problems.push(format!("`{name}` ({}) changed", p.display())),
                Err(e) => problems.push(format!("`{name}` ({}) unreadable: {e}", p.display())),
            },
            None => problems.push(format!("no snapshot `{name}`")),
        }
    }
    let mut out = if problems.is_empty() {
        StepResult::pass(facts.join("; "))
    } else {
        StepResult::fail(problems.join("; "))
    };
    out.commands = vec![in_process(format!(
        "find {} (globs matched against the paths)",
        process::quote(&root.to_string_lossy())
    ))];
    out.excerpt = excerpt(&paths.join("\n"), 30, 2000, false);
    out
}
