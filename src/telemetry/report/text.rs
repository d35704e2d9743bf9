//! The plain-text rendering of a [`Report`]: a summary a person reads in a terminal.

use super::{HitMiss, Percentiles, Report};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write;

/// `0.8125` → `81.2%`; `None` → `n/a`.
pub fn pct(r: Option<f64>) -> String {
    r.map_or_else(|| "n/a".to_string(), |v| format!("{:.1}%", v * 100.0))
}

/// Milliseconds with sensible precision; `None` → `-`.
pub fn ms(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(x) if x >= 100.0 => format!("{x:.0}"),
        Some(x) if x >= 10.0 => format!("{x:.1}"),
        Some(x) => format!("{x:.2}"),
    }
}

/// Bytes as B / KiB / MiB / GiB.
pub fn bytes(b: u64) -> String {
    const U: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", U[i])
    }
}

/// `s` safe to print on a terminal: every control character (C0, DEL, C1) and every Unicode
/// bidirectional-override character is replaced by a visible escape (`\x1b`, `\u{202e}`), and
/// a backslash is doubled so an escape cannot be forged. Event fields come from a file anyone
/// with write access to the segment can edit; unescaped, `\x1b[2J` in a run id would clear
/// the reader's screen and `\r` would overwrite a line with a fake one.
pub fn visible(s: &str) -> Cow<'_, str> {
    let is_bidi = |c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !s.chars().any(|c| c.is_control() || is_bidi(c) || c == '\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x80 && c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() || is_bidi(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn latency_row(out: &mut String, label: &str, p: &Percentiles) {
    let _ = writeln!(
        out,
        "  {label:<14} {:>7} {:>9} {:>9} {:>9} {:>9}",
        p.count,
        ms(p.p50),
        ms(p.p95),
        ms(p.p99),
        ms(p.max)
    );
}

fn latency(out: &mut String, title: &str, hm: &HitMiss) {
    let _ = writeln!(out, "\n{title} (ms)");
    let _ = writeln!(
        out,
        "  {:<14} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "", "count", "p50", "p95", "p99", "max"
    );
    latency_row(out, "hit", &hm.hit);
    latency_row(out, "miss", &hm.miss);
}

fn breakdown(out: &mut String, title: &str, m: &BTreeMap<String, u64>) {
    if m.is_empty() {
        return;
    }
    let _ = writeln!(out, "  {title}:");
    let mut v: Vec<(&String, &u64)> = m.iter().collect();
    v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (k, n) in v {
        let _ = writeln!(out, "    {:<28} {n:>7}", visible(k));
    }
}

/// Render `r` as text (ends with a newline).
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    source_lines(&mut o, r);
    if no_telemetry(&mut o, r) {
        return o;
    }
    window_line(&mut o, r);
    commands(&mut o, r);
    lookups(&mut o, r);
    errors(&mut o, r);
    index(&mut o, r);
    incidents(&mut o, r);
    db_size(&mut o, r);
    recent_runs(&mut o, r);
    o
}

/// The header: where the events came from, and any malformed lines.
fn source_lines(o: &mut String, r: &Report) {
    let _ = writeln!(o, "trifecta telemetry report");
    let _ = writeln!(o, "  source:   {}", visible(&r.source.dir));
    let files: Vec<String> = r
        .source
        .files
        .iter()
        .map(|f| {
            let name = visible(&f.name);
            format!("{name} ({} lines, {})", f.lines, bytes(f.bytes))
        })
        .collect();
    if !files.is_empty() {
        let _ = writeln!(o, "  files:    {}", files.join(", "));
    }
    if let Some(s) = &r.since {
        let _ = writeln!(o, "  since:    {}", visible(s));
    }
    if r.malformed.count > 0 {
        let _ = writeln!(
            o,
            "  MALFORMED LINES: {} (not counted below)",
            r.malformed.count
        );
        for m in &r.malformed.first {
            let _ = writeln!(
                o,
                "    {}:{}: {}",
                visible(&m.file),
                m.line,
                visible(&m.reason)
            );
        }
    }
}

/// Says why there is nothing to report, if so (then nothing else is rendered).
fn no_telemetry(o: &mut String, r: &Report) -> bool {
    if r.no_telemetry {
        let why = if !r.source.exists {
            "the telemetry directory does not exist (run commands with --telemetry lite)"
        } else if r.events_total > 0 {
            "no event in the selected window"
        } else {
            "no events recorded yet"
        };
        let _ = writeln!(o, "\nNo telemetry: {why}.");
        return true;
    }
    false
}

/// The time window and the counts it holds.
fn window_line(o: &mut String, r: &Report) {
    let _ = writeln!(
        o,
        "  window:   {} .. {}  ({} events of {}, {} runs)",
        visible(r.first_ts.as_deref().unwrap_or("-")),
        visible(r.last_ts.as_deref().unwrap_or("-")),
        r.events_in_window,
        r.events_total,
        r.runs.count
    );
}

/// `ast.symbols` outcomes, latency and errors.
fn commands(o: &mut String, r: &Report) {
    let s = &r.symbols;
    let _ = writeln!(o, "\nCommands (ast.symbols)");
    let _ = writeln!(
        o,
        "  {} commands: {} hits, {} misses, hit rate {}",
        s.count,
        s.hits,
        s.misses,
        pct(s.hit_rate)
    );
    let _ = writeln!(
        o,
        "  (hit rate: commands answered from the cache / commands that consulted it)"
    );
    breakdown(o, "misses by reason", &s.misses_by_reason);
    breakdown(o, "backend", &s.backends);
    breakdown(o, "failed", &s.errors);
    latency(o, "Command latency", &s.latency_ms);
}

/// Cache lookups and writes.
fn lookups(o: &mut String, r: &Report) {
    let l = &r.lookups;
    let _ = writeln!(o, "\nCache lookups (ast.cache.hit / miss / write)");
    let _ = writeln!(
        o,
        "  {} hits, {} misses, {} writes, hit rate {}",
        l.hits,
        l.misses,
        l.writes,
        pct(l.hit_rate)
    );
    let _ = writeln!(
        o,
        "  (hit rate: lookups that found a valid entry / all lookups;\n   \
         one lookup per ast symbols and one per module of each ast index run)"
    );
    breakdown(o, "misses by reason", &l.misses_by_reason);
    if l.hits_by_level.contains_key("remote") || l.remote != Default::default() {
        // Only when a remote tier was in use: reports of local-only fleets stay as they were.
        breakdown(o, "hits by level", &l.hits_by_level);
        let _ = writeln!(
            o,
            "  remote: {} corrupt values, {} unavailable",
            l.remote.corrupt, l.remote.unavailable
        );
        breakdown(o, "corrupt by damage", &l.remote.corrupt_by_damage);
        breakdown(
            o,
            "unavailable by failure",
            &l.remote.unavailable_by_failure,
        );
    }
    latency(o, "Lookup latency", &l.latency_ms);
}

/// Failed commands, by code, and the latest few.
fn errors(o: &mut String, r: &Report) {
    let e = &r.errors;
    let _ = writeln!(o, "\nErrors");
    let _ = writeln!(o, "  {} failed commands", e.count);
    breakdown(o, "by code", &e.by_code);
    for x in e.recent.iter().take(5) {
        let _ = writeln!(
            o,
            "    {}  {}  {}",
            visible(&x.ts),
            visible(&x.code),
            visible(x.uri.as_deref().unwrap_or("(before the URI was read)"))
        );
    }
}

/// `ast index` runs.
fn index(o: &mut String, r: &Report) {
    let x = &r.index;
    let _ = writeln!(o, "\nIndex runs (ast.index)");
    let _ = writeln!(
        o,
        "  {} runs: {} modules, {} hits, {} misses, {} unreadable, module hit rate {}, \
         median run {} ms",
        x.runs,
        x.files,
        x.hits,
        x.misses,
        x.errors,
        pct(x.hit_rate),
        ms(x.wall_ms.p50)
    );
}

/// Lock timeouts, corruption, fallbacks, sizes, eviction, pruning, maintenance.
fn incidents(o: &mut String, r: &Report) {
    let i = &r.incidents;
    let _ = writeln!(o, "\nIncidents");
    let _ = writeln!(o, "  lock timeouts          {:>7}", i.lock_timeouts);
    breakdown(o, "by mode", &i.lock_timeouts_by_mode);
    let _ = writeln!(o, "  corruptions            {:>7}", i.corruptions);
    breakdown(o, "by kind", &i.corruption_kinds);
    let _ = writeln!(o, "  fallbacks              {:>7}", i.fallbacks);
    breakdown(o, "by reason", &i.fallback_reasons);
    let _ = writeln!(o, "  schema incompatible    {:>7}", i.schema_incompatible);
    let _ = writeln!(o, "  size warnings          {:>7}", i.size_warnings);
    let _ = writeln!(
        o,
        "  evictions              {:>7}  ({} entries, {})",
        i.evictions.events,
        i.evictions.entries,
        bytes(i.evictions.bytes)
    );
    let _ = writeln!(
        o,
        "  prunes                 {:>7}  ({} expired, {} deleted files)",
        i.pruned.events, i.pruned.expired, i.pruned.deleted_files
    );
    let _ = writeln!(o, "  maintenance runs       {:>7}", i.maintenance_runs);
    let _ = writeln!(
        o,
        "  admin commands         {:>7}{}",
        i.admin.values().sum::<u64>(),
        admin_detail(&i.admin)
    );
}

/// `  (clear 2, verify 1)`, or nothing when there were none.
pub fn admin_detail(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = m.iter().map(|(k, n)| format!("{k} {n}")).collect();
    format!("  ({})", parts.join(", "))
}

/// The latest database size observation.
fn db_size(o: &mut String, r: &Report) {
    let _ = writeln!(o, "\nDB size");
    match &r.db_size.latest {
        None => {
            let _ = writeln!(
                o,
                "  no size observations (ast.cache.size / stats / size_warning)"
            );
        }
        Some(l) => {
            let _ = writeln!(
                o,
                "  latest {}: db {}, wal {}{}; max db+wal {}; {} observations",
                visible(&l.ts),
                bytes(l.db_bytes),
                bytes(l.wal_bytes),
                l.entries
                    .map_or(String::new(), |e| format!(", {e} entries")),
                bytes(r.db_size.max_total_bytes.unwrap_or(0)),
                r.db_size.samples_total
            );
        }
    }
}

/// The ten most recent runs.
fn recent_runs(o: &mut String, r: &Report) {
    let _ = writeln!(o, "\nRecent runs (newest first)");
    let _ = writeln!(
        o,
        "  {:<36} {:>6} {:>6} {:>6} {:>9}  last event",
        "run_id", "events", "hits", "misses", "incidents"
    );
    for run in r.runs.recent.iter().take(10) {
        let _ = writeln!(
            o,
            "  {:<36} {:>6} {:>6} {:>6} {:>9}  {}",
            visible(&run.run_id),
            run.events,
            run.hits,
            run.misses,
            run.incidents,
            visible(&run.last_ts)
        );
        for d in &run.did {
            let _ = writeln!(o, "    {}", visible(d));
        }
    }
    if r.runs.count > 10 {
        let _ = writeln!(o, "  ... {} more", r.runs.count - 10);
    }
}
