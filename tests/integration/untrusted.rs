//! "The segment is untrusted": hostile modules and settings end in bounded work and honest
//! answers. Deeply nested modules round-trip through the cache; one unreadable cache entry does
//! not disable the cache for the rest of an `ast index`; `--jobs` and every environment
//! variable are range-checked; a failed stdout write is a failure; and the text telemetry
//! report cannot be used to send control sequences to a terminal.

use crate::support::{Outcome, assert_error, run, symbols, trifecta, write};
use serde_json::Value;
use std::path::Path;

/// `n` classes, each nested in the previous one (Python rejects more than 99 indentation levels,
/// so past that this is tree-sitter's recovery, which keeps the nesting).
fn nested_classes(n: usize) -> String {
    let mut src = String::new();
    for i in 0..n {
        src.push_str(&" ".repeat(i));
        src.push_str(&format!("class C{i}:\n"));
    }
    src.push_str(&" ".repeat(n));
    src.push_str("pass\n");
    src
}

/// Parse JSON of any depth (serde_json's default limit of 128 levels is 63 nested classes).
fn parse_deep(text: &str) -> Value {
    use serde::Deserialize;
    let mut de = serde_json::Deserializer::from_str(text);
    de.disable_recursion_limit();
    Value::deserialize(serde_stacker::Deserializer::new(&mut de)).expect("JSON")
}

/// Run `f` on a thread with room for comparing and dropping deep JSON values.
fn on_big_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

/// Depth of the first symbol's chain of first members.
fn depth(symbols: &Value) -> usize {
    let mut d = 0;
    let mut cur = &symbols[0];
    while cur.is_object() {
        d += 1;
        cur = &cur["members"][0];
    }
    d
}

fn persisted_symbols(seg: &Path, module: &str) -> Outcome {
    let mut o = symbols(
        seg,
        &format!("sym://python/mod/{module}"),
        &["--persist-cache"],
    );
    o.json = parse_deep(&o.stdout);
    o
}

#[test]
fn a_thousand_nested_classes_round_trip_through_ast_symbols() {
    on_big_stack(deep_symbols);
}

/// The deepest nesting extraction reports: tree-sitter-python's scanner keeps its indentation
/// stack in a 1,024-byte state buffer, so past about 512 levels the whole module is one error
/// region (Python itself stops at 99).
const DEEPEST: usize = 500;

fn deep_symbols() {
    let d = tempfile::tempdir().unwrap();
    // 63 was the first depth past serde_json's default limit of 128 (two levels per class).
    for n in [63, DEEPEST, 1_000] {
        let module = format!("deep{n}");
        write(d.path(), &format!("{module}.py"), &nested_classes(n));
        let first = persisted_symbols(d.path(), &module);
        assert_eq!(first.code, Some(0), "{}", first.stdout);
        assert_eq!(first.json["cache_status"], "miss");
        assert_eq!(
            depth(&first.json["symbols"]),
            if n > DEEPEST { 0 } else { n }
        );
        // Valid Python up to 99 levels; CPython's indentation limit is an error at line 101.
        let first_error = &first.json["syntax_errors"][0]["line"];
        match n {
            63 => assert!(first_error.is_null()),
            DEEPEST => assert_eq!(first_error, 101),
            _ => assert_eq!(first_error, 1),
        }
        let second = persisted_symbols(d.path(), &module);
        assert_eq!(
            second.json["miss_reason"], "cache_hit",
            "depth {n}: {}",
            second.json["miss_reason"]
        );
        assert_eq!(second.json["symbols"], first.json["symbols"]);
        assert_eq!(second.json["syntax_errors"], first.json["syntax_errors"]);
    }
    assert!(
        !d.path().join(".trifecta/cache/quarantine").exists(),
        "nothing was taken for corruption"
    );
}

fn index_jsonl(seg: &Path) -> (Option<i32>, Vec<Value>, Value) {
    let mut cmd = trifecta();
    cmd.args([
        "ast",
        "index",
        "--persist-cache",
        "--format",
        "jsonl",
        "--segment",
    ])
    .arg(seg);
    let out = cmd.output().unwrap();
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(parse_deep)
        .collect();
    let summary = serde_json::from_slice(&out.stderr).unwrap_or(Value::Null);
    (out.status.code(), lines, summary)
}

#[test]
fn a_thousand_nested_classes_round_trip_through_ast_index() {
    on_big_stack(deep_index);
}

fn deep_index() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "deep.py", &nested_classes(DEEPEST));
    write(d.path(), "deeper.py", &nested_classes(1_000));
    write(d.path(), "flat.py", "def f(): pass\n");
    let (c1, cold, s1) = index_jsonl(d.path());
    assert_eq!(c1, Some(0), "{s1}");
    assert_eq!(s1["misses"], 3);
    assert_eq!(cold.len(), 3);
    let (c2, warm, s2) = index_jsonl(d.path());
    assert_eq!(c2, Some(0), "{s2}");
    assert_eq!(
        (s2["hits"].as_u64(), s2["misses"].as_u64()),
        (Some(3), Some(0)),
        "{s2}"
    );
    assert_eq!(depth(&warm[0]["symbols"]), DEEPEST);
    for (a, b) in cold.iter().zip(&warm) {
        assert_eq!(a["symbols"], b["symbols"]);
        assert_eq!(a["syntax_errors"], b["syntax_errors"]);
    }
}

#[test]
fn one_unreadable_entry_does_not_disable_the_cache_for_an_index_run() {
    let d = tempfile::tempdir().unwrap();
    let n = 40;
    for i in 0..n {
        write(
            d.path(),
            &format!("m{i:02}.py"),
            &format!("def f{i}(): pass\n"),
        );
    }
    let (code, _, cold) = index_jsonl(d.path());
    assert_eq!(
        (code, cold["misses"].as_u64()),
        (Some(0), Some(n)),
        "{cold}"
    );
    // Plant a row that is intact (its checksum matches) but does not decode: what a newer or
    // buggy writer could leave. It is not damage, so it must not cost the other 39 entries.
    let db = trifecta::cache::cache_db_path(&std::fs::canonicalize(d.path()).unwrap());
    let conn = rusqlite::Connection::open(&db).unwrap();
    let (rel, hash, tag): (String, Vec<u8>, String) = conn
        .query_row(
            "SELECT file_rel, content_hash, extractor FROM entries WHERE file_rel = 'm00.py'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let payload = br#"{"symbols": "not a list"}"#.to_vec();
    let sum = trifecta::cache::sqlite::entry_checksum(&rel, &hash, &tag, &payload);
    conn.execute(
        "UPDATE entries SET payload = ?1, checksum = ?2 WHERE file_rel = ?3",
        rusqlite::params![payload, &sum[..], rel],
    )
    .unwrap();
    drop(conn);
    let (code, lines, warm) = index_jsonl(d.path());
    assert_eq!(code, Some(0), "{warm}");
    assert_eq!(warm["hits"].as_u64(), Some(n - 1), "{warm}");
    assert_eq!(warm["misses"].as_u64(), Some(1), "{warm}");
    assert_eq!(warm["miss_reasons"]["entry_unreadable"], 1, "{warm}");
    assert_eq!(lines[0]["symbols"][0]["name"], "f0");
    // The entry was rewritten: the next run hits everything, and nothing was quarantined.
    let (_, _, again) = index_jsonl(d.path());
    assert_eq!(again["hits"].as_u64(), Some(n), "{again}");
    assert!(!d.path().join(".trifecta/cache/quarantine").exists());
}

#[test]
fn jobs_is_capped_with_invalid_argument() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "a.py", "def f(): pass\n");
    for jobs in ["0", "257", "100000"] {
        let mut cmd = trifecta();
        cmd.args(["ast", "index", "--jobs", jobs, "--segment"])
            .arg(d.path());
        let o = run(&mut cmd);
        assert_error(&o, "INVALID_ARGUMENT");
        assert!(
            o.json["message"].as_str().unwrap().contains("--jobs"),
            "{o:?}"
        );
    }
    let mut cmd = trifecta();
    cmd.args(["ast", "index", "--jobs", "256", "--segment"])
        .arg(d.path());
    let o = run(&mut cmd);
    assert_eq!(o.code, Some(0), "{o:?}");
    assert_eq!(o.json["jobs"], 256);
}

/// Run `ast cache path` (reads no module, creates nothing) with `var=value`.
fn with_env(seg: &Path, var: &str, value: &str) -> Outcome {
    let mut cmd = trifecta();
    cmd.args(["ast", "cache", "path", "--segment"])
        .arg(seg)
        .env(var, value);
    run(&mut cmd)
}

/// Every value in `bad` is refused with `INVALID_ARGUMENT` naming `var`; every value in `good`
/// is accepted.
fn check_range(var: &str, bad: &[&str], good: &[&str]) {
    let d = tempfile::tempdir().unwrap();
    for value in bad {
        let o = with_env(d.path(), var, value);
        assert_error(&o, "INVALID_ARGUMENT");
        let message = o.json["message"].as_str().unwrap_or("");
        assert!(message.contains(var), "{var}={value:?}: {message}");
    }
    for value in good {
        let o = with_env(d.path(), var, value);
        assert_eq!(o.code, Some(0), "{var}={value:?} is in range: {o:?}");
    }
}

#[test]
fn lock_timeout_range() {
    check_range(
        "TRIFECTA_AST_LOCK_TIMEOUT_MS",
        &[
            "-1",
            "2147483648",
            "3600001",
            "1e3",
            "NaN",
            "inf",
            "99999999999999999999999",
        ],
        &["0", "3600000", " 250 "],
    );
}

#[test]
fn size_ranges() {
    for var in ["TRIFECTA_AST_SIZE_WARN_MB", "TRIFECTA_AST_MAX_MB"] {
        check_range(
            var,
            &[
                "-1",
                "-0.5",
                "NaN",
                "inf",
                "-inf",
                "1e300",
                "1048576.5",
                "lots",
            ],
            &["0", "0.001", "1048576"],
        );
    }
}

#[test]
fn ttl_days_range() {
    check_range(
        "TRIFECTA_AST_TTL_DAYS",
        &["-1", "NaN", "inf", "1e300", "36500.1"],
        &["0", "0.5", "36500"],
    );
}

#[test]
fn maintenance_interval_range() {
    check_range(
        "TRIFECTA_AST_MAINTENANCE_INTERVAL_S",
        &["-1", "31536001", "18446744073709551616", "1.5", "NaN"],
        &["0", "31536000"],
    );
}

#[test]
fn telemetry_rotation_ranges() {
    check_range(
        "TRIFECTA_TELEMETRY_MAX_MB",
        &["0", "-1", "NaN", "inf", "1e300", "1048577"],
        &["0.001", "1048576"],
    );
    check_range(
        "TRIFECTA_TELEMETRY_KEEP",
        &["-1", "101", "1e2", "18446744073709551616"],
        &["0", "100"],
    );
}

#[test]
fn switches_and_levels() {
    check_range("TRIFECTA_AST_PERSIST", &["2", "maybe"], &["1", "off", ""]);
    check_range(
        "TRIFECTA_TELEMETRY",
        &["loud", "2"],
        &["off", "lite", "full", ""],
    );
    check_range("TRIFECTA_TEST_PANIC", &["2", "yes", "-1"], &["0"]);
}

#[test]
fn identity_and_clock_ranges() {
    check_range(
        "TRIFECTA_RUN_ID",
        &[&"r".repeat(129), "run\u{1b}[2J", "a\nb"],
        &["ci-42", &"r".repeat(128)],
    );
    check_range(
        "TRIFECTA_TELEMETRY_DIR",
        &[&format!("/tmp/{}", "d".repeat(4096))],
        &["/tmp/trifecta-telemetry-test"],
    );
    check_range(
        "TRIFECTA_TEST_NOW_MS",
        &["-1", "253402300800000", "soon", "NaN"],
        &["0", "253402300799999"],
    );
}

#[test]
fn messages_quote_values_without_rust_debug_formatting() {
    let d = tempfile::tempdir().unwrap();
    let o = with_env(d.path(), "TRIFECTA_AST_TTL_DAYS", "7\u{1b}");
    assert_error(&o, "INVALID_ARGUMENT");
    let message = o.json["message"].as_str().unwrap();
    // JSON's escape, not Debug's `\u{1b}`.
    assert!(
        message.contains(r#"TRIFECTA_AST_TTL_DAYS="7\u001b""#),
        "{message}"
    );
}

/// Run `args` with stdout connected to `stdout`.
fn run_to(args: &[&str], stdout: std::process::Stdio) -> std::process::Output {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("trifecta"));
    crate::support::scrub(&mut cmd);
    cmd.args(args).stdout(stdout).output().unwrap()
}

fn segment_with_telemetry() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "pkg/__init__.py", "");
    write(d.path(), "pkg/a.py", "def f(): pass\n");
    let s = d.path().to_str().unwrap();
    let mut cmd = trifecta();
    cmd.args([
        "ast",
        "symbols",
        "sym://python/mod/pkg.a",
        "--telemetry",
        "lite",
        "--segment",
        s,
    ]);
    assert_eq!(run(&mut cmd).code, Some(0));
    d
}

#[test]
fn a_failed_stdout_write_exits_non_zero_with_a_message() {
    let d = segment_with_telemetry();
    let s = d.path().to_str().unwrap();
    for args in [
        &["ast", "symbols", "sym://python/mod/pkg.a", "--segment", s][..],
        &["ast", "index", "--format", "jsonl", "--segment", s],
        &["ast", "index", "--segment", s],
        &["telemetry", "report", "--segment", s],
        &["telemetry", "report", "--format", "text", "--segment", s],
        &["ast", "cache", "path", "--segment", s],
        &["--help"],
    ] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full exists on Linux");
        let out = run_to(args, full.into());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("cannot write to standard output") && err.contains("No space left"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn a_closed_pipe_ends_quietly_with_exit_0() {
    let d = segment_with_telemetry();
    let s = d.path().to_str().unwrap();
    for args in [
        &["ast", "symbols", "sym://python/mod/pkg.a", "--segment", s][..],
        &["ast", "index", "--format", "jsonl", "--segment", s],
        &["telemetry", "report", "--format", "text", "--segment", s],
    ] {
        // A pipe whose read end is already closed: every write fails with EPIPE.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = run_to(args, writer.into());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
        assert!(!err.contains("cannot write"), "{args:?}: {err}");
    }
}

#[test]
fn text_report_escapes_control_characters_from_events() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("_ctx/telemetry");
    std::fs::create_dir_all(&dir).unwrap();
    let hostile = "run\u{1b}[2J\u{1b}]0;owned\u{7}\rfake\u{9b}31m\u{202e}x\\x1b";
    let event = serde_json::json!({
        "ts": "2026-11-21T00:00:00.000Z", "run_id": hostile, "segment_id": "00000000",
        "cmd": "ast.cache.miss", "args": {}, "result": {"status": "miss",
        "miss_reason": format!("key\u{1b}[31m_miss")}, "timing_ms": 1.0, "warnings": [],
        "x": {}, "cache_type": "sqlite"
    });
    std::fs::write(dir.join("events.jsonl"), format!("{event}\n")).unwrap();
    let mut cmd = trifecta();
    cmd.args(["telemetry", "report", "--format", "text", "--segment"])
        .arg(d.path());
    let o = run(&mut cmd);
    assert_eq!(o.code, Some(0), "{o:?}");
    let bad: Vec<char> = o
        .stdout
        .chars()
        .filter(|&c| c != '\n' && (c.is_control() || c == '\u{202e}'))
        .collect();
    assert!(
        bad.is_empty(),
        "raw control characters {bad:?} in:\n{}",
        o.stdout
    );
    // Escaped visibly, and a literal backslash in the input cannot pose as an escape.
    assert!(
        o.stdout
            .contains(r"run\x1b[2J\x1b]0;owned\x07\x0dfake\u{9b}31m\u{202e}x\\x1b"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains(r"key\x1b[31m_miss"), "{}", o.stdout);
}
