//! The absolute-path leak check every gate ends with. trifecta's telemetry must never contain an
//! absolute path, and its JSON output only in the fields documented as absolute
//! ([`DOCUMENTED_ABSOLUTE`]). Looking only for the segment's path misses the leaks that matter
//! (a home directory, the working directory, a temp or build folder), so the check looks for
//! every absolute location the process could know ([`prefixes`]) — as given and canonical.
//!
//! An output may echo an absolute argument the caller passed (`--output /abs/report.json` in an
//! error message): the caller already knows that path, so exact echoes of the process's own
//! arguments are blanked before the scan. Telemetry gets no such allowance — it is written to
//! disk and shared.
//!
//! A prefix counts only at a path boundary: after a non-path character (or at the start) and
//! before `/` or a non-path character, so `/tmp` never matches inside `pkg/tmp/x.py` or
//! `/tmpfoo`.

use super::{GateCtx, StepResult};
use crate::verify::excerpt::excerpt;
use serde_json::Value;

/// Output fields whose value is an absolute path by contract (README and the output structs of
/// `ast symbols`/`ast index`, the `ast cache` commands, `telemetry report`'s `source.dir`); they
/// are removed before an output is scanned. `parent.key` names a key only inside `parent`.
/// Telemetry has none.
pub const DOCUMENTED_ABSOLUTE: [&str; 6] = [
    "segment_root",
    "cache_db_path",
    "db_path",
    "cache_dir",
    "lock_path",
    "source.dir",
];

/// One trifecta stdout to scan.
#[derive(Debug, Clone)]
pub struct Scanned {
    /// `step N run`, `step N stress #k`.
    pub what: String,
    /// The process's arguments (after placeholder expansion).
    pub args: Vec<String>,
    /// Its stdout.
    pub stdout: String,
}

/// Kind of the appended step in reports.
pub const KIND: &str = "no-abs-paths";

/// The absolute locations a leak could reveal, each with a name for the report: the segment,
/// the scenario's outside folder, the gate's temp dir, the harness's working directory, `$HOME`,
/// the system temp dir, the binary's folder and the checkout. `/` alone is never a prefix.
pub fn prefixes(ctx: &GateCtx) -> Vec<(&'static str, String)> {
    let mut raw: Vec<(&'static str, std::path::PathBuf)> = Vec::new();
    if let Some(s) = &ctx.segment {
        raw.push(("segment", s.clone()));
    }
    if let Some(o) = &ctx.outside {
        raw.push(("outside folder", o.clone()));
    }
    raw.push(("gate temp dir", ctx.tmp.path().to_path_buf()));
    if let Ok(d) = std::env::current_dir() {
        raw.push(("working directory", d));
    }
    if let Some(h) = &crate::config::VerifyEnv::get().home {
        raw.push(("$HOME", h.into()));
    }
    raw.push(("temp dir", std::env::temp_dir()));
    if let Some(b) = ctx.trifecta.parent() {
        raw.push(("binary's folder", b.to_path_buf()));
    }
    raw.push(("checkout", ctx.shared.checkout.clone()));
    let mut out: Vec<(&'static str, String)> = Vec::new();
    for (name, p) in raw {
        let canon = p.canonicalize().ok();
        for q in std::iter::once(p).chain(canon) {
            let s = q.to_string_lossy().trim_end_matches('/').to_string();
            if s.starts_with('/') && s.len() > 1 && !out.iter().any(|(_, o)| *o == s) {
                out.push((name, s));
            }
        }
    }
    out
}

fn path_char(c: char) -> bool {
    c.is_alphanumeric() || "._-~+@/".contains(c)
}

/// Every `(prefix name, context)` where a prefix occurs at a path boundary in `text`.
pub fn find(text: &str, prefixes: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut hits = Vec::new();
    for (name, p) in prefixes {
        for (k, _) in text.match_indices(p.as_str()) {
            let before = text[..k].chars().next_back();
            let after = text[k + p.len()..].chars().next();
            if before.is_some_and(path_char) || after.is_some_and(|c| c != '/' && path_char(c)) {
                continue;
            }
            let from = text[..k].char_indices().rev().nth(40).map_or(0, |(i, _)| i);
            let to = text[k..]
                .char_indices()
                .nth(p.chars().count() + 40)
                .map_or(text.len(), |(i, _)| k + i);
            hits.push((*name, text[from..to].replace('\n', " ")));
            break;
        }
    }
    hits
}

/// Drop [`DOCUMENTED_ABSOLUTE`] fields at any depth; `parent` is the key `v` is stored under.
fn strip_documented(v: &mut Value, parent: &str) {
    match v {
        Value::Object(m) => {
            for entry in DOCUMENTED_ABSOLUTE {
                match entry.split_once('.') {
                    Some((p, k)) if p == parent => m.remove(k),
                    Some(_) => None,
                    None => m.remove(entry),
                };
            }
            for (k, child) in m.iter_mut() {
                strip_documented(child, k);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|c| strip_documented(c, parent)),
        _ => {}
    }
}

/// `text` with every whole echo of an absolute argument (longest first) replaced by `<arg>`.
/// Whole: not followed by a path character, so `--segment /s` never excuses `/s/pkg/x.py`.
fn blank_echoed_args(text: String, args: &[String]) -> String {
    let mut abs: Vec<&String> = args.iter().filter(|a| a.starts_with('/')).collect();
    abs.sort_by_key(|a| std::cmp::Reverse(a.len()));
    abs.into_iter().fold(text, |t, a| {
        let mut out = String::with_capacity(t.len());
        let mut rest = t.as_str();
        while let Some(k) = rest.find(a.as_str()) {
            let end = k + a.len();
            let whole = !rest[end..].chars().next().is_some_and(path_char);
            out.push_str(&rest[..k]);
            out.push_str(if whole { "<arg>" } else { &rest[k..end] });
            rest = &rest[end..];
        }
        out.push_str(rest);
        out
    })
}

/// An output as scanned: JSON (or JSON Lines) without the documented fields, else raw text.
fn scannable_output(stdout: &str) -> String {
    let parse_all = || -> Option<Vec<Value>> {
        match serde_json::from_str::<Value>(stdout) {
            Ok(v) => Some(vec![v]),
            Err(_) => stdout
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).ok())
                .collect(),
        }
    };
    match parse_all() {
        Some(mut vals) => {
            vals.iter_mut().for_each(|v| strip_documented(v, ""));
            vals.iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        }
        None => stdout.to_string(),
    }
}

/// Scan the segment's telemetry and every trifecta stdout of the gate. `None` when the gate ran
/// no trifecta process and has no segment: there is nothing the check could look at.
pub fn check(ctx: &GateCtx) -> Option<StepResult> {
    if ctx.segment.is_none() && ctx.stdouts.is_empty() {
        return None;
    }
    let prefixes = prefixes(ctx);
    let mut leaks = Vec::new();
    let mut scanned = Vec::new();
    let mut notes = Vec::new();
    if let Some(seg) = &ctx.segment {
        match super::inputs::telemetry_text(seg) {
            Ok(t) => {
                let n = t.lines().filter(|l| !l.trim().is_empty()).count();
                scanned.push(format!("telemetry ({n} events)"));
                for (name, ctx_text) in find(&t, &prefixes) {
                    leaks.push(format!("telemetry leaks the {name}: …{ctx_text}…"));
                }
            }
            // A planted link where telemetry belongs is the hostile gates' finding, not a leak.
            Err(e) => notes.push(format!("telemetry not scanned: {e}")),
        }
    }
    for s in &ctx.stdouts {
        let text = blank_echoed_args(scannable_output(&s.stdout), &s.args);
        for (name, ctx_text) in find(&text, &prefixes) {
            leaks.push(format!(
                "output of {} leaks the {name}: …{ctx_text}…",
                s.what
            ));
        }
    }
    scanned.push(format!("{} trifecta output(s)", ctx.stdouts.len()));
    let listed = prefixes
        .iter()
        .map(|(n, p)| format!("{n} {p}"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = if leaks.is_empty() {
        StepResult::pass(format!(
            "no absolute path in {} (in outputs: fields {} and echoes of the process's own arguments excepted){}",
            scanned.join(" and "),
            DOCUMENTED_ABSOLUTE.join(", "),
            notes.iter().map(|n| format!("; {n}")).collect::<String>()
        ))
    } else {
        StepResult::fail(excerpt(&leaks.join("\n"), 10, 2000, false))
    };
    out.commands = vec![super::in_process(format!(
        "grep -F (at path boundaries) for {} absolute prefixes in telemetry and outputs",
        prefixes.len()
    ))];
    out.excerpt = format!("prefixes looked for:\n{listed}");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Vec<(&'static str, String)> {
        vec![("$HOME", "/home/u".into()), ("temp dir", "/tmp".into())]
    }

    #[test]
    fn finds_prefixes_only_at_path_boundaries() {
        assert_eq!(find(r#"{"f":"/home/u/x.py"}"#, &p())[0].0, "$HOME");
        assert_eq!(find("at /tmp", &p())[0].0, "temp dir");
        assert!(find(r#"{"f":"pkg/tmp/x.py"}"#, &p()).is_empty());
        assert!(find(r#"{"f":"/tmpfoo/x"}"#, &p()).is_empty());
        assert!(find(r#"{"f":"/home/user"}"#, &p()).is_empty());
        assert!(find(r#"{"f":"/a/home/u/x"}"#, &p()).is_empty());
    }

    #[test]
    fn documented_fields_are_exempt_in_outputs_only() {
        let out = r#"{"segment_root":"/tmp/s","x":{"db_path":"/tmp/s/db"},"file_rel":"a.py"}"#;
        assert!(find(&scannable_output(out), &p()).is_empty());
        let leaky = r#"{"segment_root":"/tmp/s","message":"cannot read /tmp/s/a.py"}"#;
        assert_eq!(find(&scannable_output(leaky), &p()).len(), 1);
        // `dir` is documented only as `source.dir` (telemetry report), not anywhere.
        let report = r#"{"source":{"dir":"/tmp/s/_ctx/telemetry"},"files":[{"dir":"/tmp/x"}]}"#;
        assert_eq!(find(&scannable_output(report), &p()).len(), 1);
        // An argument echoed verbatim is not a leak; a path below it is.
        let args = vec!["--output".to_string(), "/tmp/s/r.json".to_string()];
        let echo = r#"{"message":"--output /tmp/s/r.json: is a symlink"}"#;
        assert!(find(&blank_echoed_args(scannable_output(echo), &args), &p()).is_empty());
        let below = r#"{"message":"cannot read /tmp/s/r.json/x"}"#;
        let args = vec!["/tmp/s".to_string()];
        assert_eq!(
            find(&blank_echoed_args(scannable_output(below), &args), &p()).len(),
            1,
            "a path below an argument is still a leak"
        );
        let lines = "{\"a\":\"ok\"}\n{\"b\":\"/home/u/.cache\"}\n";
        assert_eq!(find(&scannable_output(lines), &p()).len(), 1);
    }
}
