//! `trifecta config`: every setting, its effective value and where it came from, like
//! `ccache -p` (`(default)`, `(environment)`, `(flag)`). The listing is the resolver's own
//! record ([`crate::config::Effective`]), so a newly declared setting appears without code here.

use crate::cli::{ConfigArgs, OutputFormat};
use crate::commands::Failure;
use crate::config::{Config, Effective};
use crate::output::{print_json, write_stdout};
use serde::Serialize;
use serde_json::Value;

/// `trifecta config --format json`.
#[derive(Debug, Serialize)]
pub struct ConfigOutput<'a> {
    /// Always `"ok"`.
    pub status: &'static str,
    /// Every setting, in declaration order.
    pub settings: &'a [Effective],
}

/// Print the effective configuration.
pub fn run(args: &ConfigArgs, cfg: &Config) -> Result<(), Failure> {
    match args.format {
        OutputFormat::Json => print_json(&ConfigOutput {
            status: "ok",
            settings: &cfg.effective,
        })?,
        _ => write_stdout(text(&cfg.effective).as_bytes())?,
    }
    Ok(())
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) if a.is_empty() => "none".into(),
        Value::Array(a) => a.iter().map(plain).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// `(origin) name = value   # VAR, --flag` lines, aligned.
pub fn text(settings: &[Effective]) -> String {
    let rows: Vec<(String, String, String)> = settings
        .iter()
        .map(|e| {
            let mut from = e.env.to_string();
            if let Some(f) = e.flag {
                from.push_str(", ");
                from.push_str(f);
            }
            (
                format!("({}) {} = {}", e.origin.as_str(), e.name, plain(&e.value)),
                from,
                e.about.to_string(),
            )
        })
        .collect();
    let w = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(setting, from, _)| format!("{setting:<w$}  # {from}\n"))
        .collect()
}
