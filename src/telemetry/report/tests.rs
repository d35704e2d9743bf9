//! Unit tests of the aggregation, percentiles, `--since` parsing and the renderers.

use super::*;
use crate::telemetry::read::parse_line;
use serde_json::json;

fn ev(ts: &str, run: &str, cmd: &str, result: serde_json::Value, ms: f64) -> Record {
    let line = json!({"ts": ts, "run_id": run, "segment_id": "abcd1234", "cmd": cmd,
                      "args": {"mode": "shared"}, "result": result, "timing_ms": ms,
                      "warnings": [], "x": {}, "cache_type": "sqlite"});
    parse_line(line.to_string().as_bytes()).unwrap()
}

fn sample() -> Report {
    let mut a = Aggregator::new(None);
    let t = "2026-11-21T03:00:00.000Z";
    for (i, ms) in [1.0, 2.0, 3.0, 4.0].iter().enumerate() {
        let run = format!("r{i}");
        a.add(ev(
            t,
            &run,
            "ast.cache.hit",
            json!({"status":"hit"}),
            ms / 10.0,
        ));
        a.add(ev(
            t,
            &run,
            "ast.symbols",
            json!({"cache_status":"hit","miss_reason":"cache_hit"}),
            *ms,
        ));
    }
    a.add(ev(
        "2026-11-21T03:10:00.000Z",
        "r9",
        "ast.cache.miss",
        json!({"status":"miss","miss_reason":"content_changed"}),
        0.5,
    ));
    a.add(ev(
        "2026-11-21T03:10:00.000Z",
        "r9",
        "ast.symbols",
        json!({"cache_status":"miss","miss_reason":"content_changed"}),
        40.0,
    ));
    a.add(ev(
        "2026-11-21T03:11:00.000Z",
        "r9",
        "ast.cache.lock_timeout",
        json!({"waited_ms": 5000, "timeout_ms": 5000}),
        5000.0,
    ));
    a.add(ev(
        "2026-11-21T03:12:00.000Z",
        "r9",
        "ast.cache.corruption_detected",
        json!({"kind":"integrity_check","quarantined_to":"quarantine/x","action":"rebuilt"}),
        1.0,
    ));
    a.add(ev(
        "2026-11-21T03:12:00.000Z",
        "r9",
        "ast.cache.fallback",
        json!({"reason":"lock_timeout"}),
        0.0,
    ));
    a.add(ev(
        "2026-11-21T03:05:00.000Z",
        "r9",
        "ast.cache.stats",
        json!({"entries": 3, "db_bytes": 4096, "wal_bytes": 100}),
        0.0,
    ));
    a.add(ev(
        "2026-11-21T03:13:00.000Z",
        "r9",
        "ast.cache.size_warning",
        json!({"db_bytes": 8192, "wal_bytes": 0, "threshold_bytes": 1}),
        0.0,
    ));
    a.add(ev(
        "2026-11-21T03:13:00.000Z",
        "r9",
        "ast.cache.evicted",
        json!({"count": 2, "bytes": 300}),
        0.0,
    ));
    a.add(ev(
        "2026-11-21T03:13:00.000Z",
        "r9",
        "ast.cache.maintenance",
        json!({"ran": true}),
        0.0,
    ));
    a.add(ev(
        "2026-11-21T03:14:00.000Z",
        "r9",
        "ast.cache.maintenance",
        json!({"ran": false}),
        0.0,
    ));
    a.finish(
        Path::new("/t"),
        ScanSummary {
            dir_exists: true,
            ..Default::default()
        },
        None,
    )
}

#[test]
fn nearest_rank_percentiles() {
    let p = Percentiles::of(&[4.0, 1.0, 3.0, 2.0]);
    assert_eq!(
        (p.count, p.p50, p.p95, p.p99, p.max),
        (4, Some(2.0), Some(4.0), Some(4.0), Some(4.0))
    );
    assert_eq!(p.mean, Some(2.5));
    let v: Vec<f64> = (1..=100).map(f64::from).collect();
    let p = Percentiles::of(&v);
    assert_eq!((p.p50, p.p95, p.p99), (Some(50.0), Some(95.0), Some(99.0)));
    assert_eq!(Percentiles::of(&[]), Percentiles::default());
    assert_eq!(Percentiles::of(&[f64::NAN, 7.0]).count, 1);
}

#[test]
fn aggregates_every_family_of_events() {
    let r = sample();
    assert!(!r.no_telemetry);
    assert_eq!(r.events_total, 18);
    assert_eq!(
        (r.symbols.count, r.symbols.hits, r.symbols.misses),
        (5, 4, 1)
    );
    assert_eq!(r.symbols.hit_rate, Some(0.8));
    assert_eq!(r.symbols.misses_by_reason.get("content_changed"), Some(&1));
    assert_eq!(r.symbols.latency_ms.hit.p50, Some(2.0));
    assert_eq!(r.symbols.latency_ms.miss.max, Some(40.0));
    assert_eq!((r.lookups.hits, r.lookups.misses), (4, 1));
    assert_eq!(r.lookups.latency_ms.hit.p99, Some(0.4));
    assert_eq!(r.incidents.lock_timeouts, 1);
    assert_eq!(r.incidents.lock_timeouts_by_mode.get("shared"), Some(&1));
    assert_eq!(r.incidents.lock_waited_ms.max, Some(5000.0));
    assert_eq!(
        r.incidents.corruption_kinds.get("integrity_check"),
        Some(&1)
    );
    assert_eq!(r.incidents.fallback_reasons.get("lock_timeout"), Some(&1));
    assert_eq!(r.incidents.size_warnings, 1);
    assert_eq!(
        (r.incidents.evictions.entries, r.incidents.evictions.bytes),
        (2, 300)
    );
    assert_eq!(r.incidents.maintenance_runs, 1);
    assert_eq!(r.db_size.samples_total, 2);
    assert_eq!(r.db_size.samples[0].db_bytes, 4096, "sorted by time");
    assert_eq!(r.db_size.latest.as_ref().map(|s| s.db_bytes), Some(8192));
    assert_eq!(r.db_size.max_total_bytes, Some(8192));
    assert_eq!(r.runs.count, 5);
    let r9 = r.runs.recent.iter().find(|x| x.run_id == "r9").unwrap();
    assert_eq!((r9.misses, r9.incidents), (1, 4));
    assert_eq!(r.runs.recent[0].run_id, "r9", "newest first");
    let t: u64 = r.timeline.iter().map(|b| b.hits + b.misses).sum();
    assert_eq!(t, 5);
    assert_eq!(r.first_ts.as_deref(), Some("2026-11-21T03:00:00.000Z"));
    assert_eq!(r.last_ts.as_deref(), Some("2026-11-21T03:14:00.000Z"));
}

#[test]
fn since_filters_but_still_counts_everything() {
    let mut a = Aggregator::new(Some(parse_since("2026-11-21T03:05:00Z", 0).unwrap()));
    a.add(ev(
        "2026-11-21T03:00:00.000Z",
        "a",
        "ast.symbols",
        json!({"cache_status":"hit"}),
        1.0,
    ));
    a.add(ev(
        "2026-11-21T03:06:00.000Z",
        "b",
        "ast.symbols",
        json!({"cache_status":"miss"}),
        1.0,
    ));
    let r = a.finish(Path::new("/t"), ScanSummary::default(), None);
    assert_eq!((r.events_total, r.events_in_window), (2, 1));
    assert_eq!((r.symbols.hits, r.symbols.misses), (0, 1));
    assert_eq!(r.symbols.misses_by_reason.get("unspecified"), Some(&1));
}

#[test]
fn empty_report_is_no_telemetry_with_zero_counts() {
    let r = Aggregator::new(None).finish(Path::new("/t"), ScanSummary::default(), None);
    assert!(r.no_telemetry);
    assert_eq!(r.symbols.hit_rate, None);
    assert!(r.timeline.is_empty());
    assert!(text::render(&r).contains("No telemetry"));
    assert!(html::render(&r).contains("No telemetry"));
}

#[test]
fn since_accepts_durations_and_timestamps_and_rejects_junk() {
    let now = 10_000_000_000;
    assert_eq!(parse_since("90s", now), Ok(now - 90_000));
    assert_eq!(parse_since("30m", now), Ok(now - 1_800_000));
    assert_eq!(parse_since("24h", now), Ok(now - 86_400_000));
    assert_eq!(parse_since("7d", now), Ok(now - 7 * 86_400_000));
    assert_eq!(parse_since("2w", now), Ok(now - 14 * 86_400_000));
    assert_eq!(parse_since("PT1H", now), Ok(now - 3_600_000));
    assert_eq!(parse_since("1h 30m", now), Ok(now - 5_400_000));
    assert_eq!(parse_since("1970-01-01T00:00:01Z", now), Ok(1000));
    for bad in [
        "",
        "yesterday",
        "7x",
        "-5m",
        "2026-13-01",
        "99999999999999999999d",
    ] {
        assert!(parse_since(bad, now).is_err(), "{bad:?} must be rejected");
    }
}

#[test]
fn html_escapes_everything_from_the_log() {
    let mut a = Aggregator::new(None);
    let evil = "<script>alert('x')</script>\"&";
    a.add(ev(
        "2026-11-21T03:00:00.000Z",
        evil,
        "ast.symbols",
        json!({"cache_status":"miss","miss_reason": evil}),
        1.0,
    ));
    a.add(ev("2026-11-21T03:00:00.000Z", evil, evil, json!({}), 1.0));
    let r = a.finish(
        Path::new("/t/<b>"),
        ScanSummary::default(),
        Some(evil.into()),
    );
    let h = html::render(&r);
    assert!(!h.contains("<script"), "raw markup leaked into the page");
    assert!(!h.contains("<b>"));
    assert!(h.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;"));
    assert!(
        !h.contains("http://") && !h.contains("https://"),
        "no external assets"
    );
    assert_eq!(super::style::esc("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
}

#[test]
fn html_has_the_charts_and_text_has_the_figures() {
    let r = sample();
    let h = html::render(&r);
    assert!(h.starts_with("<!DOCTYPE html>"));
    assert!(
        h.matches("<svg").count() >= 4,
        "timeline, reasons, latency, db size"
    );
    assert!(h.contains("<polyline"), "db size line");
    assert!(h.contains("content_changed"));
    let t = text::render(&r);
    assert!(t.contains("hit rate 80.0%"), "{t}");
    assert!(t.contains("content_changed"));
    assert!(t.contains("lock timeouts                1"), "{t}");
}

#[test]
fn size_samples_are_thinned_keeping_the_newest() {
    let s: Vec<SizeSample> = (0..2000)
        .map(|i| SizeSample {
            ts: fmt_ms(i),
            ts_ms: i,
            db_bytes: i as u64,
            wal_bytes: 0,
            entries: None,
            source: "ast.cache.stats".into(),
        })
        .collect();
    let d = db_size(s);
    assert_eq!(d.samples_total, 2000);
    assert_eq!(d.samples.len(), MAX_SIZE_SAMPLES);
    assert_eq!(d.samples.last().map(|x| x.db_bytes), Some(1999));
    assert_eq!(d.samples[0].db_bytes, 0);
}

#[test]
fn axis_maxima_are_round() {
    for (x, want) in [
        (66.0, 80.0),
        (60.2, 80.0),
        (47.0, 50.0),
        (2.1, 2.4),
        (0.37, 0.4),
        (1.0, 1.0),
        (0.0, 1.0),
        (1e-9, 1e-9),
    ] {
        let got = html::nice_ceil(x);
        assert!((got - want).abs() <= want * 1e-9, "{x}: {got} != {want}");
    }
}

#[test]
fn remote_tier_hits_and_incidents_are_counted_per_level() {
    let t = "2026-11-21T03:00:00.000Z";
    let mut a = Aggregator::new(None);
    a.add(ev(t, "a", "ast.cache.hit", json!({"status": "hit"}), 0.1));
    let local_only = a.finish(Path::new("/t"), ScanSummary::default(), None);
    assert!(!text::render(&local_only).contains("hits by level"));
    let mut a = Aggregator::new(None);
    a.add(ev(t, "a", "ast.cache.hit", json!({"status": "hit"}), 0.1));
    let remote = json!({"status": "hit", "cache_level": "remote"});
    a.add(ev(t, "b", "ast.cache.hit", remote, 0.4));
    let corrupt = json!({"status": "miss", "damage": "truncated"});
    a.add(ev(t, "b", "ast.cache.remote_corrupt", corrupt, 0.0));
    let gone = json!({"status": "local_only", "failure": "timeout"});
    a.add(ev(t, "c", "ast.cache.remote_unavailable", gone, 250.0));
    let r = a.finish(Path::new("/t"), ScanSummary::default(), None);
    let by_level: Vec<(&str, u64)> = r
        .lookups
        .hits_by_level
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(by_level, [("local", 1), ("remote", 1)]);
    assert_eq!(
        r.lookups.remote.corrupt_by_damage.get("truncated"),
        Some(&1)
    );
    assert_eq!(
        r.lookups.remote.unavailable_by_failure.get("timeout"),
        Some(&1)
    );
    assert!(text::render(&r).contains("remote: 1 corrupt values, 1 unavailable"));
    // The dashboard shows the tier only when the log shows it in use.
    let page = html::render(&r);
    assert!(page.contains("remote hits"), "no remote card");
    assert!(page.contains("served by the shared Redis tier: 1 of 2; 1 damaged"));
    assert!(!html::render(&local_only).contains("remote hits"));
}

fn with_args(
    ts: &str,
    run: &str,
    cmd: &str,
    args: serde_json::Value,
    result: serde_json::Value,
    ms: f64,
) -> Record {
    let line = json!({"ts": ts, "run_id": run, "segment_id": "abcd1234", "cmd": cmd,
                      "args": args, "result": result, "timing_ms": ms,
                      "warnings": [], "x": {}, "cache_type": "sqlite"});
    parse_line(line.to_string().as_bytes()).unwrap()
}

/// Commands that fail before and after the lookup, an `ast index` run, sizes from ordinary
/// opens, and incidents in the same minutes as the commands.
fn mixed() -> Report {
    let mut a = Aggregator::new(None);
    let t = |m: u32| format!("2026-11-21T03:{m:02}:00.000Z");
    let ok = json!({"status":"ok","cache_status":"hit","miss_reason":"cache_hit"});
    a.add(with_args(
        &t(0),
        "a",
        "ast.cache.size",
        json!({}),
        json!({"db_bytes": 4096, "wal_bytes": 8}),
        0.0,
    ));
    a.add(with_args(
        &t(0),
        "a",
        "ast.symbols",
        json!({"uri":"sym://python/mod/pkg.a"}),
        ok,
        0.6,
    ));
    a.add(with_args(
        &t(1),
        "b",
        "ast.cache.size",
        json!({}),
        json!({"db_bytes": 8192, "wal_bytes": 0}),
        0.0,
    ));
    a.add(with_args(&t(1), "b", "ast.symbols", json!({"uri":"sym://python/type/pkg.a.X"}),
        json!({"status":"error","error_code":"SYMBOL_NOT_FOUND","cache_status":"miss","miss_reason":"key_miss"}), 200.0));
    a.add(with_args(
        &t(2),
        "c",
        "ast.symbols",
        json!({}),
        json!({"status":"error","error_code":"INVALID_URI"}),
        0.3,
    ));
    a.add(with_args(
        &t(2),
        "c2",
        "ast.cache.lock_timeout",
        json!({"mode":"shared"}),
        json!({"waited_ms":5,"timeout_ms":5}),
        5.0,
    ));
    a.add(with_args(
        &t(2),
        "c2",
        "ast.cache.fallback",
        json!({}),
        json!({"reason":"lock_timeout"}),
        0.0,
    ));
    a.add(with_args(
        &t(3),
        "d",
        "ast.index",
        json!({}),
        json!({"status":"ok","files":10,"hits":7,"misses":2,"errors":1,"bytes":100,"jobs":2}),
        90.0,
    ));
    a.finish(Path::new("/t"), ScanSummary::default(), None)
}

#[test]
fn timeline_counts_each_command_once_and_incidents_apart() {
    let r = mixed();
    let b = |f: fn(&Bucket) -> u64| r.timeline.iter().map(f).sum::<u64>();
    assert_eq!(b(|x| x.hits + x.misses + x.no_lookup), r.symbols.count);
    assert_eq!(r.symbols.count, 3);
    assert_eq!(b(|x| x.incidents), 2, "lock timeout and fallback");
    assert_eq!(b(|x| x.errors), 2);
    assert_eq!(b(|x| x.index_runs), 1);
}

#[test]
fn errors_before_and_after_the_lookup_and_index_runs_are_reported() {
    let r = mixed();
    assert_eq!(r.errors.count, 2);
    assert_eq!(r.errors.by_code.get("INVALID_URI"), Some(&1));
    assert_eq!(r.errors.recent[0].code, "INVALID_URI", "newest first");
    assert_eq!(r.errors.recent[0].uri, None);
    assert_eq!(
        r.errors.recent[1].uri.as_deref(),
        Some("sym://python/type/pkg.a.X")
    );
    assert_eq!(r.symbols.errors.get("SYMBOL_NOT_FOUND"), Some(&1));
    let x = &r.index;
    assert_eq!(
        (x.runs, x.files, x.hits, x.misses, x.errors),
        (1, 10, 7, 2, 1)
    );
    assert_eq!(x.hit_rate, Some(0.77778));
    assert_eq!(x.wall_ms.p50, Some(90.0));
    assert_eq!(x.recent[0].run_id, "d");
    // Sizes come from the ordinary opens.
    assert_eq!(r.db_size.samples_total, 2);
    assert_eq!(r.db_size.samples[0].source, "ast.cache.size");
    assert_eq!(r.db_size.max_total_bytes, Some(8192));
}

#[test]
fn each_run_says_what_it_did() {
    let r = mixed();
    let did = |id: &str| {
        r.runs
            .recent
            .iter()
            .find(|x| x.run_id == id)
            .unwrap()
            .did
            .clone()
    };
    assert_eq!(did("a"), ["ast symbols sym://python/mod/pkg.a → hit"]);
    assert_eq!(
        did("b"),
        ["ast symbols sym://python/type/pkg.a.X → error SYMBOL_NOT_FOUND (miss (key_miss))"]
    );
    assert_eq!(
        did("c"),
        ["ast symbols (no URI) → error INVALID_URI (no cache lookup)"]
    );
    assert_eq!(did("c2"), ["ast.cache.fallback, ast.cache.lock_timeout"]);
    assert_eq!(
        did("d"),
        ["ast index: 10 modules, 7 hits, 2 misses, 1 errors"]
    );
    let b = r.runs.recent.iter().find(|x| x.run_id == "b").unwrap();
    assert_eq!(b.errors, 1);
}

#[test]
fn html_gives_every_mark_a_hover_title_and_every_rate_its_definition() {
    let h = html::render(&mixed());
    for mark in ["<rect", "<circle", "<polyline"] {
        let n = h.matches(mark).count();
        assert!(n > 0, "{mark} drawn");
        let titled = h
            .split(mark)
            .skip(1)
            .filter(|rest| {
                let end = rest.find('>').unwrap();
                rest[end + 1..].starts_with("<title>")
            })
            .count();
        assert_eq!(titled, n, "every {mark} has a <title>");
    }
    assert!(
        h.contains("of the 2 that consulted it"),
        "command hit rate defined"
    );
    assert!(
        h.contains("one per module of each ast index run"),
        "lookup hit rate defined"
    );
    for chart in [
        "commands-timeline",
        "incidents-timeline",
        "latency",
        "db-size",
        "errors-by-code",
        "index-runs",
    ] {
        assert!(h.contains(&format!("data-chart=\"{chart}\"")), "{chart}");
    }
    assert!(h.contains("log scale"));
    assert!(h.contains("error INVALID_URI"), "what the run did");
}

#[test]
fn latency_axis_spans_whole_decades() {
    assert_eq!(super::svg::log_range(0.6, 200.0), (0.1, 1000.0));
    assert_eq!(super::svg::log_range(1.0, 1.0), (1.0, 10.0));
    assert_eq!(super::svg::log_range(0.0, 0.0), (0.001, 0.01));
}

#[test]
fn admin_commands_are_counted_by_action_and_failures_apart() {
    let line = |action: &str, status: &str| {
        let l = json!({"ts": "2026-11-21T03:00:00.000Z", "run_id": "r", "segment_id": "abcd1234",
                       "cmd": "ast.cache.admin", "args": {"action": action},
                       "result": {"status": status}, "timing_ms": 1.0, "warnings": [], "x": {}});
        parse_line(l.to_string().as_bytes()).unwrap()
    };
    let mut a = Aggregator::new(None);
    for (action, status) in [("clear", "ok"), ("clear", "ok"), ("verify", "error")] {
        a.add(line(action, status));
    }
    let r = a.finish(
        Path::new("/t"),
        ScanSummary {
            dir_exists: true,
            ..Default::default()
        },
        None,
    );
    let want: Vec<(&str, u64)> = vec![("clear", 2), ("verify failed", 1)];
    let got: Vec<(&str, u64)> = r
        .incidents
        .admin
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(got, want);
    assert!(
        text::render(&r).contains("admin commands               3  (clear 2, verify failed 1)"),
        "{}",
        text::render(&r)
    );
}
