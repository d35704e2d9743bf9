//! Build script: bakes into the binaries what `--version` must name so a report can say exactly
//! which build it gated — the git commit, whether the sources it was built from had uncommitted
//! changes, and the versions of the parsers compiled in (read from `Cargo.lock`).
//!
//! Everything degrades to `unknown` (no git, not a checkout, no `Cargo.lock`): a source tarball
//! must still build. The `rerun-if-changed` list keeps the facts current without making every
//! build re-run the script: HEAD, the branch ref, packed refs and the index (commits, checkouts,
//! staging), plus the build inputs themselves (an edit makes the tree dirty).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The dependencies whose versions `--version` reports (crate names as in `Cargo.lock`).
const REPORTED: [&str; 4] = [
    "tree-sitter",
    "tree-sitter-python",
    "ruff_python_parser",
    "rusqlite",
];

/// The paths whose uncommitted changes make the build "dirty": what the binaries are built from.
/// Limited to build inputs on purpose, so the flag is exactly as fresh as the rebuild triggers.
const BUILD_INPUTS: [&str; 4] = ["src", "build.rs", "Cargo.toml", "Cargo.lock"];

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `(commit, dirty)`; `("unknown", "unknown")` outside a git checkout or without git.
fn git_state() -> (String, String) {
    let Some(commit) = git(&["rev-parse", "HEAD"]).filter(|c| !c.is_empty()) else {
        return ("unknown".into(), "unknown".into());
    };
    let mut args = vec!["status", "--porcelain", "--untracked-files=normal", "--"];
    args.extend(BUILD_INPUTS);
    let dirty = match git(&args) {
        Some(s) if s.is_empty() => "clean",
        Some(_) => "dirty",
        None => "unknown",
    };
    (commit, dirty.into())
}

/// Files whose change means HEAD, the branch tip or the index moved. In a linked worktree the
/// git dir (HEAD, index) and the common dir (refs) differ, so both are asked for.
fn git_watch_list() -> Vec<PathBuf> {
    let Some(git_dir) = git(&["rev-parse", "--git-dir"]) else {
        return vec![];
    };
    let common = git(&["rev-parse", "--git-common-dir"]).unwrap_or_else(|| git_dir.clone());
    let (git_dir, common) = (PathBuf::from(git_dir), PathBuf::from(common));
    let mut v = vec![
        git_dir.join("HEAD"),
        git_dir.join("index"),
        common.join("packed-refs"),
    ];
    if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
        v.push(common.join(r));
    }
    v
}

/// `name → version` for [`REPORTED`] from `Cargo.lock` (first entry of each name).
fn locked_versions(lock: &Path) -> Vec<(&'static str, String)> {
    let text = std::fs::read_to_string(lock).unwrap_or_default();
    let mut found = Vec::new();
    let mut name: Option<&str> = None;
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"'));
        } else if let (Some(v), Some(n)) = (line.strip_prefix("version = "), name.take())
            && let Some(wanted) = REPORTED.iter().find(|r| **r == n)
            && !found.iter().any(|(f, _)| f == wanted)
        {
            found.push((*wanted, v.trim_matches('"').to_string()));
        }
    }
    REPORTED
        .iter()
        .map(|r| {
            let v = found.iter().find(|(f, _)| f == r).map(|(_, v)| v.clone());
            (*r, v.unwrap_or_else(|| "unknown".into()))
        })
        .collect()
}

fn main() {
    let (commit, dirty) = git_state();
    println!("cargo:rustc-env=TRIFECTA_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=TRIFECTA_GIT_TREE={dirty}");
    for (name, version) in locked_versions(Path::new("Cargo.lock")) {
        let key = name.to_uppercase().replace('-', "_");
        println!("cargo:rustc-env=TRIFECTA_DEP_{key}={version}");
    }
    println!(
        "cargo:rustc-env=TRIFECTA_PROFILE={}",
        std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into())
    );
    // Only existing paths: cargo treats a missing one as always changed, which would re-run this
    // script on every build.
    for p in git_watch_list().iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    for p in BUILD_INPUTS {
        println!("cargo:rerun-if-changed={p}");
    }
}
