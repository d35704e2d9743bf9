//! Telemetry costs: what one `ast symbols` pays to record its events (encode + redact + one
//! locked append), and how fast `telemetry report` reads a log.
//!
//! Run: `cargo bench --bench telemetry`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use std::hint::black_box;
use trifecta::telemetry::read::parse_line;
use trifecta::telemetry::redact::Redactor;
use trifecta::telemetry::{Level, LineEvent, Telemetry, encode_line, report};

fn typical(cmd: &'static str) -> LineEvent {
    let mut e = LineEvent::new(cmd);
    e.args = json!({"uri": "sym://python/mod/pkg.a", "cache_key": "rp0.0.10-tsp0.25-x4:abd96223ab27b18cae9391d6129a8668"});
    e.result = json!({"status": "ok", "cache_status": "miss", "miss_reason": "key_miss"});
    e.x = json!({"file": "pkg/a.py", "symbols_count": 12, "syntax_errors": 0});
    e.timing_ms = 3.217;
    e.cache_type = Some("sqlite");
    e
}

fn bench(c: &mut Criterion) {
    let redactor = Redactor::new(
        Some("/work/seg".into()),
        Some("/home/someone".into()),
        Some("someone".into()),
    );
    let ev = typical("ast.symbols");
    c.bench_function("encode_line (redact + serialize one event)", |b| {
        b.iter(|| {
            encode_line(
                "2026-11-21T03:34:43.123Z",
                "run_1",
                "0123abcd",
                black_box(&ev),
                &redactor,
            )
        })
    });
    let line = encode_line(
        "2026-11-21T03:34:43.123Z",
        "run_1",
        "0123abcd",
        &ev,
        &redactor,
    );
    c.bench_function("parse_line", |b| {
        b.iter(|| parse_line(black_box(line.as_bytes())))
    });

    let d = tempfile::tempdir().expect("tempdir");
    let root = d.path().canonicalize().expect("canonical");
    let mut settings = (trifecta::config::TelemetryConfig {
        level: Level::Lite,
        ..Default::default()
    })
    .for_segment(&root);
    settings.dir = trifecta::telemetry::Location::user(root.join("t"));
    c.bench_function("command flush (3 events, one locked append)", |b| {
        b.iter(|| {
            let t = Telemetry::new(settings.clone());
            for cmd in ["ast.cache.miss", "ast.cache.write", "ast.symbols"] {
                t.event(Level::Lite, typical(cmd));
            }
            t.flush();
        })
    });
    // The same with the `ast.cache.size` every persistent open adds: its cost per command.
    let size = || {
        let mut e = LineEvent::new("ast.cache.size");
        e.result = json!({"db_bytes": 1_277_952, "wal_bytes": 4152});
        e.cache_type = Some("sqlite");
        e
    };
    c.bench_function(
        "command flush (4 events incl. ast.cache.size, one locked append)",
        |b| {
            b.iter(|| {
                let t = Telemetry::new(settings.clone());
                t.event(Level::Lite, size());
                for cmd in ["ast.cache.miss", "ast.cache.write", "ast.symbols"] {
                    t.event(Level::Lite, typical(cmd));
                }
                t.flush();
            })
        },
    );

    let logdir = d.path().join("log");
    std::fs::create_dir_all(&logdir).expect("mkdir");
    let n = 10_000u64;
    let mut text = String::new();
    for i in 0..n {
        let mut e = typical(if i % 2 == 0 {
            "ast.symbols"
        } else {
            "ast.cache.hit"
        });
        e.timing_ms = (i % 97) as f64 / 10.0;
        text.push_str(&encode_line(
            &report::fmt_ms(1_795_000_000_000 + i as i64 * 1000),
            &format!("run_{}", i / 2),
            "0123abcd",
            &e,
            &redactor,
        ));
        text.push('\n');
    }
    std::fs::write(logdir.join("events.jsonl"), &text).expect("write log");
    let mut g = c.benchmark_group("report");
    g.throughput(Throughput::Elements(n));
    g.sample_size(20);
    g.bench_function("build over 10k events", |b| {
        b.iter(|| {
            report::build(
                black_box(&trifecta::telemetry::Location::user(&logdir)),
                None,
            )
            .expect("report")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
