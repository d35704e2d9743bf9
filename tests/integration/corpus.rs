//! The acceptance corpus: every module of this machine's Python standard library that
//! `ast.parse` accepts (site-packages excluded) must give exactly `ast`'s symbol lists.
//!
//! Ignored by default (it needs `python3` and takes seconds); CI runs it with
//! `cargo test --release --test integration -- --ignored corpus`.
//! Ground truth comes from `tests/corpus/ast_symbols.py`; our side runs in-process.
//! `TRIFECTA_PYTHON` selects the interpreter (default `python3`); `TRIFECTA_CORPUS_DIR` points
//! the same comparison at another tree (e.g. site-packages) for extra coverage.

use serde::Deserialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use trifecta::symbols::Symbol;
use trifecta::symbols::extract::extract;

/// Fewer compared files than this means the corpus path or the script is broken, not that
/// the extractor is good.
const MIN_FILES: usize = 500;

/// How many mismatches to print in full.
const SHOW: usize = 5;

#[derive(Deserialize)]
struct Truth {
    path: String,
    symbols: Vec<Symbol>,
    /// Whether `compile()` also accepts it; only then must we report no syntax errors.
    compiles: bool,
}

fn python() -> String {
    std::env::var("TRIFECTA_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

fn stdlib_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TRIFECTA_CORPUS_DIR") {
        return PathBuf::from(dir);
    }
    let out = Command::new(python())
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['stdlib'])",
        ])
        .output()
        .expect("python3 must be installed to run the corpus test");
    assert!(out.status.success(), "python3 could not report its stdlib");
    PathBuf::from(String::from_utf8(out.stdout).expect("utf-8 path").trim())
}

/// Run the ground-truth script over `dir`; returns the parsed JSONL and the script's stderr.
fn ground_truth(dir: &Path) -> (Vec<Truth>, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/ast_symbols.py");
    let out = Command::new(python())
        .arg(&script)
        .args(["--exclude-dir", "site-packages"])
        .arg(dir)
        .output()
        .expect("run ast_symbols.py");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "ast_symbols.py failed: {stderr}");
    let truths = String::from_utf8(out.stdout)
        .expect("utf-8 JSONL")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSONL record in our symbol shape"))
        .collect();
    (truths, stderr)
}

/// One line per symbol (members indented), so mismatches can be shown as a short diff.
fn flatten(symbols: &[Symbol], depth: usize, out: &mut Vec<String>) {
    for s in symbols {
        out.push(format!(
            "{:indent$}{:?} {} {}-{}{}",
            "",
            s.kind,
            s.name,
            s.line,
            s.end_line,
            if s.is_async { " async" } else { "" },
            indent = depth * 2
        ));
        if let Some(members) = &s.members {
            flatten(members, depth + 1, out);
        }
    }
}

/// The first differing symbol line with a little context from both sides.
fn render_diff(ours: &[Symbol], theirs: &[Symbol]) -> String {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    flatten(ours, 0, &mut a);
    flatten(theirs, 0, &mut b);
    let first = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let from = first.saturating_sub(2);
    let window = |v: &[String]| {
        v.iter()
            .skip(from)
            .take(6)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!(
        "first difference at symbol line {first} ({} vs {} lines)\n--- ours:\n{}\n--- ast:\n{}",
        a.len(),
        b.len(),
        window(&a),
        window(&b)
    )
}

#[test]
#[ignore = "needs python3; run with -- --ignored corpus"]
fn corpus_stdlib_matches_python_ast() {
    let dir = stdlib_dir();
    let (truths, stderr) = ground_truth(&dir);
    let started = Instant::now();
    let mut mismatches = Vec::new();
    let mut flagged = Vec::new();
    let mut bytes_total = 0usize;
    for truth in &truths {
        let bytes = std::fs::read(&truth.path).expect("read corpus file");
        bytes_total += bytes.len();
        let table = extract(&bytes);
        if table.symbols != truth.symbols {
            mismatches.push((truth, table.symbols));
        } else if truth.compiles && table.has_syntax_errors() {
            flagged.push((truth.path.as_str(), table.syntax_errors));
        }
    }
    let elapsed = started.elapsed();
    // The converse, reported but not enforced: tree-sitter cannot see tokenizer- and
    // compiler-level errors (inconsistent tabs, NUL bytes, invalid UTF-8...), only grammar ones.
    let rejected: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("rejected "))
        .filter_map(|l| l.split_once(' ').map(|(_, path)| path))
        .collect();
    let mut unflagged = Vec::new();
    for path in &rejected {
        let bytes = std::fs::read(path).unwrap_or_default();
        if !extract(&bytes).has_syntax_errors() {
            unflagged.push(*path);
        }
    }
    let summary = format!(
        "corpus: {} files compared under {} ({} bytes), {} mismatches, \
         {} compilable files flagged with syntax errors; extraction took {:.3} s; \
         ast rejected {} files, {} of them without syntax_errors from us: {:?}",
        truths.len(),
        dir.display(),
        bytes_total,
        mismatches.len(),
        flagged.len(),
        elapsed.as_secs_f64(),
        rejected.len(),
        unflagged.len(),
        unflagged
    );
    // Written straight to stderr, which libtest does not capture: CI logs show the count
    // even when the test passes and `--nocapture` was not given.
    let _ = writeln!(std::io::stderr(), "{summary}");
    for (path, errors) in flagged.iter().take(SHOW) {
        println!("flagged: {path}: {errors:?}");
    }
    assert!(
        truths.len() >= MIN_FILES,
        "only {} files compared (< {MIN_FILES}): is the stdlib path right? stderr: {stderr}",
        truths.len()
    );
    if !mismatches.is_empty() {
        let mut report = String::new();
        for (truth, ours) in mismatches.iter().take(SHOW) {
            report.push_str(&format!(
                "\n=== {}\n{}\n",
                truth.path,
                render_diff(ours, &truth.symbols)
            ));
        }
        let all: Vec<&str> = mismatches.iter().map(|(t, _)| t.path.as_str()).collect();
        panic!(
            "{} of {} files differ from ast; all: {all:?}{report}",
            mismatches.len(),
            truths.len()
        );
    }
    // A file Python compiles must not be reported as broken to the user.
    assert!(
        flagged.is_empty(),
        "{} compilable files reported syntax errors: {flagged:?}",
        flagged.len()
    );
}
