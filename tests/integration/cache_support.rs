//! Helpers shared by the `cache_*` integration modules: fixture segments, running the real
//! binary with a clean environment, and reading the cache database directly.

#![allow(dead_code)]

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A module with a few definitions (meaningful once extraction is real).
pub const MOD_SRC: &str = "import os\n\n\ndef alpha(x):\n    return x\n\n\nclass Beta:\n    def gamma(self):\n        pass\n\n\nasync def delta():\n    pass\n";

/// A temp segment with `pkg/__init__.py`, `pkg/mod.py` and `top.py`.
pub fn segment() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("pkg")).unwrap();
    std::fs::write(d.path().join("pkg/__init__.py"), "").unwrap();
    std::fs::write(d.path().join("pkg/mod.py"), MOD_SRC).unwrap();
    std::fs::write(d.path().join("top.py"), "def top():\n    return 1\n").unwrap();
    d
}

/// The binary with a clean environment.
pub fn cmd() -> Command {
    crate::support::trifecta()
}

/// Output of one run: parsed stdout JSON and the exit code.
pub struct Run {
    pub json: Value,
    pub code: i32,
    pub stderr: String,
}

impl Run {
    pub fn s(&self, k: &str) -> &str {
        self.json[k]
            .as_str()
            .unwrap_or_else(|| panic!("no string {k} in {}", self.json))
    }
}

/// Run `trifecta <args>` with extra environment.
pub fn run_with(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = cmd();
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {stdout:?}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    Run {
        json,
        code: out.status.code().unwrap_or(-1),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `ast symbols <uri> --segment <seg>` plus `extra` flags.
pub fn symbols(seg: &Path, uri: &str, extra: &[&str], env: &[(&str, &str)]) -> Run {
    let s = seg.to_str().unwrap();
    let mut args = vec!["ast", "symbols", uri, "--segment", s];
    args.extend_from_slice(extra);
    run_with(&args, env)
}

/// A persisted run (`--persist-cache`).
pub fn persisted(seg: &Path, uri: &str, env: &[(&str, &str)]) -> Run {
    symbols(seg, uri, &["--persist-cache"], env)
}

/// The uncached reference run (`--no-persist-cache`).
pub fn uncached(seg: &Path, uri: &str) -> Run {
    symbols(seg, uri, &["--no-persist-cache"], &[])
}

/// `<seg>/.trifecta/cache/ast_cache.db`.
pub fn db_path(seg: &Path) -> PathBuf {
    seg.join(".trifecta/cache/ast_cache.db")
}

/// Open the cache DB directly (tests only; never while a binary runs on it).
pub fn db(seg: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(db_path(seg)).unwrap()
}

/// Parsed telemetry lines of `<seg>/_ctx/telemetry/events.jsonl` (every line must parse).
pub fn events(seg: &Path) -> Vec<Value> {
    let p = seg.join("_ctx/telemetry/events.jsonl");
    let Ok(text) = std::fs::read_to_string(p) else {
        return Vec::new();
    };
    text.lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("bad telemetry line {l:?}: {e}"))
        })
        .collect()
}

/// Events with `cmd == name`.
pub fn events_named(seg: &Path, name: &str) -> Vec<Value> {
    events(seg)
        .into_iter()
        .filter(|e| e["cmd"] == name)
        .collect()
}

/// Assert a successful symbols run served exactly what an uncached run serves.
pub fn assert_same_as_uncached(r: &Run, reference: &Run) {
    assert_eq!(
        r.code, 0,
        "exit code; stdout {}\nstderr {}",
        r.json, r.stderr
    );
    assert_eq!(r.json["status"], "ok", "{}", r.json);
    assert_eq!(
        r.json["symbols"], reference.json["symbols"],
        "symbols differ from uncached"
    );
    assert_eq!(r.json["syntax_errors"], reference.json["syntax_errors"]);
    assert_eq!(r.json["cache_key"], reference.json["cache_key"]);
}
