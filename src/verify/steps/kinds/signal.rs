//! `kind = "signal"`.

use super::{StepFuture, StepKind, ValidateCx};
use crate::verify::excerpt::excerpt;
use crate::verify::process::{self};
use crate::verify::steps::in_process;
use crate::verify::steps::{GateCtx, StepResult};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The `kind` spelling.
pub const KIND: &str = "signal";

/// The smallest valid table of this kind (besides `kind`): the registry's test parses it.
pub const EXAMPLE: &str = "pattern = \"x\"";

/// `kind = "signal"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalStep {
    /// Literal text searched for.
    pub pattern: String,
    /// Checkout-relative directories or files searched.
    #[serde(default = "default_signal_paths")]
    pub paths: Vec<String>,
    /// When non-empty, every match must be in a file matching one of these checkout-relative
    /// globs (`src/commands/**`).
    #[serde(default)]
    pub only_in: Vec<String>,
    /// Minimum matches (default 1: an absent pattern is a failure, not a vacuous pass).
    #[serde(default = "one")]
    pub min: usize,
    /// Maximum matches.
    pub max: Option<usize>,
    /// Ignore test code (unit tests may construct what production code must not): the rest of
    /// a file from `#[cfg(test)]` + an inline `mod … {`, and files that are `#[cfg(test)] mod x;`
    /// modules (`x.rs`, `x/`). Default true.
    #[serde(default = "super::yes")]
    pub skip_tests: bool,
}

fn default_signal_paths() -> Vec<String> {
    vec!["src".to_string()]
}

fn one() -> usize {
    1
}

impl StepKind for SignalStep {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn is_check(&self) -> bool {
        true
    }

    fn needs_segment(&self) -> bool {
        false
    }

    fn label(&self) -> String {
        format!("`{}`", self.pattern)
    }

    fn validate(&self, _cx: &ValidateCx, err: &mut dyn FnMut(&str, String)) {
        for g in &self.only_in {
            if let Err(e) = globset::Glob::new(g) {
                err("only_in", format!("bad glob `{g}`: {e}"));
            }
        }
        if self.pattern.is_empty() {
            err("pattern", "empty pattern".into());
        }
        if self.max.is_some_and(|m| m < self.min) {
            err("max", "max < min".into());
        }
    }
    fn exec<'a>(&'a self, ctx: &'a mut GateCtx, _index: usize) -> StepFuture<'a> {
        Box::pin(std::future::ready(signal(ctx, self)))
    }
}

/// Files that are test-only modules: the target of `#[cfg(test)] mod name;` (as `name.rs` or
/// `name/mod.rs` beside the declaring module's directory) and everything below `name/`.
fn test_only_prefixes(files: &[(PathBuf, String)]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (path, text) in files {
        let Some(parent) = path.parent() else {
            continue;
        };
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        // `foo.rs` declares children in `foo/`; `mod.rs`, `lib.rs`, `main.rs` in their own dir.
        let dir = if ["mod", "lib", "main"].contains(&stem.as_str()) {
            parent.to_path_buf()
        } else {
            parent.join(&stem)
        };
        let mut cfg_test = false;
        for line in text.lines() {
            let t = line.trim();
            if t == "#[cfg(test)]" {
                cfg_test = true;
                continue;
            }
            if cfg_test
                && let Some(name) = t
                    .strip_prefix("mod ")
                    .or_else(|| t.strip_prefix("pub mod "))
                    .or_else(|| t.strip_prefix("pub(crate) mod "))
                    .and_then(|r| r.strip_suffix(';'))
            {
                out.push(dir.join(format!("{name}.rs")));
                out.push(dir.join(name));
            }
            if !t.starts_with("#[") && !t.is_empty() {
                cfg_test = false;
            }
        }
    }
    out
}

/// Whether the item after a `#[cfg(test)]` line is an inline module (`mod tests {`): by
/// convention the rest of the file is then test code. A declaration (`mod tests;`) is not — its
/// file is excluded separately — and production code may follow it.
fn opens_inline_module(rest: &[&str]) -> bool {
    rest.iter()
        .map(|l| l.trim())
        .find(|t| !t.is_empty() && !t.starts_with("#[") && !t.starts_with("//"))
        .is_some_and(|t| t.contains("mod ") && t.ends_with('{'))
}

/// `signal`: literal code search in the checkout (like `rg -n -F`), respecting .gitignore.
pub fn signal(ctx: &mut GateCtx, s: &SignalStep) -> StepResult {
    let root = ctx.shared.checkout.clone();
    let allowed = match allowed_globs(&s.only_in) {
        Ok(a) => a,
        Err(o) => return o,
    };
    let files = match read_files(&root, &s.paths) {
        Ok(f) => f,
        Err(o) => return o,
    };
    let found = search(s, &root, &files, &allowed);
    let n = found.hits.len();
    let problems = count_problems(s, n, &found.outside);
    let mut out = if problems.is_empty() {
        StepResult::pass(format!(
            "{n} match(es) ({} test-only file(s) ignored){}",
            found.skipped_files,
            if s.only_in.is_empty() {
                String::new()
            } else {
                format!(", all in {}", crate::output::quoted_list(&s.only_in))
            }
        ))
    } else {
        StepResult::fail(problems.join("; "))
    };
    out.commands = vec![in_process(format!(
        "rg -n -F {} {}",
        process::quote(&s.pattern),
        s.paths.join(" ")
    ))];
    out.excerpt = excerpt(&found.hits.join("\n"), 20, 2500, false);
    out
}

/// The `only_in` globs, with `*` not crossing `/` (so `src/commands/*` is one level).
fn allowed_globs(only_in: &[String]) -> Result<globset::GlobSet, StepResult> {
    let mut allowed = globset::GlobSetBuilder::new();
    for a in only_in {
        match globset::GlobBuilder::new(a).literal_separator(true).build() {
            Ok(g) => {
                allowed.add(g);
            }
            Err(e) => return Err(StepResult::error(format!("bad only_in glob {a}: {e}"))),
        }
    }
    allowed
        .build()
        .map_err(|e| StepResult::error(format!("only_in: {e}")))
}

/// Every readable text file below the checkout-relative `paths` (respecting .gitignore); a
/// missing path fails the step rather than making the search vacuous.
fn read_files(root: &Path, paths: &[String]) -> Result<Vec<(PathBuf, String)>, StepResult> {
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    for p in paths {
        let start = root.join(p);
        if !start.exists() {
            return Err(StepResult::fail(format!(
                "path `{p}` does not exist in {}",
                root.display()
            )));
        }
        for entry in ignore::WalkBuilder::new(&start).build().flatten() {
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(entry.path()) {
                files.push((entry.path().to_path_buf(), text));
            }
        }
    }
    Ok(files)
}

/// What [`search`] found.
struct Found {
    /// `rel:line: text` of every match, sorted.
    hits: Vec<String>,
    /// `rel:line` of matches outside `only_in`.
    outside: Vec<String>,
    /// Test-only module files not searched.
    skipped_files: usize,
}

/// Search `files` for the pattern, skipping test code when the step says so.
fn search(
    s: &SignalStep,
    root: &Path,
    files: &[(PathBuf, String)],
    allowed: &globset::GlobSet,
) -> Found {
    let test_only = if s.skip_tests {
        test_only_prefixes(files)
    } else {
        Vec::new()
    };
    let mut found = Found {
        hits: Vec::new(),
        outside: Vec::new(),
        skipped_files: 0,
    };
    for (path, text) in files {
        if test_only.iter().any(|t| path.starts_with(t)) {
            found.skipped_files += 1;
            continue;
        }
        let rel = path
            .strip_prefix(root)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            if s.skip_tests && line.trim() == "#[cfg(test)]" && opens_inline_module(&lines[i + 1..])
            {
                break;
            }
            if line.contains(&s.pattern) {
                found.hits.push(format!("{rel}:{}: {}", i + 1, line.trim()));
                if !s.only_in.is_empty() && !allowed.is_match(&rel) {
                    found.outside.push(format!("{rel}:{}", i + 1));
                }
            }
        }
    }
    found.hits.sort();
    found
}

/// Why `n` matches (and those `outside` of `only_in`) break the step's bounds, if they do.
fn count_problems(s: &SignalStep, n: usize, outside: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    if n < s.min {
        problems.push(format!("{n} match(es), at least {} required", s.min));
    }
    if let Some(m) = s.max
        && n > m
    {
        problems.push(format!("{n} match(es), at most {m} allowed"));
    }
    if !outside.is_empty() {
        problems.push(format!(
            "matches outside {}: {}",
            crate::output::quoted_list(&s.only_in),
            outside.join(", ")
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_test_module_detection() {
        assert!(opens_inline_module(&["mod tests {"]));
        assert!(opens_inline_module(&["", "#[allow(x)]", "pub mod tests {"]));
        // A declaration: production code may follow, so keep scanning.
        assert!(!opens_inline_module(&["mod tests;", "fn prod() {}"]));
        assert!(!opens_inline_module(&["fn only_in_tests() {"]));
    }

    #[test]
    fn cfg_test_module_files_are_test_only() {
        let files = vec![
            (
                PathBuf::from("/r/src/cache/sqlite.rs"),
                "pub mod open;\n#[cfg(test)]\nmod tests;\nfn prod() {}\n".to_string(),
            ),
            (
                PathBuf::from("/r/src/lib.rs"),
                "#[cfg(test)]\n#[path = \"x\"]\npub mod support;\nmod real;\n".to_string(),
            ),
        ];
        let t = test_only_prefixes(&files);
        assert!(t.contains(&PathBuf::from("/r/src/cache/sqlite/tests.rs")));
        assert!(t.contains(&PathBuf::from("/r/src/support.rs")));
        // `pub mod open;` and `mod real;` are production modules.
        assert!(
            !t.iter()
                .any(|p| p.ends_with("open.rs") || p.ends_with("real.rs"))
        );
    }
}
