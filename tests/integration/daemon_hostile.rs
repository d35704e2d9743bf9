//! The daemon against hostile clients and a hostile environment, with real processes: each
//! test here is a finding of the hostile-user probe of issue 14 and fails without its fix.
//!
//! Clients: a request line that never ends, connections that send nothing or half a line, a
//! client that never reads its replies, a half-closed client, ids that would not round-trip.
//! Environment: a wedged daemon whose backlog is full, replies for another request or another
//! segment, a socket path that leads to another segment's daemon, pid files that lie or are
//! FIFOs, links planted in the private directory, an unsafe parent of that directory.

use super::daemon::{Daemon, Detached, Setup, URI, events, exchange};
use crate::support::{assert_error, run};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::{Duration, Instant};

fn request(id: u64) -> String {
    format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"ast.symbols\",\"params\":{{\"uri\":\"{URI}\"}}}}\n"
    )
}

/// The daemon's peak resident memory in KiB (`VmHWM`).
fn peak_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_request_line_that_never_ends_is_cut_off_at_the_limit_not_buffered() {
    let s = Setup::new();
    let d = s.daemon(&[]);
    let mut c = UnixStream::connect(s.paths().socket).unwrap();
    c.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let chunk = vec![b'a'; 1 << 20];
    let mut sent = 0usize;
    while sent < 64 << 20 {
        match c.write(&chunk) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    assert!(
        sent < 8 << 20,
        "the daemon kept reading a line without end: {sent} bytes"
    );
    let mut reply = String::new();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = BufReader::new(&c).read_line(&mut reply);
    let v: Value = serde_json::from_str(&reply).unwrap_or(Value::Null);
    assert_eq!(v["error"]["code"], -32600, "{reply}");
    assert!(
        peak_kib(d.pid()) < 48 * 1024,
        "the daemon buffered the line"
    );
    // And it goes on serving.
    assert_eq!(s.symbols("require", &[]).json["status"], "ok");
}

#[test]
fn silent_and_slow_connections_cannot_lock_honest_clients_out() {
    let s = Setup::new();
    let _d = s.daemon(&[("TRIFECTA_DAEMON_REQUEST_TIMEOUT_MS", "400")]);
    let socket = s.paths().socket;
    // Half a request, never finished: closed with an error once the request timeout is over.
    let mut slow = UnixStream::connect(&socket).unwrap();
    slow.write_all(b"{\"jsonrpc\":").unwrap();
    // As many silent connections as the default cap.
    let silent: Vec<UnixStream> = (0..64)
        .map(|_| UnixStream::connect(&socket).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let honest = s.symbols("require", &[]);
    assert_eq!(honest.json["status"], "ok", "{honest:?}");
    slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut line = String::new();
    BufReader::new(&slow).read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["error"]["code"], -32003, "{line}");
    // A connection idle longest made room for the honest client: it was closed (which one
    // is a matter of milliseconds, so look at all of them).
    let closed = |c: &UnixStream| {
        c.set_nonblocking(true).unwrap();
        matches!((&*c).read(&mut [0u8; 1]), Ok(0))
    };
    let t = Instant::now();
    while !silent.iter().any(closed) {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "no connection was evicted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_client_that_never_reads_its_replies_does_not_pin_the_daemon() {
    let s = Setup::new();
    let mut d = s.daemon(&[
        ("TRIFECTA_DAEMON_IDLE_S", "1"),
        ("TRIFECTA_DAEMON_REQUEST_TIMEOUT_MS", "300"),
    ]);
    let c = UnixStream::connect(s.paths().socket).unwrap();
    c.set_nonblocking(true).unwrap();
    let line = request(1);
    let mut queued = 0;
    while queued < 100_000 {
        match (&c).write(line.as_bytes()) {
            Ok(_) => queued += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(_) => break,
        }
    }
    // The connection stays open and unread: the daemon must still give up on it and go idle.
    let summary = d.wait_exit(Duration::from_secs(15));
    assert_eq!(summary["stopped_by"], "idle", "{summary}");
    drop(c);
}

#[test]
fn a_daemon_that_stops_accepting_does_not_hang_the_cli() {
    let s = Setup::new();
    let p = s.paths();
    trifecta::daemon::runtime_dir::ensure_private(&p.dir).unwrap();
    // A wedged daemon: listening with a backlog of one, never accepting.
    let wedged = UnixListener::bind(&p.socket).unwrap();
    // SAFETY: listen(2) on a socket this test owns; a second listen sets the backlog.
    assert_eq!(unsafe { libc::listen(wedged.as_raw_fd(), 0) }, 0);
    let _ = s.symbols("never", &[]); // warm: every answer below is a hit
    let local = s.symbols("never", &[]);
    let seg = s.seg().to_str().unwrap().to_string();
    for _ in 0..3 {
        let t = Instant::now();
        let args = ["ast", "symbols", URI, "--segment", &seg, "--persist-cache"];
        let auto = run(s
            .cmd(&args, &[("TRIFECTA_DAEMON_TIMEOUT_MS", "300")])
            .timeout(Duration::from_secs(8)));
        assert_eq!(auto.code, Some(0), "{auto:?}");
        assert_eq!(auto.stdout, local.stdout);
        assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    }
}

/// A socket that answers one request with `reply`.
fn answer_once(socket: &Path, reply: String) -> std::thread::JoinHandle<()> {
    let l = UnixListener::bind(socket).unwrap();
    std::thread::spawn(move || {
        if let Ok((mut c, _)) = l.accept() {
            let mut line = String::new();
            let _ = BufReader::new(&c).read_line(&mut line);
            let _ = c.write_all(reply.as_bytes());
        }
    })
}

#[test]
fn replies_for_another_request_or_another_segment_are_never_printed() {
    let s = Setup::new();
    let p = s.paths();
    trifecta::daemon::runtime_dir::ensure_private(&p.dir).unwrap();
    let _ = s.symbols("never", &[]); // warm: every answer below is a hit
    let local = s.symbols("never", &[]);
    let mut forged = local.json.clone();
    forged["symbols"][0]["name"] = json!("forged");
    let mut elsewhere = forged.clone();
    elsewhere["segment_root"] = json!("/elsewhere");
    let tele = [
        ("TRIFECTA_TELEMETRY", "lite"),
        ("TRIFECTA_DAEMON_TIMEOUT_MS", "2000"),
    ];
    for (id, result) in [(2, &forged), (1, &elsewhere)] {
        let reply = format!(
            "{}\n",
            json!({"jsonrpc": "2.0", "id": id, "result": result})
        );
        let server = answer_once(&p.socket, reply);
        let auto = s.symbols("auto", &tele);
        server.join().unwrap();
        std::fs::remove_file(&p.socket).unwrap();
        assert_eq!(auto.stdout, local.stdout, "a forged reply was printed");
        let fb = events(s.seg(), "daemon.fallback");
        assert_eq!(
            fb.last().unwrap()["result"]["reason"],
            "bad_reply",
            "{fb:?}"
        );
    }
}

#[test]
fn protocol_edge_cases_over_the_socket() {
    let s = Setup::new();
    let _d = s.daemon(&[]);
    let mut c = UnixStream::connect(s.paths().socket).unwrap();
    // An id beyond 64 bits would come back as a different number: refused, not altered.
    let big = exchange(
        &mut c,
        "{\"jsonrpc\":\"2.0\",\"id\":99999999999999999999999,\"method\":\"daemon.status\"}\n",
    );
    assert_eq!(big["error"]["code"], -32600, "{big}");
    let batch = exchange(&mut c, &format!("[{}]\n", request(1).trim()));
    assert_eq!(batch["error"]["code"], -32600, "{batch}");
    // A notification gets no reply; the next request is answered in order.
    c.write_all(b"{\"jsonrpc\":\"2.0\",\"method\":\"daemon.status\"}\n")
        .unwrap();
    let status = exchange(
        &mut c,
        "{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"method\":\"daemon.status\"}\n",
    );
    assert_eq!(status["id"], "s", "{status}");
    assert!(status["result"]["pid"].is_number(), "{status}");
    // A half-closed client's last request needs no newline.
    let mut h = UnixStream::connect(s.paths().socket).unwrap();
    h.write_all(request(7).trim_end().as_bytes()).unwrap();
    h.shutdown(std::net::Shutdown::Write).unwrap();
    h.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reply = String::new();
    BufReader::new(&h).read_line(&mut reply).unwrap();
    let v: Value = serde_json::from_str(&reply).unwrap_or(Value::Null);
    assert_eq!(v["id"], 7, "{reply}");
}

/// Whether `pid` is a live process (a zombie counts as gone).
fn alive(pid: i32) -> bool {
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
        st.rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'))
    });
    // SAFETY: signal 0 only asks whether the process exists.
    unsafe { libc::kill(pid, 0) == 0 && !zombie }
}

#[test]
fn stop_and_status_trust_the_daemon_over_its_socket_not_the_pid_file() {
    let a = Setup::new();
    let b = Setup::new();
    let _db = b.daemon(&[]);
    let seg = |s: &Setup| s.seg().to_str().unwrap().to_string();
    let pa = a.paths();
    trifecta::daemon::runtime_dir::ensure_private(&pa.dir).unwrap();
    // A's socket path leads to B's daemon, and A's pid file names a live process of ours that
    // is no daemon at all.
    std::fs::hard_link(b.paths().socket, &pa.socket).unwrap();
    let mut bystander = Daemon {
        child: Some(
            std::process::Command::new("sleep")
                .arg("30")
                .spawn()
                .unwrap(),
        ),
    };
    std::fs::write(&pa.pid, format!("{}\n", bystander.pid())).unwrap();
    let status = run(&mut a.cmd(&["daemon", "status", "--segment", &seg(&a)], &[]));
    assert_eq!(status.json["daemon"], "not_running", "{status:?}");
    assert_eq!(status.json["pid"], Value::Null);
    let stop = run(&mut a.cmd(&["daemon", "stop", "--segment", &seg(&a)], &[]));
    assert_eq!(stop.json["daemon"], "not_running", "{stop:?}");
    assert!(
        alive(bystander.pid()),
        "a process that is no daemon was signalled"
    );
    let other = run(&mut b.cmd(&["daemon", "status", "--segment", &seg(&b)], &[]));
    assert_eq!(
        other.json["daemon"], "running",
        "another segment's daemon was stopped"
    );
    bystander.child.take().map(|mut c| c.kill());
    std::fs::remove_file(&pa.socket).unwrap();
    // A's own daemon, its pid file overwritten with pid 1: the daemon's word counts.
    let mut da = a.daemon(&[]);
    std::fs::write(&pa.pid, "1\n").unwrap();
    let status = run(&mut a.cmd(&["daemon", "status", "--segment", &seg(&a)], &[]));
    assert_eq!(status.json["pid"], da.pid(), "{status:?}");
    let stop = run(&mut a.cmd(&["daemon", "stop", "--segment", &seg(&a)], &[]));
    assert_eq!(
        (stop.json["daemon"].clone(), stop.json["pid"].clone()),
        ("stopped".into(), da.pid().into())
    );
    da.wait_exit(Duration::from_secs(15));
    assert!(alive(1));
}

#[test]
fn files_planted_in_the_private_directory_are_never_followed_and_never_hang() {
    let s = Setup::new();
    let p = s.paths();
    let seg = s.seg().to_str().unwrap().to_string();
    trifecta::daemon::runtime_dir::ensure_private(&p.dir).unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victims = [
        (p.socket.with_extension("log"), outside.path().join("log")),
        (p.pid.with_extension("pid.tmp"), outside.path().join("pid")),
    ];
    for (planted, victim) in &victims {
        std::fs::write(victim, "precious\n").unwrap();
        std::os::unix::fs::symlink(victim, planted).unwrap();
    }
    let mut guard = Detached {
        pid: None,
        pid_file: p.pid.clone(),
    };
    let start = run(&mut s.cmd(&["daemon", "start", "--segment", &seg], &[]));
    assert_eq!(start.json["daemon"], "started", "{start:?}");
    guard.pid = start.json["pid"].as_i64().map(|p| p as i32);
    for (_, victim) in &victims {
        assert_eq!(std::fs::read_to_string(victim).unwrap(), "precious\n");
    }
    // A FIFO where the pid file is: nothing may block opening it.
    std::fs::remove_file(&p.pid).unwrap();
    let fifo = std::ffi::CString::new(p.pid.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) on a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let bounded = |args: &[&str]| run(s.cmd(args, &[]).timeout(Duration::from_secs(10)));
    let status = bounded(&["daemon", "status", "--segment", &seg]);
    assert_eq!(status.json["daemon"], "running", "{status:?}");
    assert_error(
        &bounded(&["serve", "--segment", &seg]),
        "DAEMON_ALREADY_RUNNING",
    );
    let stop = bounded(&["daemon", "stop", "--segment", &seg]);
    assert_eq!(stop.json["daemon"], "stopped", "{stop:?}");
    guard.pid = None;
    guard.pid_file = std::path::PathBuf::new();
}

#[test]
fn a_socket_directory_in_a_parent_others_can_write_is_refused() {
    let s = Setup::new();
    let seg = s.seg().to_str().unwrap().to_string();
    let open = tempfile::tempdir().unwrap();
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let xdg = [("XDG_RUNTIME_DIR", open.path().to_str().unwrap())];
    let serve = run(s
        .cmd(&["serve", "--segment", &seg], &xdg)
        .timeout(Duration::from_secs(5)));
    assert_error(&serve, "DAEMON_UNAVAILABLE");
    assert!(
        serve.json["message"].as_str().unwrap().contains("sticky"),
        "{serve:?}"
    );
    // Negative control: a link to a private directory is a fine XDG_RUNTIME_DIR.
    let link = open.path().join("xdg");
    std::os::unix::fs::symlink(s.run.path(), &link).unwrap();
    let xdg = [("XDG_RUNTIME_DIR", link.to_str().unwrap())];
    let mut guard = Detached {
        pid: None,
        pid_file: s.paths().pid,
    };
    let start = run(&mut s.cmd(&["daemon", "start", "--segment", &seg], &xdg));
    assert_eq!(start.json["daemon"], "started", "{start:?}");
    guard.pid = start.json["pid"].as_i64().map(|p| p as i32);
    let stop = run(&mut s.cmd(&["daemon", "stop", "--segment", &seg], &xdg));
    assert_eq!(stop.json["daemon"], "stopped", "{stop:?}");
    guard.pid = None;
}

#[test]
fn a_daemon_whose_segment_is_renamed_away_stops() {
    let s = Setup::new();
    let mut d = s.daemon(&[]);
    let away = s.seg().with_extension("moved");
    std::fs::rename(s.seg(), &away).unwrap();
    let summary = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        d.wait_exit(Duration::from_secs(10))
    }));
    std::fs::rename(&away, s.seg()).unwrap();
    let summary = summary.expect("the daemon kept running for a segment that is gone");
    assert_eq!(summary["stopped_by"], "segment_gone", "{summary}");
    assert!(!s.paths().socket.exists());
}

#[test]
fn a_daemon_that_does_not_answer_is_reported_unresponsive_and_never_signalled() {
    let s = Setup::new();
    let mut d = s.daemon(&[]);
    let seg = s.seg().to_str().unwrap().to_string();
    let quick = [("TRIFECTA_DAEMON_TIMEOUT_MS", "300")];
    d.signal(libc::SIGSTOP);
    let status = run(&mut s.cmd(&["daemon", "status", "--segment", &seg], &quick));
    let stop = run(&mut s.cmd(&["daemon", "stop", "--segment", &seg], &quick));
    d.signal(libc::SIGCONT);
    assert_eq!(status.json["daemon"], "unresponsive", "{status:?}");
    assert_error(&stop, "DAEMON_UNAVAILABLE");
    // No signal was sent: once continued it reads the shutdown request that `stop` left in
    // its queue and drains as asked (a signal would say "signal", a kill would not exit 0).
    let summary = d.wait_exit(Duration::from_secs(15));
    assert_eq!(summary["stopped_by"], "shutdown", "{summary}");
}

#[test]
fn the_daemon_limits_are_range_checked_settings() {
    let s = Setup::new();
    let seg = s.seg().to_str().unwrap().to_string();
    for (var, bad) in [
        ("TRIFECTA_DAEMON_MAX_CONNECTIONS", "0"),
        ("TRIFECTA_DAEMON_MAX_CONNECTIONS", "1025"),
        ("TRIFECTA_DAEMON_REQUEST_TIMEOUT_MS", "60001"),
        ("TRIFECTA_DAEMON_REQUEST_TIMEOUT_MS", "soon"),
    ] {
        let serve = run(s
            .cmd(&["serve", "--segment", &seg], &[(var, bad)])
            .timeout(Duration::from_secs(10)));
        assert_error(&serve, "INVALID_ARGUMENT");
        assert!(serve.json["message"].as_str().unwrap().contains(var));
    }
    // Their values in force are listed with the other settings.
    let config = run(&mut s.cmd(&["config"], &[("TRIFECTA_DAEMON_MAX_CONNECTIONS", "8")]));
    let text = config.stdout;
    assert!(
        text.contains("TRIFECTA_DAEMON_MAX_CONNECTIONS")
            && text.contains("daemon.request_timeout_ms"),
        "{text}"
    );
}
