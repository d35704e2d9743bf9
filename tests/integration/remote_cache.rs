//! The shared second-level cache against a real `redis-server` (started by each test on a free
//! port of 127.0.0.1, killed by pid when the test ends, pass or fail).
//!
//! Without `redis-server` these tests print SKIPPED and pass, except under `CI=true`, where a
//! missing server fails them. The `rediss://` tests also need the `openssl` CLI (a throwaway CA
//! is made per test), under the same rule.

use crate::support::{self, Outcome, trifecta};
use serde_json::Value;
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};
use trifecta::cache::CacheKey;
use trifecta::cache::remote::{record, redis_key};
use trifecta::verify::redis_server::{self, RedisServer, TestPki};

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
        ("TRIFECTA_AST_REMOTE", "rediss://u:secret@h:6380/#insecure"),
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

// ---------------------------------------------------------------------------------------------
// `rediss://`: a real TLS-only redis-server with certificates from a throwaway CA.

/// A CA for a TLS test, or `None` after saying SKIPPED (a failure under CI).
fn pki() -> Option<TestPki> {
    let have = redis_server::available() && TestPki::available();
    if !have {
        assert!(
            std::env::var_os("CI").is_none(),
            "redis-server and openssl are required in CI (apt-get install redis-server openssl)"
        );
        eprintln!("SKIPPED: redis-server or openssl not found; the rediss:// tests need both");
        return None;
    }
    Some(TestPki::new("trifecta-test-ca").expect("make a test CA"))
}

/// A TLS server with a certificate for `san` from `ca`.
fn tls_server(ca: &TestPki, san: &str, require_client_cert: bool) -> RedisServer {
    let cert = ca.issue("server", san).expect("issue a server certificate");
    let mut conf = ca.server(cert, require_client_cert);
    if require_client_cert {
        conf.client = Some(ca.issue("helper", "DNS:helper").unwrap());
    }
    RedisServer::start_tls(None, conf).expect("start a TLS redis-server")
}

const LOCAL: &str = "DNS:localhost,IP:127.0.0.1";

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The one `remote_unavailable` event of `seg` and its warning text.
fn incident(seg: &Path) -> String {
    let gone = events(seg, "ast.cache.remote_unavailable");
    assert_eq!(gone.len(), 1, "one incident: {gone:?}");
    assert_eq!(gone[0]["result"]["status"], "local_only");
    gone[0]["warnings"][0]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn rediss_round_trip_equals_the_plain_tier() {
    let Some(ca) = pki() else { return };
    let tls = tls_server(&ca, LOCAL, false);
    let plain = RedisServer::start(None).expect("start redis-server");
    let d = tempfile::tempdir().unwrap();
    let ca_env = [("TRIFECTA_AST_REMOTE_CA_FILE", path(ca.ca()))];
    let mut runs = Vec::new();
    for (name, url, env) in [
        ("tls", tls.url(), &ca_env[..]),
        ("plain", plain.url(), &[][..]),
    ] {
        let (a, b) = (
            machine(d.path(), &format!("{name}-a")),
            machine(d.path(), &format!("{name}-b")),
        );
        let seq: Vec<Outcome> = vec![
            symbols(&a, &url, true, env),
            symbols(&b, &url, true, env),
            symbols(&b, &url, true, env),
        ];
        let levels: Vec<Value> = events(&b, "ast.cache.hit")
            .iter()
            .map(|e| e["result"]["cache_level"].clone())
            .collect();
        assert_eq!(levels, ["remote", "local"], "{name}");
        assert!(
            events(&a, "ast.cache.remote_unavailable").is_empty(),
            "{name}"
        );
        assert_eq!(seq[1].json["symbols"], uncached(&b), "{name}");
        runs.push((seq, utils_key(&a).1));
    }
    assert!(tls.url().starts_with("rediss://"), "{}", tls.url());
    let status = |i: usize| -> Vec<Value> {
        runs[i]
            .0
            .iter()
            .map(|o| o.json["cache_status"].clone())
            .collect()
    };
    assert_eq!(status(0), ["miss", "hit", "hit"]);
    assert_eq!(status(0), status(1), "TLS and plain tiers answer alike");
    assert_eq!(runs[0].0[1].json["symbols"], runs[1].0[1].json["symbols"]);
    // The same record bytes on both servers, under the same key.
    let get = |s: &RedisServer| -> Vec<u8> {
        let mut c = s.connection().unwrap();
        redis::cmd("GET").arg(&runs[0].1).query(&mut c).unwrap()
    };
    assert_eq!(keys(&tls), vec![runs[0].1.clone()]);
    assert_eq!(get(&tls), get(&plain));
    let stats = support::run(
        trifecta()
            .args(["ast", "cache", "stats", "--segment"])
            .arg(d.path().join("tls-b"))
            .env("TRIFECTA_AST_REMOTE", tls.url())
            .env("TRIFECTA_AST_REMOTE_CA_FILE", ca.ca()),
    );
    assert_eq!(stats.json["levels"]["remote"]["hits"], 1, "{stats:?}");
    assert_eq!(stats.json["remote"]["tls"]["verification"], "CA file");
    assert_eq!(stats.json["remote"]["tls"]["insecure"], false);
}

/// `ast symbols` on a fresh machine against `url` with `env`: correct, quick, one incident.
fn refused(d: &Path, name: &str, url: &str, env: &[(&str, &str)]) -> String {
    let a = machine(d, name);
    let t = Instant::now();
    let o = symbols(&a, url, false, env);
    let took = t.elapsed();
    assert_eq!(o.json["cache_status"], "miss", "{name}: {o:?}");
    assert_eq!(
        o.json["symbols"],
        uncached(&a),
        "{name}: still the right answer"
    );
    assert!(took < Duration::from_secs(3), "{name}: took {took:?}");
    incident(&a)
}

#[test]
fn a_certificate_that_does_not_verify_is_an_incident_and_insecure_mode_is_loud() {
    let Some(ca) = pki() else { return };
    let s = tls_server(&ca, LOCAL, false);
    let other = TestPki::new("some-other-ca").unwrap();
    let d = tempfile::tempdir().unwrap();
    let wrong_ca = [("TRIFECTA_AST_REMOTE_CA_FILE", path(other.ca()))];
    let why = refused(d.path(), "wrong-ca", &s.url(), &wrong_ca);
    assert!(
        why.contains("UnknownIssuer") && why.contains("TRIFECTA_AST_REMOTE_CA_FILE="),
        "{why}"
    );
    // Verification is on by default: the bundled public roots do not know the test CA.
    let why = refused(d.path(), "no-ca", &s.url(), &[]);
    assert!(
        why.contains("UnknownIssuer") && why.contains("public root"),
        "{why}"
    );
    assert!(
        keys(&s).is_empty(),
        "nothing was written over an unverified connection"
    );
    // The explicit insecure mode connects anyway, and says so.
    let insecure = [("TRIFECTA_AST_REMOTE_TLS_INSECURE", "1")];
    let a = machine(d.path(), "insecure");
    let o = symbols(&a, &s.url(), false, &insecure);
    assert!(
        events(&a, "ast.cache.remote_unavailable").is_empty(),
        "{o:?}"
    );
    assert_eq!(keys(&s).len(), 1, "the insecure connection wrote");
    let stats = support::run(
        trifecta()
            .args(["ast", "cache", "stats", "--format", "text", "--segment"])
            .arg(&a)
            .env("TRIFECTA_AST_REMOTE", s.url())
            .env("TRIFECTA_AST_REMOTE_TLS_INSECURE", "1"),
    );
    assert!(
        stats.stdout.contains("TLS certificates"),
        "{}",
        stats.stdout
    );
    assert!(
        stats
            .stdout
            .contains("OFF (TRIFECTA_AST_REMOTE_TLS_INSECURE=1")
    );
    let config = support::run(
        trifecta()
            .args(["config", "--format", "json"])
            .env("TRIFECTA_AST_REMOTE", s.url())
            .env("TRIFECTA_AST_REMOTE_TLS_INSECURE", "1"),
    );
    let listed = config.json["settings"].as_array().unwrap();
    let row = listed.iter().find(|r| r["name"] == "remote.tls_insecure");
    assert_eq!(row.unwrap()["value"], true, "{config:?}");
}

#[test]
fn a_certificate_for_another_host_is_refused() {
    let Some(ca) = pki() else { return };
    // Valid for the address only; asked for by the name `localhost` (same address).
    let s = tls_server(&ca, "IP:127.0.0.1", false);
    let d = tempfile::tempdir().unwrap();
    let env = [("TRIFECTA_AST_REMOTE_CA_FILE", path(ca.ca()))];
    let by_name = format!("rediss://localhost:{}/0", s.port());
    let why = refused(d.path(), "a", &by_name, &env);
    assert!(why.contains("not valid for name"), "{why}");
    assert!(keys(&s).is_empty());
    // The negative: the same server by the address it is issued for is used.
    let b = machine(d.path(), "b");
    symbols(&b, &s.url(), false, &env);
    assert!(events(&b, "ast.cache.remote_unavailable").is_empty());
    assert_eq!(keys(&s).len(), 1);
}

#[test]
fn plain_to_a_tls_port_and_tls_to_a_plain_port_fail_fast() {
    let Some(ca) = pki() else { return };
    let tls = tls_server(&ca, LOCAL, false);
    let plain = RedisServer::start(None).expect("start redis-server");
    let d = tempfile::tempdir().unwrap();
    // Generous bounds: the TLS server drops a plain client at once, so this failure comes from
    // the protocol, not from a timeout.
    let slow = [
        ("TRIFECTA_AST_REMOTE_CONNECT_TIMEOUT_MS", "5000"),
        ("TRIFECTA_AST_REMOTE_IO_TIMEOUT_MS", "5000"),
    ];
    let plain_url = format!("redis://127.0.0.1:{}/0", tls.port());
    refused(d.path(), "plain-to-tls", &plain_url, &slow);
    let ev = &events(
        &d.path().join("plain-to-tls"),
        "ast.cache.remote_unavailable",
    )[0];
    assert_eq!(ev["result"]["failure"], "error", "{ev}");
    // A plain server waits for the end of a line that a TLS hello never sends: this one is
    // bounded by the connect timeout (default 250 ms), once per process.
    let env = [("TRIFECTA_AST_REMOTE_CA_FILE", path(ca.ca()))];
    let tls_url = format!("rediss://127.0.0.1:{}/0", plain.port());
    let why = refused(d.path(), "tls-to-plain", &tls_url, &env);
    assert!(why.starts_with("rediss:// connect failed"), "{why}");
    let ev = &events(
        &d.path().join("tls-to-plain"),
        "ast.cache.remote_unavailable",
    )[0];
    assert_eq!(ev["result"]["failure"], "timeout");
    assert!(ev["timing_ms"].as_f64().unwrap() < 1000.0, "{ev}");
    assert!(keys(&plain).is_empty() && keys(&tls).is_empty());
}

#[test]
fn a_server_that_requires_a_client_certificate_gets_one() {
    let Some(ca) = pki() else { return };
    let s = tls_server(&ca, LOCAL, true);
    let d = tempfile::tempdir().unwrap();
    let ca_file = ca.ca();
    let without = [("TRIFECTA_AST_REMOTE_CA_FILE", path(ca_file))];
    let why = refused(d.path(), "no-cert", &s.url(), &without);
    assert!(why.contains("TRIFECTA_AST_REMOTE_CLIENT_CERT"), "{why}");
    assert!(keys(&s).is_empty());
    let (cert, key) = ca.issue("client", "DNS:trifecta-client").unwrap();
    let with = [
        ("TRIFECTA_AST_REMOTE_CA_FILE", path(ca_file)),
        ("TRIFECTA_AST_REMOTE_CLIENT_CERT", path(&cert)),
        ("TRIFECTA_AST_REMOTE_CLIENT_KEY", path(&key)),
    ];
    let a = machine(d.path(), "cert");
    symbols(&a, &s.url(), false, &with);
    assert!(events(&a, "ast.cache.remote_unavailable").is_empty());
    assert_eq!(keys(&s).len(), 1, "written over mTLS");
    let hit = symbols(&a, &s.url(), false, &with);
    assert_eq!(hit.json["cache_status"], "hit");
}

#[test]
fn tls_files_are_read_only_on_a_miss_and_a_bad_one_is_an_incident() {
    let d = tempfile::tempdir().unwrap();
    let a = machine(d.path(), "a");
    let missing = d.path().join("no-such-ca.pem");
    // Nothing listens on this port: the file is the first thing that fails.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("rediss://{}/0", l.local_addr().unwrap());
    drop(l);
    let env = [("TRIFECTA_AST_REMOTE_CA_FILE", path(&missing))];
    let miss = symbols(&a, &url, true, &env);
    assert_eq!(miss.json["cache_status"], "miss");
    let why = incident(&a);
    assert!(why.starts_with("TRIFECTA_AST_REMOTE_CA_FILE="), "{why}");
    // An L1 hit reads no TLS file and connects to nothing: still the one incident.
    let hit = symbols(&a, &url, true, &env);
    assert_eq!(hit.json["cache_status"], "hit");
    incident(&a);
}

#[test]
fn tls_settings_that_cannot_take_effect_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let a = machine(d.path(), "a");
    for (env, named) in [
        (
            vec![
                ("TRIFECTA_AST_REMOTE", "redis://h:6379/0"),
                ("TRIFECTA_AST_REMOTE_CA_FILE", "/etc/ca.pem"),
            ],
            "TRIFECTA_AST_REMOTE_CA_FILE",
        ),
        (
            vec![
                ("TRIFECTA_AST_REMOTE", "redis://h:6379/0"),
                ("TRIFECTA_AST_REMOTE_TLS_INSECURE", "1"),
            ],
            "TRIFECTA_AST_REMOTE_TLS_INSECURE",
        ),
        (
            vec![
                ("TRIFECTA_AST_REMOTE", "rediss://h:6379/0"),
                ("TRIFECTA_AST_REMOTE_CLIENT_CERT", "/etc/c.pem"),
            ],
            "TRIFECTA_AST_REMOTE_CLIENT_KEY",
        ),
        (
            vec![("TRIFECTA_AST_REMOTE_TLS_INSECURE", "sure")],
            "TRIFECTA_AST_REMOTE_TLS_INSECURE",
        ),
    ] {
        let mut cmd = trifecta();
        cmd.args(["ast", "symbols", UTILS, "--segment"]).arg(&a);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let o = support::run(&mut cmd);
        support::assert_error(&o, "INVALID_ARGUMENT");
        let msg = o.json["message"].as_str().unwrap();
        assert!(msg.contains(named), "{env:?}: {msg}");
    }
    // The negative: the same CA file with a rediss:// URL is accepted.
    let ok = support::run(
        trifecta()
            .args(["config", "--format", "json"])
            .env("TRIFECTA_AST_REMOTE", "rediss://u:secret@h:6380/0")
            .env("TRIFECTA_AST_REMOTE_CA_FILE", "/etc/ca.pem"),
    );
    assert_eq!(ok.code, Some(0), "{ok:?}");
    assert!(!ok.stdout.contains("secret"));
    assert!(!a.join(".trifecta").exists());
}
