//! Telemetry end to end through the real binary: levels, location, identity, privacy,
//! robustness against unwritable destinations, and many concurrent writers with rotation.
//! The `telemetry report` command has its own module, `telemetry_report`.

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};
use trifecta::telemetry::writer::{EVENTS_FILE, Rotation, rotated_path};
use trifecta::telemetry::{Level, LineEvent, Telemetry, TelemetrySettings};

/// A segment with one module `pkg.a` (and `pkg.bad`, which has a syntax error).
pub fn segment(parent: &Path) -> PathBuf {
    let seg = parent.join("seg");
    std::fs::create_dir_all(seg.join("pkg")).unwrap();
    std::fs::write(
        seg.join("pkg/a.py"),
        "import os\n\ndef f():\n    pass\n\nasync def g():\n    pass\n\nclass C:\n    def m(self):\n        pass\n",
    )
    .unwrap();
    std::fs::write(seg.join("pkg/bad.py"), "def broken(:\n    pass\n").unwrap();
    seg
}

/// `trifecta` with a clean environment (no `TRIFECTA_*` variable inherited).
pub fn trifecta() -> Command {
    crate::support::trifecta()
}

/// `ast symbols sym://python/mod/pkg.a --telemetry <level> --segment <seg>`, ready for the
/// caller's extra environment, cwd and `.output()`.
pub fn pkg_a(seg: &Path, level: &str) -> Command {
    let mut c = trifecta();
    c.args([
        "ast",
        "symbols",
        "sym://python/mod/pkg.a",
        "--telemetry",
        level,
        "--segment",
    ])
    .arg(seg);
    c
}

/// Spawn (without waiting) `ast symbols … pkg.a --telemetry lite` with a clean environment, for the concurrent-writer tests.
pub fn spawn_pkg_a(seg: &Path) -> std::process::Child {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("trifecta"));
    c.args([
        "ast",
        "symbols",
        "sym://python/mod/pkg.a",
        "--telemetry",
        "lite",
        "--segment",
    ])
    .arg(seg)
    .stdout(std::process::Stdio::null());
    crate::support::scrub(&mut c)
        .spawn()
        .expect("spawn trifecta")
}

/// Run `ast symbols` on `seg` with extra args; returns (exit code, stdout JSON, stderr).
pub fn symbols(seg: &Path, module: &str, extra: &[&str]) -> (i32, Value, String) {
    let out = trifecta()
        .args([
            "ast",
            "symbols",
            &format!("sym://python/mod/{module}"),
            "--segment",
        ])
        .arg(seg)
        .args(extra)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        json,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// All events in `dir` (rotated files oldest first, then the live file), parsed.
pub fn events(dir: &Path) -> Vec<Value> {
    let mut out = Vec::new();
    for f in trifecta::telemetry::read::event_files(dir).unwrap() {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            out.push(serde_json::from_str(line).expect("every line is a whole JSON object"));
        }
    }
    out
}

/// `telemetry report --segment <seg>` (JSON), parsed.
pub fn report_json(seg: &Path) -> Value {
    let out = trifecta()
        .args(["telemetry", "report", "--segment"])
        .arg(seg)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

fn tdir(seg: &Path) -> PathBuf {
    seg.join("_ctx/telemetry")
}

#[test]
fn off_is_the_default_and_writes_nothing_not_even_a_directory() {
    let t = tempfile::tempdir().unwrap();
    let seg = segment(t.path());
    let (code, out, _) = symbols(&seg, "pkg.a", &[]);
    assert_eq!((code, out["status"].as_str()), (0, Some("ok")));
    let (code, _, _) = symbols(&seg, "pkg.a", &["--telemetry", "off"]);
    assert_eq!(code, 0);
    assert!(!seg.join("_ctx").exists(), "off must not create _ctx");
    // And the env var is honoured, the flag overriding it.
    let out = pkg_a(&seg, "off")
        .env("TRIFECTA_TELEMETRY", "lite")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        !seg.join("_ctx").exists(),
        "--telemetry off overrides the env"
    );
    let out = trifecta()
        .env("TRIFECTA_TELEMETRY", "lite")
        .args(["ast", "symbols", "sym://python/mod/pkg.a", "--segment"])
        .arg(&seg)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        events(&tdir(&seg)).len(),
        3,
        "env lite: symbols + miss + write"
    );
}

#[test]
fn bad_level_is_an_invalid_argument() {
    let t = tempfile::tempdir().unwrap();
    let seg = segment(t.path());
    let (code, out, _) = symbols(&seg, "pkg.a", &["--telemetry", "verbose"]);
    assert_eq!(code, 1);
    assert_eq!(out["error_code"], "INVALID_ARGUMENT");
    assert!(!seg.join("_ctx").exists());
}

#[test]
fn events_go_to_the_segment_not_the_cwd_with_the_schema() {
    let t = tempfile::tempdir().unwrap();
    let seg = segment(t.path());
    let cwd = t.path().join("elsewhere");
    std::fs::create_dir_all(&cwd).unwrap();
    let out = pkg_a(&seg, "lite").current_dir(&cwd).output().unwrap();
    assert!(out.status.success());
    assert!(!cwd.join("_ctx").exists(), "nothing in the cwd");
    let evs = events(&tdir(&seg));
    let cmds: Vec<&str> = evs.iter().map(|e| e["cmd"].as_str().unwrap()).collect();
    assert_eq!(cmds, ["ast.cache.miss", "ast.cache.write", "ast.symbols"]);
    // Key order is the schema order (checked on the raw line: Value would sort the keys).
    let raw = std::fs::read_to_string(tdir(&seg).join(EVENTS_FILE)).unwrap();
    let last = raw.lines().last().unwrap();
    let pos: Vec<usize> = [
        "ts",
        "run_id",
        "segment_id",
        "cmd",
        "args",
        "result",
        "timing_ms",
        "warnings",
        "x",
        "cache_type",
    ]
    .iter()
    .map(|k| {
        last.find(&format!("\"{k}\":"))
            .unwrap_or_else(|| panic!("{k} missing"))
    })
    .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{last}");
    assert!(last.starts_with("{\"ts\":"));
    for e in &evs {
        let ts = e["ts"].as_str().unwrap();
        // UTC with milliseconds: 2026-11-21T03:34:43.123Z
        assert_eq!(ts.len(), 24, "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{ts}");
        assert!(ts.parse::<jiff::Timestamp>().is_ok());
        let sid = e["segment_id"].as_str().unwrap();
        assert!(
            sid.len() == 8 && sid.chars().all(|c| c.is_ascii_hexdigit()),
            "{sid}"
        );
        assert!(e["timing_ms"].is_f64() || e["timing_ms"].is_u64());
        assert_eq!(e["cache_type"], "memory");
    }
    assert_eq!(evs[2]["result"]["cache_status"], "miss");
    assert_eq!(evs[2]["x"]["file"], "pkg/a.py");
}

#[test]
fn lite_and_full_really_differ() {
    let t = tempfile::tempdir().unwrap();
    let seg = segment(t.path());
    assert_eq!(symbols(&seg, "pkg.a", &["--telemetry", "lite"]).0, 0);
    assert_eq!(symbols(&seg, "pkg.a", &["--telemetry", "full"]).0, 0);
    let evs = events(&tdir(&seg));
    let sym: Vec<&Value> = evs.iter().filter(|e| e["cmd"] == "ast.symbols").collect();
    assert_eq!(sym.len(), 2);
    assert!(sym[0]["x"].get("phases").is_none(), "lite has no phases");
    assert!(sym[0]["x"].get("symbols_by_kind").is_none());
    let phases = sym[1]["x"]["phases"].as_object().expect("full has phases");
    for k in ["resolve_ms", "read_ms", "cache_ms", "select_ms"] {
        assert!(phases[k].as_f64().is_some_and(|v| v >= 0.0), "{k}");
    }
    let kinds = sym[1]["x"]["symbols_by_kind"].as_object().unwrap();
    let total: u64 = ["function", "async_function", "class"]
        .iter()
        .map(|k| kinds[*k].as_u64().unwrap())
        .sum();
    assert_eq!(total, sym[1]["x"]["symbols_count"].as_u64().unwrap());
}

#[test]
fn a_command_failing_after_the_lookup_still_records_its_events() {
    let t = tempfile::tempdir().unwrap();
    let seg = segment(t.path());
    let out = trifecta()
        .args([
            "ast",
            "symbols",
            "sym://python/type/pkg.a.Missing",
            "--telemetry",
            "lite",
            "--segment",
        ])
        .arg(&seg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let evs = events(&tdir(&seg));
    let cmds: Vec<&str> = evs.iter().map(|e| e["cmd"].as_str().unwrap()).collect();
    assert_eq!(cmds, ["ast.cache.miss", "ast.cache.write", "ast.symbols"]);
    assert_eq!(evs[2]["result"]["status"], "error");
    assert_eq!(evs[2]["result"]["error_code"], "SYMBOL_NOT_FOUND");
    let r = report_json(&seg);
    assert_eq!(r["symbols"]["errors"]["SYMBOL_NOT_FOUND"], 1);
}

/// `ast cache clear|verify|prune|stats --zero` each leave one `ast.cache.admin` event, a
/// failure with its code, and the report counts them by action.
#[test]
fn cache_administration_leaves_one_admin_event_each() {
    let t = tempfile::tempdir().unwrap();
    let seg = segment(t.path());
    let cache = |args: &[&str]| {
        trifecta()
            .args(["ast", "cache"])
            .args(args)
            .arg("--segment")
            .arg(&seg)
            .env("TRIFECTA_TELEMETRY", "lite")
            .output()
            .unwrap()
    };
    let warm = || {
        let out = pkg_a(&seg, "off").arg("--persist-cache").output().unwrap();
        assert!(out.status.success());
    };
    warm();
    for args in [
        &["verify"][..],
        &["stats", "--zero"],
        &["prune"],
        &["clear"],
    ] {
        assert!(cache(args).status.success(), "{args:?}");
    }
    // A damaged database: verify fails, and says so in its event.
    warm();
    std::fs::write(seg.join(".trifecta/cache/ast_cache.db"), b"not a database").unwrap();
    assert_eq!(cache(&["verify"]).status.code(), Some(1));
    let admin: Vec<(String, String)> = events(&tdir(&seg))
        .iter()
        .filter(|e| e["cmd"] == "ast.cache.admin")
        .map(|e| {
            let r = &e["result"];
            let code = r["error_code"].as_str().unwrap_or("");
            (
                e["args"]["action"].as_str().unwrap().to_string(),
                format!("{}{code}", r["status"]),
            )
        })
        .collect();
    let want = [
        ("verify", "\"ok\""),
        ("zero", "\"ok\""),
        ("prune", "\"ok\""),
        ("clear", "\"ok\""),
        ("verify", "\"error\"CACHE_CORRUPT"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(admin, want);
    let clear = events(&tdir(&seg))
        .into_iter()
        .find(|e| e["cmd"] == "ast.cache.admin" && e["args"]["action"] == "clear")
        .unwrap();
    assert_eq!(
        (
            clear["result"]["existed"].clone(),
            clear["result"]["removed_entries"].clone()
        ),
        (Value::Bool(true), Value::from(1))
    );
    let r = report_json(&seg);
    assert_eq!(
        r["incidents"]["admin"]["verify failed"], 1,
        "{}",
        r["incidents"]
    );
    assert_eq!(r["incidents"]["admin"]["clear"], 1);
}

#[test]
fn run_ids_are_unique_per_process_unless_pinned() {
    let t = tempfile::tempdir().unwrap();
    let seg = segment(t.path());
    let kids: Vec<_> = (0..4).map(|_| spawn_pkg_a(&seg)).collect();
    for mut k in kids {
        assert!(k.wait().unwrap().success());
    }
    let evs = events(&tdir(&seg));
    let mut ids: Vec<&str> = evs.iter().map(|e| e["run_id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        4,
        "one run id per process, even in the same millisecond"
    );
    let out = pkg_a(&seg, "lite")
        .env("TRIFECTA_RUN_ID", "ci-42")
        .output()
        .unwrap();
    assert!(out.status.success());
    let evs = events(&tdir(&seg));
    assert!(evs[evs.len() - 3..].iter().all(|e| e["run_id"] == "ci-42"));
}

#[test]
fn telemetry_dir_env_overrides_the_location() {
    let t = tempfile::tempdir().unwrap();
    let seg = segment(t.path());
    let dir = t.path().join("tele");
    let out = pkg_a(&seg, "lite")
        .env("TRIFECTA_TELEMETRY_DIR", &dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(events(&dir).len(), 3);
    assert!(!seg.join("_ctx").exists());
}

// ---------------------------------------------------------------- privacy

/// Every place in `text` where a needle occurs (empty when clean).
fn leaks<'a>(text: &str, needles: &[&'a str]) -> Vec<&'a str> {
    needles
        .iter()
        .copied()
        .filter(|n| !n.is_empty() && text.contains(n))
        .collect()
}

/// Whole-word occurrences of `user` (word = letters, digits, `_`, `-`).
fn user_word(text: &str, user: &str) -> bool {
    text.match_indices(user).any(|(i, _)| {
        let w = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
        let before = text[..i].chars().next_back();
        let after = text[i + user.len()..].chars().next();
        before.is_none_or(|c| !w(c)) && after.is_none_or(|c| !w(c))
    })
}

#[test]
fn privacy_tripwire_over_real_runs() {
    // A fake home and user under the temp dir, with the segment inside the home, so any leak
    // of a path, the home or the user name is unmistakable.
    let t = tempfile::tempdir().unwrap();
    let user = "zed-tripwire";
    let home = t.path().join("home").join(user);
    let seg = segment(&home);
    let run = |extra: &[&str], uri: &str| {
        trifecta()
            .env("HOME", &home)
            .env("USER", user)
            .env("LOGNAME", user)
            .args(["ast", "symbols", uri, "--segment"])
            .arg(&seg)
            .args(extra)
            .output()
            .unwrap()
    };
    for (extra, uri) in [
        (&["--telemetry", "full"][..], "sym://python/mod/pkg.a"),
        (
            &["--telemetry", "full", "--persist-cache"][..],
            "sym://python/mod/pkg.a",
        ),
        (
            &["--telemetry", "full", "--persist-cache"][..],
            "sym://python/mod/pkg.a",
        ),
        (&["--telemetry", "lite"][..], "sym://python/mod/pkg.bad"),
        (&["--telemetry", "full"][..], "sym://python/type/pkg.a.C#m"),
        (
            &["--telemetry", "full"][..],
            "sym://python/type/pkg.a.Missing",
        ),
    ] {
        let _ = run(extra, uri);
    }
    let dir = tdir(&seg);
    let text: String = trifecta::telemetry::read::event_files(&dir)
        .unwrap()
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert!(
        text.lines().count() >= 12,
        "the runs must have produced events"
    );
    let tmp = t.path().to_string_lossy().into_owned();
    let canon = t
        .path()
        .canonicalize()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let home_s = home.to_string_lossy().into_owned();
    let real_home = std::env::var("HOME").unwrap_or_default();
    let needles = [tmp.as_str(), canon.as_str(), home_s.as_str(), "/home/"];
    assert_eq!(leaks(&text, &needles), Vec::<&str>::new(), "{text}");
    if real_home.len() > 1 {
        assert!(
            !text.contains(&format!("{real_home}/")),
            "real $HOME leaked"
        );
    }
    assert!(!user_word(&text, user), "user name leaked: {text}");
    if let Ok(real_user) = std::env::var("USER")
        && real_user.len() > 1
    {
        assert!(!user_word(&text, &real_user), "real $USER leaked");
    }
}

#[test]
fn the_tripwire_can_fail() {
    // The scanners above must flag an unredacted line; otherwise the tripwire proves nothing.
    let line =
        r#"{"x":{"db":"/tmp/.tmpAbc/seg/.trifecta/cache/ast_cache.db","owner":"zed-tripwire"}}"#;
    assert_eq!(leaks(line, &["/tmp/.tmpAbc", "/home/"]), ["/tmp/.tmpAbc"]);
    assert!(user_word(line, "zed-tripwire"));
    assert!(!user_word("zed-tripwire2", "zed-tripwire"));
}

#[test]
fn redaction_is_enforced_centrally_at_flush() {
    // Whatever a caller puts in an event, flush strips absolute paths, home and user name.
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("seg");
    std::fs::create_dir_all(&root).unwrap();
    let root = root.canonicalize().unwrap();
    let dir = t.path().join("tele");
    let mut settings = (trifecta::config::TelemetryConfig {
        level: Level::Lite,
        ..Default::default()
    })
    .for_segment(&root);
    settings.dir = trifecta::telemetry::Location::user(&dir);
    let tel = Telemetry::new(settings);
    let db = root.join(".trifecta/cache/ast_cache.db");
    let mut ev = LineEvent::new("ast.cache.fallback");
    ev.args = serde_json::json!({"path": db.to_string_lossy(), "nested": [{"p": "/etc/passwd"}]});
    ev.result = serde_json::json!({"reason": format!("cannot open {}: locked", db.display())});
    ev.x = serde_json::json!({"tmp": t.path().to_string_lossy()});
    ev.warnings = vec![format!("disk I/O error at {}", db.display())];
    tel.event(Level::Lite, ev);
    tel.flush();
    let text = std::fs::read_to_string(dir.join(EVENTS_FILE)).unwrap();
    assert!(!text.contains(&*t.path().to_string_lossy()), "{text}");
    assert!(!text.contains(&*root.to_string_lossy()), "{text}");
    assert!(!text.contains("/etc/passwd"));
    let e: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(e["args"]["path"], ".trifecta/cache/ast_cache.db");
    assert_eq!(
        e["result"]["reason"],
        "cannot open .trifecta/cache/ast_cache.db: locked"
    );
    assert_eq!(e["args"]["nested"][0]["p"], "<abs>");
    assert_eq!(e["x"]["tmp"], "<abs>");
    assert_eq!(
        e["warnings"][0],
        "disk I/O error at .trifecta/cache/ast_cache.db"
    );
}

// ---------------------------------------------------------------- robustness

fn assert_unaffected(code: i32, out: &Value, stderr: &str) {
    assert_eq!(
        code, 0,
        "telemetry trouble must not fail the command: {stderr}"
    );
    assert_eq!(out["status"], "ok");
    assert_eq!(out["file_rel"], "pkg/a.py");
    assert!(
        stderr.lines().count() <= 1,
        "at most one stderr line: {stderr:?}"
    );
}

#[test]
fn a_planted_link_at_the_events_file_is_moved_aside_not_written_through() {
    let t = tempfile::tempdir().unwrap();
    let seg = segment(t.path());
    std::fs::create_dir_all(tdir(&seg)).unwrap();
    let outside = t.path().join("outside.log");
    std::fs::write(&outside, b"keep\n").unwrap();
    std::os::unix::fs::symlink(&outside, tdir(&seg).join(EVENTS_FILE)).unwrap();
    let (code, out, err) = symbols(&seg, "pkg.a", &["--telemetry", "lite"]);
    assert_unaffected(code, &out, &err);
    assert_eq!(
        std::fs::read(&outside).unwrap(),
        b"keep\n",
        "nothing written outside"
    );
    let events = std::fs::symlink_metadata(tdir(&seg).join(EVENTS_FILE)).unwrap();
    assert!(events.is_file(), "a real events file replaced the link");
    let text = std::fs::read_to_string(tdir(&seg).join(EVENTS_FILE)).unwrap();
    assert!(text.contains("\"ast.fs.incident\""), "{text}");
    assert!(text.contains("\"found\":\"symlink\""), "{text}");
}

#[test]
fn a_file_where_the_directory_should_be_does_not_fail_the_command() {
    let t = tempfile::tempdir().unwrap();
    let seg = segment(t.path());
    std::fs::write(seg.join("_ctx"), b"not a directory").unwrap();
    let (code, out, err) = symbols(&seg, "pkg.a", &["--telemetry", "full"]);
    assert_unaffected(code, &out, &err);
    assert!(err.contains("telemetry"));
    assert_eq!(std::fs::read(seg.join("_ctx")).unwrap(), b"not a directory");
    // Same through TRIFECTA_TELEMETRY_DIR pointing at a file.
    let f = t.path().join("afile");
    std::fs::write(&f, b"x").unwrap();
    let out = pkg_a(&seg, "lite")
        .env("TRIFECTA_TELEMETRY_DIR", &f)
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_unaffected(
        out.status.code().unwrap(),
        &json,
        &String::from_utf8_lossy(&out.stderr),
    );
}

#[test]
fn a_busy_events_lock_costs_a_bounded_wait_not_the_command() {
    let t = tempfile::tempdir().unwrap();
    let seg = segment(t.path());
    std::fs::create_dir_all(tdir(&seg)).unwrap();
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(tdir(&seg).join(EVENTS_FILE))
        .unwrap();
    f.lock().unwrap();
    let (code, out, err) = symbols(&seg, "pkg.a", &["--telemetry", "lite"]);
    f.unlock().unwrap();
    assert_unaffected(code, &out, &err);
    assert!(err.contains("lock busy"), "{err:?}");
    assert_eq!(
        std::fs::metadata(tdir(&seg).join(EVENTS_FILE))
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn malformed_rotation_settings_are_invalid_arguments_and_record_nothing() {
    // Like every other environment value (README, "Environment"): a typo is reported, naming
    // the variable, instead of being ignored with a warning.
    let t = tempfile::tempdir().unwrap();
    let seg = segment(t.path());
    for (var, value) in [
        ("TRIFECTA_TELEMETRY_MAX_MB", "lots"),
        ("TRIFECTA_TELEMETRY_KEEP", "-1"),
    ] {
        let out = pkg_a(&seg, "lite").env(var, value).output().unwrap();
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(json["error_code"], "INVALID_ARGUMENT");
        assert!(json["message"].as_str().unwrap().contains(var), "{json}");
    }
    assert!(!tdir(&seg).exists(), "nothing was recorded");
}

// ---------------------------------------------------------------- concurrency

const CHILDREN: usize = 10;
const PER_CHILD: usize = 100;
const CHILD_ENV: &str = "TRIFECTA_TEST_TELEMETRY_CHILD";
/// Small enough that the 10 × 100 events (~500 bytes each, ~60 files) rotate many times;
/// `keep` large enough that no event is rotated out of existence, so every line can be
/// accounted for.
const ROT: Rotation = Rotation {
    max_bytes: 8 * 1024,
    keep: 100,
};

/// Not a test on its own: the body of one writer process for
/// `concurrent_writers_never_tear_interleave_or_lose_lines`, which re-runs this test binary.
#[test]
#[ignore = "child process of concurrent_writers_never_tear_interleave_or_lose_lines"]
fn concurrent_writer_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (start, rest) = spec.split_once(':').unwrap();
    let (id, dir) = rest.split_once(':').unwrap();
    // Start together (a shared wall-clock instant) so the writers really contend.
    let start: i64 = start.parse().unwrap();
    while trifecta::clock::real_now_ms() < start {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let settings = TelemetrySettings {
        level: Level::Lite,
        dir: trifecta::telemetry::Location::user(dir),
        run_id: format!("child-{id}"),
        segment_id: "0000abcd".into(),
        segment_root: None,
        rotation: ROT,
        setting_warnings: Vec::new(),
        home: None,
        user: None,
    };
    // One flush per event: 100 separately locked appends per process, the worst case.
    for seq in 0..PER_CHILD {
        let tel = Telemetry::new(settings.clone());
        let mut ev = LineEvent::new("test.concurrent");
        ev.args = serde_json::json!({"child": id, "seq": seq});
        // Padding makes lines long enough that a torn write would be visible.
        ev.x = serde_json::json!({"pad": "x".repeat(200 + seq)});
        tel.event(Level::Lite, ev);
        tel.flush();
    }
}

#[test]
fn concurrent_writers_never_tear_interleave_or_lose_lines() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("tele");
    let exe = std::env::current_exe().unwrap();
    let start = trifecta::clock::real_now_ms() + 500;
    let kids: Vec<_> = (0..CHILDREN)
        .map(|i| {
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "telemetry::concurrent_writer_child",
                    "--ignored",
                    "--test-threads=1",
                    "--nocapture",
                ])
                .env(CHILD_ENV, format!("{start}:{i}:{}", dir.display()))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for k in kids {
        let out = k.wait_with_output().unwrap();
        assert!(out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("not written"),
            "a child dropped events: {err}"
        );
    }
    let files = trifecta::telemetry::read::event_files(&dir).unwrap();
    assert!(files.len() > 3, "the run must have rotated several times");
    let mut seen = vec![vec![false; PER_CHILD]; CHILDREN];
    let mut last = [None::<usize>; CHILDREN];
    let mut total = 0;
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        if f.file_name().unwrap() != EVENTS_FILE {
            // A writer that appended to a file after it was rotated away would push it past
            // the limit: rotation only ever happens when the next batch would not fit.
            assert!(
                bytes.len() as u64 <= ROT.max_bytes,
                "{} grew after rotation",
                f.display()
            );
        }
        assert!(bytes.ends_with(b"\n"), "no torn tail");
        for line in String::from_utf8(bytes).unwrap().lines() {
            let e: Value = serde_json::from_str(line).expect("no torn or interleaved line");
            let c: usize = e["args"]["child"].as_str().unwrap().parse().unwrap();
            let s = e["args"]["seq"].as_u64().unwrap() as usize;
            assert_eq!(
                e["x"]["pad"].as_str().unwrap().len(),
                200 + s,
                "line intact"
            );
            assert!(!seen[c][s], "duplicate line {c}/{s}");
            seen[c][s] = true;
            // Oldest file first: each child's events appear in the order it wrote them.
            assert!(
                last[c].is_none_or(|l| l < s),
                "child {c} out of order at {s}"
            );
            last[c] = Some(s);
            total += 1;
        }
    }
    assert_eq!(total, CHILDREN * PER_CHILD, "exactly N lines");
    assert!(seen.iter().flatten().all(|s| *s));
    assert!(!rotated_path(&dir, ROT.keep + 1).exists());
}

#[test]
fn concurrent_real_commands_all_land() {
    let t = tempfile::tempdir().unwrap();
    let seg = segment(t.path());
    let kids: Vec<_> = (0..8).map(|_| spawn_pkg_a(&seg)).collect();
    for mut k in kids {
        assert!(k.wait().unwrap().success());
    }
    let evs = events(&tdir(&seg));
    assert_eq!(evs.len(), 8 * 3);
    assert_eq!(evs.iter().filter(|e| e["cmd"] == "ast.symbols").count(), 8);
}
