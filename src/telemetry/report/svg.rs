//! Inline SVG charts for the HTML report: plain shapes and text, sized by `viewBox` so they
//! scale with the page. Labels from the event log are escaped with [`esc`].
//!
//! Every chart is an `<svg class="chart" data-chart="NAME">` (the browser test finds charts by
//! that attribute), and every mark (bar, point, line) carries a `<title>` child, which browsers
//! show as the hover value.

use super::style::{ACCENT, HIT, MISS, MUTED, esc};
use super::text::{bytes, ms};
use super::{Bucket, Percentiles, SizeSample};
use std::fmt::Write;

/// Chart width in `viewBox` units (the page scales it to the card).
const W: f64 = 560.0;

/// Open a chart's `<svg>`.
fn open(o: &mut String, name: &str, h: f64, label: &str) {
    let _ = write!(
        o,
        "<svg class=\"chart\" data-chart=\"{}\" width=\"100%\" viewBox=\"0 0 {W} {h}\" \
         role=\"img\" aria-label=\"{}\">",
        esc(name),
        esc(label)
    );
}

/// A rectangle with its hover text.
fn rect(o: &mut String, (x, y, w, h): (f64, f64, f64, f64), color: &str, title: &str) {
    let _ = write!(
        o,
        "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\" rx=\"2\" \
         fill=\"{color}\"><title>{}</title></rect>",
        esc(title)
    );
}

/// Horizontal bars, largest first, each `label: value` on hover. `rows` are (label, value).
pub(super) fn hbars(o: &mut String, name: &str, rows: &[(String, u64)], color: &str) {
    if rows.is_empty() {
        o.push_str("<p class=\"empty\">none</p>");
        return;
    }
    let mut v: Vec<&(String, u64)> = rows.iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let max = v[0].1.max(1) as f64;
    let (row, label_w) = (26.0, 190.0);
    let h = row * v.len() as f64 + 4.0;
    open(o, name, h, "bar chart");
    for (i, (k, n)) in v.iter().enumerate() {
        let y = i as f64 * row;
        let bw = ((*n as f64 / max) * (W - label_w - 60.0)).max(2.0);
        let _ = write!(
            o,
            "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\" font-size=\"12\" fill=\"#495057\">{}</text>",
            label_w - 8.0,
            y + 17.0,
            esc(&clip(k, 28)),
        );
        rect(
            o,
            (label_w, y + 4.0, bw, row - 8.0),
            color,
            &format!("{k}: {n}"),
        );
        let _ = write!(
            o,
            "<text x=\"{:.1}\" y=\"{:.0}\" font-size=\"12\" fill=\"#212529\">{n}</text>",
            label_w + bw + 6.0,
            y + 17.0,
        );
    }
    o.push_str("</svg>");
}

/// `s` cut to `n` characters with an ellipsis, so a long label cannot run off the chart (the
/// full text is in the mark's hover title).
fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut c: String = s.chars().take(n - 1).collect();
    c.push('…');
    c
}

/// One series of [`columns`]: its name, colour and value per bucket.
pub(super) type Series<'a> = (&'a str, &'a str, fn(&Bucket) -> u64);

/// Columns per timeline bucket, the `series` stacked (callers only stack series that partition
/// one population, e.g. commands by outcome).
pub(super) fn columns(o: &mut String, name: &str, b: &[Bucket], series: &[Series], h: f64) {
    let total = |x: &Bucket| series.iter().map(|(_, _, f)| f(x)).sum::<u64>();
    if b.iter().all(|x| total(x) == 0) {
        o.push_str("<p class=\"empty\">none in the window</p>");
        return;
    }
    let (left, bottom, top) = (40.0, 24.0, 10.0);
    let max = nice_ceil(b.iter().map(total).max().unwrap_or(0).max(1) as f64);
    let plot_h = h - bottom - top;
    let slot = (W - left - 10.0) / b.len() as f64;
    let bw = (slot * 0.7).max(1.0);
    open(o, name, h, "timeline");
    axis_y(o, (left, top, plot_h), max, fmt_num);
    for (i, x) in b.iter().enumerate() {
        let cx = left + 5.0 + i as f64 * slot;
        let mut y = top + plot_h;
        for (label, color, f) in series {
            let n = f(x);
            if n == 0 {
                continue;
            }
            let bh = n as f64 / max * plot_h;
            y -= bh;
            let when = short_time(&x.start, true);
            rect(
                o,
                (cx, y, bw, bh),
                color,
                &format!("from {when}: {n} {label}"),
            );
        }
    }
    // Label the first, middle and last bucket with HH:MM (and the date on the first).
    let mut labelled = [0, b.len() / 2, b.len() - 1];
    labelled.sort_unstable();
    for (k, &i) in labelled.iter().enumerate() {
        if k > 0 && labelled[k - 1] == i {
            continue;
        }
        let anchor = match k {
            0 => "start",
            2 => "end",
            _ => "middle",
        };
        let cx = match k {
            0 => left + 5.0 + i as f64 * slot,
            2 => left + 5.0 + i as f64 * slot + bw,
            _ => left + 5.0 + i as f64 * slot + bw / 2.0,
        };
        let _ = write!(
            o,
            "<text x=\"{cx:.1}\" y=\"{:.0}\" text-anchor=\"{anchor}\" font-size=\"11\" fill=\"#6c757d\">{}</text>",
            h - bottom + 16.0,
            esc(&short_time(&b[i].start, k == 0))
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

/// A tick value with no more decimals than it needs.
fn fmt_num(v: f64) -> String {
    if v == v.round() {
        format!("{v:.0}")
    } else if (v * 10.0) == (v * 10.0).round() {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Horizontal grid lines and labels for a linear y axis from 0 to `max` (already rounded).
fn axis_y(
    o: &mut String,
    (left, top, plot_h): (f64, f64, f64),
    max: f64,
    fmt: impl Fn(f64) -> String,
) {
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        grid_line(o, (left, top + plot_h - plot_h * k as f64 / 4.0), &fmt(v));
    }
}

/// One grid line at height `y` with its label left of the plot.
fn grid_line(o: &mut String, (left, y): (f64, f64), label: &str) {
    let _ = write!(
        o,
        "<line x1=\"{left}\" x2=\"{:.0}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#e9ecef\"/>\
         <text x=\"{:.0}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"11\" fill=\"#6c757d\">{}</text>",
        W - 10.0,
        left - 6.0,
        y + 4.0,
        esc(label)
    );
}

/// The decades a log axis spans: `(lo, hi)` powers of ten with `lo <= min` and `hi >= max`,
/// at least one decade apart.
pub(super) fn log_range(min: f64, max: f64) -> (f64, f64) {
    let lo = 10f64.powf(min.max(1e-3).log10().floor());
    let mut hi = 10f64.powf(max.max(1e-3).log10().ceil());
    if hi <= lo {
        hi = lo * 10.0;
    }
    (lo, hi)
}

/// p50/p95/p99 bars for hits and misses side by side on a **log** scale, so a 0.6 ms hit and a
/// 200 ms miss are both readable; each bar is labelled with its value.
pub(super) fn latency_log(o: &mut String, name: &str, hit: &Percentiles, miss: &Percentiles) {
    let rows = [
        ("p50", hit.p50, miss.p50),
        ("p95", hit.p95, miss.p95),
        ("p99", hit.p99, miss.p99),
    ];
    let vals: Vec<f64> = rows
        .iter()
        .flat_map(|(_, a, b)| [*a, *b])
        .flatten()
        .filter(|v| v.is_finite() && *v > 0.0)
        .collect();
    if vals.is_empty() {
        o.push_str("<p class=\"empty\">no timings</p>");
        return;
    }
    let min = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let max = vals.iter().copied().fold(0.0, f64::max);
    let (lo, hi) = log_range(min, max);
    let (h, left, bottom, top) = (220.0, 64.0, 28.0, 16.0);
    let plot_h = h - bottom - top;
    let y_of = |v: f64| {
        let f = (v.max(lo).log10() - lo.log10()) / (hi.log10() - lo.log10());
        top + plot_h - f * plot_h
    };
    open(o, name, h, "latency, log scale");
    let mut d = lo;
    while d <= hi * 1.0001 {
        grid_line(o, (left, y_of(d)), &fmt_tick(d));
        d *= 10.0;
    }
    let group = (W - left - 10.0) / 3.0;
    let bw = group * 0.3;
    for (g, (label, a, b)) in rows.iter().enumerate() {
        let gx = left + g as f64 * group + group * 0.15;
        for (j, (v, color, what)) in [(a, HIT, "hit"), (b, MISS, "miss")].into_iter().enumerate() {
            let Some(v) = v else { continue };
            let y = y_of(*v);
            let bh = (top + plot_h - y).max(1.0);
            let x = gx + j as f64 * (bw + 4.0);
            let text = ms(Some(*v));
            rect(
                o,
                (x, top + plot_h - bh, bw, bh),
                color,
                &format!("{label} {what}: {text} ms"),
            );
            let _ = write!(
                o,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#212529\">{}</text>",
                x + bw / 2.0,
                (top + plot_h - bh - 4.0).max(11.0),
                esc(&text)
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

/// A decade of milliseconds as a label: `0.01 ms`, `1 ms`, `100 ms`, `1 s`, `100 s`.
fn fmt_tick(d: f64) -> String {
    if d >= 1000.0 {
        format!("{:.0} s", d / 1000.0)
    } else if d >= 1.0 {
        format!("{d:.0} ms")
    } else {
        let decimals = (-d.log10()).round() as usize;
        format!("{d:.decimals$} ms")
    }
}

/// DB (+ WAL) size over time as two polylines with a point (and hover value) per observation.
pub(super) fn line(o: &mut String, name: &str, s: &[SizeSample]) {
    if s.is_empty() {
        o.push_str(
            "<p class=\"empty\">no size observations (ast.cache.size / ast.cache.stats / \
             ast.cache.size_warning): no command used the persistent cache in the window</p>",
        );
        return;
    }
    let (h, left, bottom, top) = (200.0, 70.0, 28.0, 10.0);
    let plot_h = h - bottom - top;
    let plot_w = W - left - 20.0;
    let (t0, t1) = (s[0].ts_ms, s[s.len() - 1].ts_ms);
    let span = (t1 - t0).max(1) as f64;
    let max = s
        .iter()
        .map(|x| x.db_bytes + x.wal_bytes)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let max = nice_bytes(max);
    open(o, name, h, "db size");
    axis_y(o, (left, top, plot_h), max, |v| bytes(v as u64));
    let pt = |x: &SizeSample, v: u64| {
        let px = if s.len() == 1 {
            left + plot_w / 2.0
        } else {
            left + (x.ts_ms - t0) as f64 / span * plot_w
        };
        (px, top + plot_h - v as f64 / max * plot_h)
    };
    let r = if s.len() > 100 { 1.5 } else { 2.5 };
    for (color, total) in [(MUTED, false), (ACCENT, true)] {
        let value = |x: &SizeSample| {
            if total {
                x.db_bytes + x.wal_bytes
            } else {
                x.db_bytes
            }
        };
        let pts: Vec<String> = s
            .iter()
            .map(|x| {
                let (px, py) = pt(x, value(x));
                format!("{px:.1},{py:.1}")
            })
            .collect();
        let last = &s[s.len() - 1];
        let _ = write!(
            o,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\">\
             <title>{}: latest {}</title></polyline>",
            pts.join(" "),
            if total { "db + wal" } else { "db" },
            esc(&bytes(value(last)))
        );
        for x in s {
            let (px, py) = pt(x, value(x));
            let _ = write!(
                o,
                "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"{r}\" fill=\"{color}\"><title>{}: db {}, wal {} ({})</title></circle>",
                esc(&x.ts),
                esc(&bytes(x.db_bytes)),
                esc(&bytes(x.wal_bytes)),
                esc(&x.source)
            );
        }
    }
    for (x, anchor) in [(&s[0], "start"), (&s[s.len() - 1], "end")] {
        let (px, _) = pt(x, 0);
        let px = if anchor == "start" {
            px.max(left)
        } else {
            px.min(W - 4.0)
        };
        let _ = write!(
            o,
            "<text x=\"{px:.1}\" y=\"{:.0}\" text-anchor=\"{anchor}\" font-size=\"11\" fill=\"#6c757d\">{}</text>",
            h - 8.0,
            esc(&short_time(&x.ts, true))
        );
    }
    o.push_str("</svg>");
}

/// One row of [`stacked_hbars`]: its label and (series name, colour, value) parts.
pub(super) type StackRow<'a> = (String, Vec<(&'a str, &'a str, u64)>);

/// One horizontal bar per row, its parts stacked (parts that partition the row's total, e.g.
/// an `ast index` run's modules by outcome), all on one scale.
pub(super) fn stacked_hbars(o: &mut String, name: &str, rows: &[StackRow]) {
    if rows.is_empty() {
        o.push_str("<p class=\"empty\">none</p>");
        return;
    }
    let total = |r: &StackRow| r.1.iter().map(|p| p.2).sum::<u64>();
    let max = rows.iter().map(total).max().unwrap_or(1).max(1) as f64;
    let (row, label_w) = (24.0, 150.0);
    let h = row * rows.len() as f64 + 4.0;
    let avail = W - label_w - 70.0;
    open(o, name, h, "stacked bar chart");
    for (i, r) in rows.iter().enumerate() {
        let y = i as f64 * row;
        let _ = write!(
            o,
            "<text x=\"{:.0}\" y=\"{:.0}\" text-anchor=\"end\" font-size=\"12\" fill=\"#495057\">{}</text>",
            label_w - 8.0,
            y + 16.0,
            esc(&clip(&r.0, 22)),
        );
        let mut x = label_w;
        for (part, color, n) in &r.1 {
            if *n == 0 {
                continue;
            }
            let bw = (*n as f64 / max * avail).max(1.5);
            rect(
                o,
                (x, y + 4.0, bw, row - 8.0),
                color,
                &format!("{}: {n} {part}", r.0),
            );
            x += bw;
        }
        let _ = write!(
            o,
            "<text x=\"{:.1}\" y=\"{:.0}\" font-size=\"12\" fill=\"#212529\">{}</text>",
            x + 6.0,
            y + 16.0,
            total(r)
        );
    }
    o.push_str("</svg>");
}
