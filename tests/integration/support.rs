//! Shared helpers: run the real binary on a temporary segment and parse its JSON.

use assert_cmd::Command;
use serde_json::Value;
use std::path::Path;

/// Every `TRIFECTA_*` variable set in this process's environment. All of them are removed
/// from every child, so neither the developer's shell nor a variable added later can change a
/// test's outcome (a fixed list goes stale; three such lists had drifted apart).
pub fn trifecta_vars() -> Vec<std::ffi::OsString> {
    std::env::vars_os()
        .map(|(k, _)| k)
        .filter(|k| k.to_string_lossy().starts_with("TRIFECTA_"))
        .collect()
}

/// A `trifecta` command with a clean environment.
pub fn trifecta() -> Command {
    let mut cmd = Command::cargo_bin("trifecta").expect("trifecta binary is built");
    for v in trifecta_vars() {
        cmd.env_remove(v);
    }
    cmd
}

/// The same for a `std::process::Command` (for children that are spawned, not awaited).
pub fn scrub(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for v in trifecta_vars() {
        cmd.env_remove(v);
    }
    cmd
}

/// What one run printed.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code (None if killed by a signal).
    pub code: Option<i32>,
    /// stdout parsed as JSON (Null if it was not JSON).
    pub json: Value,
    /// Raw stdout.
    pub stdout: String,
    /// Raw stderr.
    pub stderr: String,
}

/// Run a prepared command and capture everything.
pub fn run(cmd: &mut Command) -> Outcome {
    let out = cmd.output().expect("spawn trifecta");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Outcome {
        code: out.status.code(),
        json: serde_json::from_str(&stdout).unwrap_or(Value::Null),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `trifecta ast symbols <uri> --segment <seg> <extra…>`.
pub fn symbols(seg: &Path, uri: &str, extra: &[&str]) -> Outcome {
    let mut cmd = trifecta();
    cmd.args(["ast", "symbols", uri, "--segment"])
        .arg(seg)
        .args(extra);
    run(&mut cmd)
}

/// Write `content` at `seg/rel`, creating parent directories.
pub fn write(seg: &Path, rel: &str, content: &str) {
    let p = seg.join(rel);
    std::fs::create_dir_all(p.parent().expect("has parent")).expect("mkdir");
    std::fs::write(p, content).expect("write fixture");
}

/// Assert the error envelope: exactly status/error_code/message, the given code, exit 1, and no
/// panic or backtrace on stderr.
pub fn assert_error(o: &Outcome, code: &str) {
    assert_eq!(o.code, Some(1), "exit code for {code}: {o:?}");
    let obj = o
        .json
        .as_object()
        .unwrap_or_else(|| panic!("stdout is not a JSON object: {o:?}"));
    assert_eq!(obj.len(), 3, "envelope has exactly three keys: {o:?}");
    assert_eq!(obj["status"], "error");
    assert_eq!(obj["error_code"], code, "{o:?}");
    assert!(
        obj["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{o:?}"
    );
    assert_no_panic(o);
}

/// No panic message or backtrace anywhere in the output.
pub fn assert_no_panic(o: &Outcome) {
    for s in [&o.stdout, &o.stderr] {
        assert!(
            !s.contains("panicked")
                && !s.contains("RUST_BACKTRACE")
                && !s.contains("stack backtrace"),
            "{o:?}"
        );
    }
}

/// Copy the tree `from` to `to` (files and folders; fixtures hold nothing else).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}
