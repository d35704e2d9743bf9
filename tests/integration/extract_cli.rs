//! `trifecta ast symbols` on the `scenarios/p1-basic` fixture gives exactly the symbols Python's
//! `ast` gives (the expected files were produced by `tests/corpus/ast_symbols.py`), and the CLI
//! reports the same table as the in-process extractor.

use assert_cmd::Command;
use std::path::{Path, PathBuf};
use trifecta::symbols::Symbol;
use trifecta::symbols::extract::extract;

fn scenario() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/p1-basic")
}

/// Run `ast symbols` for `module` with an in-memory cache and return the parsed stdout.
fn symbols_json(module: &str) -> serde_json::Value {
    let out = Command::cargo_bin("trifecta")
        .expect("binary built")
        .args(["ast", "symbols", &format!("sym://python/mod/pkg.{module}")])
        .arg("--segment")
        .arg(scenario().join("segment"))
        .arg("--no-persist-cache")
        .env_remove("TRIFECTA_AST_PERSIST")
        .env_remove("TRIFECTA_TELEMETRY")
        .output()
        .expect("run trifecta");
    assert!(
        out.status.success(),
        "exit {:?}; stdout: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn expected(module: &str) -> Vec<Symbol> {
    let path = scenario().join(format!("expected/{module}.symbols.json"));
    serde_json::from_slice(&std::fs::read(path).expect("expected file")).expect("symbol JSON")
}

fn check_module(module: &str) {
    let doc = symbols_json(module);
    assert_eq!(doc["status"], "ok");
    assert_eq!(doc["file_rel"], format!("pkg/{module}.py"));
    assert_eq!(doc["syntax_errors"], serde_json::json!([]));
    let got: Vec<Symbol> =
        serde_json::from_value(doc["symbols"].clone()).expect("symbols in our shape");
    let want = expected(module);
    assert!(!want.is_empty(), "expected file for {module} is empty");
    assert_eq!(got, want, "CLI symbols for pkg.{module} differ from ast");
    let source = scenario().join(format!("segment/pkg/{module}.py"));
    let in_process = extract(&std::fs::read(source).expect("fixture source"));
    assert_eq!(in_process.symbols, want);
}

#[test]
fn p1_basic_utils_matches_ast() {
    check_module("utils");
    // The JSON shape itself: async only when true, members only on classes.
    let doc = symbols_json("utils");
    let greeter = &doc["symbols"][2];
    assert_eq!(greeter["name"], "Greeter");
    assert_eq!(greeter["members"][2]["async"], true);
    assert!(greeter["members"][0].get("async").is_none());
    assert!(greeter["members"][0].get("members").is_none());
    assert_eq!(greeter["members"][3]["members"][0]["name"], "toggle");
}

#[test]
fn p1_basic_big_typing_copy_matches_ast() {
    check_module("big");
}
