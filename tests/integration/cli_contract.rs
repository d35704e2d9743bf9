//! The CLI contract: every error code's envelope and exit code, flags vs environment, and that
//! no input makes the binary panic or print a backtrace.

use crate::support::{assert_error, assert_no_panic, run, symbols, trifecta, write};
use proptest::prelude::*;

fn segment() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    write(d.path(), "pkg/__init__.py", "");
    write(
        d.path(),
        "pkg/utils.py",
        "def helper():\n    return 1\n\nclass Helper:\n    def run(self):\n        pass\n",
    );
    d
}

#[test]
fn success_envelope_keeps_the_original_keys_in_order() {
    let d = segment();
    let o = symbols(d.path(), "sym://python/mod/pkg.utils", &[]);
    assert_eq!(o.code, Some(0), "{o:?}");
    let original = [
        "status",
        "segment_root",
        "file_rel",
        "symbols",
        "cache_status",
        "cache_key",
        "miss_reason",
        "cache_db_path",
    ];
    let positions: Vec<usize> = original
        .iter()
        .map(|k| {
            o.stdout
                .find(&format!("\n  \"{k}\":"))
                .unwrap_or_else(|| panic!("key {k} missing: {o:?}"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "original keys keep their order: {o:?}"
    );
    assert_eq!(o.json["file_rel"], "pkg/utils.py");
    assert_eq!(o.json["miss_reason"], "ephemeral_cache");
    assert!(o.json["cache_db_path"].is_null());
    assert!(
        o.stdout.is_ascii() && o.stdout.ends_with("}\n"),
        "indent-2 ASCII JSON with a newline"
    );
    // Without persistence or telemetry the command writes nothing into the segment.
    assert!(!d.path().join(".trifecta").exists() && !d.path().join("_ctx").exists());
}

#[test]
fn invalid_uri() {
    let d = segment();
    for uri in [
        "http://python/mod/x",
        "sym://python/mod",
        "sym://python/class/X",
        "sym://python/mod/x#y",
        "sym://python/mod//etc/passwd",
        "sym://python/mod/../../etc/passwd",
        "sym://python/type/Only",
    ] {
        assert_error(&symbols(d.path(), uri, &[]), "INVALID_URI");
    }
}

#[test]
fn invalid_argument_from_flags_and_environment() {
    let d = segment();
    assert_error(
        &symbols(
            d.path(),
            "sym://python/mod/pkg.utils",
            &["--telemetry", "loud"],
        ),
        "INVALID_ARGUMENT",
    );
    for (var, val) in [
        ("TRIFECTA_AST_PERSIST", "maybe"),
        ("TRIFECTA_AST_LOCK_TIMEOUT_MS", "soon"),
        ("TRIFECTA_TELEMETRY", "verbose"),
    ] {
        let mut cmd = trifecta();
        cmd.args(["ast", "symbols", "sym://python/mod/pkg.utils", "--segment"])
            .arg(d.path())
            .env(var, val);
        let o = run(&mut cmd);
        assert_error(&o, "INVALID_ARGUMENT");
        assert!(
            o.json["message"].as_str().unwrap_or("").contains(var),
            "names the variable: {o:?}"
        );
    }
    assert!(
        !d.path().join(".trifecta").exists(),
        "bad input creates nothing"
    );
}

#[test]
fn usage_errors_are_envelopes_but_help_and_version_are_not() {
    for args in [
        &["ast", "symbols"][..],
        &["ast", "symbols", "sym://python/mod/x", "--bogus"],
        &["nope"],
        &["ast", "nope"],
    ] {
        let mut cmd = trifecta();
        cmd.args(args);
        let o = run(&mut cmd);
        assert_error(&o, "USAGE_ERROR");
        assert!(o.stderr.starts_with("error[USAGE_ERROR]: "), "{o:?}");
    }
    // A bare command group asks what there is: its help on stdout, exit 0, as cargo does.
    for args in [&[][..], &["ast"], &["ast", "cache"], &["telemetry"]] {
        let mut cmd = trifecta();
        cmd.args(args);
        let o = run(&mut cmd);
        assert_eq!(o.code, Some(0), "{args:?}: {o:?}");
        assert!(o.stdout.contains("Usage: trifecta"), "{args:?}: {o:?}");
        assert!(o.stderr.is_empty(), "{args:?}: {o:?}");
    }
    for flag in ["--help", "--version"] {
        let mut cmd = trifecta();
        cmd.arg(flag);
        let o = run(&mut cmd);
        assert_eq!(o.code, Some(0), "{o:?}");
        assert!(o.stdout.contains("trifecta"), "{o:?}");
    }
}

#[test]
fn segment_not_found_creates_nothing() {
    let d = tempfile::tempdir().expect("tempdir");
    let missing = d.path().join("nope");
    assert_error(
        &symbols(&missing, "sym://python/mod/x", &["--persist-cache"]),
        "SEGMENT_NOT_FOUND",
    );
    assert!(!missing.exists(), "a missing --segment is never created");
    std::fs::write(d.path().join("file"), "").expect("write");
    assert_error(
        &symbols(&d.path().join("file"), "sym://python/mod/x", &[]),
        "SEGMENT_NOT_FOUND",
    );
}

#[test]
fn file_not_found() {
    let d = segment();
    let o = symbols(d.path(), "sym://python/mod/pkg.nope", &["--persist-cache"]);
    assert_error(&o, "FILE_NOT_FOUND");
    assert!(
        !d.path().join(".trifecta").exists(),
        "a failed lookup does not create the cache"
    );
}

#[test]
fn path_outside_segment_reads_nothing() {
    let outside = tempfile::tempdir().expect("tempdir");
    write(outside.path(), "secret.py", "def secret(): pass\n");
    let d = segment();
    std::os::unix::fs::symlink(outside.path().join("secret.py"), d.path().join("leak.py"))
        .expect("symlink");
    std::os::unix::fs::symlink(outside.path(), d.path().join("away")).expect("symlink");
    for uri in [
        "sym://python/mod/leak",
        "sym://python/mod/away.secret",
        "sym://python/type/away.secret.X",
    ] {
        let o = symbols(d.path(), uri, &["--persist-cache"]);
        assert_error(&o, "PATH_OUTSIDE_SEGMENT");
        assert!(!o.stdout.contains("secret()"), "{o:?}");
    }
    assert!(!d.path().join(".trifecta").exists());
}

#[test]
fn symbol_not_found_for_absent_class_or_member() {
    let d = segment();
    assert_error(
        &symbols(d.path(), "sym://python/type/pkg.utils.Nope", &[]),
        "SYMBOL_NOT_FOUND",
    );
    assert_error(
        &symbols(d.path(), "sym://python/type/pkg.utils.Helper#nope", &[]),
        "SYMBOL_NOT_FOUND",
    );
    // A function is not a class.
    assert_error(
        &symbols(d.path(), "sym://python/type/pkg.utils.helper", &[]),
        "SYMBOL_NOT_FOUND",
    );
}

#[test]
fn file_read_error_for_an_oversized_module() {
    let d = segment();
    let f = std::fs::File::create(d.path().join("huge.py")).expect("create");
    f.set_len(64 * 1024 * 1024 + 1).expect("sparse file");
    assert_error(
        &symbols(d.path(), "sym://python/mod/huge", &[]),
        "FILE_READ_ERROR",
    );
}

#[test]
fn a_panic_becomes_internal_error_without_backtrace() {
    let d = segment();
    let mut cmd = trifecta();
    cmd.args(["ast", "symbols", "sym://python/mod/pkg.utils", "--segment"])
        .arg(d.path())
        .env("TRIFECTA_TEST_PANIC", "1")
        .env("RUST_BACKTRACE", "1");
    assert_error(&run(&mut cmd), "INTERNAL_ERROR");
}

/// Every stable code must be asserted by some test in this binary (it appears quoted, as in
/// `assert_error(&o, "CODE")` or `assert_eq!(o.json["error_code"], "CODE")`), so adding a
/// code without a test fails here.
#[test]
fn every_error_code_has_an_envelope_test() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/integration");
    let mut sources = String::new();
    for entry in std::fs::read_dir(&dir).expect("read tests dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "rs") {
            sources.push_str(&std::fs::read_to_string(&path).expect("read test source"));
        }
    }
    let untested: Vec<&str> = trifecta::error::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .filter(|code| !sources.contains(&format!("\"{code}\"")))
        .collect();
    assert!(
        untested.is_empty(),
        "error codes without an envelope test: {untested:?}"
    );
}

fn arg_token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("ast".to_string()),
        Just("symbols".to_string()),
        Just("--segment".to_string()),
        Just("--persist-cache".to_string()),
        Just("--no-persist-cache".to_string()),
        Just("--telemetry".to_string()),
        Just("lite".to_string()),
        Just("sym://python/mod/pkg.utils".to_string()),
        Just("sym://python/type/pkg.utils.Helper#run".to_string()),
        Just(".".to_string()),
        "sym://python/(mod|type)/[a-z./#_]{0,12}",
        any::<String>().prop_map(|s| s.replace('\0', "")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever the argv, the binary exits 0 or 1 with JSON on stdout and never panics.
    #[test]
    fn no_argv_makes_the_cli_panic(args in prop::collection::vec(arg_token(), 0..6)) {
        let d = segment();
        let mut cmd = trifecta();
        cmd.current_dir(d.path()).args(&args);
        let o = run(&mut cmd);
        assert_no_panic(&o);
        prop_assert!(o.code == Some(0) || o.code == Some(1), "{:?}", o);
        // A bare command group (`trifecta`, `trifecta ast`) prints its help, like `--help`.
        let bare_group = args.is_empty() || args == ["ast"];
        if !(bare_group || args.iter().any(|a| a == "--help" || a == "-h" || a == "--version" || a == "-V" || a == "help")) {
            prop_assert!(o.json.get("status").is_some(), "stdout is a JSON document: {:?}", o);
        }
    }
}
