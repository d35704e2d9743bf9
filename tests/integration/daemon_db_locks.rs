//! The daemon keeps SQLite's POSIX locks on the database while its threads work concurrently.
//!
//! SQLite's locks are `fcntl` locks owned by the process, and closing any descriptor of the
//! database file drops all of them (see `src/cache/sqlite/probe.rs`). The test holds one daemon
//! connection open on purpose (a long `ast.index` request, whose connection keeps SQLite's
//! `SHARED` lock from its first read until it finishes), sends `ast.symbols` requests for
//! modules the daemon has not seen on another connection (each opens the cache and probes the
//! database header on another thread), and after each answer looks, **from this process**, at
//! the locks on the database file (`F_GETLK`): the daemon's lock must still be there while the
//! index runs. Then a CLI process opens and closes the cache; if it could take `EXCLUSIVE` on
//! close it would checkpoint and truncate the WAL under the index, so the index must also report
//! no store failure.
//!
//! A source check keeps the rule from being broken elsewhere: outside `probe.rs`, no library
//! code opens the database or its `-wal`/`-shm` by its cache names (see
//! [`raw_database_opens`]).
//!
//! With the mutant `probe-closes-db` (the probe reads through a descriptor of its own and closes
//! it, the bug the gate `p2-daemon-cli` once met as `disk I/O error`) the lock is gone after the
//! first probe, deterministically: SQLite believes it still holds it, so it never takes it
//! again while the index's connection stays open.

use crate::support::{scrub, trifecta, write};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Modules to index: enough for the index to outlast a few probes in a debug build.
const MODULES: usize = 1500;
/// Probes (`ast.symbols` misses) sent while the index runs.
const PROBES: usize = 4;

/// A daemon process, killed by pid and reaped on drop whatever happened.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A segment with [`MODULES`] modules for the index and [`PROBES`] more for the probes, and a
/// private runtime directory for its daemon.
struct Setup {
    seg: tempfile::TempDir,
    run: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let seg = tempfile::tempdir().unwrap();
        let body: String = (0..12)
            .map(|i| {
                format!(
                    "def f{i}(a, b=1):\n    return a + b\n\nclass C{i}:\n    def m(self): ...\n\n"
                )
            })
            .collect();
        write(seg.path(), "bulk/__init__.py", "");
        for i in 0..MODULES {
            write(seg.path(), &format!("bulk/m{i}.py"), &body);
        }
        for i in 0..PROBES {
            write(
                seg.path(),
                &format!("probe{i}.py"),
                &format!("def p{i}(): ...\n"),
            );
        }
        let run = tempfile::tempdir().unwrap();
        std::fs::set_permissions(run.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        Setup { seg, run }
    }

    fn db(&self) -> PathBuf {
        self.seg.path().join(".trifecta/cache/ast_cache.db")
    }

    fn socket(&self) -> PathBuf {
        let root = std::fs::canonicalize(self.seg.path()).unwrap();
        let dir = trifecta::daemon::runtime_dir::private_dir(Some(self.run.path()));
        trifecta::daemon::runtime_dir::paths_in(&dir, &root)
            .unwrap()
            .socket
    }

    /// `trifecta serve`, with `mutant` switched on when given, once it accepts connections.
    fn daemon(&self, mutant: Option<&str>) -> Daemon {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("trifecta"));
        scrub(&mut c)
            .env("XDG_RUNTIME_DIR", self.run.path())
            .args(["serve", "--segment"])
            .arg(self.seg.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(m) = mutant {
            c.env("TRIFECTA_MUTANT", m);
        }
        let d = Daemon(c.spawn().expect("spawn trifecta serve"));
        let t = Instant::now();
        while UnixStream::connect(self.socket()).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the daemon never accepted"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        d
    }
}

/// The pid of a process holding any `fcntl` lock on `db` that a write lock on the whole file
/// would conflict with, as the kernel reports it to this (other) process; `None` when free.
fn lock_holder(db: &Path) -> Option<i32> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(db)
        .ok()?;
    // SAFETY: an all-zero `flock` is a valid value of this plain C struct.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: F_GETLK on a descriptor we own, with a pointer to a live `flock`.
    let rc = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETLK, &mut fl) };
    assert_eq!(rc, 0, "F_GETLK: {}", std::io::Error::last_os_error());
    // Closing `f` drops only this test process's locks, of which there are none.
    (fl.l_type != libc::F_UNLCK as libc::c_short).then_some(fl.l_pid)
}

fn request(stream: &mut UnixStream, id: usize, method: &str, params: &str) {
    let line = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"{method}\",\"params\":{params}}}\n"
    );
    stream.write_all(line.as_bytes()).unwrap();
}

fn reply(stream: &UnixStream) -> Value {
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    serde_json::from_str(&line).unwrap_or(Value::Null)
}

/// Whether a reply is already waiting on `stream` (the index has finished).
fn has_reply(stream: &UnixStream) -> bool {
    let mut pfd = libc::pollfd {
        fd: stream.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll on one live descriptor we own, without waiting.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0 && pfd.revents & libc::POLLIN != 0
}

/// What the test saw of the daemon's lock while its index ran.
struct Seen {
    /// Probes answered while the index was still running.
    probes_during_index: usize,
    /// Of those, after how many the daemon no longer held a lock on the database.
    lock_lost_after: Option<usize>,
    /// The index's answer.
    index: Value,
    /// A CLI `ast symbols` run between the probes and the end of the index.
    cli: crate::support::Outcome,
}

fn probe_during_index(mutant: Option<&str>) -> Seen {
    let s = Setup::new();
    let d = s.daemon(mutant);
    let pid = d.0.id() as i32;
    let mut index = UnixStream::connect(s.socket()).unwrap();
    request(&mut index, 1, "ast.index", "{\"jobs\":1}");
    let t = Instant::now();
    while lock_holder(&s.db()) != Some(pid) {
        assert!(
            !has_reply(&index),
            "the index finished before its lock was seen"
        );
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the daemon never locked the database"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut probes = UnixStream::connect(s.socket()).unwrap();
    let (mut during, mut lost) = (0, None);
    for i in 0..PROBES {
        request(
            &mut probes,
            10 + i,
            "ast.symbols",
            &format!("{{\"uri\":\"sym://python/mod/probe{i}\"}}"),
        );
        let r = reply(&probes);
        assert_eq!(r["result"]["status"], "ok", "{r}");
        let held = lock_holder(&s.db()) == Some(pid);
        if has_reply(&index) {
            break;
        }
        during += 1;
        if !held && lost.is_none() {
            lost = Some(during);
        }
    }
    let seg = s.seg.path().to_str().unwrap().to_string();
    let mut cli = trifecta();
    cli.env("XDG_RUNTIME_DIR", s.run.path())
        .args([
            "ast",
            "symbols",
            "sym://python/mod/probe0",
            "--segment",
            &seg,
        ])
        .args(["--persist-cache", "--daemon", "never"]);
    let cli = crate::support::run(&mut cli);
    let index = reply(&index);
    drop(d);
    Seen {
        probes_during_index: during,
        lock_lost_after: lost,
        index,
        cli,
    }
}

#[test]
fn probes_during_an_index_keep_the_daemons_lock_on_the_database() {
    let seen = probe_during_index(None);
    eprintln!(
        "probes checked while the index ran: {}",
        seen.probes_during_index
    );
    assert!(
        seen.probes_during_index >= 1,
        "the index ended before any probe could be checked: raise MODULES"
    );
    assert_eq!(
        seen.lock_lost_after, None,
        "a probe on another thread dropped the index's SQLite lock"
    );
    assert_eq!(seen.cli.code, Some(0), "{:?}", seen.cli);
    let r = &seen.index["result"];
    assert_eq!(r["status"], "ok", "{}", seen.index);
    assert_eq!(r["files"], MODULES + 1 + PROBES, "{}", seen.index);
    assert_eq!(r["store_failures"], 0, "{}", seen.index);
}

/// The negative test: with the probe closing its own descriptor, the check above fails.
#[cfg(debug_assertions)]
#[test]
fn the_probe_closes_db_mutant_loses_the_daemons_lock() {
    let seen = probe_during_index(Some("probe-closes-db"));
    assert!(
        seen.probes_during_index >= 1,
        "the index ended before any probe could be checked: raise MODULES"
    );
    assert_eq!(
        seen.lock_lost_after,
        Some(1),
        "the first probe under the mutant must drop the lock; index: {}",
        seen.index
    );
    // What the lost lock did to the index is timing-dependent (a CLI close that gets
    // EXCLUSIVE truncates the WAL under it); printed for the record, not asserted.
    eprintln!(
        "probe-closes-db: index {} / CLI exit {:?}",
        seen.index["result"], seen.cli.code
    );
}

/// Names through which the library reaches the database file and its sidecars.
const DB_NAMES: &[&str] = &[
    "db_at",
    "sidecar(",
    "with_suffix(",
    "ctx.db",
    "cache_db_path(",
];

/// Opens of the database or a sidecar in `source` (the code before its `#[cfg(test)]` module),
/// as `line: excerpt`: an `.open(` whose receiver, or a `File::open(`/`OpenOptions` whose
/// argument, names the database by one of [`DB_NAMES`]. A textual check, so it sees the ways
/// the code base names the file today; `probe.rs`'s module docs list the reviewed exceptions.
fn raw_database_opens(source: &str) -> Vec<String> {
    let code = source.split("#[cfg(test)]").next().unwrap_or_default();
    // Whitespace removed, so a call split over lines still matches.
    let flat: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(i) = flat[at..].find("open(") {
        let start = at + i;
        at = start + 5;
        let before = &flat[..start];
        let from = before.rfind([';', '{', '}', '=']).map_or(0, |k| k + 1);
        let receiver = &before[from..];
        let arg_end = flat[at..].find(')').map_or(flat.len(), |k| at + k);
        let arg = &flat[at..arg_end];
        let names_db = |t: &str| DB_NAMES.iter().any(|n| t.contains(n));
        let method_on_db = receiver.ends_with('.') && names_db(receiver);
        let path_is_db =
            (receiver.ends_with("File::") || receiver.contains("OpenOptions")) && names_db(arg);
        if method_on_db || path_is_db {
            found.push(format!("{receiver}open({arg})"));
        }
    }
    found
}

#[test]
fn only_the_probe_opens_the_database_file_outside_sqlite() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut dirs = vec![src.clone()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("tests.rs") {
                files.push(p);
            }
        }
    }
    let allowed = src.join("cache/sqlite/probe.rs");
    let mut wrong = Vec::new();
    for f in files.iter().filter(|f| **f != allowed) {
        for hit in raw_database_opens(&std::fs::read_to_string(f).unwrap()) {
            wrong.push(format!("{}: {hit}", f.display()));
        }
    }
    assert!(files.len() > 50, "the walk found the sources");
    assert!(
        wrong.is_empty(),
        "the database opened outside SQLite and probe.rs (a close would drop the process's \
         SQLite locks; read through probe.rs or SQLite):\n{}",
        wrong.join("\n")
    );
    // The probe itself is seen by the check (so the check is looking at the right text).
    let probe = std::fs::read_to_string(&allowed).unwrap();
    assert!(!raw_database_opens(&probe.replace("db.open(", "ctx.db_at.open(")).is_empty());
}

/// The check's negative test: each way of opening the database raw is reported, and an open of
/// another file is not.
#[test]
fn the_raw_open_check_sees_opens_of_the_database_and_its_sidecars() {
    let bad = [
        "let f = ctx.db_at.open(Access::Read)?;",
        "let f = ctx\n    .sidecar(\"-shm\")\n    .open(Access::ReadWrite { create: false })?;",
        "let f = std::fs::File::open(&ctx.db)?;",
        "let f = OpenOptions::new().read(true).open(cache_db_path(dir))?;",
    ];
    for b in bad {
        assert_eq!(raw_database_opens(b).len(), 1, "{b}");
    }
    let fine = "let f = tmp.open(Access::Read)?; let g = path(cache_dir).open(Access::Append { create: true })?;";
    assert!(raw_database_opens(fine).is_empty());
    let in_tests =
        "fn a() {}\n#[cfg(test)]\nmod tests { fn b() { ctx.db_at.open(Access::Read); } }";
    assert!(raw_database_opens(in_tests).is_empty());
}
