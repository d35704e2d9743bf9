//! Inline SVG charts for the HTML report: plain shapes and text, sized by `viewBox` so they
//! scale with the page. Labels from the event log are escaped with [`esc`].

use super::style::{ACCENT, HIT, INCIDENT, MISS, MUTED, esc};
use super::text::{bytes, ms};
use super::{Bucket, Percentiles, SizeSample};
use std::collections::BTreeMap;
use std::fmt::Write;

/// Horizontal bars, largest first.
pub(super) fn hbars(o: &mut String, m: &BTreeMap<String, u64>, color: &str) {
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
pub(super) fn columns(o: &mut String, b: &[Bucket]) {
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
pub(super) fn grouped(o: &mut String, hit: &Percentiles, miss: &Percentiles) {
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

/// DB (+ WAL) size over time as two polylines.
pub(super) fn line(o: &mut String, s: &[SizeSample]) {
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
