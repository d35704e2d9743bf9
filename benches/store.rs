//! Store latency: get (hit) and put for the memory and SQLite backends, and SQLite get at 1k
//! vs 100k entries (the index keeps it flat; target ratio <= 1.5x).
//!
//! Run: `cargo bench --bench store`. Whole-process timings (warm hit of the real binary) are
//! measured with hyperfine; see the cache report for the commands.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use trifecta::cache::memory::MemoryStore;
use trifecta::cache::{CacheKey, OpenedCache, Store, open_cache};
use trifecta::config::CacheSettings;
use trifecta::symbols::{Symbol, SymbolKind, SymbolTable};
use trifecta::telemetry::Telemetry;

/// A realistic small module: a dozen functions and a class with methods.
fn table(i: usize) -> SymbolTable {
    let f = |name: String, line: u32| Symbol {
        kind: SymbolKind::Function,
        name,
        line,
        end_line: line + 3,
        is_async: false,
        members: None,
    };
    let mut symbols: Vec<Symbol> = (0..12)
        .map(|j| f(format!("func_{i}_{j}"), j * 5 + 1))
        .collect();
    symbols.push(Symbol {
        kind: SymbolKind::Class,
        name: format!("Class{i}"),
        line: 70,
        end_line: 90,
        is_async: false,
        members: Some(
            (0..5)
                .map(|j| f(format!("method_{j}"), 71 + j * 4))
                .collect(),
        ),
    });
    SymbolTable {
        symbols,
        syntax_errors: vec![],
    }
}

fn key(i: usize) -> CacheKey {
    CacheKey::of(format!("content of module {i}").as_bytes())
}

fn rel(i: usize) -> String {
    format!("pkg/sub/module_{i:06}.py")
}

/// A segment whose SQLite cache holds `n` entries.
fn sqlite_with(n: usize) -> (tempfile::TempDir, OpenedCache) {
    let dir = tempfile::tempdir().unwrap();
    let settings = CacheSettings {
        persist: true,
        ..CacheSettings::default()
    };
    let mut opened = open_cache(
        &trifecta::symbols::resolve::segment_root(dir.path()).unwrap(),
        &settings,
        &Telemetry::disabled(),
    );
    assert!(opened.fallback.is_none());
    for chunk in (0..n).collect::<Vec<_>>().chunks(5000) {
        let items: Vec<_> = chunk.iter().map(|&i| (rel(i), key(i), table(i))).collect();
        opened.store.put_batch(&items).unwrap();
    }
    drop(opened);
    let opened = open_cache(
        &trifecta::symbols::resolve::segment_root(dir.path()).unwrap(),
        &settings,
        &Telemetry::disabled(),
    );
    (dir, opened)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("store");

    let mut mem = MemoryStore::new();
    for i in 0..1000 {
        mem.put(&rel(i), &key(i), &table(i)).unwrap();
    }
    let mut rng = fastrand::Rng::with_seed(1);
    g.bench_function("memory/get_hit/1k", |b| {
        b.iter(|| {
            let i = rng.usize(..1000);
            black_box(mem.get(&rel(i), &key(i)).unwrap())
        })
    });
    g.bench_function("memory/put", |b| {
        b.iter_batched(
            || rng.usize(..1000),
            |i| mem.put(&rel(i), &key(i), &table(i)).unwrap(),
            BatchSize::SmallInput,
        )
    });

    for n in [1_000usize, 100_000] {
        let (_dir, mut opened) = sqlite_with(n);
        g.bench_function(format!("sqlite/get_hit/{}k", n / 1000), |b| {
            b.iter(|| {
                let i = rng.usize(..n);
                let hit = opened.store.get(&rel(i), &key(i)).unwrap();
                black_box(hit)
            })
        });
        if n == 1_000 {
            g.bench_function("sqlite/put", |b| {
                b.iter_batched(
                    || rng.usize(..n),
                    |i| opened.store.put(&rel(i), &key(i), &table(i)).unwrap(),
                    BatchSize::SmallInput,
                )
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
