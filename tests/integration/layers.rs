//! The module graph has no cycle and no import from a lower layer up ([`LAYERS`]). Every `crate::…` and `super::…` path in `src/` is resolved to
//! the module file it names (the longest prefix that is a module), giving one edge per
//! (file, module it uses). Edges between a module and its own ancestors are containment, not
//! dependency (a parent declares and re-exports its children), and are left out; any other
//! cycle fails with the files and the names that tie them, so a new one is caught the day it
//! is written. Run with `--nocapture` to print each module's imports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `src/cache/sqlite/open.rs` → `cache::sqlite::open`; `mod.rs` and `lib.rs` name their folder.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The source without comments and `#[cfg(test)]` modules' bodies (tests may import freely).
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut skip_depth: Option<usize> = None;
    let mut depth = 0usize;
    let mut pending_test = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("//") {
            continue;
        }
        if t.starts_with("#[cfg(test)]") {
            pending_test = true;
            continue;
        }
        let opens = line.matches('{').count();
        let closes = line.matches('}').count();
        if pending_test && (t.starts_with("mod ") || t.starts_with("pub mod ")) {
            pending_test = false;
            if t.ends_with(';') {
                continue;
            }
            skip_depth = Some(depth);
        }
        depth = depth + opens - closes.min(depth + opens);
        if let Some(d) = skip_depth {
            if depth <= d {
                skip_depth = None;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Paths in `text` as module-path strings (`crate::a::b::C`, `super::x`), with `use` groups
/// (`crate::a::{b, c::D}`) expanded one level.
fn paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let rest: String = bytes[i..bytes.len().min(i + 7)].iter().collect();
        let at_word = i == 0 || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_');
        if at_word && (rest.starts_with("crate::") || rest.starts_with("super::")) {
            let mut j = i;
            while j < bytes.len()
                && (bytes[j].is_alphanumeric() || bytes[j] == '_' || bytes[j] == ':')
            {
                j += 1;
            }
            let head: String = bytes[i..j].iter().collect();
            let head = head.trim_end_matches(':').to_string();
            if j < bytes.len() && bytes[j] == '{' {
                let end = bytes[j..]
                    .iter()
                    .position(|&c| c == '}')
                    .map_or(j, |k| j + k);
                let inner: String = bytes[j + 1..end].iter().collect();
                for item in inner.split(',') {
                    let item = item.trim().split(' ').next().unwrap_or("");
                    if !item.is_empty() && item != "self" {
                        out.push(format!("{head}::{item}"));
                    }
                }
                out.push(head);
                i = end;
            } else {
                out.push(head);
                i = j;
            }
        }
        i += 1;
    }
    out
}

/// Resolve `path` (as written in `from`) to the longest known module prefix.
fn resolve(path: &str, from: &str, modules: &BTreeSet<String>) -> Option<String> {
    let mut segs: Vec<&str> = path.split("::").collect();
    let mut base: Vec<&str> = if from.is_empty() {
        vec![]
    } else {
        from.split("::").collect()
    };
    match segs.first() {
        Some(&"crate") => {
            segs.remove(0);
            base.clear();
        }
        Some(&"super") => {
            while segs.first() == Some(&"super") {
                segs.remove(0);
                base.pop();
            }
        }
        _ => return None,
    }
    let full: Vec<&str> = base.into_iter().chain(segs).collect();
    (0..=full.len())
        .rev()
        .map(|n| full[..n].join("::"))
        .find(|m| modules.contains(m))
}

type Edges = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// The crate's layers, top to bottom: a module may use its own layer and those below it.
/// (`verify` is the second application beside `commands`.)
const LAYERS: &[&[&str]] = &[
    &["commands", "verify", "daemon"],
    // The gate runner's own layers (`verify` above is its entry, `verify/mod.rs`): the runner
    // only emits events, reporters consume them, step kinds build on the run model, and the
    // run model imports none of them.
    &["verify::merge"],
    &["verify::runner"],
    &["verify::report", "verify::evidence"],
    &["verify::spec"],
    &["verify::steps"],
    &["verify::event"],
    &[
        "verify::shard",
        "verify::excerpt",
        "verify::process",
        "verify::workspace",
        "verify::jq",
        "verify::redis_server",
        // The daemon's socket directory, wire protocol and client: what the gate runner's
        // `daemon` step and `commands` use; they import only `error` (the server, which runs
        // commands, stays in the top layer).
        "daemon::runtime_dir",
        "daemon::protocol",
        "daemon::client",
    ],
    &["index"],
    &["cache"],
    &["config"],
    &["cli", "telemetry"],
    &["symbols"],
    &[
        "segment_fs",
        "file_rel",
        "clock",
        "mutant",
        "error",
        "output",
        "build_info",
    ],
];

/// The layer of the most specific [`LAYERS`] entry that is `module` or one of its ancestors
/// (`verify::steps::kinds::run` is in `verify::steps`' layer; `cache::sqlite` in `cache`'s).
fn layer_of(module: &str) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (i, layer) in LAYERS.iter().enumerate() {
        for entry in layer.iter() {
            let within = module == *entry || module.starts_with(&format!("{entry}::"));
            if within && best.is_none_or(|(len, _)| entry.len() > len) {
                best = Some((entry.len(), i));
            }
        }
    }
    best.map(|(_, i)| i)
}

/// Edges from a module to one in a higher layer, with the names that make them.
fn upward_edges(edges: &Edges) -> Vec<String> {
    let mut out = Vec::new();
    for (from, tos) in edges {
        for (to, why) in tos {
            match (layer_of(from), layer_of(to)) {
                (Some(a), Some(b)) if b < a => out.push(format!("{from} -> {to} (via {why:?})")),
                (None, _) | (_, None) => out.push(format!(
                    "{from} -> {to}: a top-level module missing from LAYERS"
                )),
                _ => {}
            }
        }
    }
    out
}

/// Every back edge a depth-first search meets, as the cycle it closes (with the names used).
fn find_cycles(edges: &Edges) -> Vec<String> {
    fn visit<'a>(
        m: &'a str,
        edges: &'a Edges,
        colour: &mut BTreeMap<&'a str, u8>,
        stack: &mut Vec<&'a str>,
        cycles: &mut Vec<String>,
    ) {
        colour.insert(m, 1);
        stack.push(m);
        if let Some(tos) = edges.get(m) {
            for (to, why) in tos {
                match colour.get(to.as_str()) {
                    Some(1) => {
                        let start = stack.iter().position(|s| s == to).unwrap();
                        cycles.push(format!(
                            "{} -> {to} (via {why:?})",
                            stack[start..].join(" -> ")
                        ));
                    }
                    Some(_) => {}
                    None => visit(to, edges, colour, stack, cycles),
                }
            }
        }
        stack.pop();
        colour.insert(m, 2);
    }
    let mut colour = BTreeMap::new();
    let mut stack = Vec::new();
    let mut cycles = Vec::new();
    for m in edges.keys() {
        if !colour.contains_key(m.as_str()) {
            visit(m, edges, &mut colour, &mut stack, &mut cycles);
        }
    }
    cycles
}

fn is_ancestor(a: &str, b: &str) -> bool {
    a.is_empty() || b.starts_with(&format!("{a}::"))
}

#[test]
fn the_module_graph_has_no_cycle_and_no_upward_import() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.retain(|f| {
        !f.ends_with("tests.rs")
            && !f.ends_with("proptests.rs")
            && !f.starts_with(src.join("bin"))
            && !f.ends_with("main.rs")
    });
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut edges = Edges::new();
    for f in &files {
        let from = module_of(&src, f);
        let text = code(&std::fs::read_to_string(f).unwrap());
        for p in paths(&text) {
            let Some(to) = resolve(&p, &from, &modules) else {
                continue;
            };
            if to == from || is_ancestor(&to, &from) || is_ancestor(&from, &to) {
                continue;
            }
            edges
                .entry(from.clone())
                .or_default()
                .entry(to)
                .or_default()
                .insert(p);
        }
    }
    for (from, tos) in &edges {
        println!(
            "{from} -> {}",
            tos.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let upward = upward_edges(&edges);
    assert!(
        upward.is_empty(),
        "imports from a lower layer up (see LAYERS):\n{}",
        upward.join("\n")
    );
    let cycles = find_cycles(&edges);
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_checks_see_a_cycle_and_an_upward_import() {
    let modules: BTreeSet<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
    assert_eq!(resolve("crate::b::f", "a", &modules).as_deref(), Some("b"));
    assert_eq!(resolve("super::b::f", "a", &modules).as_deref(), Some("b"));
    assert_eq!(
        paths("use crate::cache::{self, lock::X, Y};"),
        ["crate::cache::lock::X", "crate::cache::Y", "crate::cache"]
    );
    assert!(code("#[cfg(test)]\nmod tests {\n    use crate::x;\n}\nfn f() {}\n").contains("fn f"));
    assert!(!code("#[cfg(test)]\nmod tests {\n    use crate::x;\n}\n").contains("crate::x"));
    let mut edges = Edges::new();
    let dep = |to: &str| BTreeMap::from([(to.to_string(), BTreeSet::from(["p".to_string()]))]);
    edges.insert("a".into(), dep("b"));
    assert!(find_cycles(&edges).is_empty());
    edges.insert("b".into(), dep("a"));
    assert_eq!(find_cycles(&edges).len(), 1, "a -> b -> a is a cycle");
    let mut up = Edges::new();
    up.insert("telemetry".into(), dep("cache"));
    assert_eq!(upward_edges(&up).len(), 1, "telemetry may not use cache");
    up.insert("telemetry".into(), dep("segment_fs"));
    assert!(upward_edges(&up).is_empty());
    // The gate runner's sub-layers: the deepest entry decides, so a step kind importing the
    // renderers, or a renderer importing the runner, is an upward import.
    let mut up = Edges::new();
    up.insert("verify::steps::kinds::run".into(), dep("verify::report"));
    up.insert("verify::report::console".into(), dep("verify::runner"));
    assert_eq!(upward_edges(&up).len(), 2, "{:?}", upward_edges(&up));
    let mut down = Edges::new();
    down.insert("verify::runner".into(), dep("verify::event"));
    down.insert("verify::steps::kinds::run".into(), dep("verify::event"));
    down.insert("verify::event".into(), dep("verify::shard"));
    assert!(upward_edges(&down).is_empty(), "{:?}", upward_edges(&down));
}
