//! The HTML rendering of a [`Report`]: one self-contained page (inline CSS and SVG charts, no
//! scripts, no external assets), so it can be attached to a CI run or mailed as is.
//!
//! Every string that comes from the event log (reasons, run ids, file names, timestamps) is
//! passed through [`esc`] before it is embedded, in text and in attributes alike: the log is
//! data written by other processes and must not be able to inject markup.

use super::Report;
use super::style::{ACCENT, ERROR, HIT, INCIDENT, MISS, MUTED, NO_LOOKUP, esc};
pub use super::svg::nice_ceil;
use super::svg::{Series, StackRow, columns, hbars, latency_log, line, stacked_hbars};
use super::text::{bytes, ms, pct};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Runs listed on the page (the JSON report carries up to [`super::MAX_RUNS_LISTED`]).
const HTML_RUNS: usize = 20;

const CSS: &str = "
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#212529;
background:#f8f9fa;margin:0;padding:24px 32px;}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:0 0 12px}
.sub{color:#6c757d;margin-bottom:20px;word-break:break-all}
.kpis{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:12px;margin-bottom:20px}
.kpi{background:#fff;border:1px solid #dee2e6;border-radius:8px;padding:12px 14px}
.kpi .v{font-size:24px;font-weight:600}.kpi .l{color:#6c757d;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.kpi.bad .v{color:#c92a2a}.kpi .d{color:#868e96;font-size:11px;margin-top:4px}
.note{color:#495057;font-size:12px;margin:-6px 0 10px}h3{font-size:14px;margin:14px 0 6px}
table.wrap td{overflow-wrap:anywhere}td.nw{white-space:nowrap}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(460px,100%),1fr));gap:16px}
.grid>.card{min-width:0}
.card{background:#fff;border:1px solid #dee2e6;border-radius:8px;padding:16px;margin-bottom:16px;overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #f1f3f5}
th{color:#495057;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.empty{color:#868e96;font-style:italic}.warn{background:#fff4e6;border-color:#ffc078}
.legend span{display:inline-block;margin-right:14px;font-size:12px;color:#495057}
.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px;vertical-align:-1px}
code{font-size:12px}svg text{font-family:inherit}
";

/// Render `r` as a complete HTML document.
pub fn render(r: &Report) -> String {
    let mut o = String::with_capacity(32 * 1024);
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>trifecta telemetry report</title><style>{CSS}</style></head><body>\n"
    );
    let _ = write!(o, "<h1>trifecta cache telemetry</h1><div class=\"sub\">");
    if let (Some(a), Some(b)) = (&r.first_ts, &r.last_ts) {
        let _ = write!(o, "{} &rarr; {} &middot; ", esc(a), esc(b));
    }
    let _ = write!(
        o,
        "{} events in window ({} total) &middot; source <code>{}</code>",
        r.events_in_window,
        r.events_total,
        esc(&r.source.dir)
    );
    if let Some(s) = &r.since {
        let _ = write!(o, " &middot; since {}", esc(s));
    }
    o.push_str("</div>\n");

    if r.malformed.count > 0 {
        malformed(&mut o, r);
    }
    if r.no_telemetry {
        let _ = write!(
            o,
            "<div class=\"card\"><h2>No telemetry</h2><p class=\"empty\">No events {}. Run \
             commands with <code>--telemetry lite</code> (or set <code>TRIFECTA_TELEMETRY=lite</code>) \
             to record some.</p></div>",
            if r.events_total > 0 {
                "in the selected window"
            } else {
                "were found"
            }
        );
        o.push_str("</body></html>\n");
        return o;
    }
    kpis(&mut o, r);
    o.push_str("<div class=\"grid\">");
    charts(&mut o, r);
    errors(&mut o, r);
    index(&mut o, r);
    o.push_str("</div>");
    incidents(&mut o, r);
    runs(&mut o, r);
    card(&mut o, "Events by command", |o| {
        counts_table(o, &r.commands)
    });
    o.push_str("</body></html>\n");
    o
}

/// The timeline, miss-reason, latency and size charts.
fn charts(o: &mut String, r: &Report) {
    card(o, "Commands over time", |o| {
        note(
            o,
            "Each <code>ast symbols</code> command once, by cache outcome. Incidents are \
             events of their own and are charted below, not added to these bars.",
        );
        legend(
            o,
            &[("hit", HIT), ("miss", MISS), ("no cache lookup", NO_LOOKUP)],
        );
        let series: [Series; 3] = [
            ("hits", HIT, |b| b.hits),
            ("misses", MISS, |b| b.misses),
            ("without a cache lookup", NO_LOOKUP, |b| b.no_lookup),
        ];
        columns(o, "commands-timeline", &r.timeline, &series, 200.0);
        o.push_str("<h3>Incidents over time</h3>");
        let series: [Series; 1] = [("incidents", INCIDENT, |b| b.incidents)];
        columns(o, "incidents-timeline", &r.timeline, &series, 110.0);
    });
    card(o, "Misses by reason (ast symbols)", |o| {
        let reasons = if r.symbols.misses_by_reason.is_empty() {
            &r.lookups.misses_by_reason
        } else {
            &r.symbols.misses_by_reason
        };
        hbars(o, "miss-reasons", &pairs(reasons), MISS);
    });
    card(o, "Command latency by outcome (ms, log scale)", |o| {
        note(
            o,
            "Whole <code>ast symbols</code> command, from start to output. The scale is \
             logarithmic (each grid line is ten times the one below) so fast hits and slow \
             misses are both readable; the numbers on the bars are the values.",
        );
        legend(o, &[("hit", HIT), ("miss", MISS)]);
        let l = &r.symbols.latency_ms;
        latency_log(o, "latency", &l.hit, &l.miss);
        latency_table(o, "ast symbols (command)", l);
        latency_table(o, "cache lookup (store only)", &r.lookups.latency_ms);
    });
    card(o, "Cache DB size over time (db + wal)", |o| {
        note(
            o,
            "Observed by every command that opens the persistent cache \
             (<code>ast.cache.size</code>), and by maintenance passes.",
        );
        legend(o, &[("db + wal", ACCENT), ("db", MUTED)]);
        line(o, "db-size", &r.db_size.samples);
    });
}

/// Failed commands: by code, and the most recent with what was asked.
fn errors(o: &mut String, r: &Report) {
    let e = &r.errors;
    card(o, &format!("Errors ({} failed commands)", e.count), |o| {
        if e.count == 0 {
            o.push_str("<p class=\"empty\">no command failed in the window</p>");
            return;
        }
        hbars(o, "errors-by-code", &pairs(&e.by_code), ERROR);
        o.push_str("<table class=\"wrap\"><tr><th>when</th><th>code</th><th>asked</th></tr>");
        for x in &e.recent {
            let _ = write!(
                o,
                "<tr><td>{}</td><td class=\"nw\"><code>{}</code></td><td><code>{}</code></td></tr>",
                esc(&short_ts(&x.ts)),
                esc(&x.code),
                esc(x.uri.as_deref().unwrap_or("(before the URI was read)"))
            );
        }
        o.push_str("</table>");
    });
}

/// `ast index` runs: totals, modules by outcome per run, and a table.
fn index(o: &mut String, r: &Report) {
    let x = &r.index;
    card(o, &format!("ast index runs ({})", x.runs), |o| {
        if x.runs == 0 {
            o.push_str("<p class=\"empty\">no <code>ast index</code> run in the window</p>");
            return;
        }
        let _ = write!(
            o,
            "<p>{} modules visited in all; {} from the cache ({} module hit rate), {} \
             extracted, {} unreadable. Median run {} ms.</p>",
            x.files,
            x.hits,
            esc(&pct(x.hit_rate)),
            x.misses,
            x.errors,
            esc(&ms(x.wall_ms.p50))
        );
        legend(o, &[("hit", HIT), ("miss", MISS), ("unreadable", ERROR)]);
        let rows: Vec<StackRow> = x
            .recent
            .iter()
            .map(|run| {
                (
                    short_ts(&run.ts),
                    vec![
                        ("modules from the cache", HIT, run.hits),
                        ("modules extracted", MISS, run.misses),
                        ("modules unreadable", ERROR, run.errors),
                    ],
                )
            })
            .collect();
        stacked_hbars(o, "index-runs", &rows);
    });
}

/// `(key, count)` pairs of a breakdown.
fn pairs(m: &BTreeMap<String, u64>) -> Vec<(String, u64)> {
    m.iter().map(|(k, n)| (k.clone(), *n)).collect()
}

/// A short explanation under a card title (trusted markup only: callers pass literals).
fn note(o: &mut String, html: &str) {
    let _ = write!(o, "<p class=\"note\">{html}</p>");
}

/// `2026-11-21T03:34:43.123Z` → `2026-11-21 03:34:43`.
fn short_ts(ts: &str) -> String {
    match (ts.get(..10), ts.get(11..19)) {
        (Some(d), Some(t)) => format!("{d} {t}"),
        _ => ts.to_string(),
    }
}

fn card(o: &mut String, title: &str, body: impl FnOnce(&mut String)) {
    let _ = write!(o, "<div class=\"card\"><h2>{}</h2>", esc(title));
    body(o);
    o.push_str("</div>\n");
}

fn legend(o: &mut String, items: &[(&str, &str)]) {
    o.push_str("<div class=\"legend\">");
    for (label, color) in items {
        let _ = write!(
            o,
            "<span><i style=\"background:{color}\"></i>{}</span>",
            esc(label)
        );
    }
    o.push_str("</div>");
}

/// The headline figures, each with the definition it is computed by, right under it.
/// The shared remote tier's card, only when the log shows one in use: lookup hits served by
/// Redis, and its incidents (damaged values refused, the server unreachable).
fn remote_kpi(r: &Report) -> Option<(String, &'static str, String, bool)> {
    let lk = &r.lookups;
    let remote_hits = lk.hits_by_level.get("remote").copied().unwrap_or(0);
    let trouble = lk.remote.corrupt + lk.remote.unavailable;
    (remote_hits + trouble > 0).then(|| {
        let detail = format!(
            "lookup hits served by the shared Redis tier: {remote_hits} of {}; {} damaged \
             values refused, {} times unreachable",
            lk.hits, lk.remote.corrupt, lk.remote.unavailable
        );
        (remote_hits.to_string(), "remote hits", detail, trouble > 0)
    })
}

fn kpis(o: &mut String, r: &Report) {
    let i = &r.incidents;
    let incidents = i.lock_timeouts + i.corruptions + i.fallbacks + i.schema_incompatible;
    let (sy, lk) = (&r.symbols, &r.lookups);
    let mut items: Vec<(String, &str, String, bool)> = vec![
        (
            pct(sy.hit_rate),
            "command hit rate",
            format!(
                "ast symbols commands answered from the cache: {} of the {} that consulted it",
                sy.hits,
                sy.hits + sy.misses
            ),
            false,
        ),
        (
            pct(lk.hit_rate),
            "lookup hit rate",
            format!(
                "store lookups that found a valid entry: {} of {} (one per ast symbols, one per \
                 module of each ast index run)",
                lk.hits,
                lk.hits + lk.misses
            ),
            false,
        ),
        (
            sy.count.to_string(),
            "commands",
            "ast symbols commands".into(),
            false,
        ),
        (
            r.errors.count.to_string(),
            "errors",
            "commands that failed".into(),
            r.errors.count > 0,
        ),
        (
            r.index.runs.to_string(),
            "index runs",
            format!("ast index runs, {} modules", r.index.files),
            false,
        ),
        (
            r.runs.count.to_string(),
            "runs",
            "processes that wrote events".into(),
            false,
        ),
        (
            ms(sy.latency_ms.hit.p95),
            "p95 hit latency (ms)",
            "whole ast symbols command, cache hits".into(),
            false,
        ),
        (
            incidents.to_string(),
            "incidents",
            "lock timeouts, corruptions, fallbacks, schema".into(),
            incidents > 0,
        ),
        (
            r.malformed.count.to_string(),
            "malformed lines",
            "log lines that could not be read".into(),
            r.malformed.count > 0,
        ),
    ];
    items.extend(remote_kpi(r));
    o.push_str("<div class=\"kpis\">");
    for (v, l, d, bad) in items {
        let _ = write!(
            o,
            "<div class=\"kpi{}\"><div class=\"v\">{}</div><div class=\"l\">{}</div>\
             <div class=\"d\">{}</div></div>",
            if bad { " bad" } else { "" },
            esc(&v),
            esc(l),
            esc(&d)
        );
    }
    o.push_str("</div>\n");
}

fn malformed(o: &mut String, r: &Report) {
    let _ = write!(
        o,
        "<div class=\"card warn\"><h2>{} malformed line(s) — not counted in the figures</h2><table>\
         <tr><th>file</th><th class=\"n\">line</th><th>reason</th></tr>",
        r.malformed.count
    );
    for m in &r.malformed.first {
        let _ = write!(
            o,
            "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            esc(&m.file),
            m.line,
            esc(&m.reason)
        );
    }
    o.push_str("</table></div>\n");
}

fn latency_table(o: &mut String, title: &str, hm: &super::HitMiss) {
    let _ = write!(
        o,
        "<table><tr><th>{}</th><th class=\"n\">count</th><th class=\"n\">p50</th><th class=\"n\">p95</th>\
         <th class=\"n\">p99</th><th class=\"n\">max</th></tr>",
        esc(title)
    );
    for (label, p) in [("hit", &hm.hit), ("miss", &hm.miss)] {
        let _ = write!(
            o,
            "<tr><td>{label}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            p.count,
            ms(p.p50),
            ms(p.p95),
            ms(p.p99),
            ms(p.max)
        );
    }
    o.push_str("</table>");
}

fn counts_table(o: &mut String, m: &BTreeMap<String, u64>) {
    if m.is_empty() {
        o.push_str("<p class=\"empty\">none</p>");
        return;
    }
    o.push_str("<table><tr><th>name</th><th class=\"n\">count</th></tr>");
    for (k, n) in m {
        let _ = write!(
            o,
            "<tr><td><code>{}</code></td><td class=\"n\">{n}</td></tr>",
            esc(k)
        );
    }
    o.push_str("</table>");
}

fn incidents(o: &mut String, r: &Report) {
    let i = &r.incidents;
    card(o, "Incidents", |o| {
        o.push_str("<table><tr><th>incident</th><th class=\"n\">count</th><th>detail</th></tr>");
        let detail = |m: &BTreeMap<String, u64>| {
            m.iter()
                .map(|(k, n)| format!("{} ×{n}", esc(k)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let rows: [(&str, u64, String); 9] = [
            ("lock timeouts", i.lock_timeouts, {
                let mut d = detail(&i.lock_timeouts_by_mode);
                if let Some(p) = i.lock_waited_ms.p95 {
                    let _ = write!(d, " (p95 wait {} ms)", esc(&ms(Some(p))));
                }
                d
            }),
            ("corruptions", i.corruptions, detail(&i.corruption_kinds)),
            ("fallbacks", i.fallbacks, detail(&i.fallback_reasons)),
            ("schema incompatible", i.schema_incompatible, String::new()),
            ("size warnings", i.size_warnings, String::new()),
            (
                "evictions",
                i.evictions.events,
                format!(
                    "{} entries, {}",
                    i.evictions.entries,
                    esc(&bytes(i.evictions.bytes))
                ),
            ),
            (
                "prunes",
                i.pruned.events,
                format!(
                    "{} expired, {} deleted files",
                    i.pruned.expired, i.pruned.deleted_files
                ),
            ),
            ("maintenance runs", i.maintenance_runs, String::new()),
            (
                "admin commands",
                i.admin.values().sum(),
                super::text::admin_detail(&i.admin).trim().to_string(),
            ),
        ];
        for (name, n, d) in rows {
            let style = if n > 0
                && !matches!(
                    name,
                    "evictions" | "prunes" | "maintenance runs" | "admin commands"
                ) {
                " style=\"color:#c92a2a;font-weight:600\""
            } else {
                ""
            };
            // `d` is built from escaped parts above.
            let _ = write!(
                o,
                "<tr><td>{name}</td><td class=\"n\"{style}>{n}</td><td>{d}</td></tr>"
            );
        }
        o.push_str("</table>");
    });
}

fn runs(o: &mut String, r: &Report) {
    let title = format!(
        "Recent runs ({} of {})",
        r.runs.recent.len().min(HTML_RUNS),
        r.runs.count
    );
    card(o, &title, |o| {
        o.push_str(
            "<table class=\"wrap\"><tr><th>last event</th><th>what ran</th>\
             <th class=\"n\">events</th><th class=\"n\">errors</th>\
             <th class=\"n\">incidents</th><th>run id</th></tr>",
        );
        for run in r.runs.recent.iter().take(HTML_RUNS) {
            let mut did = run
                .did
                .iter()
                .map(|d| esc(d))
                .collect::<Vec<_>>()
                .join("<br>");
            if run.commands as usize > run.did.len() {
                let _ = write!(did, "<br>… {} commands in all", run.commands);
            }
            let _ = write!(
                o,
                "<tr><td>{}</td><td>{did}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td><code>{}</code></td></tr>",
                esc(&short_ts(&run.last_ts)),
                run.events,
                run.errors,
                run.incidents,
                esc(&run.run_id),
            );
        }
        o.push_str("</table>");
    });
}
