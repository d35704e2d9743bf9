//! `trifecta telemetry report` through the real binary: synthetic logs with every event family,
//! malformed lines, rotated files, `--since`, formats, `--output`, and logs written by real
//! `ast symbols` runs. The log is never modified by a report.

use crate::telemetry::{segment, symbols, trifecta};
use serde_json::{Value, json};
use std::path::Path;

fn report(seg: &Path, extra: &[&str]) -> (i32, String, String) {
    let out = trifecta()
        .args(["telemetry", "report", "--segment"])
        .arg(seg)
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn report_json(seg: &Path, extra: &[&str]) -> Value {
    let (code, out, err) = report(seg, extra);
    assert_eq!(code, 0, "{out}{err}");
    serde_json::from_str(&out).unwrap()
}

fn line(ts: &str, run: &str, cmd: &str, args: Value, result: Value, ms: f64) -> String {
    json!({"ts": ts, "run_id": run, "segment_id": "abcd1234", "cmd": cmd, "args": args,
           "result": result, "timing_ms": ms, "warnings": [], "x": {}, "cache_type": "sqlite"})
    .to_string()
}

/// A log spread over `events.2.jsonl` (oldest), `events.1.jsonl` and `events.jsonl`, with
/// every event family and three malformed lines.
fn fixture(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let sym = |ts: &str, run: &str, status: &str, reason: &str, ms: f64| {
        line(
            ts,
            run,
            "ast.symbols",
            json!({"uri": "sym://python/mod/a"}),
            json!({"status": "ok", "cache_status": status, "miss_reason": reason}),
            ms,
        )
    };
    let e = json!({});
    let old = [
        sym(
            "2026-11-20T10:00:00.000Z",
            "r1",
            "miss",
            "cold_cache_db_missing",
            50.0,
        ),
        line(
            "2026-11-20T10:00:00.000Z",
            "r1",
            "ast.cache.miss",
            e.clone(),
            json!({"status": "miss", "miss_reason": "cold_cache_db_missing"}),
            1.0,
        ),
        line(
            "2026-11-20T10:00:01.000Z",
            "r1",
            "ast.cache.stats",
            e.clone(),
            json!({"entries": 1, "payload_bytes": 10, "db_bytes": 8192, "wal_bytes": 0}),
            0.1,
        ),
    ];
    let mid = [
        sym("2026-11-21T01:00:00.000Z", "r2", "hit", "cache_hit", 2.0),
        line(
            "2026-11-21T01:00:00.000Z",
            "r2",
            "ast.cache.hit",
            e.clone(),
            json!({"status": "hit"}),
            0.2,
        ),
        "{ this is not json".to_string(),
        line(
            "2026-11-21T01:00:05.000Z",
            "r2",
            "ast.cache.lock_timeout",
            json!({"mode": "shared"}),
            json!({"waited_ms": 5000, "timeout_ms": 5000}),
            5000.0,
        ),
        line(
            "2026-11-21T01:00:06.000Z",
            "r2",
            "ast.cache.fallback",
            e.clone(),
            json!({"reason": "lock_timeout"}),
            0.0,
        ),
    ];
    let new = [
        sym("2026-11-21T02:00:00.000Z", "r3", "hit", "cache_hit", 4.0),
        line(
            "2026-11-21T02:00:00.000Z",
            "r3",
            "ast.cache.hit",
            e.clone(),
            json!({"status": "hit"}),
            0.4,
        ),
        String::new(),
        line(
            "2026-11-21T02:00:01.000Z",
            "r3",
            "ast.cache.corruption_detected",
            e.clone(),
            json!({"kind": "integrity_check", "quarantined_to": "quarantine/x", "action": "rebuilt"}),
            3.0,
        ),
        sym(
            "2026-11-21T02:00:02.000Z",
            "r3",
            "miss",
            "corruption_recovered",
            30.0,
        ),
        line(
            "2026-11-21T02:00:03.000Z",
            "r3",
            "ast.cache.size_warning",
            e.clone(),
            json!({"db_bytes": 600_000_000u64, "wal_bytes": 1000, "threshold_bytes": 524_288_000u64}),
            0.0,
        ),
        line(
            "2026-11-21T02:00:04.000Z",
            "r3",
            "ast.cache.evicted",
            e.clone(),
            json!({"count": 5, "bytes": 5000}),
            1.0,
        ),
        line(
            "2026-11-21T02:00:05.000Z",
            "r3",
            "ast.cache.schema_incompatible",
            e,
            json!({"found": 9, "supported": 1}),
            0.0,
        ),
        r#"{"cmd":"ast.symbols","ts":"last tuesday"}"#.to_string(),
    ];
    let write = |name: &str, lines: &[String]| {
        std::fs::write(dir.join(name), lines.join("\n") + "\n").unwrap();
    };
    write("events.2.jsonl", &old);
    write("events.1.jsonl", &mid);
    write("events.jsonl", &new);
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn missing_telemetry_is_a_clear_zero_result() {
    let t = tempfile::tempdir().unwrap();
    let seg = segment(t.path());
    let r = report_json(&seg, &[]);
    assert_eq!(r["status"], "ok");
    assert_eq!(r["no_telemetry"], true);
    assert_eq!(r["source"]["exists"], false);
    assert_eq!(r["events_total"], 0);
    assert_eq!(r["symbols"]["count"], 0);
    assert_eq!(r["symbols"]["hit_rate"], Value::Null);
    assert_eq!(r["malformed"]["count"], 0);
    assert!(!seg.join("_ctx").exists(), "a report creates nothing");
    let (code, text, _) = report(&seg, &["--format", "text"]);
    assert_eq!(code, 0);
    assert!(text.contains("No telemetry"), "{text}");
    // Present but empty is the same answer.
    std::fs::create_dir_all(seg.join("_ctx/telemetry")).unwrap();
    std::fs::write(seg.join("_ctx/telemetry/events.jsonl"), b"").unwrap();
    let r = report_json(&seg, &[]);
    assert_eq!(
        (r["no_telemetry"].as_bool(), r["source"]["exists"].as_bool()),
        (Some(true), Some(true))
    );
}

#[test]
fn figures_from_a_rotated_log_with_malformed_lines_and_the_log_is_untouched() {
    let t = tempfile::tempdir().unwrap();
    let seg = segment(t.path());
    let dir = seg.join("_ctx/telemetry");
    fixture(&dir);
    let before = snapshot(&dir);
    let r = report_json(&seg, &[]);
    assert_eq!(
        snapshot(&dir),
        before,
        "the report must never rewrite the log"
    );

    let files: Vec<&str> = r["source"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["events.2.jsonl", "events.1.jsonl", "events.jsonl"]);
    assert_eq!(r["events_total"], 14);
    assert_eq!(r["malformed"]["count"], 3);
    let first: Vec<(String, u64)> = r["malformed"]["first"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["file"].as_str().unwrap().to_string(),
                m["line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        first,
        [
            ("events.1.jsonl".to_string(), 3),
            ("events.jsonl".into(), 3),
            ("events.jsonl".into(), 9)
        ]
    );
    assert_eq!(r["symbols"]["count"], 4);
    assert_eq!(
        (
            r["symbols"]["hits"].as_u64(),
            r["symbols"]["misses"].as_u64()
        ),
        (Some(2), Some(2))
    );
    assert_eq!(r["symbols"]["hit_rate"], 0.5);
    assert_eq!(
        r["symbols"]["misses_by_reason"],
        json!({"cold_cache_db_missing": 1, "corruption_recovered": 1})
    );
    assert_eq!(r["symbols"]["latency_ms"]["hit"]["p50"], 2.0);
    assert_eq!(r["symbols"]["latency_ms"]["hit"]["p99"], 4.0);
    assert_eq!(r["symbols"]["latency_ms"]["miss"]["max"], 50.0);
    assert_eq!(r["lookups"]["hits"], 2);
    assert_eq!(r["lookups"]["misses_by_reason"]["cold_cache_db_missing"], 1);
    assert_eq!(r["lookups"]["latency_ms"]["hit"]["p95"], 0.4);
    let i = &r["incidents"];
    assert_eq!(i["lock_timeouts"], 1);
    assert_eq!(i["lock_timeouts_by_mode"]["shared"], 1);
    assert_eq!(i["corruptions"], 1);
    assert_eq!(i["corruption_kinds"]["integrity_check"], 1);
    assert_eq!(i["fallbacks"], 1);
    assert_eq!(i["fallback_reasons"]["lock_timeout"], 1);
    assert_eq!(i["schema_incompatible"], 1);
    assert_eq!(i["size_warnings"], 1);
    assert_eq!(
        i["evictions"],
        json!({"events": 1, "entries": 5, "bytes": 5000})
    );
    assert_eq!(r["db_size"]["samples_total"], 2);
    assert_eq!(r["db_size"]["samples"][0]["db_bytes"], 8192);
    assert_eq!(r["db_size"]["latest"]["db_bytes"], 600_000_000u64);
    assert_eq!(r["runs"]["count"], 3);
    assert_eq!(r["runs"]["recent"][0]["run_id"], "r3");
    assert_eq!(r["runs"]["recent"][0]["incidents"], 3);
    assert_eq!(r["first_ts"], "2026-11-20T10:00:00.000Z");
    assert_eq!(r["last_ts"], "2026-11-21T02:00:05.000Z");

    // The same report as text and HTML, from the same bytes.
    let (code, text, _) = report(&seg, &["--format", "text"]);
    assert_eq!(code, 0);
    for needle in [
        "hit rate 50.0%",
        "MALFORMED LINES: 3",
        "events.jsonl:9",
        "corruption_recovered",
    ] {
        assert!(text.contains(needle), "text lacks {needle:?}:\n{text}");
    }
    let (code, html, _) = report(&seg, &["--format", "html"]);
    assert_eq!(code, 0);
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    assert!(html.contains("<svg") && !html.contains("<script") && !html.contains("src=\"http"));
    assert_eq!(snapshot(&dir), before);
}

#[test]
fn since_filters_and_bad_since_is_invalid_argument() {
    let t = tempfile::tempdir().unwrap();
    let seg = segment(t.path());
    fixture(&seg.join("_ctx/telemetry"));
    let r = report_json(&seg, &["--since", "2026-11-21T00:00:00Z"]);
    assert_eq!(r["since"], "2026-11-21T00:00:00.000Z");
    assert_eq!(r["events_total"], 14);
    assert_eq!(r["events_in_window"], 11);
    assert_eq!(r["symbols"]["count"], 3);
    assert_eq!(r["db_size"]["samples_total"], 1);
    // A window after the last event: no telemetry in the window, but not an error.
    let r = report_json(&seg, &["--since", "2030-01-01T00:00:00Z"]);
    assert_eq!(
        (r["no_telemetry"].as_bool(), r["events_total"].as_u64()),
        (Some(true), Some(14))
    );
    // Durations count back from the real clock: the fixture (Nov 2026) is far from "now"
    // on either side only if the clock says so, so check acceptance plus the arithmetic.
    let r = report_json(&seg, &["--since", "7d"]);
    let since: jiff::Timestamp = r["since"].as_str().unwrap().parse().unwrap();
    let back = jiff::Timestamp::now().as_millisecond() - since.as_millisecond();
    assert!(
        (7 * 86_400_000..7 * 86_400_000 + 60_000).contains(&back),
        "{back}"
    );
    for bad in ["soon", "7x", "-1h", "2026-02-30T00:00:00Z"] {
        // `--since=<v>` so that clap does not read "-1h" as a flag.
        let (code, out, _) = report(&seg, &[&format!("--since={bad}")]);
        assert_eq!(code, 1, "{bad}");
        let e: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(e["status"], "error");
        assert_eq!(e["error_code"], "INVALID_ARGUMENT", "{bad}");
    }
}

#[test]
fn output_file_gets_the_report_and_stdout_a_receipt() {
    let t = tempfile::tempdir().unwrap();
    let seg = segment(t.path());
    fixture(&seg.join("_ctx/telemetry"));
    let html = t.path().join("report.html");
    let (code, out, _) = report(
        &seg,
        &["--format", "html", "--output", html.to_str().unwrap()],
    );
    assert_eq!(code, 0);
    let receipt: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(receipt["status"], "ok");
    assert_eq!(receipt["format"], "html");
    assert_eq!(receipt["malformed"], 3);
    let page = std::fs::read_to_string(&html).unwrap();
    assert_eq!(receipt["bytes"].as_u64(), Some(page.len() as u64));
    assert!(page.contains("Misses by reason"));
    let bad = t.path().join("no/such/dir/r.json");
    let (code, out, _) = report(&seg, &["--output", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["error_code"],
        "INVALID_ARGUMENT"
    );
}

#[test]
fn unreadable_telemetry_and_missing_segment_are_errors() {
    let t = tempfile::tempdir().unwrap();
    let seg = segment(t.path());
    std::fs::create_dir_all(seg.join("_ctx")).unwrap();
    std::fs::write(seg.join("_ctx/telemetry"), b"a file").unwrap();
    let (code, out, _) = report(&seg, &[]);
    assert_eq!(code, 1);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["error_code"],
        "TELEMETRY_UNAVAILABLE"
    );
    let (code, out, _) = report(&t.path().join("nope"), &[]);
    assert_eq!(code, 1);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["error_code"],
        "SEGMENT_NOT_FOUND"
    );
    let (code, out, _) = report(&seg, &["--format", "pdf"]);
    assert_eq!(code, 1);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["error_code"],
        "USAGE_ERROR"
    );
}

#[test]
fn report_over_real_ast_symbols_runs() {
    let t = tempfile::tempdir().unwrap();
    let seg = segment(t.path());
    for _ in 0..3 {
        assert_eq!(symbols(&seg, "pkg.a", &["--telemetry", "lite"]).0, 0);
    }
    assert_eq!(symbols(&seg, "pkg.a", &["--telemetry", "full"]).0, 0);
    let r = report_json(&seg, &[]);
    assert_eq!(r["no_telemetry"], false);
    assert_eq!(r["malformed"]["count"], 0);
    assert_eq!(r["symbols"]["count"], 4);
    assert_eq!(
        r["symbols"]["hits"].as_u64().unwrap() + r["symbols"]["misses"].as_u64().unwrap(),
        4
    );
    assert_eq!(
        r["lookups"]["hits"].as_u64().unwrap() + r["lookups"]["misses"].as_u64().unwrap(),
        4
    );
    assert_eq!(r["runs"]["count"], 4);
    assert_eq!(
        r["symbols"]["latency_ms"]["miss"]["count"],
        r["symbols"]["misses"]
    );
    assert_eq!(r["commands"]["ast.symbols"], 4);
}

#[test]
fn ordinary_persistent_runs_give_the_size_chart_data() {
    let t = tempfile::tempdir().unwrap();
    let seg = segment(t.path());
    let lite = ["--telemetry", "lite", "--persist-cache"];
    assert_eq!(symbols(&seg, "pkg.a", &lite).0, 0, "cold: creates the DB");
    assert_eq!(
        symbols(&seg, "pkg.a", &lite).0,
        0,
        "warm: a hit, writes nothing"
    );
    // The size the warm run observed on opening is the DB's size now (a hit changes nothing
    // in the main file).
    let db = std::fs::metadata(seg.join(".trifecta/cache/ast_cache.db"))
        .unwrap()
        .len();
    let r = report_json(&seg, &[]);
    assert_eq!(r["db_size"]["samples_total"], 2, "one per persistent open");
    let latest = &r["db_size"]["latest"];
    assert_eq!(latest["source"], "ast.cache.size");
    assert_eq!(latest["db_bytes"], db);
    assert_eq!(
        r["runs"]["recent"][0]["did"][0],
        "ast symbols sym://python/mod/pkg.a → hit"
    );
    // Without the persistent cache there is no DB to measure and no size event.
    let t2 = tempfile::tempdir().unwrap();
    let seg2 = segment(t2.path());
    assert_eq!(symbols(&seg2, "pkg.a", &["--telemetry", "lite"]).0, 0);
    assert_eq!(report_json(&seg2, &[])["db_size"]["samples_total"], 0);
}
