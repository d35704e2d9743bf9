//! The HTML dashboard (`telemetry report --format html`) in a real browser: headless Chromium
//! loads the report of a realistic mixed log (`tests/fixtures/telemetry-mixed/events.jsonl`:
//! hits, misses, index runs, errors, incidents, two daemons and their clients) and a script injected into a copy of the page
//! (`dom_check.js`) reports every chart's size, marks and hover titles, every element that
//! sticks out of its container, anything loaded from elsewhere, and every script or console
//! error. A screenshot is kept at `reports/dashboard-mixed.png`.
//!
//! Chromium is driven with `--dump-dom` alone (no driver, no DevTools client, nothing
//! downloaded): the findings travel back inside the dumped DOM. Where `CI=true` a missing
//! Chromium fails the test; elsewhere the test says it was skipped and passes.

use crate::support::trifecta;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The check, run in the page.
const DOM_CHECK: &str = include_str!("dom_check.js");

/// Installed first in `<head>`, so script errors, failed loads and `console.error` calls from
/// anywhere in the page are recorded for the check.
const ERROR_CAPTURE: &str = "<script>window.__domCheckErrors=[];\
addEventListener('error',function(e){__domCheckErrors.push(e.message||('failed to load '+\
(e.target&&(e.target.src||e.target.href))))},true);\
(function(){var c=console.error;console.error=function(){\
__domCheckErrors.push('console.error: '+Array.from(arguments).join(' '));\
c.apply(console,arguments)}})();</script>";

/// Every chart the report draws for the mixed log, by `data-chart`.
const CHARTS: [&str; 8] = [
    "commands-timeline",
    "incidents-timeline",
    "miss-reasons",
    "latency",
    "db-size",
    "errors-by-code",
    "index-runs",
    "daemon-traffic",
];

/// Flags for a closed network: without them Chromium stalls on connections it tries to make.
const FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
];

/// How long one Chromium run may take before the test fails (a loaded 2-core machine needs
/// a few seconds).
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(90);

/// Page width the checks and the screenshot use.
const WIDTH: u32 = 1280;

/// The Chromium binary, or `None` (skipped) outside CI.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true but no chromium on PATH: .ci/run installs Debian's chromium"
        );
        eprintln!("SKIPPED: the browser test needs chromium on PATH (apt-get install chromium)");
    }
    found
}

/// A child process killed (by its pid) and reaped when dropped, so a failing or hanging test
/// leaves no browser behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// Run Chromium with `args` and a fresh profile under `dir`; returns (stdout, stderr).
fn run_chromium(bin: &Path, dir: &Path, args: &[String]) -> (String, String) {
    let profile = tempfile::tempdir_in(dir).unwrap();
    let out_path = dir.join("chromium.stdout");
    let err_path = dir.join("chromium.stderr");
    let child = Command::new(bin)
        .args(FLAGS)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("chromium starts");
    let mut child = KillOnDrop(child);
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < CHROMIUM_TIMEOUT,
            "chromium did not finish within {CHROMIUM_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = std::fs::read_to_string(&out_path).unwrap_or_default();
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(status.success(), "chromium failed ({status}): {err}");
    (out, err)
}

/// The findings of [`DOM_CHECK`] on `html` (a copy with the check injected is what loads),
/// plus `console`: the console messages Chromium logged.
fn inspect(bin: &Path, dir: &Path, html: &str) -> Value {
    let page = html
        .replacen("<head>", &format!("<head>{ERROR_CAPTURE}"), 1)
        .replacen(
            "</body>",
            &format!("<script>{DOM_CHECK}</script></body>"),
            1,
        );
    let file = dir.join("checked.html");
    std::fs::write(&file, page).unwrap();
    let (dom, err) = run_chromium(
        bin,
        dir,
        &[
            "--enable-logging=stderr".into(),
            "--v=0".into(),
            "--virtual-time-budget=5000".into(),
            format!("--window-size={WIDTH},900"),
            "--dump-dom".into(),
            format!("file://{}", file.display()),
        ],
    );
    let start = dom.rfind("<pre id=\"dom-check\">").expect("the check ran") + 20;
    let end = start + dom[start..].find("</pre>").unwrap();
    let json = dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&");
    let mut found: Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let console: Vec<Value> = err
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(|l| Value::String(l.to_string()))
        .collect();
    found["console"] = Value::Array(console);
    found
}

/// Everything wrong with a page, as sentences (empty when it is fine): a chart of `expected`
/// missing, of zero size, without marks, or with marks lacking a hover title; an element out
/// of its container; anything external; any error.
fn problems(found: &Value, expected: &[&str]) -> Vec<String> {
    let mut p = Vec::new();
    let charts = found["charts"].as_array().unwrap();
    for name in expected {
        if !charts.iter().any(|c| c["name"] == *name) {
            p.push(format!("chart {name} is missing"));
        }
    }
    for c in charts {
        let name = c["name"].as_str().unwrap_or("");
        if c["width"].as_f64() <= Some(0.0) || c["height"].as_f64() <= Some(0.0) {
            p.push(format!("chart {name} has zero size"));
        }
        if c["marks"].as_u64() == Some(0) {
            p.push(format!("chart {name} has no marks"));
        }
        if c["untitled"].as_u64() != Some(0) {
            p.push(format!(
                "chart {name} has {} marks without a hover title",
                c["untitled"]
            ));
        }
        if c["empty_marks"].as_u64() != Some(0) {
            p.push(format!(
                "chart {name} has {} invisible marks",
                c["empty_marks"]
            ));
        }
    }
    for (key, what) in [
        ("overflow", "overflow"),
        ("external", "external resource"),
        ("errors", "error"),
        ("console", "console message"),
    ] {
        for x in found[key].as_array().unwrap() {
            p.push(format!("{what}: {}", x.as_str().unwrap_or("?")));
        }
    }
    p
}

/// The HTML report of the committed mixed log, produced by the real binary.
fn mixed_report(dir: &Path) -> String {
    let seg = dir.join("segment");
    let tel = seg.join("_ctx/telemetry");
    std::fs::create_dir_all(&tel).unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/telemetry-mixed/events.jsonl");
    std::fs::copy(fixture, tel.join("events.jsonl")).unwrap();
    let out = trifecta()
        .args(["telemetry", "report", "--format", "html", "--segment"])
        .arg(&seg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_dashboard_of_a_mixed_log_renders_cleanly_in_chromium() {
    let Some(bin) = chromium() else { return };
    let t = tempfile::tempdir().unwrap();
    let html = mixed_report(t.path());
    let found = inspect(&bin, t.path(), &html);
    let p = problems(&found, &CHARTS);
    assert!(p.is_empty(), "{} problem(s):\n{}", p.len(), p.join("\n"));

    // Keep a screenshot of the whole page (the plain report, nothing injected).
    let report = t.path().join("report.html");
    std::fs::write(&report, &html).unwrap();
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("reports");
    std::fs::create_dir_all(&shots).unwrap();
    let png = shots.join("dashboard-mixed.png");
    let _ = std::fs::remove_file(&png);
    let height = found["page_height"].as_u64().unwrap().clamp(600, 8000);
    run_chromium(
        &bin,
        t.path(),
        &[
            format!("--window-size={WIDTH},{height}"),
            format!("--screenshot={}", png.display()),
            format!("file://{}", report.display()),
        ],
    );
    let bytes = std::fs::read(&png).expect("screenshot written");
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "a real PNG"
    );
    eprintln!("screenshot: {}", png.display());
}

#[test]
fn the_same_check_flags_a_broken_page() {
    let Some(bin) = chromium() else { return };
    let t = tempfile::tempdir().unwrap();
    let html = mixed_report(t.path());
    // One deliberate fault per kind, each on a different element.
    let broken = html
        .replacen(
            "data-chart=\"latency\" width=\"100%\"",
            "data-chart=\"latency\" width=\"0\"",
            1,
        )
        .replacen("data-chart=\"db-size\"", "data-chart=\"renamed\"", 1)
        .replacen(
            "data-chart=\"daemon-traffic\"",
            "data-chart=\"renamed-daemon\"",
            1,
        )
        .replacen(
            "<div class=\"grid\">",
            "<div class=\"grid\"><div class=\"card\"><div id=\"too-wide\" \
             style=\"width:3000px\">wide</div></div>",
            1,
        )
        .replacen(
            "</body>",
            "<svg class=\"chart\" data-chart=\"bare\" width=\"200\" height=\"50\">\
             <rect x=\"0\" y=\"0\" width=\"10\" height=\"10\"/>\
             <text x=\"-60\" y=\"20\">cut off</text></svg>\
             <img src=\"http://127.0.0.1:9/x.png\" alt=\"\">\
             <div id=\"page-wide\" style=\"width:3000px\">wide</div>\
             <script>console.error('deliberate')</script></body>",
            1,
        );
    assert_ne!(broken, html);
    let p = problems(&inspect(&bin, t.path(), &broken), &CHARTS).join("\n");
    for want in [
        "chart latency has zero size",
        "chart db-size is missing",
        "chart daemon-traffic is missing",
        "overflow: div#too-wide (\"wide\") sticks out of div.card",
        "overflow: div.card (\"wide\") clips or scrolls its content",
        "overflow: the page scrolls sideways",
        "chart bare has 1 marks without a hover title",
        "overflow: text in chart bare (\"cut off\") is drawn outside its chart",
        "external resource: img",
        "error: failed to load http://127.0.0.1:9/x.png",
        "error: console.error: deliberate",
        "console message:",
    ] {
        assert!(p.contains(want), "not flagged: {want}\nfound:\n{p}");
    }
}
