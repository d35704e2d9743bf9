//! `trifecta ast cache stats|verify|prune|clear|path`: resolve, call the cache's
//! administration ([`crate::cache::admin`]), render.

use crate::cache::admin::{self, StatsOutput};
use crate::cache::sqlite::CacheCtx;
use crate::cli::{CacheCommand, CacheReportArgs, ReportFormat};
use crate::commands::Failure;
use crate::config::Config;
use crate::error::CliError;
use crate::output::{print_json, write_stdout};
use crate::symbols::resolve;
use crate::telemetry::Telemetry;
use std::path::Path;

/// Run one cache subcommand and print its result.
pub fn run(cmd: &CacheCommand, cfg: &Config) -> Result<(), Failure> {
    match cmd {
        CacheCommand::Stats(a) => {
            let (ctx, telemetry) = context(&a.segment, cfg)?;
            let out = admin::stats(&ctx)?;
            telemetry.flush();
            match a.format {
                ReportFormat::Json => print_json(&out)?,
                ReportFormat::Text => write_stdout(stats_text(&out).as_bytes())?,
            }
        }
        CacheCommand::Verify(a) => verify_cmd(a, cfg)?,
        CacheCommand::Prune(a) => {
            let (ctx, telemetry) = context(&a.segment, cfg)?;
            let out = admin::prune(&ctx);
            telemetry.flush();
            print_json(&out?)?;
        }
        CacheCommand::Clear(a) => print_json(&admin::clear(&context(&a.segment, cfg)?.0)?)?,
        CacheCommand::Path(a) => print_json(&admin::path(&a.segment)?)?,
    }
    Ok(())
}

fn context(segment: &Path, cfg: &Config) -> Result<(CacheCtx, Telemetry), CliError> {
    let root = resolve::segment_root(segment)?;
    let telemetry = Telemetry::new(cfg.telemetry.for_segment(&root));
    Ok((CacheCtx::new(&root, &cfg.cache, &telemetry), telemetry))
}

fn stats_text(s: &StatsOutput) -> String {
    let opt = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
    let mut rows: Vec<(String, String)> = vec![
        ("db_path".into(), s.db_path.clone()),
        ("exists".into(), s.exists.to_string()),
        ("schema_version".into(), s.schema_version.to_string()),
        ("entries".into(), s.entries.to_string()),
        ("payload_bytes".into(), s.payload_bytes.to_string()),
        ("db_bytes".into(), s.db_bytes.to_string()),
        ("wal_bytes".into(), s.wal_bytes.to_string()),
        ("hits".into(), s.hits.to_string()),
        ("misses".into(), s.misses.to_string()),
        (
            "hit_rate".into(),
            s.hit_rate
                .map(|r| format!("{:.1}%", r * 100.0))
                .unwrap_or_else(|| "-".into()),
        ),
    ];
    for (k, n) in &s.misses_by_reason {
        rows.push((format!("  miss: {k}"), n.to_string()));
    }
    rows.extend([
        ("lock_timeouts".into(), s.lock_timeouts.to_string()),
        ("corruptions".into(), s.corruptions.to_string()),
        ("quarantines".into(), s.quarantines.to_string()),
        ("evictions".into(), s.evictions.to_string()),
        ("pruned".into(), s.pruned.to_string()),
        ("oldest_access_ms".into(), opt(s.oldest_access_ms)),
        ("newest_access_ms".into(), opt(s.newest_access_ms)),
    ]);
    let r = &s.levels.remote;
    rows.push((
        "remote".into(),
        match &s.remote {
            Some(v) => format!("{} ({}, prefix {})", v.url, v.mode, v.prefix),
            None => "-".into(),
        },
    ));
    for (k, n) in [
        ("hits", r.hits),
        ("misses", r.misses),
        ("corrupt", r.corrupt),
        ("writes", r.writes),
        ("errors", r.errors),
        ("timeouts", r.timeouts),
    ] {
        rows.push((format!("  remote {k}"), n.to_string()));
    }
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{k:<w$}  {v}\n"))
        .collect()
}

fn verify_cmd(a: &CacheReportArgs, cfg: &Config) -> Result<(), Failure> {
    let (ctx, _t) = context(&a.segment, cfg)?;
    let out = admin::verify(&ctx)?;
    match a.format {
        ReportFormat::Json => print_json(&out)?,
        ReportFormat::Text => write_stdout(format!(
            "db_path          {}\nexists           {}\nintegrity_check  {}\nentries_checked  {}\nschema_version   {}\nverdict          ok\n",
            out.db_path,
            out.exists,
            out.integrity_check.as_deref().unwrap_or("-"),
            out.entries_checked,
            out.schema_version
        ).as_bytes())?,
    }
    Ok(())
}
