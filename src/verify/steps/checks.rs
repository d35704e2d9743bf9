//! Check steps: they look, never change. jq predicates over telemetry and outputs, SQLite
//! `integrity_check`, file globs, baseline equality against an uncached run, and code signals.

use super::{GateCtx, Outcome, Saved};
use crate::verify::jq::{self, Globals, JqVerdict, VerdictKind};
use crate::verify::process::{self, ProcSpec};
use crate::verify::report::excerpt;
use crate::verify::spec::{
    BaselineStep, FilesRoot, FilesStep, IntegrityStep, JqStep, SignalStep, StepInput,
};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Telemetry text of the segment: rotated siblings oldest first (`events.N.jsonl` … `.1`), then
/// `events.jsonl`. Honours the contract's layout; a gate that sets `TRIFECTA_TELEMETRY_DIR` must
/// point it inside the segment at `_ctx/telemetry`.
///
/// Read with the tool's own telemetry reader ([`crate::telemetry::read::events_text`]), so the
/// checker survives a hostile tree the same way: only regular files are read, and a link where
/// `_ctx` or `_ctx/telemetry` belongs is an `InvalidData` error, never followed.
pub fn telemetry_text(segment: &Path) -> std::io::Result<String> {
    let location = crate::telemetry::Location::in_segment(segment, crate::telemetry::DEFAULT_DIR);
    Ok(crate::telemetry::read::events_text(&location)?.unwrap_or_default())
}

fn saved_json(ctx: &GateCtx, name: &str) -> Result<String, String> {
    match ctx.outputs.get(name) {
        Some(Saved::One(s)) => jq::parse_json(s).map(|v| v.to_string()).map_err(|e| {
            format!(
                "output of step `{name}` is not JSON ({e}): {}",
                excerpt(s, 3, 300, false)
            )
        }),
        Some(Saved::Many(v)) => {
            let mut parts = Vec::new();
            for (i, s) in v.iter().enumerate() {
                parts.push(
                    jq::parse_json(s)
                        .map(|v| v.to_string())
                        .map_err(|e| format!("output {i} of step `{name}` is not JSON ({e})"))?,
                );
            }
            Ok(format!("[{}]", parts.join(",")))
        }
        None => Err(format!("step `{name}` saved no output (did it run?)")),
    }
}

/// With a reference jq installed ([`jq::reference_jq`]), evaluate the predicate there too. A
/// disagreement makes the step an error (the verdict is unknown), never a pass.
fn cross_check(out: &mut Outcome, ours: VerdictKind, filter: &str, input: &str, globals: &Globals) {
    let Some(bin) = jq::reference_jq() else {
        return;
    };
    // A real process, but fed the in-memory input on stdin: a comment, like the in-process line.
    out.commands.push(format!(
        "# cross-check, same input on stdin: {} -e {}",
        bin.display(),
        process::quote(filter)
    ));
    let problem = match jq::reference_verdict(&bin, filter, input, globals) {
        Ok(theirs) if theirs == ours => {
            out.detail.push_str(&format!("; {} agrees", bin.display()));
            return;
        }
        Ok(theirs) => format!(
            "jaq and {} disagree: {} vs {} ({})",
            bin.display(),
            ours.as_str(),
            theirs.as_str(),
            out.detail
        ),
        Err(e) => format!("reference jq: {e}"),
    };
    let commands = std::mem::take(&mut out.commands);
    *out = Outcome::error(problem);
    out.commands = commands;
}

/// `jq`: evaluate a predicate with `jq -e` semantics.
pub fn jq(ctx: &mut GateCtx, s: &JqStep) -> Outcome {
    let (input, what) = match &s.on {
        StepInput::One(t) if t == "telemetry" => {
            let seg = match ctx.segment() {
                Ok(p) => p,
                Err(o) => return o,
            };
            let text = match telemetry_text(seg) {
                Ok(t) => t,
                // The telemetry folder is not a real folder in the segment: the tool left a
                // planted link in place, a finding about the tool.
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    return Outcome::fail(format!("telemetry: {e}"));
                }
                Err(e) => return Outcome::error(format!("read telemetry: {e}")),
            };
            let n = text.lines().filter(|l| !l.trim().is_empty()).count();
            match jq::slurp_lines(&text) {
                Ok(j) => (j, format!("telemetry ({n} events)")),
                Err(e) => return Outcome::fail(format!("telemetry does not parse: {e}")),
            }
        }
        StepInput::One(name) => match saved_json(ctx, name) {
            Ok(j) => (j, format!("output of `{name}`")),
            Err(e) => return Outcome::fail(e),
        },
        StepInput::Many(names) => {
            let mut parts = Vec::new();
            for n in names {
                match saved_json(ctx, n) {
                    Ok(j) => parts.push(j),
                    Err(e) => return Outcome::fail(e),
                }
            }
            (
                format!("[{}]", parts.join(",")),
                format!("outputs of {}", crate::output::quoted_list(names)),
            )
        }
    };
    let globals = match (ctx.segment.as_ref(), ctx.db()) {
        (Some(seg), Ok(db)) => Globals {
            segment: seg.to_string_lossy().into_owned(),
            cache_dir: db
                .parent()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default(),
            db: db.to_string_lossy().into_owned(),
        },
        _ => Globals::default(),
    };
    let cmd = super::in_process(format!("jaq -e {} <{what}>", process::quote(&s.filter)));
    let verdict = jq::eval(&s.filter, &input, &globals);
    let ours = verdict.as_ref().ok().map(JqVerdict::kind);
    let mut out = match verdict {
        Ok(JqVerdict::Pass(v)) => Outcome::pass(format!(
            "true on {what}; last output {}",
            v.last().map(String::as_str).unwrap_or("")
        )),
        Ok(JqVerdict::False(v)) => Outcome::fail(format!(
            "jq -e: last output is {} on {what} (expected true)",
            v.last().map(String::as_str).unwrap_or("")
        )),
        Ok(JqVerdict::NoOutput) => Outcome::fail(format!(
            "jq -e: the filter produced no output on {what} (jq exit 4)"
        )),
        Ok(JqVerdict::Error(e)) => Outcome::fail(format!("jq runtime error on {what}: {e}")),
        Err(e) => Outcome::error(format!("jq: {e}")),
    };
    out.commands = vec![cmd];
    if let Some(ours) = ours {
        cross_check(&mut out, ours, &s.filter, &input, &globals);
    }
    out.excerpt = excerpt(&input, 1, 1500, false);
    out
}

/// `integrity`: `PRAGMA integrity_check` on the cache DB.
pub fn integrity(ctx: &mut GateCtx, s: &IntegrityStep) -> Outcome {
    let db = match ctx.db() {
        Ok(d) => d,
        Err(o) => return o,
    };
    let cmd = super::in_process(format!("sqlite3 {} 'PRAGMA integrity_check'", db.display()));
    if !db.exists() && s.missing_ok {
        let mut out = Outcome::pass("no database: nothing was published before the crash");
        out.commands = vec![cmd];
        out.excerpt = format!(
            "no database at {} (missing_ok: nothing was published)",
            db.display()
        );
        return out;
    }
    if !db.is_file() {
        return Outcome {
            commands: vec![cmd],
            ..Outcome::fail(format!("no database at {}", db.display()))
        };
    }
    use rusqlite::OpenFlags;
    let res = rusqlite::Connection::open_with_flags(
        &db,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .and_then(|c| {
        let mut st = c.prepare("PRAGMA integrity_check")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect::<Result<Vec<_>, _>>()
    });
    let mut out = match res {
        Ok(rows) => {
            let got = rows.join("\n");
            Outcome::check(
                got == s.expect,
                format!(
                    "integrity_check = `{}` (expected `{}`)",
                    excerpt(&got, 5, 500, false),
                    s.expect
                ),
            )
        }
        Err(e) => Outcome::fail(format!("integrity_check could not run: {e}")),
    };
    out.commands = vec![cmd];
    out
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
pub fn files(ctx: &mut GateCtx, s: &FilesStep) -> Outcome {
    let root = match s.root {
        FilesRoot::Segment => match ctx.segment() {
            Ok(p) => p.to_path_buf(),
            Err(o) => return o,
        },
        FilesRoot::Worktree => match &ctx.worktree {
            Some(w) => w.path.clone(),
            None => return Outcome::error("no worktree"),
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
        Outcome::pass(facts.join("; "))
    } else {
        Outcome::fail(problems.join("; "))
    };
    out.commands = vec![super::in_process(format!(
        "find {} (globs matched against the paths)",
        process::quote(&root.to_string_lossy())
    ))];
    out.excerpt = excerpt(&paths.join("\n"), 30, 2000, false);
    out
}

/// Fields that must equal the uncached run; cache fields and the absolute root are ignored.
const COMPARED: [&str; 3] = ["symbols", "file_rel", "syntax_errors"];

/// The reference run for `uri`: uncached, telemetry off, on the segment copy `fresh`.
pub(super) fn uncached_spec(trifecta: &Path, uri: &str, fresh: &Path) -> ProcSpec {
    ProcSpec {
        program: trifecta.to_path_buf(),
        args: vec![
            "ast".into(),
            "symbols".into(),
            uri.into(),
            "--segment".into(),
            fresh.to_string_lossy().into_owned(),
            "--no-persist-cache".into(),
            "--telemetry".into(),
            "off".into(),
        ],
        env: BTreeMap::<String, String>::new().into_iter().collect(),
        cwd: Some(fresh.to_path_buf()),
        timeout: Duration::from_secs(120),
    }
}

/// Copy the segment's sources (not the cache or telemetry) to a fresh directory.
pub(super) fn copy_sources(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let name = e.file_name();
        if name == ".trifecta" || name == "_ctx" {
            continue;
        }
        let dest = to.join(&name);
        let ty = e.file_type()?;
        // Never follow a link or open a FIFO/device: links are copied as links, the rest skipped.
        if ty.is_dir() {
            crate::verify::workspace::copy_tree(&e.path(), &dest)?;
        } else if ty.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path())?, dest)?;
        } else if ty.is_file() {
            std::fs::copy(e.path(), dest)?;
        }
    }
    Ok(())
}

/// `baseline`: each saved output equals an uncached run (`--no-persist-cache`, telemetry off)
/// of the same URI on a fresh copy of the segment's current sources.
pub async fn baseline(ctx: &mut GateCtx, s: &BaselineStep) -> Outcome {
    let seg = match ctx.segment() {
        Ok(p) => p.to_path_buf(),
        Err(o) => return o,
    };
    let mut outputs: Vec<(String, String)> = Vec::new();
    for name in &s.steps {
        match ctx.outputs.get(name) {
            Some(Saved::One(o)) => outputs.push((name.clone(), o.clone())),
            Some(Saved::Many(v)) => outputs.extend(
                v.iter()
                    .enumerate()
                    .map(|(i, o)| (format!("{name}[{i}]"), o.clone())),
            ),
            None => return Outcome::fail(format!("step `{name}` saved no output")),
        }
    }
    if outputs.is_empty() {
        return Outcome::fail("nothing to compare (no outputs)");
    }
    let n = ctx.faults.len() + outputs.len();
    let fresh = ctx
        .tmp
        .path()
        .join(format!("baseline-{n}-{}", crate::clock::real_now_ms()));
    let copied = if s.clean {
        match &ctx.scenario_segment {
            Some(orig) => crate::verify::workspace::copy_tree(orig, &fresh),
            None => return Outcome::error("baseline `clean` needs a scenario"),
        }
    } else {
        copy_sources(&seg, &fresh)
    };
    if let Err(e) = copied {
        return Outcome::error(format!("copy sources for baseline: {e}"));
    }
    let mut base: HashMap<String, Result<Value, String>> = HashMap::new();
    let mut commands = Vec::new();
    let mut problems = Vec::new();
    for (label, text) in &outputs {
        let got: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                problems.push(format!(
                    "{label}: not JSON ({e}): {}",
                    excerpt(text, 2, 200, false)
                ));
                continue;
            }
        };
        let Some(uri) = got.get("uri").and_then(Value::as_str).map(str::to_string) else {
            problems.push(format!(
                "{label}: no `uri` in output: {}",
                excerpt(text, 2, 200, false)
            ));
            continue;
        };
        if !base.contains_key(&uri) {
            let spec = uncached_spec(&ctx.trifecta, &uri, &fresh);
            commands.push(spec.display());
            let r = match process::run(&spec).await {
                Ok(o) if o.code == Some(0) => serde_json::from_str::<Value>(&o.stdout)
                    .map_err(|e| format!("baseline output not JSON: {e}")),
                Ok(o) => Err(format!(
                    "baseline run failed: {} {}",
                    o.status_text(),
                    excerpt(o.stdout.trim(), 2, 300, false)
                )),
                Err(e) => Err(format!("cannot spawn baseline: {e}")),
            };
            base.insert(uri.clone(), r);
        }
        match base.get(&uri) {
            Some(Ok(b)) => {
                for f in COMPARED {
                    if got.get(f) != b.get(f) {
                        problems.push(format!(
                            "{label}: `{f}` differs from the uncached run of {uri}: got {} expected {}",
                            excerpt(&got.get(f).map(|v| v.to_string()).unwrap_or("(missing)".into()), 1, 300, false),
                            excerpt(&b.get(f).map(|v| v.to_string()).unwrap_or("(missing)".into()), 1, 300, false)
                        ));
                    }
                }
            }
            Some(Err(e)) => problems.push(format!("{label}: {e}")),
            None => {}
        }
    }
    let _ = std::fs::remove_dir_all(&fresh);
    let mut out = if problems.is_empty() {
        Outcome::pass(format!(
            "{} output(s) equal the uncached run on {} ({} URI(s)) on {}",
            outputs.len(),
            COMPARED.join(", "),
            base.len(),
            if s.clean {
                "a clean copy of the scenario"
            } else {
                "a copy of the segment's current sources"
            }
        ))
    } else {
        Outcome::fail(excerpt(&problems.join("\n"), 10, 3000, false))
    };
    out.commands = commands;
    out
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
pub fn signal(ctx: &mut GateCtx, s: &SignalStep) -> Outcome {
    let root = ctx.shared.checkout.clone();
    let mut allowed = globset::GlobSetBuilder::new();
    for a in &s.only_in {
        match globset::GlobBuilder::new(a).literal_separator(true).build() {
            Ok(g) => {
                allowed.add(g);
            }
            Err(e) => return Outcome::error(format!("bad only_in glob {a}: {e}")),
        }
    }
    let allowed = match allowed.build() {
        Ok(a) => a,
        Err(e) => return Outcome::error(format!("only_in: {e}")),
    };
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    for p in &s.paths {
        let start = root.join(p);
        if !start.exists() {
            return Outcome::fail(format!("path `{p}` does not exist in {}", root.display()));
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
    let test_only = if s.skip_tests {
        test_only_prefixes(&files)
    } else {
        Vec::new()
    };
    let mut hits = Vec::new();
    let mut outside = Vec::new();
    let mut skipped_files = 0;
    for (path, text) in &files {
        if test_only.iter().any(|t| path.starts_with(t)) {
            skipped_files += 1;
            continue;
        }
        let rel = path
            .strip_prefix(&root)
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
                hits.push(format!("{rel}:{}: {}", i + 1, line.trim()));
                if !s.only_in.is_empty() && !allowed.is_match(&rel) {
                    outside.push(format!("{rel}:{}", i + 1));
                }
            }
        }
    }
    hits.sort();
    let n = hits.len();
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
    let mut out = if problems.is_empty() {
        Outcome::pass(format!(
            "{n} match(es) ({skipped_files} test-only file(s) ignored){}",
            if s.only_in.is_empty() {
                String::new()
            } else {
                format!(", all in {}", crate::output::quoted_list(&s.only_in))
            }
        ))
    } else {
        Outcome::fail(problems.join("; "))
    };
    out.commands = vec![super::in_process(format!(
        "rg -n -F {} {}",
        process::quote(&s.pattern),
        s.paths.join(" ")
    ))];
    out.excerpt = excerpt(&hits.join("\n"), 20, 2500, false);
    out
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
