//! Daemon request latency, client in-process: one `ast.symbols` request for a cached module
//! over the socket to a running `trifecta serve` (target ≤ 0.1 ms on a kept connection), on a
//! kept connection and on a fresh connection per request (what `ast symbols --daemon auto`
//! does), and the failed connect that `--daemon auto` costs when no daemon runs.
//!
//! Run: `cargo bench --bench daemon`. Whole-process comparisons (CLI through the daemon vs a
//! local warm hit; a CLI hit while the daemon watches vs without it) are `benches/daemon.sh`.

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::hint::black_box;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use trifecta::daemon::client;
use trifecta::daemon::protocol::Method;
use trifecta::daemon::runtime_dir;

/// The daemon process, killed by pid when the bench ends (even on panic).
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn module() -> String {
    let mut s = String::new();
    for i in 0..40 {
        s.push_str(&format!("def func_{i}(a, b):\n    return a + b\n\n"));
    }
    s.push_str("class C:\n    def m(self):\n        pass\n");
    s
}

fn bench(c: &mut Criterion) {
    let seg = tempfile::tempdir().unwrap();
    std::fs::create_dir(seg.path().join("pkg")).unwrap();
    std::fs::write(seg.path().join("pkg/__init__.py"), "").unwrap();
    std::fs::write(seg.path().join("pkg/mod.py"), module()).unwrap();
    let run = tempfile::tempdir().unwrap();
    std::fs::set_permissions(run.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let root = std::fs::canonicalize(seg.path()).unwrap();
    let paths = runtime_dir::paths_in(&runtime_dir::private_dir(Some(run.path())), &root).unwrap();
    let _daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_trifecta"))
            .env("XDG_RUNTIME_DIR", run.path())
            .env_remove("TRIFECTA_TELEMETRY")
            .args(["serve", "--segment"])
            .arg(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for(&paths.socket);
    let params = json!({"uri": "sym://python/mod/pkg.mod", "persist": true});
    let timeout = Duration::from_secs(5);
    let ask = |stream: &mut std::os::unix::net::UnixStream| {
        let r: Result<Value, _> = client::call_on(stream, Method::Symbols, &params, timeout)
            .expect("daemon answers")
            .map_err(|e| e.message);
        r.expect("ok")
    };
    let mut kept = client::connect(&paths.socket).unwrap();
    let warm = ask(&mut kept);
    assert_eq!(warm["status"], "ok");
    let mut g = c.benchmark_group("daemon");
    g.bench_function("symbols_hit_kept_connection", |b| {
        b.iter(|| black_box(ask(&mut kept)))
    });
    // The floor of any request: one round trip to the daemon's thread and back, touching no
    // cache (what `symbols_hit_kept_connection` costs beyond this is the request's own work).
    g.bench_function("status_kept_connection", |b| {
        b.iter(|| {
            let r: Result<Value, _> =
                client::call_on(&mut kept, Method::Status, &json!({}), timeout)
                    .expect("daemon answers")
                    .map_err(|e| e.message);
            black_box(r.expect("ok"))
        })
    });
    g.bench_function("symbols_hit_new_connection", |b| {
        b.iter(|| {
            let mut s = client::connect(&paths.socket).unwrap();
            black_box(ask(&mut s))
        })
    });
    let nowhere = run.path().join("no-daemon.sock");
    g.bench_function("auto_without_daemon_failed_connect", |b| {
        b.iter(|| black_box(client::connect(&nowhere).is_err()))
    });
    g.finish();
}

fn wait_for(socket: &Path) {
    let t = Instant::now();
    while client::connect(socket).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "daemon did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
