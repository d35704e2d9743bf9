//! The only file that knows jaq. Gate predicates are real jq filters (jaq-core 3 / jaq-std 3 /
//! jaq-json 2), evaluated with `jq -e` semantics:
//!
//! - the last output is `false` or `null` → [`JqVerdict::False`] (jq exits 1);
//! - no output at all → [`JqVerdict::NoOutput`] (jq exits 4) — kept distinct so that an empty
//!   telemetry file cannot pass a `select(...)` predicate vacuously;
//! - a runtime error → [`JqVerdict::Error`].
//!
//! Filters see the global variables `$segment`, `$db` and `$cache_dir` (absolute paths of the
//! gate's segment copy), so a filter can assert the deterministic DB path. Leaks of absolute
//! paths are not a filter's job: every gate ends with the scan in `steps::leaks`.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use jaq_json::{Val, read};

/// Names of the global variables every filter may use, in [`Globals`] order.
pub const GLOBAL_VARS: [&str; 3] = ["$segment", "$db", "$cache_dir"];

/// Values of [`GLOBAL_VARS`].
#[derive(Debug, Clone, Default)]
pub struct Globals {
    /// Segment root.
    pub segment: String,
    /// Cache DB path.
    pub db: String,
    /// Cache directory.
    pub cache_dir: String,
}

/// Outcome of a predicate.
#[derive(Debug, Clone, PartialEq)]
pub enum JqVerdict {
    /// Last output truthy; carries every output (compact JSON).
    Pass(Vec<String>),
    /// Last output false/null; carries every output.
    False(Vec<String>),
    /// The filter produced nothing.
    NoOutput,
    /// Runtime error (e.g. indexing a string with a key).
    Error(String),
}

fn load_error_text(e: &jaq_core::load::Error<&str>) -> String {
    use jaq_core::load::Error;
    let near = |s: &str| s.chars().take(20).collect::<String>();
    match e {
        Error::Io(v) => v
            .iter()
            .map(|(p, m)| format!("cannot load `{p}`: {m}"))
            .collect::<Vec<_>>()
            .join("; "),
        Error::Lex(v) => v
            .iter()
            .map(|(exp, s)| format!("expected {} near `{}`", exp.as_str(), near(s)))
            .collect::<Vec<_>>()
            .join("; "),
        Error::Parse(v) => v
            .iter()
            .map(|(exp, s)| format!("expected {} near `{}`", exp.as_str(), near(s)))
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// Compile `src` and call `f` with the compiled filter. Errors are human-readable.
fn with_filter<R>(
    src: &str,
    f: impl FnOnce(&jaq_core::compile::Filter<jaq_core::Native<data::JustLut<Val>>>) -> R,
) -> Result<R, String> {
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let program = File {
        code: src,
        path: (),
    };
    let modules = loader.load(&arena, program).map_err(|errs| {
        errs.iter()
            .map(|(_, e)| load_error_text(e))
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let filter = Compiler::default()
        .with_funs(funs)
        .with_global_vars(GLOBAL_VARS)
        .compile(modules)
        .map_err(|errs| {
            errs.iter()
                .flat_map(|(_, es)| es.iter())
                .map(|(name, undef)| format!("undefined {} `{}`", undef.as_str(), &**name))
                .collect::<Vec<_>>()
                .join("; ")
        })?;
    Ok(f(&filter))
}

/// Check that `src` parses and compiles (used by spec validation).
pub fn compile_check(src: &str) -> Result<(), String> {
    with_filter(src, |_| ())
}

/// Parse one JSON document.
pub fn parse_json(text: &str) -> Result<Val, String> {
    read::parse_single(text.trim().as_bytes()).map_err(|e| e.to_string())
}

/// Run `filter` on the JSON document `input` with `jq -e` semantics.
pub fn eval(filter: &str, input: &str, globals: &Globals) -> Result<JqVerdict, String> {
    let input = parse_json(input).map_err(|e| format!("input is not JSON: {e}"))?;
    with_filter(filter, |f| {
        let vars = [&globals.segment, &globals.db, &globals.cache_dir]
            .map(|s| Val::from(s.clone()))
            .to_vec();
        let ctx = Ctx::<data::JustLut<Val>>::new(&f.lut, Vars::new(vars));
        let mut outs = Vec::new();
        let mut last_truthy = false;
        for v in f.id.run((ctx, input)).map(unwrap_valr) {
            match v {
                Ok(v) => {
                    last_truthy = !matches!(v, Val::Null | Val::Bool(false));
                    outs.push(v.to_string());
                }
                Err(e) => return JqVerdict::Error(e.to_string()),
            }
        }
        if outs.is_empty() {
            JqVerdict::NoOutput
        } else if last_truthy {
            JqVerdict::Pass(outs)
        } else {
            JqVerdict::False(outs)
        }
    })
}

/// What a `jq -e` run concluded, without its outputs: the part two implementations must agree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictKind {
    /// Exit 0.
    Pass,
    /// Exit 1.
    False,
    /// Exit 4.
    NoOutput,
    /// Exit 5 (or any other failure).
    Error,
}

impl VerdictKind {
    /// `pass`, `false`, `no output` or `error`, for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            VerdictKind::Pass => "pass",
            VerdictKind::False => "false",
            VerdictKind::NoOutput => "no output",
            VerdictKind::Error => "error",
        }
    }
}

impl JqVerdict {
    /// The verdict without its outputs.
    pub fn kind(&self) -> VerdictKind {
        match self {
            JqVerdict::Pass(_) => VerdictKind::Pass,
            JqVerdict::False(_) => VerdictKind::False,
            JqVerdict::NoOutput => VerdictKind::NoOutput,
            JqVerdict::Error(_) => VerdictKind::Error,
        }
    }
}

/// The reference jq that cross-checks jaq: `TRIFECTA_VERIFY_JQ` if set (empty disables the
/// check), else `jq` on `PATH`. CI installs Debian's jq, so every gate predicate is evaluated
/// by both implementations there and a disagreement cannot pass unnoticed.
pub fn reference_jq() -> Option<std::path::PathBuf> {
    let env = crate::config::VerifyEnv::get();
    match &env.jq {
        Some(p) if p.is_empty() => None,
        Some(p) => Some(p.into()),
        None => std::env::split_paths(env.path.as_ref()?)
            .map(|d| d.join("jq"))
            .find(|p| p.is_file()),
    }
}

/// Run the reference `jq -e` on `input` (stdin) with the same global variables (`--arg`).
pub fn reference_verdict(
    jq: &std::path::Path,
    filter: &str,
    input: &str,
    globals: &Globals,
) -> Result<VerdictKind, String> {
    use std::io::Write;
    let mut child = std::process::Command::new(jq)
        .args(["-e", "--arg", "segment", &globals.segment])
        .args([
            "--arg",
            "db",
            &globals.db,
            "--arg",
            "cache_dir",
            &globals.cache_dir,
        ])
        .arg(filter)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", jq.display()))?;
    // A filter that never reads its input may exit before the write ends: not an error.
    let _ = child
        .stdin
        .take()
        .map(|mut w| w.write_all(input.as_bytes()));
    let status = child
        .wait()
        .map_err(|e| format!("waiting for {}: {e}", jq.display()))?;
    Ok(match status.code() {
        Some(0) => VerdictKind::Pass,
        Some(1) => VerdictKind::False,
        Some(4) => VerdictKind::NoOutput,
        _ => VerdictKind::Error,
    })
}

/// Parse JSON Lines into one JSON array text (jq `-s`). A line that is not JSON is an error
/// naming its 1-based line number: "all telemetry lines parse" is itself a gate property.
pub fn slurp_lines(text: &str) -> Result<String, String> {
    let mut vals = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v = parse_json(line).map_err(|e| format!("line {} is not JSON: {e}", i + 1))?;
        vals.push(v.to_string());
    }
    Ok(format!("[{}]", vals.join(",")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g() -> Globals {
        Globals {
            segment: "/seg".into(),
            db: "/seg/db".into(),
            cache_dir: "/seg/c".into(),
        }
    }

    #[test]
    fn e_semantics() {
        assert!(matches!(
            eval(".a == 1", r#"{"a":1}"#, &g()).unwrap(),
            JqVerdict::Pass(_)
        ));
        assert!(matches!(
            eval(".a == 2", r#"{"a":1}"#, &g()).unwrap(),
            JqVerdict::False(_)
        ));
        assert!(matches!(
            eval(".b", r#"{"a":1}"#, &g()).unwrap(),
            JqVerdict::False(_)
        ));
        assert_eq!(
            eval(".[] | select(.x)", "[]", &g()).unwrap(),
            JqVerdict::NoOutput
        );
        assert!(matches!(
            eval(".a.b", r#"{"a":"s"}"#, &g()).unwrap(),
            JqVerdict::Error(_)
        ));
    }

    #[test]
    fn globals_visible() {
        assert!(matches!(
            eval("$db == \"/seg/db\" and $segment == \"/seg\"", "null", &g()).unwrap(),
            JqVerdict::Pass(_)
        ));
    }

    #[test]
    fn bad_filters_do_not_compile() {
        assert!(compile_check("map(").is_err());
        assert!(compile_check("nosuchfn(1)").is_err());
        assert!(compile_check("$nosuchvar").is_err());
        assert!(compile_check("[.[] | select(.cmd == \"x\")] | length == 2").is_ok());
    }

    #[test]
    fn reference_jq_agrees_with_jaq_where_installed() {
        let Some(jq) = reference_jq() else {
            eprintln!("no reference jq installed: skipped");
            return;
        };
        let cases = [
            (".a == 1", r#"{"a":1}"#),
            (".a == 2", r#"{"a":1}"#),
            (".[] | select(.x)", "[]"),
            (".a.b", r#"{"a":"s"}"#),
            ("$db == \"/seg/db\" and ($segment | test(\"^/s\"))", "null"),
        ];
        for (filter, input) in cases {
            let ours = eval(filter, input, &g()).unwrap().kind();
            let theirs = reference_verdict(&jq, filter, input, &g()).unwrap();
            assert_eq!(ours, theirs, "{filter} on {input}");
        }
    }

    #[test]
    fn slurp_rejects_torn_lines() {
        assert_eq!(
            slurp_lines("{\"a\":1}\n\n{\"a\":2}\n").unwrap(),
            "[{\"a\":1},{\"a\":2}]"
        );
        let e = slurp_lines("{\"a\":1}\n{\"a\":\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
    }
}
