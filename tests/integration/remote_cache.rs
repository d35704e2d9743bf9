//! The shared second-level cache against a real `redis-server` (started by each test on a free
//! port of 127.0.0.1, killed by pid when the test ends, pass or fail).
//!
//! Without `redis-server` these tests print SKIPPED and pass, except under `CI=true`, where a
//! missing server fails them.

use crate::support::{self, Outcome, trifecta};
use serde_json::Value;
use std::net::TcpListener;
use std::path::Path;
use trifecta::cache::CacheKey;
use trifecta::cache::remote::{record, redis_key};
use trifecta::verify::redis_server::{self, RedisServer};

const UTILS: &str = "sym://python/mod/pkg.utils";

/// A server, or `None` after saying SKIPPED (a failure under CI).
fn server() -> Option<RedisServer> {
    if !redis_server::available() {
        assert!(
            std::env::var_os("CI").is_none(),
            "redis-server is required in CI (apt-get install redis-server)"
        );
        eprintln!("SKIPPED: redis-server not found; the remote-cache tests need a real server");
        return None;
    }
    Some(RedisServer::start(None).expect("start redis-server"))
}

/// A copy of the fixture segment (a "machine") in `dir/name`.
fn machine(dir: &Path, name: &str) -> std::path::PathBuf {
    let seg = dir.join(name);
    support::copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/verify-basic/segment"),
        &seg,
    );
    seg
}

/// `ast symbols` with the remote at `url` (lite telemetry), plus `env`.
fn symbols(seg: &Path, url: &str, persist: bool, env: &[(&str, &str)]) -> Outcome {
    let mut cmd = trifecta();
    cmd.args(["ast", "symbols", UTILS, "--segment"]).arg(seg);
    cmd.arg(if persist {
        "--persist-cache"
    } else {
        "--no-persist-cache"
    });
    cmd.env("TRIFECTA_AST_REMOTE", url)
        .env("TRIFECTA_TELEMETRY", "lite");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = support::run(&mut cmd);
    assert_eq!(o.code, Some(0), "{o:?}");
    o
}

fn uncached(seg: &Path) -> Value {
    support::symbols(seg, UTILS, &["--no-persist-cache"]).json["symbols"].clone()
}

fn events(seg: &Path, cmd: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(seg.join("_ctx/telemetry/events.jsonl")).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["cmd"] == cmd)
        .collect()
}

fn keys(s: &RedisServer) -> Vec<String> {
    let mut c = s.connection().unwrap();
    redis::cmd("KEYS").arg("*").query(&mut c).unwrap()
}

/// The Redis key of pkg/utils.py's entry.
fn utils_key(seg: &Path) -> (CacheKey, String) {
    let key = CacheKey::of(&std::fs::read(seg.join("pkg/utils.py")).unwrap());
    (key, redis_key("trifecta:", &key))
}

#[test]
fn two_machines_share_one_server_then_hit_locally() {
    let Some(s) = server() else { return };
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (machine(d.path(), "a"), machine(d.path(), "b"));
    let first = symbols(&a, &s.url(), true, &[]);
    assert_eq!(first.json["cache_status"], "miss");
    assert_eq!(keys(&s), vec![utils_key(&a).1], "machine A wrote L2");
    let b1 = symbols(&b, &s.url(), true, &[]);
    assert_eq!(b1.json["cache_status"], "hit", "{b1:?}");
    assert_eq!(b1.json["symbols"], uncached(&b));
    let b2 = symbols(&b, &s.url(), true, &[]);
    assert_eq!(b2.json["cache_status"], "hit");
    let levels: Vec<Value> = events(&b, "ast.cache.hit")
        .iter()
        .map(|e| e["result"]["cache_level"].clone())
        .collect();
    assert_eq!(levels, ["remote", "local"]);
    let stats = support::run(
        trifecta()
            .args(["ast", "cache", "stats", "--segment"])
            .arg(&b)
            .env("TRIFECTA_AST_REMOTE", s.url()),
    );
    assert_eq!(stats.json["levels"]["remote"]["hits"], 1, "{stats:?}");
    assert_eq!(stats.json["remote"]["mode"], "read-write");
}

#[test]
fn an_l1_hit_never_connects_and_an_l1_miss_does() {
    let d = tempfile::tempdir().unwrap();
    let a = machine(d.path(), "a");
    // A listening socket that never answers: it only shows whether anyone connected.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let url = format!("redis://{}/0", l.local_addr().unwrap());
    let slow = [("TRIFECTA_AST_REMOTE_IO_TIMEOUT_MS", "100")];
    let miss = symbols(&a, &url, true, &slow);
    assert_eq!(miss.json["cache_status"], "miss");
    assert!(l.accept().is_ok(), "an L1 miss must consult the remote");
    let gone = events(&a, "ast.cache.remote_unavailable");
    assert_eq!(gone.len(), 1, "{gone:?}");
    assert_eq!(gone[0]["result"]["failure"], "timeout");
    let hit = symbols(&a, &url, true, &slow);
    assert_eq!(hit.json["cache_status"], "hit");
    assert!(l.accept().is_err(), "an L1 hit connected to the remote");
}

#[test]
fn damaged_values_are_never_served_and_are_replaced() {
    let Some(s) = server() else { return };
    let d = tempfile::tempdir().unwrap();
    let a = machine(d.path(), "a");
    let want = uncached(&a);
    symbols(&a, &s.url(), false, &[]);
    let (key, rkey) = utils_key(&a);
    let mut c = s.connection().unwrap();
    let good: Vec<u8> = redis::cmd("GET").arg(&rkey).query(&mut c).unwrap();
    let payload = record::payload_range(&good).unwrap();
    let tag = CacheKey::extractor_tag();
    let mut flipped = good.clone();
    flipped[payload.start + 10] ^= 0x01;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() / 2].to_vec()),
        ("checksum_mismatch", flipped),
        ("foreign_format", b"{\"symbols\": []}".to_vec()),
        (
            "foreign_format",
            record::encode_raw(9, &tag, key.content_hash(), &good[payload.clone()]),
        ),
        (
            "other_extractor",
            record::encode_raw(1, "rp0.0.9-x1", key.content_hash(), &good[payload.clone()]),
        ),
        (
            "key_mismatch",
            record::encode_raw(
                1,
                &tag,
                CacheKey::of(b"other").content_hash(),
                &good[payload],
            ),
        ),
    ];
    for (n, (damage, value)) in cases.into_iter().enumerate() {
        let _: () = redis::cmd("SET")
            .arg(&rkey)
            .arg(&value)
            .query(&mut c)
            .unwrap();
        let o = symbols(&a, &s.url(), false, &[]);
        assert_eq!(o.json["cache_status"], "miss", "{damage}: served {o:?}");
        assert_eq!(o.json["symbols"], want, "{damage}");
        let ev = events(&a, "ast.cache.remote_corrupt");
        assert_eq!(ev.len(), n + 1, "{damage}: {ev:?}");
        assert_eq!(ev[n]["result"]["damage"], damage);
        let now: Vec<u8> = redis::cmd("GET").arg(&rkey).query(&mut c).unwrap();
        assert_eq!(now, good, "{damage}: not replaced by the rewrite");
        let again = symbols(&a, &s.url(), false, &[]);
        assert_eq!(again.json["cache_status"], "hit", "{damage}");
    }
}

#[test]
fn read_only_mode_reads_but_never_writes() {
    let Some(s) = server() else { return };
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (machine(d.path(), "a"), machine(d.path(), "b"));
    let ro = [("TRIFECTA_AST_REMOTE_MODE", "read-only")];
    symbols(&a, &s.url(), true, &ro);
    assert!(keys(&s).is_empty(), "read-only wrote {:?}", keys(&s));
    let writes = events(&a, "ast.cache.write");
    assert_eq!(writes[0]["x"]["remote"], "read_only", "{writes:?}");
    // The negative: the same run in read-write mode writes.
    symbols(&b, &s.url(), false, &[]);
    assert_eq!(keys(&s).len(), 1);
    let hit = symbols(&a, &s.url(), false, &ro);
    assert_eq!(hit.json["cache_status"], "hit", "read-only still reads");
}

#[test]
fn a_dead_server_costs_one_attempt_per_process_and_a_restart_recovers() {
    let Some(mut s) = server() else { return };
    let d = tempfile::tempdir().unwrap();
    let a = machine(d.path(), "a");
    s.kill();
    let o = support::run(
        trifecta()
            .args(["ast", "index", "--segment"])
            .arg(&a)
            .args(["--no-persist-cache", "--jobs", "2"])
            .env("TRIFECTA_AST_REMOTE", s.url())
            .env("TRIFECTA_TELEMETRY", "lite"),
    );
    assert_eq!(o.code, Some(0), "{o:?}");
    assert_eq!(o.json["misses"], o.json["files"]);
    let gone = events(&a, "ast.cache.remote_unavailable");
    assert_eq!(gone.len(), 1, "one event, no retries: {gone:?}");
    let served = symbols(&a, &s.url(), false, &[]);
    assert_eq!(served.json["symbols"], uncached(&a));
    s.restart().unwrap();
    symbols(&a, &s.url(), false, &[]);
    assert_eq!(keys(&s).len(), 1, "written again after the restart");
}

#[test]
fn a_fresh_checkout_indexes_from_a_warm_server_in_one_mget_per_chunk() {
    let Some(s) = server() else { return };
    let d = tempfile::tempdir().unwrap();
    let (a, b) = (machine(d.path(), "a"), machine(d.path(), "b"));
    let index = |seg: &Path| {
        support::run(
            trifecta()
                .args(["ast", "index", "--segment"])
                .arg(seg)
                .args(["--persist-cache", "--jobs", "2"])
                .env("TRIFECTA_AST_REMOTE", s.url())
                .env("TRIFECTA_TELEMETRY", "lite"),
        )
    };
    let cold = index(&a);
    assert_eq!(cold.json["hits"], 0, "{cold:?}");
    let mut c = s.connection().unwrap();
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut c).unwrap();
    let warm = index(&b);
    assert_eq!(warm.json["hits"], warm.json["files"], "{warm:?}");
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut c)
        .unwrap();
    let mget = info
        .lines()
        .find(|l| l.starts_with("cmdstat_mget:"))
        .unwrap_or("");
    assert!(mget.starts_with("cmdstat_mget:calls=1,"), "{info}");
    let levels: Vec<Value> = events(&b, "ast.cache.hit")
        .iter()
        .map(|e| e["result"]["cache_level"].clone())
        .collect();
    assert!(levels.iter().all(|l| l == "remote") && !levels.is_empty());
}

#[test]
fn remote_settings_are_checked_before_anything_runs() {
    let d = tempfile::tempdir().unwrap();
    let a = machine(d.path(), "a");
    for (k, v) in [
        ("TRIFECTA_AST_REMOTE", "rediss://u:secret@h:6380"),
        ("TRIFECTA_AST_REMOTE", "http://h"),
        ("TRIFECTA_AST_REMOTE_MODE", "sometimes"),
        ("TRIFECTA_AST_REMOTE_TTL_DAYS", "-1"),
        ("TRIFECTA_AST_REMOTE_CONNECT_TIMEOUT_MS", "0"),
        ("TRIFECTA_AST_REMOTE_IO_TIMEOUT_MS", "60001"),
        ("TRIFECTA_AST_REMOTE_PREFIX", "has space"),
    ] {
        let o = support::run(
            trifecta()
                .args(["ast", "symbols", UTILS, "--segment"])
                .arg(&a)
                .env(k, v),
        );
        support::assert_error(&o, "INVALID_ARGUMENT");
        let msg = o.json["message"].as_str().unwrap();
        assert!(msg.contains(k) && !msg.contains("secret"), "{msg}");
    }
    assert!(!a.join(".trifecta").exists());
}
