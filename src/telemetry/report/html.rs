//! The HTML rendering of a [`Report`]: one self-contained page (inline CSS and SVG charts, no
//! scripts, no external assets), so it can be attached to a CI run or mailed as is.
//!
//! Every string that comes from the event log (reasons, run ids, file names, timestamps) is
//! passed through [`esc`] before it is embedded, in text and in attributes alike: the log is
//! data written by other processes and must not be able to inject markup.

use super::text::{bytes, ms, pct};
use super::{Bucket, Percentiles, Report, SizeSample};
use std::collections::BTreeMap;
use std::fmt::Write;

/// HTML-escape text for element content and double- or single-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const HIT: &str = "#2f9e44";
const MISS: &str = "#e8590c";
const INCIDENT: &str = "#c92a2a";
const ACCENT: &str = "#1971c2";
const MUTED: &str = "#868e96";
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
.kpi.bad .v{color:#c92a2a}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:16px}
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
    card(
        &mut o,
        "Commands over time (hits / misses / incidents)",
        |o| {
            legend(
                o,
                &[("hits", HIT), ("misses", MISS), ("incidents", INCIDENT)],
            );
            columns(o, &r.timeline);
        },
    );
    card(&mut o, "Misses by reason (ast.symbols)", |o| {
        let reasons = if r.symbols.misses_by_reason.is_empty() {
            &r.lookups.misses_by_reason
        } else {
            &r.symbols.misses_by_reason
        };
        hbars(o, reasons, MISS);
    });
    card(&mut o, "Command latency by outcome (ms)", |o| {
        legend(o, &[("hit", HIT), ("miss", MISS)]);
        grouped(o, &r.symbols.latency_ms.hit, &r.symbols.latency_ms.miss);
        latency_table(o, "ast.symbols", &r.symbols.latency_ms);
        latency_table(o, "cache lookup", &r.lookups.latency_ms);
    });
    card(&mut o, "Cache DB size over time (db + wal)", |o| {
        legend(o, &[("db + wal", ACCENT), ("db", MUTED)]);
        line(o, &r.db_size.samples);
    });
    o.push_str("</div>");
    incidents(&mut o, r);
    runs(&mut o, r);
    card(&mut o, "Events by command", |o| {
        counts_table(o, &r.commands)
    });
    o.push_str("</body></html>\n");
    o
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

fn kpis(o: &mut String, r: &Report) {
    let i = &r.incidents;
    let incidents = i.lock_timeouts + i.corruptions + i.fallbacks + i.schema_incompatible;
    let items: [(String, &str, bool); 7] = [
        (pct(r.symbols.hit_rate), "command hit rate", false),
        (pct(r.lookups.hit_rate), "lookup hit rate", false),
        (r.symbols.count.to_string(), "commands", false),
        (r.runs.count.to_string(), "runs", false),
        (
            ms(r.symbols.latency_ms.hit.p95),
            "p95 hit latency (ms)",
            false,
        ),
        (incidents.to_string(), "incidents", incidents > 0),
        (
            r.malformed.count.to_string(),
            "malformed lines",
            r.malformed.count > 0,
        ),
    ];
    o.push_str("<div class=\"kpis\">");
    for (v, l, bad) in items {
        let _ = write!(
            o,
            "<div class=\"kpi{}\"><div class=\"v\">{}</div><div class=\"l\">{}</div></div>",
            if bad { " bad" } else { "" },
            esc(&v),
            esc(l)
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

/// Horizontal bars, largest first.
fn hbars(o: &mut String, m: &BTreeMap<String, u64>, color: &str) {
    if m.is_empty() {
        o.push_str("<p class=\"empty\">none</p>");
        return;
    }
    let mut v: Vec<(&String, &u64)> = m.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let max = *v[0].1 as f64;
    let (w, row, label_w) = (560.0, 26.0, 190.0);
    let h = row * v.len() as f64 + 4.0;
    let _ = write!(
        o,
        "<svg width=\"100%\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"bar chart\">"
    );
    for (i, (k, n)) in v.iter().enumerate() {
        let y = i as f64 * row;
        let bw = ((**n as f64 / max) * (w - label_w - 60.0)).max(2.0);
        let _ = write!(
            o,
            "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\" font-size=\"12\" fill=\"#495057\">{}</text>\
             <rect x=\"{label_w}\" y=\"{:.0}\" width=\"{bw:.1}\" height=\"{:.0}\" rx=\"3\" fill=\"{color}\"/>\
             <text x=\"{:.1}\" y=\"{:.0}\" font-size=\"12\" fill=\"#212529\">{n}</text>",
            label_w - 8.0,
            y + 17.0,
            esc(k),
            y + 4.0,
            row - 8.0,
            label_w + bw + 6.0,
            y + 17.0,
        );
    }
    o.push_str("</svg>");
}

/// Stacked columns per timeline bucket.
fn columns(o: &mut String, b: &[Bucket]) {
    if b.is_empty() {
        o.push_str("<p class=\"empty\">no commands</p>");
        return;
    }
    let (w, h, left, bottom, top) = (560.0, 220.0, 40.0, 40.0, 10.0);
    let max = b
        .iter()
        .map(|x| x.hits + x.misses + x.incidents)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let max = nice_ceil(max);
    let plot_h = h - bottom - top;
    let slot = (w - left - 10.0) / b.len() as f64;
    let bw = (slot * 0.7).max(1.0);
    let _ = write!(
        o,
        "<svg width=\"100%\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"timeline\">"
    );
    axis_y(o, left, top, plot_h, w, max, "");
    for (i, x) in b.iter().enumerate() {
        let cx = left + 5.0 + i as f64 * slot;
        let mut y = top + plot_h;
        for (n, color) in [(x.hits, HIT), (x.misses, MISS), (x.incidents, INCIDENT)] {
            if n == 0 {
                continue;
            }
            let bh = n as f64 / max * plot_h;
            y -= bh;
            let _ = write!(
                o,
                "<rect x=\"{cx:.1}\" y=\"{y:.1}\" width=\"{bw:.1}\" height=\"{bh:.1}\" fill=\"{color}\"/>"
            );
        }
    }
    // Label the first, middle and last bucket with HH:MM (and the date on the first).
    for i in [0, b.len() / 2, b.len() - 1] {
        let label = short_time(&b[i].start, i == 0);
        let cx = left + 5.0 + i as f64 * slot + bw / 2.0;
        let _ = write!(
            o,
            "<text x=\"{cx:.1}\" y=\"{:.0}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#6c757d\">{}</text>",
            h - bottom + 16.0,
            esc(&label)
        );
    }
    o.push_str("</svg>");
}

/// `2026-11-21T03:34:00.000Z` → `03:34` (or `2026-11-21 03:34` with the date).
fn short_time(ts: &str, with_date: bool) -> String {
    let date = ts.get(..10).unwrap_or("");
    let time = ts.get(11..16).unwrap_or(ts);
    if with_date {
        format!("{date} {time}")
    } else {
        time.to_string()
    }
}

/// The smallest "round" number at or above `x` whose quarters are round too (1, 1.2, 1.6, 2,
/// 2.4, 3, 4, 5, 6 or 8 times a power of ten), so axis ticks read 0 / 20 / 40 / 60 / 80 rather
/// than 0 / 16.5 / 33 / ….
pub fn nice_ceil(x: f64) -> f64 {
    if !x.is_finite() || x <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powi(x.log10().floor() as i32);
    [1.0, 1.2, 1.6, 2.0, 2.4, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|v| *v >= x * (1.0 - 1e-12))
        .unwrap_or(10.0 * p)
}

/// The axis maximum for `max` bytes: a round number of B, KiB, MiB or GiB.
fn nice_bytes(max: f64) -> f64 {
    let unit = [1.0, 1024.0, 1024.0 * 1024.0, 1024.0 * 1024.0 * 1024.0]
        .into_iter()
        .rev()
        .find(|u| max >= *u)
        .unwrap_or(1.0);
    nice_ceil(max / unit) * unit
}

/// Horizontal grid lines and labels for a y axis from 0 to `max` (already rounded).
fn axis_y(o: &mut String, left: f64, top: f64, plot_h: f64, w: f64, max: f64, unit: &str) {
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let y = top + plot_h - plot_h * k as f64 / 4.0;
        let label = if unit == "bytes" {
            bytes(v as u64)
        } else if v == v.round() {
            format!("{v:.0}")
        } else if (v * 10.0) == (v * 10.0).round() {
            format!("{v:.1}")
        } else {
            format!("{v:.2}")
        };
        let _ = write!(
            o,
            "<line x1=\"{left}\" x2=\"{:.0}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e9ecef\"/>\
             <text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"11\" fill=\"#6c757d\">{}</text>",
            w - 10.0,
            left - 6.0,
            y + 4.0,
            esc(&label)
        );
    }
}

/// p50/p95/p99 bars for hits and misses side by side.
fn grouped(o: &mut String, hit: &Percentiles, miss: &Percentiles) {
    if hit.count + miss.count == 0 {
        o.push_str("<p class=\"empty\">no timings</p>");
        return;
    }
    let rows = [
        ("p50", hit.p50, miss.p50),
        ("p95", hit.p95, miss.p95),
        ("p99", hit.p99, miss.p99),
    ];
    let max = rows
        .iter()
        .flat_map(|(_, a, b)| [a.unwrap_or(0.0), b.unwrap_or(0.0)])
        .fold(0.0_f64, f64::max);
    let max = nice_ceil(max.max(0.001));
    let (w, h, left, bottom, top) = (560.0, 200.0, 50.0, 28.0, 10.0);
    let plot_h = h - bottom - top;
    let group = (w - left - 10.0) / 3.0;
    let bw = group * 0.3;
    let _ = write!(
        o,
        "<svg width=\"100%\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"latency\">"
    );
    axis_y(o, left, top, plot_h, w, max, "");
    for (g, (label, a, b)) in rows.iter().enumerate() {
        let gx = left + g as f64 * group + group * 0.15;
        for (j, (v, color)) in [(a, HIT), (b, MISS)].into_iter().enumerate() {
            let Some(v) = v else { continue };
            let bh = v / max * plot_h;
            let x = gx + j as f64 * (bw + 4.0);
            let _ = write!(
                o,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{bh:.1}\" rx=\"2\" fill=\"{color}\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#212529\">{}</text>",
                top + plot_h - bh,
                x + bw / 2.0,
                (top + plot_h - bh - 4.0).max(10.0),
                esc(&ms(Some(*v)))
            );
        }
        let _ = write!(
            o,
            "<text x=\"{:.1}\" y=\"{:.0}\" text-anchor=\"middle\" font-size=\"12\" fill=\"#495057\">{label}</text>",
            gx + bw + 2.0,
            h - 8.0
        );
    }
    o.push_str("</svg>");
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

/// DB (+ WAL) size over time as two polylines.
fn line(o: &mut String, s: &[SizeSample]) {
    if s.is_empty() {
        o.push_str(
            "<p class=\"empty\">no size observations (ast.cache.stats / ast.cache.size_warning)</p>",
        );
        return;
    }
    let (w, h, left, bottom, top) = (560.0, 200.0, 70.0, 28.0, 10.0);
    let plot_h = h - bottom - top;
    let plot_w = w - left - 20.0;
    let (t0, t1) = (s[0].ts_ms, s[s.len() - 1].ts_ms);
    let span = (t1 - t0).max(1) as f64;
    let max = s
        .iter()
        .map(|x| x.db_bytes + x.wal_bytes)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let max = nice_bytes(max);
    let _ = write!(
        o,
        "<svg width=\"100%\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"db size\">"
    );
    axis_y(o, left, top, plot_h, w, max, "bytes");
    let pt = |x: &SizeSample, v: u64| {
        let px = if s.len() == 1 {
            left + plot_w / 2.0
        } else {
            left + (x.ts_ms - t0) as f64 / span * plot_w
        };
        (px, top + plot_h - v as f64 / max * plot_h)
    };
    for (color, total) in [(MUTED, false), (ACCENT, true)] {
        let pts: Vec<String> = s
            .iter()
            .map(|x| {
                let (px, py) = pt(
                    x,
                    if total {
                        x.db_bytes + x.wal_bytes
                    } else {
                        x.db_bytes
                    },
                );
                format!("{px:.1},{py:.1}")
            })
            .collect();
        let _ = write!(
            o,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"/>",
            pts.join(" ")
        );
        if s.len() <= 60 {
            for x in s {
                let (px, py) = pt(
                    x,
                    if total {
                        x.db_bytes + x.wal_bytes
                    } else {
                        x.db_bytes
                    },
                );
                let _ = write!(
                    o,
                    "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"2.5\" fill=\"{color}\"/>"
                );
            }
        }
    }
    for (x, anchor) in [(&s[0], "start"), (&s[s.len() - 1], "end")] {
        let (px, _) = pt(x, 0);
        let _ = write!(
            o,
            "<text x=\"{px:.1}\" y=\"{:.0}\" text-anchor=\"{anchor}\" font-size=\"11\" fill=\"#6c757d\">{}</text>",
            h - 8.0,
            esc(&short_time(&x.ts, true))
        );
    }
    o.push_str("</svg>");
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
        let rows: [(&str, u64, String); 8] = [
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
        ];
        for (name, n, d) in rows {
            let style = if n > 0 && !matches!(name, "evictions" | "prunes" | "maintenance runs") {
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
    card(
        o,
        &format!(
            "Recent runs ({} of {})",
            r.runs.recent.len().min(HTML_RUNS),
            r.runs.count
        ),
        |o| {
            o.push_str(
                "<table><tr><th>run id</th><th>last event</th><th class=\"n\">events</th>\
             <th class=\"n\">commands</th><th class=\"n\">hits</th><th class=\"n\">misses</th>\
             <th class=\"n\">incidents</th></tr>",
            );
            for run in r.runs.recent.iter().take(HTML_RUNS) {
                let _ = write!(
                    o,
                    "<tr><td><code>{}</code></td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                    esc(&run.run_id),
                    esc(&run.last_ts),
                    run.events,
                    run.commands,
                    run.hits,
                    run.misses,
                    run.incidents
                );
            }
            o.push_str("</table>");
        },
    );
}
