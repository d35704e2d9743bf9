//! `trifecta ast index`: deterministic JSONL, same answers as `ast symbols`, errors counted not
//! fatal, ignore rules honoured.

use crate::support::{assert_error, run, symbols, trifecta, write};
use serde_json::Value;
use std::path::Path;

/// Generated modules under `many/`: enough for three pipeline chunks, the last one partial, so
/// the hand-over between overlapping chunks is exercised.
const MANY: usize = 2 * trifecta::index::CHUNK + 45;
/// Every indexed module of [`corpus`] (the five hand-written ones plus [`MANY`]).
const TOTAL: usize = MANY + 5;

fn corpus() -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    let s = d.path();
    write(s, "pkg/__init__.py", "from .a import f\n");
    write(
        s,
        "pkg/a.py",
        "import os\n\n@dec\ndef f(x):\n    return x\n\nclass A:\n    def m(self):\n        pass\n    class N:\n        pass\n",
    );
    write(s, "pkg/sub/b.py", "async def g():\n    pass\n");
    write(
        s,
        "broken.py",
        "def ok():\n    pass\n\ndef bad(:\n    pass\n\nclass C:\n    pass\n",
    );
    write(s, "caf\u{e9}.py", "def caf\u{e9}():\n    pass\n");
    write(s, "ignored/x.py", "def hidden(): pass\n");
    write(s, ".gitignore", "ignored/\n");
    for i in 0..MANY {
        write(
            s,
            &format!("many/m{i:03}.py"),
            &format!("def f{i}():\n    pass\n"),
        );
    }
    d
}

fn index(seg: &Path, extra: &[&str]) -> (i32, Vec<Value>, Value) {
    let mut cmd = trifecta();
    cmd.args(["ast", "index", "--format", "jsonl", "--segment"])
        .arg(seg)
        .args(extra);
    let out = cmd.output().expect("spawn");
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let summary = serde_json::from_slice(&out.stderr).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), lines, summary)
}

#[test]
fn jobs_one_and_jobs_n_are_identical_and_ordered() {
    let d = corpus();
    // In memory: both runs extract everything, so their lines compare whole.
    let (c1, one, s1) = index(d.path(), &["--jobs", "1", "--no-persist-cache"]);
    let (c2, two, s2) = index(d.path(), &["--jobs", "4", "--no-persist-cache"]);
    assert_eq!((c1, c2), (0, 0));
    assert_eq!(one, two, "--jobs must not change results");
    let paths: Vec<&str> = one
        .iter()
        .map(|l| l["file_rel"].as_str().unwrap_or(""))
        .collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "deterministic path order");
    assert_eq!(one.len(), TOTAL, "gitignored files are skipped: {paths:?}");
    assert!(!paths.contains(&"ignored/x.py"));
    assert_eq!(s1["files"], TOTAL);
    assert_eq!(
        (s1["jobs"].as_u64(), s2["jobs"].as_u64()),
        (Some(1), Some(4))
    );
}

#[test]
fn index_persists_by_default_and_the_opt_outs_keep_nothing() {
    // `ast index` exists to warm the cache: without a flag it writes the SQLite cache, and a
    // second run is all hits.
    let d = corpus();
    let (code, _, first) = index(d.path(), &[]);
    assert_eq!(code, 0);
    assert_eq!(first["cache_backend"], "sqlite", "{first}");
    assert!(d.path().join(".trifecta/cache/ast_cache.db").is_file());
    let (_, _, second) = index(d.path(), &[]);
    assert_eq!(second["misses"], 0, "{second}");
    assert_eq!(second["hits"], first["files"], "{second}");
    // The flag and the variable both opt out, and then nothing is created.
    for (flag, env) in [(Some("--no-persist-cache"), None), (None, Some("0"))] {
        let d = corpus();
        let mut cmd = trifecta();
        cmd.args(["ast", "index", "--segment"]).arg(d.path());
        cmd.args(flag);
        if let Some(v) = env {
            cmd.env("TRIFECTA_AST_PERSIST", v);
        }
        let o = run(&mut cmd);
        assert_eq!(o.json["cache_backend"], "memory", "{o:?}");
        assert!(!d.path().join(".trifecta").exists(), "{flag:?} {env:?}");
    }
}

#[test]
fn every_module_agrees_with_ast_symbols() {
    let d = corpus();
    let (_, lines, _) = index(d.path(), &[]);
    for line in lines.iter().filter(|l| {
        // One generated module in ten is enough: each check spawns a process.
        let f = l["file_rel"].as_str().unwrap_or("");
        !f.starts_with("many/") || f.ends_with("0.py")
    }) {
        let Some(module) = line["module"].as_str() else {
            continue;
        };
        let o = symbols(d.path(), &format!("sym://python/mod/{module}"), &[]);
        assert_eq!(o.code, Some(0), "{o:?}");
        if o.json["file_rel"] != line["file_rel"] {
            continue; // `pkg.py` would shadow `pkg/__init__.py`; not the case here, but be exact.
        }
        assert_eq!(o.json["symbols"], line["symbols"], "{module}");
        assert_eq!(o.json["syntax_errors"], line["syntax_errors"], "{module}");
    }
}

#[test]
fn persisted_index_warms_the_cache_for_ast_symbols() {
    let d = corpus();
    let mut cmd = trifecta();
    cmd.args(["ast", "index", "--persist-cache", "--segment"])
        .arg(d.path());
    let first = run(&mut cmd);
    assert_eq!(first.code, Some(0), "{first:?}");
    assert_eq!(first.json["misses"], TOTAL);
    let mut cmd = trifecta();
    cmd.args(["ast", "index", "--persist-cache", "--segment"])
        .arg(d.path());
    let second = run(&mut cmd);
    assert_eq!(
        (second.json["hits"].as_u64(), second.json["misses"].as_u64()),
        (Some(TOTAL as u64), Some(0)),
        "{second:?}"
    );
    let o = symbols(d.path(), "sym://python/mod/pkg.a", &["--persist-cache"]);
    assert_eq!(o.json["cache_status"], "hit", "{o:?}");
}

#[test]
fn unreadable_files_are_counted_not_fatal() {
    let d = corpus();
    let f = std::fs::File::create(d.path().join("huge.py")).expect("create");
    f.set_len(64 * 1024 * 1024 + 1).expect("sparse");
    let (code, lines, summary) = index(d.path(), &[]);
    assert_eq!(code, 0);
    assert_eq!(summary["errors"], 1, "{summary}");
    assert_eq!(summary["error_files"][0]["file_rel"], "huge.py");
    let huge = lines
        .iter()
        .find(|l| l["file_rel"] == "huge.py")
        .expect("reported in the stream");
    assert!(
        huge["error"].as_str().is_some_and(|e| e.contains("limit")),
        "{huge}"
    );
    let message = summary["error_files"][0]["message"].as_str().unwrap_or("");
    assert!(
        !message.contains(&*d.path().to_string_lossy()),
        "error messages are path-free: {message}"
    );
}

#[test]
fn bad_arguments_are_envelopes() {
    let d = corpus();
    let mut cmd = trifecta();
    cmd.args(["ast", "index", "--jobs", "0", "--segment"])
        .arg(d.path());
    assert_error(&run(&mut cmd), "INVALID_ARGUMENT");
    let mut cmd = trifecta();
    cmd.args(["ast", "index", "--segment"])
        .arg(d.path().join("missing"));
    assert_error(&run(&mut cmd), "SEGMENT_NOT_FOUND");
}

#[test]
fn file_names_differing_only_in_non_utf8_bytes_keep_separate_rows() {
    use std::os::unix::ffi::OsStrExt;
    let d = tempfile::tempdir().expect("tempdir");
    let s = d.path();
    // Two names a lossy conversion makes equal (`a\u{FFFD}.py`), and a UTF-8 name spelling
    // the escape of one of them.
    let names: [&[u8]; 3] = [b"a\xff.py", b"a\xfe.py", b"a\\xff.py"];
    for (i, name) in names.iter().enumerate() {
        let body = format!("def f{i}(): pass\n");
        std::fs::write(s.join(std::ffi::OsStr::from_bytes(name)), body).expect("write");
    }
    let rows = |lines: &[Value]| -> Vec<(String, String, Value)> {
        lines
            .iter()
            .map(|l| {
                let rel = l["file_rel"].as_str().expect("file_rel").to_owned();
                let name = l["symbols"][0]["name"].as_str().unwrap_or("").to_owned();
                (rel, name, l["module"].clone())
            })
            .collect()
    };
    // Sorted by the escaped name; `module` is null, as no URI can name these files.
    let want: Vec<(String, String, Value)> = [
        (r"a\\xff.py", "f2"),
        (r"a\xfe.py", "f1"),
        (r"a\xff.py", "f0"),
    ]
    .iter()
    .map(|(r, n)| ((*r).to_owned(), (*n).to_owned(), Value::Null))
    .collect();

    let (code, lines, summary) = index(s, &["--persist-cache"]);
    assert_eq!(code, 0, "{summary}");
    assert_eq!(rows(&lines), want, "distinct, escaped names in path order");
    assert_eq!(summary["misses"], 3, "{summary}");

    // Each file has its own row: a shared row would make one of them a content_changed miss.
    let (_, lines, summary) = index(s, &["--persist-cache"]);
    assert_eq!(rows(&lines), want);
    assert_eq!(summary["hits"], 3, "{summary}");
    let stats = run(trifecta()
        .args(["ast", "cache", "stats", "--segment"])
        .arg(s));
    assert_eq!(stats.json["entries"], 3, "{}", stats.stdout);

    // Maintenance maps each key back to its file: none is pruned as deleted.
    let prune = run(trifecta()
        .args(["ast", "cache", "prune", "--segment"])
        .arg(s));
    assert_eq!(prune.json["deleted_files"], 0, "{}", prune.stdout);
    let (_, _, summary) = index(s, &["--persist-cache"]);
    assert_eq!(summary["hits"], 3, "{summary}");

    // Deleting one file prunes exactly its row.
    std::fs::remove_file(s.join(std::ffi::OsStr::from_bytes(names[1]))).expect("rm");
    let prune = run(trifecta()
        .args(["ast", "cache", "prune", "--segment"])
        .arg(s));
    assert_eq!(prune.json["deleted_files"], 1, "{}", prune.stdout);
}

/// `ast index` goes through the same cache-aside as `ast symbols`: its lookups and writes are
/// the same `ast.cache.*` events, so the dashboard (`telemetry report`) counts them. A warm index
/// that re-parsed one edited file used to show 100 % hits there, because only `ast symbols`
/// reported lookups.
#[test]
fn index_lookups_are_the_same_events_as_symbols_and_the_report_counts_them() {
    let d = tempfile::tempdir().expect("tempdir");
    let s = d.path();
    for i in 0..5 {
        write(s, &format!("m{i}.py"), &format!("def f{i}():\n    pass\n"));
    }
    let lite = ["--persist-cache", "--telemetry", "lite"];
    assert_eq!(index(s, &lite).0, 0);
    write(s, "m0.py", "def edited():\n    pass\n");
    assert_eq!(index(s, &lite).0, 0);
    // One `ast symbols` lookup of a different module, for the shape comparison.
    assert_eq!(symbols(s, "sym://python/mod/m1", &lite).code, Some(0));

    let events = crate::telemetry::events(&s.join("_ctx/telemetry"));
    let runs: Vec<&str> = events
        .iter()
        .filter(|e| e["cmd"] == "ast.index")
        .map(|e| e["run_id"].as_str().unwrap())
        .collect();
    assert_eq!(runs.len(), 2);
    let of = |run: &str, cmd: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["run_id"] == run && e["cmd"] == cmd)
            .collect()
    };
    // Cold: a miss and a stored write per file.
    assert_eq!(of(runs[0], "ast.cache.miss").len(), 5);
    let writes = of(runs[0], "ast.cache.write");
    assert_eq!(writes.len(), 5);
    assert!(writes.iter().all(|w| w["result"]["status"] == "ok"));
    // Warm after one edit: four hits and one content_changed miss, with a write for it.
    assert_eq!(of(runs[1], "ast.cache.hit").len(), 4);
    let misses = of(runs[1], "ast.cache.miss");
    assert_eq!(misses.len(), 1);
    assert_eq!(misses[0]["result"]["miss_reason"], "content_changed");
    assert_eq!(of(runs[1], "ast.cache.write").len(), 1);

    // Same shape as the lookup event of `ast symbols`: same keys in args, result and the backend.
    let sym_run = events
        .iter()
        .find(|e| e["cmd"] == "ast.symbols")
        .map(|e| e["run_id"].as_str().unwrap())
        .unwrap();
    let sym_hit = of(sym_run, "ast.cache.hit")[0];
    let idx_hit = of(runs[1], "ast.cache.hit")[0];
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    for field in ["args", "result"] {
        assert_eq!(keys(&sym_hit[field]), keys(&idx_hit[field]), "{field}");
    }
    assert_eq!(sym_hit["cache_type"], idx_hit["cache_type"]);

    // The dashboard's numbers count index lookups: 4 + 1 (index) + 1 (symbols) hits, 5 + 1
    // misses, 5 + 1 writes.
    let out = trifecta()
        .args(["telemetry", "report", "--segment"])
        .arg(s)
        .output()
        .expect("spawn");
    let report: Value = serde_json::from_slice(&out.stdout).expect("report JSON");
    assert_eq!(report["lookups"]["hits"], 5, "{report}");
    assert_eq!(report["lookups"]["misses"], 6, "{report}");
    assert_eq!(report["lookups"]["writes"], 6, "{report}");
}
