//! `trifecta ast cache stats|verify|prune|clear|path`: resolve, call the cache's
//! administration ([`crate::cache::admin`]), render.
//!
//! `stats --format text` reads like `ccache -s`: sizes in binary units (`bytesize`), times as
//! UTC dates with their age (`jiff`), the hit rate, misses by reason, the limits in force and
//! when the counters were last zeroed. The JSON form is the contract and keeps raw numbers.

use crate::cache::admin::{self, StatsOutput};
use crate::cache::service::elapsed_ms;
use crate::cache::sqlite::CacheCtx;
use crate::cli::{CacheCommand, CacheReportArgs, OutputFormat};
use crate::commands::Failure;
use crate::config::Config;
use crate::error::CliError;
use crate::output::{print_json, write_stdout};
use crate::symbols::resolve;
use crate::telemetry::event::{AdminArgs, AdminResult};
use crate::telemetry::{Event, Level, Telemetry};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

/// Run one cache subcommand and print its result. The commands that change the cache or
/// check it (`clear`, `prune`, `verify`, `stats --zero`) also write an `ast.cache.admin`
/// event, ok or failed.
pub fn run(cmd: &CacheCommand, cfg: &Config) -> Result<(), Failure> {
    match cmd {
        CacheCommand::Stats(a) => {
            let (ctx, telemetry) = context(&a.segment, cfg)?;
            if a.zero {
                let zeroed = logged(
                    &telemetry,
                    "zero",
                    || admin::zero(&ctx),
                    |_| AdminResult::default(),
                );
                zeroed?;
            }
            let out = admin::stats(&ctx)?;
            telemetry.flush();
            match a.format {
                OutputFormat::Text => {
                    let now = crate::clock::now_ms();
                    write_stdout(stats_text(&out, now).as_bytes())?
                }
                _ => print_json(&out)?,
            }
        }
        CacheCommand::Verify(a) => verify_cmd(a, cfg)?,
        CacheCommand::Prune(a) => {
            let (ctx, telemetry) = context(&a.segment, cfg)?;
            let out = logged(
                &telemetry,
                "prune",
                || admin::prune(&ctx),
                |_| AdminResult::default(),
            );
            telemetry.flush();
            print_json(&out?)?;
        }
        CacheCommand::Clear(a) => {
            let (ctx, telemetry) = context(&a.segment, cfg)?;
            let out = logged(
                &telemetry,
                "clear",
                || admin::clear(&ctx),
                |o| AdminResult {
                    existed: Some(o.existed),
                    removed_entries: o.removed_entries,
                    ..AdminResult::default()
                },
            );
            telemetry.flush();
            print_json(&out?)?;
        }
        CacheCommand::Path(a) => {
            let out = admin::path(&a.segment)?;
            match a.format {
                OutputFormat::Json => print_json(&out)?,
                // The bare path, like `ccache -k cache_dir` or `cargo locate-project
                // --message-format plain`: ready for `$(…)`.
                _ => write_stdout(format!("{}\n", out.db_path).as_bytes())?,
            }
        }
    }
    Ok(())
}

/// Run one administration action and write its `ast.cache.admin` event: `detail` fills the
/// result of a success; a failure carries its error code.
fn logged<T>(
    telemetry: &Telemetry,
    action: &str,
    f: impl FnOnce() -> Result<T, CliError>,
    detail: impl FnOnce(&T) -> AdminResult,
) -> Result<T, CliError> {
    let t = Instant::now();
    let r = f();
    let result = match &r {
        Ok(o) => AdminResult {
            status: "ok".into(),
            ..detail(o)
        },
        Err(e) => AdminResult {
            status: "error".into(),
            error_code: Some(e.code.as_str().into()),
            ..AdminResult::default()
        },
    };
    let ev = Event::Admin {
        args: AdminArgs {
            action: action.into(),
        },
        result,
    };
    telemetry.event(Level::Lite, ev.into_line().timed(elapsed_ms(t)));
    r
}

fn context(segment: &Path, cfg: &Config) -> Result<(CacheCtx, Telemetry), CliError> {
    let root = resolve::segment_root(segment)?;
    let telemetry = Telemetry::new(cfg.telemetry.for_segment(&root));
    Ok((CacheCtx::new(&root, &cfg.cache, &telemetry), telemetry))
}

/// Bytes in binary units: `1.5 KiB`, `500.0 MiB`.
pub fn human_bytes(n: u64) -> String {
    bytesize::ByteSize::b(n).display().iec().to_string()
}

/// `part / whole (p %)`, or just `part` when `whole` is zero.
fn ratio(part: i64, whole: i64) -> String {
    if whole <= 0 {
        return part.to_string();
    }
    format!(
        "{part} / {whole} ({:.2} %)",
        part as f64 * 100.0 / whole as f64
    )
}

/// A Unix-ms instant as `2026-11-29 17:40:12 UTC (3m 5s ago)`, or `never`.
pub fn human_time(ms: Option<i64>, now_ms: i64) -> String {
    let Some(ms) = ms else {
        return "never".into();
    };
    let Ok(ts) = jiff::Timestamp::from_millisecond(ms) else {
        return ms.to_string();
    };
    let when = ts.strftime("%Y-%m-%d %H:%M:%S UTC");
    format!("{when} ({})", human_age(now_ms.saturating_sub(ms)))
}

/// A duration in milliseconds as `3m 5s ago` (`in 2h` for the future), to the second.
fn human_age(ms: i64) -> String {
    let d = human_duration_s((ms.unsigned_abs() / 1000) as f64);
    if ms >= 0 {
        format!("{d} ago")
    } else {
        format!("in {d}")
    }
}

/// Seconds as `7d`, `1h 30m`, `0s` (jiff's friendly format, largest unit days).
pub fn human_duration_s(secs: f64) -> String {
    use jiff::fmt::friendly::SpanPrinter;
    use jiff::{SpanRound, Unit};
    let whole = secs.round().clamp(0.0, 1e12) as i64;
    jiff::Span::new()
        .try_seconds(whole)
        .and_then(|s| s.round(SpanRound::new().largest(Unit::Day).days_are_24_hours()))
        .map(|s| SpanPrinter::new().span_to_string(&s))
        .unwrap_or_else(|_| format!("{whole}s"))
}

/// The `ccache -s`-style report: lookups, sizes and limits, times, incidents, the remote tier.
pub fn stats_text(s: &StatsOutput, now_ms: i64) -> String {
    let mut o = Rows(String::new());
    o.row(0, "Cache database", s.db_path.clone());
    if !s.exists {
        o.row(
            0,
            "",
            "(does not exist yet: `trifecta ast index` creates it)",
        );
    }
    let lookups = s.hits + s.misses;
    o.row(0, "Lookups", lookups.to_string());
    o.row(2, "Hits", ratio(s.hits, lookups));
    let m = &s.levels.memory;
    if m.hits + m.misses > 0 {
        // Only a daemon has a memory tier: per level, like the remote tier below.
        o.row(4, "memory (daemon)", ratio(m.hits, s.hits));
        o.row(4, "local", ratio(s.levels.local.hits, s.hits));
    }
    o.row(2, "Misses", ratio(s.misses, lookups));
    for (reason, n) in &s.misses_by_reason {
        o.row(4, reason, n.to_string());
    }
    let hit_rate = s
        .hit_rate
        .map_or("-".into(), |r| format!("{:.2} %", r * 100.0));
    o.row(0, "Hit rate", hit_rate);
    o.row(0, "Entries", s.entries.to_string());
    daemon_tier(&mut o, s);
    sizes_and_limits(&mut o, s, now_ms);
    o.row(0, "Lock timeouts", s.lock_timeouts.to_string());
    o.row(0, "Corruptions", s.corruptions.to_string());
    o.row(0, "Quarantined databases", s.quarantines.to_string());
    o.row(0, "Evicted entries", s.evictions.to_string());
    o.row(0, "Pruned entries", s.pruned.to_string());
    remote_tier(&mut o, s);
    let zeroed = match (s.counters_zeroed_ms, s.created_ms) {
        (None, Some(c)) => format!("never; counting since {}", human_time(Some(c), now_ms)),
        (z, _) => human_time(z, now_ms),
    };
    o.row(0, "Counters zeroed", zeroed);
    o.row(0, "Schema version", s.schema_version.to_string());
    o.0
}

/// Two aligned columns, the label indented by level.
struct Rows(String);

impl Rows {
    fn row(&mut self, indent: usize, k: &str, v: impl AsRef<str>) {
        let _ = writeln!(
            self.0,
            "{:indent$}{k:<w$} {}",
            "",
            v.as_ref(),
            w = 30 - indent
        );
    }
}

/// Size against the limits, what maintenance does and when it last did it.
fn sizes_and_limits(o: &mut Rows, s: &StatsOutput, now_ms: i64) {
    let size = s.db_bytes + s.wal_bytes;
    let max = s.limits.max_bytes;
    let of_max = if max > 0 {
        format!(" ({:.2} %)", size as f64 * 100.0 / max as f64)
    } else {
        String::new()
    };
    let total = format!("{} / {}{of_max}", human_bytes(size), human_bytes(max));
    o.row(0, "Cache size (DB + WAL)", total);
    o.row(2, "Database", human_bytes(s.db_bytes));
    o.row(2, "Write-ahead log", human_bytes(s.wal_bytes));
    o.row(2, "Symbol payloads", human_bytes(s.payload_bytes));
    o.row(0, "Size warning at", human_bytes(s.limits.size_warn_bytes));
    let low_water = format!("{} (80 % of max)", human_bytes(max / 10 * 8));
    o.row(0, "Evict down to", low_water);
    let ttl = format!("{} unused", human_duration_s(s.limits.ttl_s));
    o.row(0, "Entries expire after", ttl);
    let every = human_duration_s(s.limits.maintenance_interval_s as f64);
    o.row(0, "Maintenance at most every", every);
    o.row(
        0,
        "Last maintenance",
        human_time(s.last_maintenance_ms, now_ms),
    );
    o.row(
        0,
        "Least recently used",
        human_time(s.oldest_access_ms, now_ms),
    );
    o.row(
        0,
        "Most recently used",
        human_time(s.newest_access_ms, now_ms),
    );
}

/// A daemon's memory tier and its watcher's background refreshes, when there were any (the
/// counts of a running daemon lag by at most one tick of its accept loop, 50 ms).
fn daemon_tier(o: &mut Rows, s: &StatsOutput) {
    let m = &s.levels.memory;
    let r = &s.background_refreshes;
    let asked = m.hits + m.misses;
    if asked + r.extracted + r.already_cached == 0 {
        return;
    }
    o.row(0, "Daemon memory tier", format!("{asked} requests"));
    o.row(2, "Hits", ratio(m.hits, asked));
    o.row(2, "Misses", ratio(m.misses, asked));
    o.row(
        0,
        "Background refreshes",
        (r.extracted + r.already_cached).to_string(),
    );
    o.row(2, "Extracted", r.extracted.to_string());
    o.row(2, "Already cached", r.already_cached.to_string());
}

/// The shared second-level tier (sccache's per-level view), asked after a local miss.
fn remote_tier(o: &mut Rows, s: &StatsOutput) {
    match &s.remote {
        Some(v) => o.row(
            0,
            "Remote cache",
            format!("{} ({}, prefix {})", v.url, v.mode, v.prefix),
        ),
        None => o.row(0, "Remote cache", "none (TRIFECTA_AST_REMOTE is unset)"),
    }
    if let Some(t) = s.remote.as_ref().and_then(|v| v.tls.as_ref()) {
        o.row(2, "TLS certificates", t.verification);
        if let Some(ca) = &t.ca_file {
            o.row(2, "TLS CA file", ca.clone());
        }
        if let Some(c) = &t.client_cert {
            o.row(2, "TLS client certificate", c.clone());
        }
    }
    let r = &s.levels.remote;
    let asked = r.hits + r.misses;
    if s.remote.is_some() || asked + r.writes + r.errors + r.timeouts + r.corrupt > 0 {
        o.row(2, "Hits", ratio(r.hits, asked));
        o.row(2, "Misses", ratio(r.misses, asked));
        o.row(2, "Writes", r.writes.to_string());
        o.row(2, "Corrupt values", r.corrupt.to_string());
        o.row(2, "Errors", r.errors.to_string());
        o.row(2, "Timeouts", r.timeouts.to_string());
    }
}

fn verify_cmd(a: &CacheReportArgs, cfg: &Config) -> Result<(), Failure> {
    let (ctx, telemetry) = context(&a.segment, cfg)?;
    let out = logged(
        &telemetry,
        "verify",
        || admin::verify(&ctx),
        |_| AdminResult::default(),
    );
    telemetry.flush();
    let out = out?;
    match a.format {
        OutputFormat::Text => write_stdout(format!(
            "db_path          {}\nexists           {}\nintegrity_check  {}\nentries_checked  {}\nschema_version   {}\nverdict          ok\n",
            out.db_path,
            out.exists,
            out.integrity_check.as_deref().unwrap_or("-"),
            out.entries_checked,
            out.schema_version
        ).as_bytes())?,
        _ => print_json(&out)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_like_ccache() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1024 * 1024 * 1024), "1.0 GiB");
        assert_eq!(human_duration_s(7.0 * 86400.0), "7d");
        assert_eq!(human_duration_s(5400.0), "1h 30m");
        assert_eq!(human_duration_s(0.0), "0s");
        let now = 1_764_000_000_000;
        assert_eq!(human_time(None, now), "never");
        assert_eq!(
            human_time(Some(now - 185_000), now),
            "2025-11-24 15:56:55 UTC (3m 5s ago)"
        );
    }
}
