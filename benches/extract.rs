//! Extraction throughput (bytes/s): a large real module (this machine's stdlib `typing.py`,
//! ~3,500 lines, read at bench time; a generated module of similar size if Python is absent)
//! and a small module. Plus hostile modules from an untrusted segment, each of which must stay
//! well under a second: `x = ` and 20,000 `[1,` (26 s before), 1 MB of `[` (over a minute and
//! 2 GB), and 128 KB of line continuations (54 s), which exhausts the parse budget.
//! Run: `cargo bench --bench extract`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use trifecta::symbols::extract::extract;

const SMALL: &str = "\
import functools

def cached(fn):
    return functools.lru_cache(maxsize=None)(fn)

class Greeter:
    \"\"\"Says hello.\"\"\"

    def __init__(self, name):
        self.name = name

    @cached
    def greet(self):
        return f\"hello {self.name}\"

    class Config:
        loud = False

async def main():
    print(Greeter(\"x\").greet())
";

/// The stdlib's `typing.py`, located through `python3`'s sysconfig.
fn stdlib_typing() -> Option<(String, Vec<u8>)> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['stdlib'])",
        ])
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim()).join("typing.py");
    let bytes = std::fs::read(&path).ok()?;
    Some((path.display().to_string(), bytes))
}

/// A ~3,500-line module of classes with methods and top-level functions.
fn generated_module() -> Vec<u8> {
    let mut src = String::from("import os\n\n");
    for i in 0..250 {
        src.push_str(&format!(
            "class Thing{i}(Base):\n    \"\"\"Docstring {i}.\"\"\"\n\n    def __init__(self, x):\n        self.x = x  # store\n\n    def value(self):\n        return [y * {i} for y in range(self.x)]\n\n\ndef helper{i}(a, b=None):\n    if a:\n        return a + (b or 0)\n    return {{'k': a}}\n\n"
        ));
    }
    src.into_bytes()
}

fn bench_extract(c: &mut Criterion) {
    let (label, large) =
        stdlib_typing().unwrap_or_else(|| ("generated".to_owned(), generated_module()));
    eprintln!("large module: {label} ({} bytes)", large.len());
    let mut group = c.benchmark_group("extract");
    group.throughput(Throughput::Bytes(large.len() as u64));
    group.bench_function("large_typing_py", |b| b.iter(|| extract(black_box(&large))));
    group.throughput(Throughput::Bytes(SMALL.len() as u64));
    group.bench_function("small_module", |b| {
        b.iter(|| extract(black_box(SMALL.as_bytes())))
    });
    group.finish();
}

fn bench_hostile(c: &mut Criterion) {
    let mut continuations = b"def before(): pass\nx = 1 +".to_vec();
    continuations.extend(b"\\\n".repeat(1 << 16));
    let cases = [
        (
            "lists_20000",
            format!("def before(): pass\nx = {}\n", "[1,".repeat(20_000)).into_bytes(),
        ),
        ("brackets_1mb", vec![b'['; 1 << 20]),
        ("continuations_128kb", continuations),
    ];
    let mut group = c.benchmark_group("hostile");
    // Each case was seconds to minutes before; a handful of samples is enough to see that.
    group.sample_size(10);
    for (name, src) in &cases {
        group.throughput(Throughput::Bytes(src.len() as u64));
        group.bench_function(*name, |b| b.iter(|| extract(black_box(src))));
    }
    group.finish();
}

criterion_group!(benches, bench_extract, bench_hostile);
criterion_main!(benches);
