//! The daemon process: one per segment, answering JSON-RPC requests on a Unix socket.
//!
//! Life cycle: take the instance lock (`flock`, held for the process's life: a second daemon for
//! the segment is refused, and a crashed one's lock vanishes with it), remove whatever socket
//! and pid file a dead predecessor left (holding the lock proves they are stale), write the pid
//! file, run cache maintenance, start watching the segment, bind (only now can clients connect,
//! so they always find the pid and an active watch), then accept until one of: SIGTERM/SIGINT,
//! a `shutdown` request, or no request for the idle timeout. Stopping is a drain: no new connection is
//! accepted, each open connection finishes the request it is reading or running, and only then
//! does the process remove its socket and pid file and exit.
//!
//! Every connection's peer uid (`SO_PEERCRED`) must be the daemon's own; anyone else gets a
//! `REFUSED` error line and the connection is closed. The private directory already keeps other
//! users out (see [`super::runtime_dir`]); this is the second wall, and the one that still
//! stands if the directory's mode is ever loosened.
//!
//! Requests run [`crate::commands::symbols::run_with`], the CLI's own code path, with the
//! daemon's [`HotTier`] in front of the cache; the database is opened per request that misses
//! the tier and released before the next wait, so the shared cache lock is never held while
//! idle and `ast cache clear` or recovery in another process can always take it exclusively.
//! Threads open the database concurrently: nothing but SQLite ever closes a descriptor of it
//! in this process, so no thread can drop another's POSIX locks (`cache/sqlite/probe.rs`).

use super::protocol::{self, Method, Request};
use super::runtime_dir::{self, DaemonPaths};
use super::signals;
use crate::cache::hot_tier::HotTier;
use crate::cache::service::{SymbolCache, elapsed_ms};
use crate::cli::{CacheFlags, IndexArgs, OutputFormat, SymbolsArgs};
use crate::commands::Failure;
use crate::config::Config;
use crate::error::{CliError, ErrorCode};
use crate::symbols::resolve::{self, Segment};
use crate::telemetry::event::{
    DaemonReason, DaemonRequestArgs, DaemonRequestResult, DaemonStartDetail, DaemonStatus,
    DaemonStopDetail, DaemonStopResult,
};
use crate::telemetry::{Event, Level, LineEvent, Telemetry};
use serde::Serialize;
use serde_json::{Value, json};
use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most connections served at once; more are refused (the client answers locally).
pub const MAX_CONNECTIONS: usize = 64;
/// How long a stop waits for connections to finish their requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the loops look at the stop flag and the idle clock.
const TICK: Duration = Duration::from_millis(50);

/// What `trifecta serve` prints when the daemon exits.
#[derive(Debug, Serialize)]
pub struct ServeSummary {
    /// Always `"ok"`.
    pub status: &'static str,
    /// The daemon's pid.
    pub pid: u32,
    /// Why it stopped: `signal`, `shutdown` or `idle`.
    pub stopped_by: &'static str,
    /// Requests answered.
    pub requests: u64,
    /// The daemon's telemetry run id.
    pub run_id: String,
}

/// The instance lock and the files it makes ours; dropping it removes the socket and pid file
/// (only this daemon's: nobody else can hold the lock meanwhile).
struct Instance {
    paths: DaemonPaths,
    _lock: File,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.paths.socket);
        let _ = std::fs::remove_file(&self.paths.pid);
    }
}

/// Take the segment's instance lock, or say which daemon holds it.
fn acquire(paths: &DaemonPaths) -> Result<Instance, CliError> {
    use std::os::unix::fs::OpenOptionsExt;
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&paths.lock)
        .map_err(|e| runtime_dir::unavailable(format!("cannot open the instance lock: {e}")))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let pid =
                runtime_dir::read_pid(&paths.pid).map_or("unknown".to_string(), |p| p.to_string());
            return Err(CliError::new(
                ErrorCode::DaemonAlreadyRunning,
                format!("a daemon already serves this segment (pid {pid})"),
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(runtime_dir::unavailable(format!(
                "cannot lock the instance lock: {e}"
            )));
        }
    }
    // We hold the lock, so a socket or pid file still here belongs to a daemon that died.
    for stale in [&paths.socket, &paths.pid] {
        match std::fs::remove_file(stale) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => {
                return Err(runtime_dir::unavailable(format!(
                    "cannot remove the stale {}: {e}",
                    stale.display()
                )));
            }
        }
    }
    Ok(Instance {
        paths: paths.clone(),
        _lock: lock,
    })
}

/// The daemon's state shared with its connection threads.
struct Shared {
    root: Segment,
    cfg: Config,
    hot: Arc<HotTier>,
    telemetry: Telemetry,
    stopping: AtomicBool,
    shutdown_asked: AtomicBool,
    active: AtomicUsize,
    requests: AtomicU64,
    last_activity: Mutex<Instant>,
}

impl Shared {
    fn touch(&self) {
        if let Ok(mut t) = self.last_activity.lock() {
            *t = Instant::now();
        }
    }

    fn idle_for(&self) -> Duration {
        self.last_activity
            .lock()
            .map_or(Duration::ZERO, |t| t.elapsed())
    }

    fn stop_now(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// A daemon event (its own run id), written at once.
    fn event(&self, ev: impl Into<LineEvent>) {
        self.telemetry.event(Level::Lite, ev);
        self.telemetry.flush();
    }
}

/// Resolve the segment and the daemon's files, creating the private directory if needed.
pub fn paths_for(segment: &Path, cfg: &Config) -> Result<(Segment, DaemonPaths), CliError> {
    let root = resolve::segment_root(segment)?;
    let dir = runtime_dir::private_dir(cfg.daemon.xdg_runtime_dir.as_deref());
    let paths = runtime_dir::paths_in(&dir, &root)?;
    Ok((root, paths))
}

/// Run the daemon for `segment` in this process until it is stopped.
pub fn serve(segment: &Path, cfg: &Config) -> Result<ServeSummary, CliError> {
    let (root, paths) = paths_for(segment, cfg)?;
    runtime_dir::ensure_private(&paths.dir)?;
    let instance = acquire(&paths)?;
    // The pid file before the socket: whoever can connect can also read who answers.
    write_pid(&paths)?;
    signals::install();
    let (shared, run_id) = new_shared(root, cfg);
    shared.event(Event::DaemonStart {
        result: DaemonStatus {
            status: "ok".into(),
        },
        x: DaemonStartDetail {
            pid: std::process::id(),
            idle_s: shared.cfg.daemon.idle.as_secs(),
        },
    });
    // Maintenance and the watch come before the socket: once a client can connect, an edit
    // it makes is seen.
    maintain(&shared);
    let watching = watch_segment(&shared);
    let listener = UnixListener::bind(&paths.socket)
        .map_err(|e| runtime_dir::unavailable(format!("cannot bind the socket: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| runtime_dir::unavailable(format!("socket: {e}")))?;

    let stopped_by = accept_loop(&listener, &shared);
    drop(watching);
    shared.stopping.store(true, Ordering::SeqCst);
    // Refuse new clients at once (they answer locally), then let the open ones finish.
    drop(listener);
    let _ = std::fs::remove_file(&paths.socket);
    let drain_started = Instant::now();
    while shared.active.load(Ordering::SeqCst) > 0 && drain_started.elapsed() < DRAIN_TIMEOUT {
        std::thread::sleep(Duration::from_millis(5));
    }
    let requests = shared.requests.load(Ordering::SeqCst);
    let stop = Event::DaemonStop {
        result: DaemonStopResult {
            status: "ok".into(),
            stopped_by: stopped_by.into(),
        },
        x: DaemonStopDetail {
            requests,
            unfinished: shared.active.load(Ordering::SeqCst) as u64,
        },
    };
    shared.event(stop.into_line().timed(elapsed_ms(drain_started)));
    drop(instance);
    Ok(ServeSummary {
        status: "ok",
        pid: std::process::id(),
        stopped_by,
        requests,
        run_id,
    })
}

/// The daemon's shared state, with its own telemetry run id (`daemon_run_…`).
fn new_shared(root: Segment, cfg: &Config) -> (Arc<Shared>, String) {
    let mut cfg = cfg.clone();
    let run_id = format!(
        "{}{}",
        crate::telemetry::DAEMON_RUN_PREFIX,
        crate::telemetry::run_id()
    );
    cfg.telemetry.run_id = Some(run_id.clone());
    let telemetry = Telemetry::new(cfg.telemetry.for_segment(&root));
    let shared = Arc::new(Shared {
        root,
        cfg,
        hot: Arc::new(HotTier::new()),
        telemetry,
        stopping: AtomicBool::new(false),
        shutdown_asked: AtomicBool::new(false),
        active: AtomicUsize::new(0),
        requests: AtomicU64::new(0),
        last_activity: Mutex::new(Instant::now()),
    });
    (shared, run_id)
}

fn write_pid(paths: &DaemonPaths) -> Result<(), CliError> {
    let tmp = paths.pid.with_extension("pid.tmp");
    std::fs::write(&tmp, format!("{}\n", std::process::id()))
        .and_then(|()| std::fs::rename(&tmp, &paths.pid))
        .map_err(|e| runtime_dir::unavailable(format!("cannot write the pid file: {e}")))
}

/// Open and release the cache: runs the automatic maintenance when it is due (the same rule
/// as every CLI run: at most once per interval, only if the exclusive lock is free at once).
fn maintain(shared: &Shared) {
    let mut settings = shared.cfg.cache.clone();
    settings.persist = true;
    SymbolCache::open_for_maintenance(&shared.root, &settings, &shared.telemetry);
    shared.telemetry.flush();
}

/// Start the background re-extraction of edited modules; a watch that cannot start (no
/// inotify instances left, say) is an incident, not a reason to refuse requests.
fn watch_segment(shared: &Shared) -> Option<super::watch::Watching> {
    let mut settings = shared.cfg.cache.clone();
    settings.persist = true;
    let ctx = super::watch::WatchCtx {
        root: shared.root.clone(),
        settings,
        telemetry: shared.telemetry.clone(),
        hot: Arc::clone(&shared.hot),
    };
    match super::watch::start(ctx) {
        Ok(w) => Some(w),
        Err(e) => {
            let ev = Event::DaemonWatchFailed {
                result: DaemonStatus {
                    status: "unwatched".into(),
                },
            };
            shared.event(ev.into_line().warn(e));
            None
        }
    }
}

/// Accept until a stop condition; returns which one.
fn accept_loop(listener: &UnixListener, shared: &Arc<Shared>) -> &'static str {
    let mut last_maintenance = Instant::now();
    loop {
        if signals::stop_requested() {
            return "signal";
        }
        if shared.shutdown_asked.load(Ordering::SeqCst) {
            return "shutdown";
        }
        if shared.active.load(Ordering::SeqCst) == 0 && shared.idle_for() >= shared.cfg.daemon.idle
        {
            return "idle";
        }
        if last_maintenance.elapsed() >= shared.cfg.cache.maintenance_interval {
            maintain(shared);
            last_maintenance = Instant::now();
        }
        if !wait_readable(listener.as_raw_fd(), TICK) {
            continue;
        }
        match listener.accept() {
            Ok((stream, _)) => admit(stream, shared),
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
            Err(_) => std::thread::sleep(TICK),
        }
    }
}

/// `poll(2)` for readability with a timeout (a signal counts as "not readable").
fn wait_readable(fd: i32, timeout: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as libc::c_int) };
    n > 0
}

/// The uid of the process at the other end of `stream` (`SO_PEERCRED`, taken at connect time).
pub fn peer_uid(stream: &UnixStream) -> std::io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// Check the peer and hand the connection to a thread, or refuse it with an error line.
fn admit(stream: UnixStream, shared: &Arc<Shared>) {
    let me = runtime_dir::current_uid();
    let refusal = match peer_uid(&stream) {
        Ok(uid) if uid == me => {
            if shared.active.load(Ordering::SeqCst) >= MAX_CONNECTIONS {
                Some(("busy", "too many connections".to_string()))
            } else {
                None
            }
        }
        Ok(uid) => Some((
            "peer_uid",
            format!("peer uid {uid} is not the daemon's uid {me}"),
        )),
        Err(e) => Some(("peer_unknown", format!("cannot read the peer's uid: {e}"))),
    };
    if let Some((why, message)) = refusal {
        shared.event(Event::DaemonRefused {
            result: DaemonReason {
                status: "refused".into(),
                reason: why.into(),
            },
        });
        let mut s = stream;
        let _ = s.set_nonblocking(false);
        let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
        let _ = s.write_all(
            protocol::error_line(&Value::Null, protocol::REFUSED, &message, None).as_bytes(),
        );
        return;
    }
    shared.active.fetch_add(1, Ordering::SeqCst);
    shared.touch();
    let shared = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name("trifecta-conn".into())
        .stack_size(64 * 1024 * 1024)
        .spawn({
            let shared = Arc::clone(&shared);
            move || {
                connection(stream, &shared);
                shared.touch();
                shared.active.fetch_sub(1, Ordering::SeqCst);
            }
        });
    if spawned.is_err() {
        shared.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Serve one connection: read request lines and answer each, until the client closes, the
/// connection stays silent past the idle timeout, or the daemon stops (after the request being
/// read or run is answered: that is the drain).
fn connection(stream: UnixStream, shared: &Shared) {
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(TICK)).is_err() {
        return;
    }
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    let mut silent_since = Instant::now();
    loop {
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) if line.ends_with(b"\n") => {
                line.pop();
                let reply = answer(&line, shared);
                line.clear();
                if let Some(reply) = reply
                    && writer.write_all(reply.as_bytes()).is_err()
                {
                    return;
                }
                if shared.stop_now() {
                    return;
                }
                silent_since = Instant::now();
            }
            Ok(_) => {} // a partial line; keep reading
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                // Between requests a stop closes the connection; mid-line it waits for the rest.
                if line.is_empty()
                    && (shared.stop_now() || silent_since.elapsed() >= shared.cfg.daemon.idle)
                {
                    return;
                }
            }
            Err(_) => return,
        }
        if line.len() > protocol::MAX_LINE {
            let msg = format!("request line above {} bytes", protocol::MAX_LINE);
            let _ = writer.write_all(
                protocol::error_line(&Value::Null, protocol::INVALID_REQUEST, &msg, None)
                    .as_bytes(),
            );
            return;
        }
    }
}

/// The response line for one request line (`None` for a notification).
fn answer(line: &[u8], shared: &Shared) -> Option<String> {
    let t = Instant::now();
    shared.touch();
    let req = match protocol::parse_request(line) {
        Ok(r) => r,
        Err(bad) => {
            shared.event(Event::DaemonRequest {
                args: DaemonRequestArgs::default(),
                result: DaemonRequestResult {
                    status: "invalid".into(),
                    code: Some(bad.code),
                },
            });
            return Some(protocol::error_line(&bad.id, bad.code, &bad.message, None));
        }
    };
    let id = req.id.clone().unwrap_or(Value::Null);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(&req, shared)));
    let ok = matches!(outcome, Ok(Ok(_)));
    let reply = match outcome {
        Ok(Ok(line)) => line(&id),
        Ok(Err(e)) => protocol::error_line(
            &id,
            protocol::APP_ERROR,
            &e.message,
            Some((e.code.as_str(), &e.message)),
        ),
        Err(_) => {
            let msg = "internal error (a bug; please report it): the request panicked";
            protocol::error_line(
                &id,
                protocol::APP_ERROR,
                msg,
                Some((ErrorCode::InternalError.as_str(), msg)),
            )
        }
    };
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let ev = Event::DaemonRequest {
        args: DaemonRequestArgs {
            method: Some(req.method.as_str().into()),
        },
        result: DaemonRequestResult {
            status: if ok { "ok" } else { "error" }.into(),
            code: None,
        },
    };
    shared.event(ev.into_line().timed(elapsed_ms(t)));
    req.id.is_some().then_some(reply)
}

/// The `cache.stats` result: the `ast cache stats` document and the daemon's own numbers.
#[derive(Serialize)]
struct StatsReply {
    cache: crate::cache::admin::StatsOutput,
    daemon: DaemonStats,
}

#[derive(Serialize)]
struct DaemonStats {
    pid: u32,
    hot_entries: usize,
    requests: u64,
}

/// A result, rendered once the id is known.
type Render = Box<dyn FnOnce(&Value) -> String>;

fn dispatch(req: &Request, shared: &Shared) -> Result<Render, CliError> {
    match req.method {
        Method::Symbols => symbols_request(&req.params, shared),
        Method::Index => index_request(&req.params, shared),
        Method::Stats => stats_request(shared),
        Method::Shutdown => {
            shared.shutdown_asked.store(true, Ordering::SeqCst);
            Ok(Box::new(|id| {
                protocol::ok_line(id, &json!({"status": "stopping"}))
            }))
        }
    }
}

fn bad_params(m: &str) -> CliError {
    CliError::new(ErrorCode::InvalidArgument, m.to_string())
}

/// `ast.symbols`: the CLI's own `run_with`, with the memory tier when the cache persists.
fn symbols_request(params: &Value, shared: &Shared) -> Result<Render, CliError> {
    let uri = params
        .get("uri")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_params("params.uri must be a string"))?;
    let persist = match params.get("persist") {
        None => true,
        Some(v) => v
            .as_bool()
            .ok_or_else(|| bad_params("params.persist must be a boolean"))?,
    };
    let mut cfg = shared.cfg.clone();
    cfg.cache.persist = persist;
    let args = SymbolsArgs {
        uri: uri.to_string(),
        segment: shared.root.path.clone(),
        cache: CacheFlags {
            persist_cache: persist,
            no_persist_cache: !persist,
            telemetry: None,
        },
        daemon: None,
    };
    let hot = persist.then_some(&*shared.hot);
    let out = crate::commands::symbols::run_with(&args, &cfg, hot)?;
    Ok(Box::new(move |id| protocol::ok_line(id, &out)))
}

/// `ast.index`: the CLI's `ast index`.
fn index_request(params: &Value, shared: &Shared) -> Result<Render, CliError> {
    let jobs = match params.get("jobs") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or_else(|| bad_params("params.jobs must be a whole number"))?
                as usize,
        ),
    };
    let mut cfg = shared.cfg.clone();
    cfg.cache.persist = true;
    let args = IndexArgs {
        segment: shared.root.path.clone(),
        jobs,
        cache: CacheFlags {
            persist_cache: true,
            no_persist_cache: false,
            telemetry: None,
        },
        format: OutputFormat::Summary,
    };
    let indexed = crate::commands::index::run(&args, &cfg);
    let out = match indexed {
        Ok(o) => o,
        Err(Failure::Cli(e)) => return Err(e),
        Err(Failure::Stdout(e)) => {
            return Err(CliError::new(ErrorCode::InternalError, e.to_string()));
        }
    };
    Ok(Box::new(move |id| protocol::ok_line(id, &out)))
}

/// `cache.stats`: `ast cache stats` plus the daemon's own numbers.
fn stats_request(shared: &Shared) -> Result<Render, CliError> {
    let mut settings = shared.cfg.cache.clone();
    settings.persist = true;
    let ctx = crate::cache::sqlite::CacheCtx::new(&shared.root, &settings, &shared.telemetry);
    let cache = crate::cache::admin::stats(&ctx);
    let daemon = DaemonStats {
        pid: std::process::id(),
        hot_entries: shared.hot.len(),
        requests: shared.requests.load(Ordering::SeqCst),
    };
    let out = StatsReply {
        cache: cache?,
        daemon,
    };
    Ok(Box::new(move |id| protocol::ok_line(id, &out)))
}
