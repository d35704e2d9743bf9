//! The daemon, end to end with real processes: byte-identical answers, single instance, stale
//! socket cleanup, peer uid refusal (a client really running as another uid), idle exit,
//! SIGTERM draining a request in flight, `--daemon require` without a daemon, fallback on a
//! daemon that answers garbage or nothing, and `ast cache clear` while the daemon runs.
//!
//! Every daemon a test starts is owned by a [`Daemon`] guard that kills it by pid on drop, so a
//! failing assertion never leaves one running.

use crate::support::{assert_error, run, scrub, trifecta, write};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

pub(crate) const URI: &str = "sym://python/mod/pkg.mod";

/// A segment and a private runtime directory (`XDG_RUNTIME_DIR`) for its daemon.
pub(crate) struct Setup {
    pub(crate) seg: tempfile::TempDir,
    pub(crate) run: tempfile::TempDir,
}

impl Setup {
    pub(crate) fn new() -> Setup {
        let seg = tempfile::tempdir().unwrap();
        write(seg.path(), "pkg/__init__.py", "");
        write(
            seg.path(),
            "pkg/mod.py",
            "def f():\n    pass\n\nclass C:\n    def m(self): ...\n",
        );
        let run = tempfile::tempdir().unwrap();
        std::fs::set_permissions(run.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        Setup { seg, run }
    }

    pub(crate) fn seg(&self) -> &Path {
        self.seg.path()
    }

    /// The daemon's private directory and files for this segment.
    pub(crate) fn paths(&self) -> trifecta::daemon::runtime_dir::DaemonPaths {
        let root = std::fs::canonicalize(self.seg()).unwrap();
        let dir = trifecta::daemon::runtime_dir::private_dir(Some(self.run.path()));
        trifecta::daemon::runtime_dir::paths_in(&dir, &root).unwrap()
    }

    /// `trifecta <args>` with this setup's runtime directory and extra variables.
    pub(crate) fn cmd(&self, args: &[&str], env: &[(&str, &str)]) -> assert_cmd::Command {
        let mut c = trifecta();
        c.env("XDG_RUNTIME_DIR", self.run.path()).args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    pub(crate) fn symbols(&self, mode: &str, env: &[(&str, &str)]) -> crate::support::Outcome {
        let seg = self.seg().to_str().unwrap().to_string();
        let args = [
            "ast",
            "symbols",
            URI,
            "--segment",
            &seg,
            "--persist-cache",
            "--daemon",
            mode,
        ];
        run(&mut self.cmd(&args, env))
    }

    /// Start `trifecta serve` and wait until it accepts connections.
    pub(crate) fn daemon(&self, env: &[(&str, &str)]) -> Daemon {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("trifecta"));
        scrub(&mut c)
            .env("XDG_RUNTIME_DIR", self.run.path())
            .args(["serve", "--segment"])
            .arg(self.seg())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let d = Daemon {
            child: Some(c.spawn().expect("spawn trifecta serve")),
        };
        let socket = self.paths().socket;
        let t = Instant::now();
        while UnixStream::connect(&socket).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the daemon never accepted"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        d
    }
}

/// Owns a daemon process: killed (by pid) and reaped on drop, whatever happened.
pub(crate) struct Daemon {
    pub(crate) child: Option<Child>,
}

impl Daemon {
    pub(crate) fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Wait for the daemon to exit on its own; its stdout (the serve summary) as JSON.
    pub(crate) fn wait_exit(&mut self, within: Duration) -> Value {
        let t = Instant::now();
        let child = self.child.as_mut().unwrap();
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(
                t.elapsed() < within,
                "the daemon did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = self.child.take().unwrap().wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
    }

    pub(crate) fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child process by pid.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One raw JSON-RPC exchange on `stream`.
pub(crate) fn exchange(stream: &mut UnixStream, line: &str) -> Value {
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(line.as_bytes()).unwrap();
    let mut reply = String::new();
    BufReader::new(&*stream).read_line(&mut reply).unwrap();
    serde_json::from_str(&reply).unwrap_or(Value::Null)
}

pub(crate) fn events(seg: &Path, cmd: &str) -> Vec<Value> {
    let p = seg.join("_ctx/telemetry/events.jsonl");
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["cmd"] == cmd)
        .collect()
}

#[test]
fn the_daemon_answers_byte_identically_to_a_local_run_and_stops_on_request() {
    let s = Setup::new();
    let mut d = s.daemon(&[("TRIFECTA_TELEMETRY", "lite")]);
    // Warm both ways, then compare warm answers byte for byte.
    let _ = s.symbols("require", &[]);
    let local = s.symbols("never", &[("TRIFECTA_TELEMETRY", "lite")]);
    let via = s.symbols("require", &[]);
    assert_eq!(via.code, Some(0), "{via:?}");
    assert_eq!(via.json["cache_status"], "hit", "{via:?}");
    assert_eq!(via.stdout, local.stdout, "daemon and local answers differ");
    // An error is the same envelope too.
    let seg = s.seg().to_str().unwrap().to_string();
    let missing = |mode: &str| {
        let args = [
            "ast",
            "symbols",
            "sym://python/mod/nope",
            "--segment",
            &seg,
            "--persist-cache",
            "--daemon",
            mode,
        ];
        run(&mut s.cmd(&args, &[]))
    };
    let (a, b) = (missing("require"), missing("never"));
    assert_error(&a, "FILE_NOT_FOUND");
    assert_eq!(a.stdout, b.stdout);
    // The daemon's requests are in the telemetry under its own run id.
    let reqs = events(s.seg(), "daemon.request");
    assert!(reqs.len() >= 3, "{reqs:?}");
    assert!(
        reqs.iter()
            .all(|e| e["run_id"].as_str().unwrap().starts_with("daemon_"))
    );
    // The dashboard tells daemon traffic from CLI traffic.
    let report = run(&mut s.cmd(&["telemetry", "report", "--segment", &seg], &[]));
    let traffic = &report.json["daemon"];
    // Two answers and the FILE_NOT_FOUND one: a command that fails before its lookup still
    // writes its event (issue 13), here from inside the daemon.
    assert_eq!(traffic["symbols_via_daemon"], 3, "{traffic}");
    assert_eq!(traffic["symbols_direct"], 1, "{traffic}");
    assert_eq!(traffic["starts"], 1, "{traffic}");
    let stop = run(&mut s.cmd(&["daemon", "stop", "--segment", &seg], &[]));
    assert_eq!(stop.json["daemon"], "stopped", "{stop:?}");
    let summary = d.wait_exit(Duration::from_secs(15));
    assert_eq!(summary["stopped_by"], "shutdown", "{summary}");
    assert!(
        !s.paths().socket.exists() && !s.paths().pid.exists(),
        "files removed"
    );
}

#[test]
fn a_second_daemon_for_the_same_segment_is_refused() {
    let s = Setup::new();
    let d = s.daemon(&[]);
    let seg = s.seg().to_str().unwrap().to_string();
    let second = run(&mut s.cmd(&["serve", "--segment", &seg], &[]));
    assert_error(&second, "DAEMON_ALREADY_RUNNING");
    assert!(
        second.json["message"]
            .as_str()
            .unwrap()
            .contains(&d.pid().to_string())
    );
    let start = run(&mut s.cmd(&["daemon", "start", "--segment", &seg], &[]));
    assert_eq!(start.json["daemon"], "already_running", "{start:?}");
    assert_eq!(start.json["pid"], d.pid());
    let status = run(&mut s.cmd(&["daemon", "status", "--segment", &seg], &[]));
    assert_eq!(status.json["daemon"], "running", "{status:?}");
}

#[test]
fn a_stale_socket_and_pid_file_fall_back_then_are_cleaned_up_by_the_next_daemon() {
    let s = Setup::new();
    let p = s.paths();
    std::fs::create_dir(&p.dir).unwrap();
    std::fs::set_permissions(&p.dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    drop(UnixListener::bind(&p.socket).unwrap()); // a socket file nobody listens on
    std::fs::write(&p.pid, "999999\n").unwrap();
    let tele = [("TRIFECTA_TELEMETRY", "lite")];
    let local = s.symbols("never", &[]);
    let auto = s.symbols("auto", &tele);
    assert_eq!(auto.json["status"], "ok", "{auto:?}");
    assert_eq!(auto.json["symbols"], local.json["symbols"]);
    let fb = events(s.seg(), "daemon.fallback");
    assert_eq!(fb.len(), 1, "{fb:?}");
    assert_eq!(fb[0]["result"]["reason"], "refused");
    assert_error(&s.symbols("require", &[]), "DAEMON_UNAVAILABLE");
    // A new daemon takes over the stale files.
    let d = s.daemon(&[]);
    assert_eq!(
        std::fs::read_to_string(&p.pid).unwrap().trim(),
        d.pid().to_string()
    );
    let via = s.symbols("require", &[]);
    assert_eq!(via.json["status"], "ok", "{via:?}");
}

#[test]
fn require_without_a_daemon_fails_with_a_stable_code_and_auto_answers_locally() {
    let s = Setup::new();
    let r = s.symbols("require", &[]);
    assert_error(&r, "DAEMON_UNAVAILABLE");
    let auto = s.symbols("auto", &[("TRIFECTA_TELEMETRY", "lite")]);
    assert_eq!(auto.json["status"], "ok", "{auto:?}");
    assert!(
        events(s.seg(), "daemon.fallback").is_empty(),
        "no daemon is not an incident"
    );
    // The environment variable says the same as the flag.
    let seg = s.seg().to_str().unwrap().to_string();
    let args = ["ast", "symbols", URI, "--segment", &seg, "--persist-cache"];
    assert_error(
        &run(&mut s.cmd(&args, &[("TRIFECTA_DAEMON", "require")])),
        "DAEMON_UNAVAILABLE",
    );
    assert_error(
        &run(&mut s.cmd(&args, &[("TRIFECTA_DAEMON", "sometimes")])),
        "INVALID_ARGUMENT",
    );
}

#[test]
fn a_client_running_as_another_uid_is_refused_by_the_peer_check() {
    let s = Setup::new();
    let _d = s.daemon(&[("TRIFECTA_TELEMETRY", "lite")]);
    let p = s.paths();
    // Open the walls the directory provides, so only SO_PEERCRED stands between the daemon and
    // the other user (the daemon checked the directory when it started).
    for (path, mode) in [
        (s.run.path(), 0o711),
        (p.dir.as_path(), 0o711),
        (p.socket.as_path(), 0o777),
    ] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let client = |uid: Option<&str>| {
        // The daemon refuses a stranger at once, so the send may meet a closed socket; the
        // refusal line is read either way.
        let script = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\n\
                      try:\n  s.sendall(b'{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"cache.stats\"}\\n')\n\
                      except BrokenPipeError:\n  pass\n\
                      print(s.makefile().readline(),end='')\n";
        let mut c = match uid {
            Some(u) => {
                let mut c = std::process::Command::new("setpriv");
                c.args([
                    &format!("--reuid={u}"),
                    &format!("--regid={u}"),
                    "--clear-groups",
                    "/usr/bin/python3",
                ]);
                c
            }
            None => std::process::Command::new("/usr/bin/python3"),
        };
        let out = c
            .args(["-c", script])
            .arg(&p.socket)
            .output()
            .expect("run python3");
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let other = client(Some("65534"));
    assert_eq!(other["error"]["code"], -32001, "{other}");
    assert!(
        other["error"]["message"]
            .as_str()
            .unwrap()
            .contains("65534")
    );
    // Negative control: the same client as the daemon's own user is served.
    let me = client(None);
    assert!(me["result"]["daemon"]["pid"].is_number(), "{me}");
    let refused = events(s.seg(), "daemon.refused");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["result"]["reason"], "peer_uid");
}

#[test]
fn the_daemon_exits_after_its_idle_timeout() {
    let s = Setup::new();
    let mut d = s.daemon(&[("TRIFECTA_DAEMON_IDLE_S", "1")]);
    let via = s.symbols("require", &[]);
    assert_eq!(via.json["status"], "ok");
    let summary = d.wait_exit(Duration::from_secs(15));
    assert_eq!(summary["stopped_by"], "idle", "{summary}");
    assert_eq!(summary["requests"], 1);
    assert!(!s.paths().socket.exists());
}

#[test]
fn sigterm_lets_the_request_in_flight_finish_then_exits() {
    let s = Setup::new();
    let mut d = s.daemon(&[]);
    let mut conn = UnixStream::connect(s.paths().socket).unwrap();
    let req = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"ast.symbols\",\"params\":{{\"uri\":\"{URI}\"}}}}\n"
    );
    let (head, tail) = req.split_at(20);
    conn.write_all(head.as_bytes()).unwrap(); // the request is in flight
    std::thread::sleep(Duration::from_millis(200));
    d.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    // New clients are turned away at once, the daemon is still finishing ours.
    assert!(
        UnixStream::connect(s.paths().socket).is_err(),
        "no new connections while draining"
    );
    let reply = exchange(&mut conn, tail);
    assert_eq!(reply["id"], 9, "{reply}");
    assert_eq!(reply["result"]["status"], "ok", "{reply}");
    let summary = d.wait_exit(Duration::from_secs(15));
    assert_eq!(summary["stopped_by"], "signal", "{summary}");
    assert_eq!(summary["requests"], 1);
}

/// A "daemon" that is really a socket answering with garbage, or not at all.
pub(crate) fn fake_daemon(
    socket: &Path,
    reply: Option<&'static str>,
) -> std::thread::JoinHandle<()> {
    let l = UnixListener::bind(socket).unwrap();
    std::thread::spawn(move || {
        if let Ok((mut c, _)) = l.accept() {
            let mut line = String::new();
            let _ = BufReader::new(&c).read_line(&mut line);
            match reply {
                Some(r) => {
                    let _ = c.write_all(r.as_bytes());
                }
                None => std::thread::sleep(Duration::from_millis(1500)),
            }
        }
    })
}

#[test]
fn a_daemon_that_answers_garbage_or_nothing_is_answered_around() {
    let s = Setup::new();
    let p = s.paths();
    trifecta::daemon::runtime_dir::ensure_private(&p.dir).unwrap();
    let local = s.symbols("never", &[]);
    let tele = [
        ("TRIFECTA_TELEMETRY", "lite"),
        ("TRIFECTA_DAEMON_TIMEOUT_MS", "300"),
    ];
    for (reply, reason) in [
        (
            Some("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"x\":1}}\n"),
            "bad_reply",
        ),
        (None, "timeout"),
    ] {
        let server = fake_daemon(&p.socket, reply);
        let auto = s.symbols("auto", &tele);
        server.join().unwrap();
        std::fs::remove_file(&p.socket).unwrap();
        assert_eq!(auto.json["status"], "ok", "{auto:?}");
        assert_eq!(auto.json["symbols"], local.json["symbols"]);
        let fb = events(s.seg(), "daemon.fallback");
        assert_eq!(fb.last().unwrap()["result"]["reason"], reason, "{fb:?}");
    }
}

#[test]
fn cache_clear_runs_while_the_daemon_is_idle_and_the_daemon_follows_the_new_database() {
    let s = Setup::new();
    let _d = s.daemon(&[]);
    assert_eq!(s.symbols("require", &[]).json["status"], "ok");
    assert_eq!(s.symbols("require", &[]).json["cache_status"], "hit");
    let seg = s.seg().to_str().unwrap().to_string();
    let clear = run(&mut s.cmd(
        &["ast", "cache", "clear", "--segment", &seg],
        &[("TRIFECTA_AST_LOCK_TIMEOUT_MS", "500")],
    ));
    assert_eq!(
        clear.code,
        Some(0),
        "the daemon must not hold the lock while idle: {clear:?}"
    );
    // The daemon's memory tier belonged to the old database: the next answer is a miss again,
    // exactly as a local run would say.
    let after = s.symbols("require", &[]);
    assert_eq!(after.json["cache_status"], "miss", "{after:?}");
    assert_eq!(s.symbols("require", &[]).json["cache_status"], "hit");
}

#[test]
fn an_unsafe_socket_directory_is_refused() {
    let s = Setup::new();
    let p = s.paths();
    std::fs::create_dir(&p.dir).unwrap();
    std::fs::set_permissions(&p.dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let seg = s.seg().to_str().unwrap().to_string();
    assert_error(
        &run(&mut s.cmd(&["serve", "--segment", &seg], &[])),
        "DAEMON_UNAVAILABLE",
    );
    assert_error(&s.symbols("require", &[]), "DAEMON_UNAVAILABLE");
    assert_eq!(s.symbols("auto", &[]).json["status"], "ok");
}

#[test]
fn an_edited_module_is_re_extracted_in_the_background_so_the_next_cli_run_hits() {
    let s = Setup::new();
    let _d = s.daemon(&[("TRIFECTA_TELEMETRY", "lite")]);
    assert_eq!(s.symbols("never", &[]).json["status"], "ok");
    write(s.seg(), "pkg/mod.py", "def g():\n    pass\n");
    let t = Instant::now();
    while events(s.seg(), "daemon.reextract").is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no background re-extraction"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let after = s.symbols("never", &[]);
    assert_eq!(after.json["cache_status"], "hit", "{after:?}");
    assert_eq!(after.json["symbols"][0]["name"], "g");
    // Writes to the segment's own folders (telemetry, cache) never wake the watcher.
    let n = events(s.seg(), "daemon.reextract").len();
    for _ in 0..3 {
        assert_eq!(s.symbols("never", &[]).json["cache_status"], "hit");
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(events(s.seg(), "daemon.reextract").len(), n);
}

#[test]
fn index_stats_and_bad_requests_over_the_socket() {
    let s = Setup::new();
    let _d = s.daemon(&[]);
    let mut c = UnixStream::connect(s.paths().socket).unwrap();
    let index = exchange(
        &mut c,
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ast.index\",\"params\":{\"jobs\":1}}\n",
    );
    assert_eq!(index["result"]["status"], "ok", "{index}");
    let stats = exchange(
        &mut c,
        "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"cache.stats\"}\n",
    );
    assert!(
        stats["result"]["cache"]["entries"].as_u64().unwrap() >= 2,
        "{stats}"
    );
    let bad = exchange(
        &mut c,
        "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ast.symbols\",\"params\":{\"uri\":7}}\n",
    );
    assert_eq!(
        bad["error"]["data"]["error_code"], "INVALID_ARGUMENT",
        "{bad}"
    );
    let unknown = exchange(&mut c, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"rm\"}\n");
    assert_eq!(unknown["error"]["code"], -32601, "{unknown}");
    // The connection survives every error above.
    let ok = exchange(
        &mut c,
        &format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"ast.symbols\",\"params\":{{\"uri\":\"{URI}\"}}}}\n"
        ),
    );
    assert_eq!(ok["result"]["cache_status"], "hit", "{ok}");
}

/// A daemon this test did not spawn itself (`daemon start` detaches it): killed on drop by the
/// pid it reported, or else by the pid in its pid file.
pub(crate) struct Detached {
    pub(crate) pid: Option<i32>,
    pub(crate) pid_file: std::path::PathBuf,
}

impl Drop for Detached {
    fn drop(&mut self) {
        let from_file = || {
            std::fs::read_to_string(&self.pid_file)
                .ok()
                .and_then(|p| p.trim().parse().ok())
        };
        if let Some(pid) = self.pid.take().or_else(from_file) {
            // SAFETY: kill(2) on the daemon `daemon start` launched for this test's segment.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

#[test]
fn daemon_start_detaches_a_daemon_that_status_sees_and_stop_drains() {
    let s = Setup::new();
    let seg = s.seg().to_str().unwrap().to_string();
    let mut guard = Detached {
        pid: None,
        pid_file: s.paths().pid,
    };
    let start = run(&mut s.cmd(&["daemon", "start", "--segment", &seg], &[]));
    assert_eq!(start.json["daemon"], "started", "{start:?}");
    let pid = start.json["pid"].as_i64().expect("start reports the pid") as i32;
    guard.pid = Some(pid);
    let via = s.symbols("require", &[]);
    assert_eq!(via.json["status"], "ok", "{via:?}");
    let status = run(&mut s.cmd(&["daemon", "status", "--segment", &seg], &[]));
    assert_eq!(
        (status.json["daemon"].clone(), status.json["pid"].clone()),
        ("running".into(), pid.into())
    );
    let stop = run(&mut s.cmd(&["daemon", "stop", "--segment", &seg], &[]));
    assert_eq!(stop.json["daemon"], "stopped", "{stop:?}");
    // Gone, or a zombie waiting for whoever adopted it (`daemon start` has exited).
    let alive = || {
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
            st.rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        });
        // SAFETY: signal 0 only asks whether the process exists.
        unsafe { libc::kill(pid, 0) == 0 && !zombie }
    };
    let t = Instant::now();
    while alive() {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the daemon did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    guard.pid = None;
    guard.pid_file = std::path::PathBuf::new();
    let gone = run(&mut s.cmd(&["daemon", "status", "--segment", &seg], &[]));
    assert_eq!(gone.json["daemon"], "not_running", "{gone:?}");
    let again = run(&mut s.cmd(&["daemon", "stop", "--segment", &seg], &[]));
    assert_eq!(again.json["daemon"], "not_running", "{again:?}");
}

/// `trifecta ast cache stats --format <format>` on `s`'s segment.
fn cache_stats(s: &Setup, extra: &[&str]) -> crate::support::Outcome {
    let seg = s.seg().to_str().unwrap().to_string();
    let mut args = vec!["ast", "cache", "stats", "--segment", &seg];
    args.extend_from_slice(extra);
    run(&mut s.cmd(&args, &[]))
}

/// The lookup counters of a stats document: (hits, misses, memory, local, refreshes).
fn counts(stats: &Value) -> [Value; 5] {
    [
        stats["hits"].clone(),
        stats["misses"].clone(),
        stats["levels"]["memory"].clone(),
        stats["levels"]["local"].clone(),
        stats["background_refreshes"].clone(),
    ]
}

#[test]
fn cache_stats_count_memory_tier_hits_as_hits_and_background_refreshes_apart() {
    use serde_json::json;
    const N: i64 = 7;
    let s = Setup::new();
    let mut d = s.daemon(&[]);
    // A CLI process caches the module (a local miss), then the daemon's first request finds it
    // in SQLite (a memory miss, then a local hit) and N more are answered from its memory.
    assert_eq!(s.symbols("never", &[]).json["cache_status"], "miss");
    let mut c = UnixStream::connect(s.paths().socket).unwrap();
    let req = |id: i64| {
        format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"ast.symbols\",\"params\":{{\"uri\":\"{URI}\"}}}}\n"
        )
    };
    for id in 0..=N {
        let r = exchange(&mut c, &req(id));
        assert_eq!(r["result"]["cache_status"], "hit", "{r}");
    }
    let want = [
        json!(N + 1),
        json!(1),
        json!({"hits": N, "misses": 1}),
        json!({"hits": 1, "misses": 1}),
        json!({"extracted": 0, "already_cached": 0}),
    ];
    // `cache.stats` through the daemon appends its buffered tallies first: exact at once.
    let stats_req = "{\"jsonrpc\":\"2.0\",\"id\":99,\"method\":\"cache.stats\"}\n";
    let via = exchange(&mut c, stats_req);
    assert_eq!(counts(&via["result"]["cache"]), want, "{via}");
    assert_eq!(counts(&cache_stats(&s, &["--format", "json"]).json), want);

    // A state that differs: CLI processes answering themselves count at the local level only.
    for _ in 0..3 {
        assert_eq!(s.symbols("never", &[]).json["cache_status"], "hit");
    }
    let direct = cache_stats(&s, &["--format", "json"]).json;
    assert_eq!(direct["levels"]["memory"], json!({"hits": N, "misses": 1}));
    assert_eq!(direct["levels"]["local"]["hits"], 4);
    assert_eq!(direct["hits"], N + 4);

    // An edit: the watcher re-extracts the module in the background. That is a refresh, not a
    // miss (nobody asked), so misses and the hit rate stay as they were.
    // Renamed into place, so the watcher sees one complete edit (and re-extracts it once).
    let tmp = s.seg().join("pkg/.mod.py.tmp");
    std::fs::write(&tmp, "def g():\n    pass\n").unwrap();
    std::fs::rename(&tmp, s.seg().join("pkg/mod.py")).unwrap();
    let t = Instant::now();
    let refreshed = loop {
        let st = cache_stats(&s, &["--format", "json"]).json;
        if st["background_refreshes"]["extracted"].as_i64() >= Some(1) {
            break st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no refresh counted: {st}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(refreshed["background_refreshes"]["extracted"], 1);
    assert_eq!(refreshed["misses"], 1, "a refresh counted as a miss");
    assert_eq!(refreshed["hits"], N + 4, "a refresh counted as a hit");
    assert_eq!(
        refreshed["misses_by_reason"],
        json!({"cold_cache_empty": 1})
    );
    // The refreshed entry is in the daemon's memory: the next request is a memory hit.
    let r = exchange(&mut c, &req(100));
    assert_eq!(r["result"]["symbols"][0]["name"], "g", "{r}");
    let via = exchange(&mut c, stats_req);
    assert_eq!(via["result"]["cache"]["levels"]["memory"]["hits"], N + 1);
    let text = cache_stats(&s, &["--format", "text"]).stdout;
    for row in [
        "memory (daemon)",
        "Daemon memory tier",
        "Background refreshes",
    ] {
        assert!(text.contains(row), "{row:?} missing:\n{text}");
    }

    // `--zero` zeroes every counter, the daemon's included.
    let zeroed = cache_stats(&s, &["--zero", "--format", "json"]).json;
    let zero = [
        json!(0),
        json!(0),
        json!({"hits": 0, "misses": 0}),
        json!({"hits": 0, "misses": 0}),
        json!({"extracted": 0, "already_cached": 0}),
    ];
    assert_eq!(counts(&zeroed), zero, "{zeroed}");
    drop(c);
    d.signal(libc::SIGTERM);
    d.wait_exit(Duration::from_secs(20));
}

#[test]
fn a_package_created_while_the_daemon_runs_is_watched_and_re_extracted() {
    let s = Setup::new();
    let _d = s.daemon(&[]);
    // A new directory, and a module written into it at once (possibly before the watch on the
    // new directory exists: the watcher scans what it finds there).
    std::fs::create_dir(s.seg().join("fresh")).unwrap();
    write(s.seg(), "fresh/__init__.py", "");
    write(s.seg(), "fresh/mod.py", "def h():\n    pass\n");
    let t = Instant::now();
    while cache_stats(&s, &["--format", "json"]).json["background_refreshes"]["extracted"].as_i64()
        < Some(2)
    {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the new package was not re-extracted"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let seg = s.seg().to_str().unwrap().to_string();
    let args = [
        "ast",
        "symbols",
        "sym://python/mod/fresh.mod",
        "--segment",
        &seg,
        "--persist-cache",
        "--daemon",
        "never",
    ];
    let out = run(&mut s.cmd(&args, &[]));
    assert_eq!(out.json["cache_status"], "hit", "{out:?}");
    assert_eq!(out.json["symbols"][0]["name"], "h");
}
