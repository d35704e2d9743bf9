//! The command line as a person meets it (issue 13): `ast cache stats` in the style of
//! `ccache -s` and `--zero`, `ast cache path`, `trifecta config` with origins, the stderr line
//! of every failure, the event of a command that failed early, `ast index` persisting, and
//! completions and man pages for both binaries, checked by the shells and `man` themselves.

use crate::support::{Outcome, run, symbols, trifecta, write};
use serde_json::Value;
use std::path::Path;
use std::process::Command as Std;

fn segment() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    write(d.path(), "pkg/__init__.py", "");
    write(
        d.path(),
        "pkg/a.py",
        "def f():\n    pass\n\nclass C:\n    def m(self):\n        pass\n",
    );
    write(d.path(), "pkg/b.py", "def g():\n    pass\n");
    d
}

fn cache(seg: &Path, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut cmd = trifecta();
    cmd.args(["ast", "cache"])
        .args(args)
        .arg("--segment")
        .arg(seg);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

/// One hit and two misses (`cold_cache_db_missing`, `key_miss`) on a fresh segment.
fn warm(seg: &Path) {
    for uri in [
        "sym://python/mod/pkg.a",
        "sym://python/mod/pkg.a",
        "sym://python/mod/pkg.b",
    ] {
        assert_eq!(symbols(seg, uri, &["--persist-cache"]).code, Some(0));
    }
}

#[test]
fn stats_text_reads_like_ccache_with_sizes_rates_reasons_and_limits() {
    let d = segment();
    warm(d.path());
    let env = [
        ("TRIFECTA_AST_MAX_MB", "2"),
        ("TRIFECTA_AST_SIZE_WARN_MB", "1.5"),
        ("TRIFECTA_AST_TTL_DAYS", "3"),
    ];
    let o = cache(d.path(), &["stats", "--format", "text"], &env);
    assert_eq!(o.code, Some(0), "{o:?}");
    let t = &o.stdout;
    for want in [
        "Hits                         1 / 3 (33.33 %)",
        "Misses                       2 / 3 (66.67 %)",
        "cold_cache_db_missing      1",
        "key_miss                   1",
        "Hit rate                       33.33 %",
        " / 2.0 MiB (",
        "Size warning at                1.5 MiB",
        "Entries expire after           3d unused",
        "Counters zeroed                never; counting since 20",
        " UTC (",
    ] {
        assert!(t.contains(want), "missing {want:?} in:\n{t}");
    }
    // Sizes in units, dates as dates: no raw byte counts or epoch milliseconds.
    let json = cache(d.path(), &["stats"], &env).json;
    for raw in [&json["db_bytes"], &json["newest_access_ms"]] {
        assert!(!t.contains(&raw.to_string()), "raw {raw} in:\n{t}");
    }
    assert_eq!(json["limits"]["max_bytes"], 2 * 1024 * 1024, "{json}");
}

#[test]
fn zero_resets_the_counters_only_and_says_when() {
    let d = segment();
    warm(d.path());
    let before = cache(d.path(), &["stats"], &[]).json;
    assert_eq!(
        (before["hits"].as_i64(), before["misses"].as_i64()),
        (Some(1), Some(2))
    );
    assert!(before["counters_zeroed_ms"].is_null());
    let now = "1900000000000";
    let z = cache(
        d.path(),
        &["stats", "--zero"],
        &[("TRIFECTA_TEST_NOW_MS", now)],
    )
    .json;
    assert_eq!(
        (z["hits"].as_i64(), z["misses"].as_i64()),
        (Some(0), Some(0)),
        "{z}"
    );
    assert_eq!(z["misses_by_reason"], serde_json::json!({}));
    assert_eq!(z["entries"], before["entries"], "entries are untouched");
    assert_eq!(z["counters_zeroed_ms"].as_i64(), Some(1_900_000_000_000));
    // Counting goes on from zero, and a hit is still a hit (nothing was evicted).
    let o = symbols(d.path(), "sym://python/mod/pkg.a", &["--persist-cache"]);
    assert_eq!(o.json["cache_status"], "hit");
    let after = cache(d.path(), &["stats"], &[]).json;
    assert_eq!(
        (after["hits"].as_i64(), after["misses"].as_i64()),
        (Some(1), Some(0))
    );
}

#[test]
fn zero_takes_the_exclusive_lock_and_changes_nothing_without_it() {
    let d = segment();
    warm(d.path());
    // Another process's shared lock (an `ast symbols` at work): stats reads beside it, but the
    // reset must wait for the exclusive lock, and gives up after the bounded wait.
    let lock = std::fs::File::open(d.path().join(".trifecta/cache/ast_cache.lock")).unwrap();
    lock.lock_shared().unwrap();
    let env = [("TRIFECTA_AST_LOCK_TIMEOUT_MS", "200")];
    let read = cache(d.path(), &["stats"], &env);
    assert_eq!(read.json["hits"], 1, "{read:?}");
    let z = cache(d.path(), &["stats", "--zero"], &env);
    assert_eq!(z.json["error_code"], "CACHE_UNAVAILABLE", "{z:?}");
    drop(lock);
    assert_eq!(
        cache(d.path(), &["stats"], &[]).json["hits"],
        1,
        "nothing was reset"
    );
}

#[test]
fn cache_path_is_bare_unless_json_is_asked() {
    let d = segment();
    let o = cache(d.path(), &["path"], &[]);
    let want = d
        .path()
        .canonicalize()
        .unwrap()
        .join(".trifecta/cache/ast_cache.db");
    assert_eq!(o.stdout, format!("{}\n", want.display()));
    let j = cache(d.path(), &["path", "--format", "json"], &[]);
    assert_eq!(j.json["db_path"], want.to_str().unwrap());
    assert_eq!(j.json["exists"], false);
    // Formats a command cannot write are usage errors, not silently another format.
    let bad = cache(d.path(), &["path", "--format", "html"], &[]);
    assert_eq!(bad.json["error_code"], "USAGE_ERROR", "{bad:?}");
}

fn config(args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut cmd = trifecta();
    cmd.arg("config").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

fn setting<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["settings"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["name"] == name))
        .unwrap_or_else(|| panic!("{name} not listed: {json}"))
}

#[test]
fn config_shows_each_value_and_where_it_came_from() {
    let env = [
        ("TRIFECTA_AST_TTL_DAYS", "2.5"),
        ("TRIFECTA_TELEMETRY", "full"),
    ];
    let j = config(&["--format", "json", "--telemetry", "lite"], &env).json;
    let origin = |n: &str| {
        (
            setting(&j, n)["value"].clone(),
            setting(&j, n)["origin"].clone(),
        )
    };
    assert_eq!(origin("cache.ttl_days"), (2.5.into(), "environment".into()));
    assert_eq!(
        origin("telemetry.level"),
        ("lite".into(), "flag".into()),
        "the flag wins"
    );
    assert_eq!(origin("cache.max_mb"), (1024.into(), "default".into()));
    assert_eq!(
        setting(&j, "cache.ttl_days")["env"],
        "TRIFECTA_AST_TTL_DAYS"
    );
    let t = config(&["--no-persist-cache"], &env).stdout;
    assert!(t.contains("(flag) cache.persist = false"), "{t}");
    assert!(t.contains("(environment) cache.ttl_days = 2.5"), "{t}");
    assert!(t.contains("(default) cache.lock_timeout_ms = 5000"), "{t}");
    // A bad value is refused here as everywhere, naming the variable.
    let bad = config(&[], &[("TRIFECTA_AST_MAX_MB", "lots")]);
    assert_eq!(bad.json["error_code"], "INVALID_ARGUMENT");
    assert!(
        bad.json["message"]
            .as_str()
            .unwrap()
            .contains("TRIFECTA_AST_MAX_MB")
    );
}

/// The `TRIFECTA_*` names that `src/` declares as constants (`const X: &str = "TRIFECTA_…"`),
/// the harness's own `TRIFECTA_VERIFY_*` aside, that `listed` lacks.
fn undeclared(sources: &[String], listed: &[String]) -> Vec<String> {
    let mut missing = Vec::new();
    for text in sources {
        for line in text.lines().filter(|l| l.contains(": &str = \"TRIFECTA_")) {
            let name = line.split('"').nth(1).unwrap_or_default().to_string();
            if !name.starts_with("TRIFECTA_VERIFY_") && !listed.contains(&name) {
                missing.push(name);
            }
        }
    }
    missing
}

fn sources(dir: &Path, out: &mut Vec<String>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(std::fs::read_to_string(&p).unwrap());
        }
    }
}

#[test]
fn every_environment_variable_is_a_declared_setting_that_config_lists() {
    let j = config(&["--format", "json"], &[]).json;
    let listed: Vec<String> = j["settings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["env"].as_str().unwrap().to_string())
        .collect();
    let mut src = Vec::new();
    sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut src);
    assert!(listed.len() >= 14, "{listed:?}");
    assert_eq!(undeclared(&src, &listed), Vec::<String>::new());
    // The census can fail: a variable read outside the mechanism is caught.
    let planted = vec!["pub const ENV_X: &str = \"TRIFECTA_AST_REMOTE_URL\";".to_string()];
    assert_eq!(undeclared(&planted, &listed), ["TRIFECTA_AST_REMOTE_URL"]);
}

#[test]
fn every_failure_says_one_human_line_on_stderr_with_relative_paths() {
    let d = segment();
    let abs = d.path().canonicalize().unwrap();
    let o = symbols(d.path(), "sym://python/mod/pkg.nope", &[]);
    assert_eq!(
        o.json["error_code"], "FILE_NOT_FOUND",
        "the envelope is unchanged"
    );
    assert_eq!(
        o.stderr,
        "error[FILE_NOT_FOUND]: Could not find module for pkg.nope \
         (tried pkg/nope.py, pkg/nope/__init__.py)\n"
    );
    let t = symbols(d.path(), "sym://python/type/nope.x.Y", &[]);
    assert!(
        t.stderr
            .contains("(tried nope/x.py, nope/x/__init__.py, nope.py, nope/__init__.py)"),
        "{t:?}"
    );
    for o in [&o, &t] {
        assert!(!o.stderr.contains(abs.to_str().unwrap()), "{o:?}");
    }
    for (o, code) in [
        (symbols(d.path(), "nope", &[]), "INVALID_URI"),
        (
            symbols(d.path(), "sym://python/type/pkg.a.C#zz", &[]),
            "SYMBOL_NOT_FOUND",
        ),
        (
            config(&[], &[("TRIFECTA_TELEMETRY", "loud")]),
            "INVALID_ARGUMENT",
        ),
    ] {
        assert_eq!(o.json["error_code"], code, "{o:?}");
        assert_eq!(o.stderr.lines().count(), 1, "{o:?}");
        assert!(o.stderr.starts_with(&format!("error[{code}]: ")), "{o:?}");
    }
    let ok = symbols(d.path(), "sym://python/mod/pkg.a", &[]);
    assert_eq!(
        (ok.code, ok.stderr.as_str()),
        (Some(0), ""),
        "success is silent on stderr"
    );
}

fn events(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_command_that_fails_early_still_writes_its_one_event_without_paths() {
    let d = segment();
    let tdir = d.path().join("_ctx/telemetry");
    let lite = ["--telemetry", "lite"];
    symbols(d.path(), "sym://python/mod/pkg.nope", &lite);
    symbols(d.path(), "sym://python/mod/../x", &lite);
    let mut cmd = trifecta();
    cmd.args([
        "ast",
        "index",
        "--jobs",
        "0",
        "--telemetry",
        "lite",
        "--segment",
    ])
    .arg(d.path());
    run(&mut cmd);
    let ev = events(&tdir);
    let summary: Vec<(String, String, Value)> = ev
        .iter()
        .map(|e| {
            (
                e["cmd"].as_str().unwrap().to_string(),
                e["result"]["error_code"].as_str().unwrap_or("").to_string(),
                e["args"]["uri"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "ast.symbols".into(),
                "FILE_NOT_FOUND".into(),
                "sym://python/mod/pkg.nope".into()
            ),
            ("ast.symbols".into(), "INVALID_URI".into(), Value::Null),
            ("ast.index".into(), "INVALID_ARGUMENT".into(), Value::Null),
        ]
    );
    let text = std::fs::read_to_string(tdir.join("events.jsonl")).unwrap();
    assert!(
        !text.contains("pkg/nope") && !text.contains(d.path().to_str().unwrap()),
        "{text}"
    );
    assert!(ev.iter().all(|e| e["result"]["status"] == "error"));
}

#[test]
fn an_early_failure_event_goes_only_where_events_may_go() {
    // Telemetry off, or a missing segment without TRIFECTA_TELEMETRY_DIR: nothing is created.
    let d = segment();
    symbols(d.path(), "sym://python/mod/pkg.nope", &[]);
    assert!(
        !d.path().join("_ctx").exists(),
        "telemetry is off by default"
    );
    let missing = d.path().join("gone");
    symbols(&missing, "sym://python/mod/pkg.a", &["--telemetry", "lite"]);
    assert!(!missing.exists());
    // With TRIFECTA_TELEMETRY_DIR the missing segment's failure is recorded there.
    let t = tempfile::tempdir().unwrap();
    let mut cmd = trifecta();
    cmd.args([
        "ast",
        "symbols",
        "sym://python/mod/pkg.a",
        "--telemetry",
        "lite",
        "--segment",
    ])
    .arg(&missing)
    .env("TRIFECTA_TELEMETRY_DIR", t.path());
    assert_eq!(run(&mut cmd).json["error_code"], "SEGMENT_NOT_FOUND");
    let ev = events(t.path());
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0]["result"]["error_code"], "SEGMENT_NOT_FOUND");
}

fn verify_bin() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("trifecta-verify").unwrap()
}

fn generate(bin: &str, args: &[&str]) -> String {
    let mut cmd = if bin == "trifecta" {
        trifecta()
    } else {
        verify_bin()
    };
    let out = cmd.args(args).output().unwrap();
    assert!(out.status.success(), "{bin} {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// `shell -n` (parse only) on `script`: `Some(ok)`, or `None` when the shell is not installed
/// (outside CI only: `.ci/run` installs zsh and fish).
fn syntax_ok(shell: &str, script: &str) -> Option<bool> {
    let d = tempfile::tempdir().unwrap();
    let f = d.path().join("script");
    std::fs::write(&f, script).unwrap();
    match Std::new(shell).arg("-n").arg(&f).output() {
        Ok(o) => Some(o.status.success() && o.stderr.is_empty()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{shell} is required in CI"
            );
            eprintln!("SKIPPED: {shell} is not installed");
            None
        }
        Err(e) => panic!("{shell}: {e}"),
    }
}

#[test]
fn completions_for_both_binaries_parse_in_their_shells() {
    for bin in ["trifecta", "trifecta-verify"] {
        for shell in ["bash", "zsh", "fish"] {
            let script = generate(bin, &["completions", shell]);
            for word in [bin, "completions"] {
                assert!(script.contains(word), "{bin} {shell}: no {word:?}");
            }
            assert_ne!(
                syntax_ok(shell, &script),
                Some(false),
                "{bin} {shell}:\n{script}"
            );
        }
        // The check can fail: a truncated script does not parse.
        let bash = generate(bin, &["completions", "bash"]);
        assert_eq!(syntax_ok("bash", &bash[..bash.len() / 2]), Some(false));
    }
    let cmd = trifecta().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(
        cmd.status.code(),
        Some(1),
        "an unknown shell is a usage error"
    );
}

/// `man -l` on a roff page: the rendered text and groff's warnings.
fn man(page: &Path) -> (String, String) {
    let o = Std::new("man")
        .args(["--warnings", "-l"])
        .arg(page)
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C")
        .output()
        .expect("man-db is installed (.ci/run installs it)");
    assert!(o.status.success(), "{o:?}");
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn man_pages_render_with_man_for_both_binaries() {
    let d = tempfile::tempdir().unwrap();
    for (bin, sub) in [("trifecta", "ast"), ("trifecta-verify", "gates")] {
        let page = d.path().join(format!("{bin}.1"));
        std::fs::write(&page, generate(bin, &["man"])).unwrap();
        let (text, warnings) = man(&page);
        assert!(
            text.contains("NAME") && text.contains(sub),
            "{bin}:\n{text}"
        );
        assert_eq!(warnings, "", "{bin}: groff warnings");
        let dir = d.path().join(bin);
        generate(bin, &["man", "--dir", dir.to_str().unwrap()]);
        let sub_page = dir.join(format!("{bin}-{sub}.1"));
        assert!(man(&sub_page).0.contains(sub), "{}", sub_page.display());
    }
    assert!(d.path().join("trifecta/trifecta-ast-symbols.1").is_file());
    // The check can fail: groff warns about a broken page.
    let broken = d.path().join("broken.1");
    // (the warning seen before this test existed: a `…` in a help text, which an ASCII
    // terminal cannot show)
    std::fs::write(&broken, ".TH X 1\n.SH NAME\nx \\[u2026] y\n").unwrap();
    assert_ne!(man(&broken).1, "", "a broken page must produce warnings");
}
