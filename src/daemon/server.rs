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
//! A client cannot wear the daemon down: a request line is read in bounded chunks and refused
//! past [`protocol::MAX_LINE`] (never buffered whole); once its first byte arrives it must be
//! complete within `daemon.request_timeout_ms`, and a reply the client does not take within
//! that time closes the connection; at `daemon.max_connections` the connection idle longest
//! is closed to make room (only when every connection is mid-request is a newcomer refused,
//! and it answers locally). So silent or slow clients cost a bounded number of threads for a
//! bounded time, and honest clients keep being served.
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
use super::runtime_dir::{self, DaemonPaths, PrivateDir};
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
use serde_json::Value;
use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a stop waits for connections to finish their requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the loops look at the stop flag and the idle clock.
const TICK: Duration = Duration::from_millis(50);
/// How often the accept loop checks that the segment is still the directory it started on.
const SEGMENT_CHECK: Duration = Duration::from_secs(1);

/// What `trifecta serve` prints when the daemon exits.
#[derive(Debug, Serialize)]
pub struct ServeSummary {
    /// Always `"ok"`.
    pub status: &'static str,
    /// The daemon's pid.
    pub pid: u32,
    /// Why it stopped: `signal`, `shutdown`, `idle`, or `segment_gone` (the segment's path no
    /// longer names the directory the daemon started on).
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
    dir: PrivateDir,
    _lock: File,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.dir.remove(&self.paths.socket);
        let _ = self.dir.remove(&self.paths.pid);
    }
}

/// Take the segment's instance lock, or say which daemon holds it.
fn acquire(paths: &DaemonPaths, dir: PrivateDir) -> Result<Instance, CliError> {
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir.at(&paths.lock))
        .map_err(|e| runtime_dir::unavailable(format!("cannot open the instance lock: {e}")))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let pid = runtime_dir::read_pid(&dir.at(&paths.pid))
                .map_or("unknown".into(), |p| p.to_string());
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
    // We hold the lock, so a socket or pid file still here belongs to a daemon that died (or
    // was planted: a link is removed, never followed).
    for stale in [&paths.socket, &paths.pid] {
        dir.remove(stale).map_err(|e| {
            runtime_dir::unavailable(format!("cannot remove the stale {}: {e}", stale.display()))
        })?;
    }
    Ok(Instance {
        paths: paths.clone(),
        dir,
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
    /// The open connections, for eviction at the connection cap.
    slots: Mutex<Vec<Arc<Slot>>>,
    /// The clock [`Slot::idle_since`] counts from.
    born: Instant,
    /// The segment directory's (device, inode) at start.
    root_id: Option<(u64, u64)>,
}

/// One open connection as the accept loop sees it.
struct Slot {
    /// Milliseconds after [`Shared::born`] at which the connection began waiting for its next
    /// request; [`Slot::BUSY`] while a request is being read or run.
    idle_since: AtomicU64,
    /// Set by the accept loop: close as soon as no request is being read or run.
    evict: AtomicBool,
}

impl Slot {
    const BUSY: u64 = u64::MAX;

    fn idle(&self, shared: &Shared) {
        let ms = shared.born.elapsed().as_millis() as u64;
        self.idle_since
            .store(ms.min(Self::BUSY - 1), Ordering::SeqCst);
    }

    fn busy(&self) {
        self.idle_since.store(Self::BUSY, Ordering::SeqCst);
    }

    fn evicted(&self) -> bool {
        self.evict.load(Ordering::SeqCst)
    }
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
    let dir = runtime_dir::ensure_private(&paths.dir)?;
    let instance = acquire(&paths, dir)?;
    // The pid file before the socket: whoever can connect can also read who answers.
    write_pid(&paths, &instance.dir)?;
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
    // Bound through the checked directory's handle: a directory swapped in since cannot catch it.
    let listener = UnixListener::bind(instance.dir.at(&paths.socket))
        .map_err(|e| runtime_dir::unavailable(format!("cannot bind the socket: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| runtime_dir::unavailable(format!("socket: {e}")))?;

    let stopped_by = accept_loop(&listener, &shared);
    drop(watching);
    shared.stopping.store(true, Ordering::SeqCst);
    // Refuse new clients at once (they answer locally), then let the open ones finish.
    drop(listener);
    let _ = instance.dir.remove(&paths.socket);
    let drain_started = Instant::now();
    while shared.active.load(Ordering::SeqCst) > 0 && drain_started.elapsed() < DRAIN_TIMEOUT {
        std::thread::sleep(Duration::from_millis(5));
    }
    flush_tallies(&shared);
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
    let root_path = root.path.clone();
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
        slots: Mutex::new(Vec::new()),
        born: Instant::now(),
        root_id: dir_id(&root_path),
    });
    (shared, run_id)
}

/// Write the pid file: a fresh file (never through whatever was planted at the name), renamed
/// into place within the checked directory.
fn write_pid(paths: &DaemonPaths, dir: &PrivateDir) -> Result<(), CliError> {
    let tmp = paths.pid.with_extension("pid.tmp");
    dir.create_file(&tmp)
        .and_then(|mut f| f.write_all(format!("{}\n", std::process::id()).as_bytes()))
        .and_then(|()| std::fs::rename(dir.at(&tmp), dir.at(&paths.pid)))
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
    let mut last_segment_check = Instant::now();
    loop {
        if signals::stop_requested() {
            return "signal";
        }
        if last_segment_check.elapsed() >= SEGMENT_CHECK {
            if dir_id(&shared.root.path) != shared.root_id {
                return "segment_gone";
            }
            last_segment_check = Instant::now();
        }
        if shared.shutdown_asked.load(Ordering::SeqCst) {
            return "shutdown";
        }
        if shared.active.load(Ordering::SeqCst) == 0 && shared.idle_for() >= shared.cfg.daemon.idle
        {
            return "idle";
        }
        flush_tallies(shared);
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

/// Append the memory tier's buffered hit/miss tallies to the counters file: on every tick of
/// the accept loop, before `cache.stats` and at exit, instead of one append per request (so a
/// direct `ast cache stats` lags a running daemon by at most one tick).
fn flush_tallies(shared: &Shared) {
    let cache_dir = shared.root.anchor.at(crate::cache::CACHE_DIR_REL);
    shared.hot.tallies().flush(&cache_dir);
}

/// A directory's (device, inode), `None` when the path leads nowhere. A segment deleted,
/// renamed away or replaced changes it: the daemon then watches a directory nobody asks about,
/// under a fingerprint that names another path, so it stops (`segment_gone`) and clients
/// answer locally until a daemon is started for what is there now.
fn dir_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
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

/// Check the peer and hand the connection to a thread, or refuse it with an error line. At the
/// connection cap the connection idle longest is asked to close to make room; only when every
/// connection is in the middle of a request is the newcomer refused (it answers locally).
fn admit(stream: UnixStream, shared: &Arc<Shared>) {
    let me = runtime_dir::current_uid();
    let mut refusal = match peer_uid(&stream) {
        Ok(uid) if uid == me => None,
        Ok(uid) => Some((
            "peer_uid",
            format!("peer uid {uid} is not the daemon's uid {me}"),
        )),
        Err(e) => Some(("peer_unknown", format!("cannot read the peer's uid: {e}"))),
    };
    if refusal.is_none()
        && shared.active.load(Ordering::SeqCst) >= shared.cfg.daemon.max_connections
        && !evict_idlest(shared)
    {
        let msg = "too many connections, every one of them in the middle of a request";
        refusal = Some(("busy", msg.to_string()));
    }
    if let Some((why, message)) = refusal {
        refuse(stream, shared, why, &message);
        return;
    }
    let slot = Arc::new(Slot {
        idle_since: AtomicU64::new(Slot::BUSY),
        evict: AtomicBool::new(false),
    });
    if let Ok(mut slots) = shared.slots.lock() {
        slots.push(Arc::clone(&slot));
    }
    shared.active.fetch_add(1, Ordering::SeqCst);
    shared.touch();
    let spawned = std::thread::Builder::new()
        .name("trifecta-conn".into())
        .stack_size(64 * 1024 * 1024)
        .spawn({
            let shared = Arc::clone(shared);
            let slot = Arc::clone(&slot);
            move || {
                connection(stream, &shared, &slot);
                release(&shared, &slot);
            }
        });
    if spawned.is_err() {
        release(shared, &slot);
    }
}

/// A connection is over: forget its slot, and count the daemon's activity from now.
fn release(shared: &Shared, slot: &Arc<Slot>) {
    if let Ok(mut slots) = shared.slots.lock() {
        slots.retain(|s| !Arc::ptr_eq(s, slot));
    }
    shared.touch();
    shared.active.fetch_sub(1, Ordering::SeqCst);
}

/// Ask the connection that has waited longest for a request to close; false when every
/// connection is in the middle of one (or already asked). The asked one closes within a tick,
/// so the threads alive are at most twice the cap.
fn evict_idlest(shared: &Shared) -> bool {
    let Ok(slots) = shared.slots.lock() else {
        return false;
    };
    let victim = slots
        .iter()
        .filter(|s| !s.evicted() && s.idle_since.load(Ordering::SeqCst) != Slot::BUSY)
        .min_by_key(|s| s.idle_since.load(Ordering::SeqCst));
    victim.is_some_and(|v| {
        v.evict.store(true, Ordering::SeqCst);
        true
    })
}

/// Turn a connection away with a `REFUSED` error line (event `daemon.refused`).
fn refuse(stream: UnixStream, shared: &Shared, why: &str, message: &str) {
    shared.event(Event::DaemonRefused {
        result: DaemonReason {
            status: "refused".into(),
            reason: why.into(),
        },
    });
    let mut s = stream;
    let _ = s.set_nonblocking(false);
    let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = s
        .write_all(protocol::error_line(&Value::Null, protocol::REFUSED, message, None).as_bytes());
}

/// What one read from a connection produced.
enum Chunk {
    /// A whole request line is in the buffer (its newline removed).
    Line,
    /// More of a line; not complete yet.
    Partial,
    /// The client closed its side.
    Eof,
    /// The line grew past [`protocol::MAX_LINE`].
    TooLong,
    /// Nothing arrived within a tick.
    Quiet,
    /// The connection failed.
    Failed,
}

/// Read what is available (one `read(2)` at most) into `line`, never past
/// [`protocol::MAX_LINE`] + 1 bytes, and stop at the first newline.
fn next_chunk(reader: &mut BufReader<UnixStream>, line: &mut Vec<u8>) -> Chunk {
    let buf = match reader.fill_buf() {
        Ok([]) => return Chunk::Eof,
        Ok(b) => b,
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
            ) =>
        {
            return Chunk::Quiet;
        }
        Err(_) => return Chunk::Failed,
    };
    let (len, complete) = match memchr::memchr(b'\n', buf) {
        Some(i) => (i + 1, true),
        None => (buf.len(), false),
    };
    let take = len.min(protocol::MAX_LINE + 1 - line.len());
    line.extend_from_slice(&buf[..take]);
    reader.consume(take);
    if complete && take == len {
        line.pop();
        Chunk::Line
    } else if line.len() > protocol::MAX_LINE {
        Chunk::TooLong
    } else {
        Chunk::Partial
    }
}

/// Serve one connection: read request lines and answer each, until the client closes, a limit
/// is crossed (line too long, a line or a reply slower than the request timeout), the
/// connection waits past the idle timeout or is evicted, or the daemon stops (after the
/// request being read or run is answered: that is the drain).
fn connection(stream: UnixStream, shared: &Shared, slot: &Slot) {
    let limit = shared.cfg.daemon.request_timeout;
    if stream.set_nonblocking(false).is_err()
        || stream.set_read_timeout(Some(TICK)).is_err()
        || stream.set_write_timeout(Some(limit)).is_err()
    {
        return;
    }
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    // When the first byte of the line being read arrived.
    let mut started: Option<Instant> = None;
    let mut silent_since = Instant::now();
    slot.idle(shared);
    loop {
        let chunk = next_chunk(&mut reader, &mut line);
        if started.is_none() && !line.is_empty() {
            started = Some(Instant::now());
            slot.busy();
        }
        match chunk {
            Chunk::Line => {
                slot.busy();
                let reply = answer(&line, shared);
                line.clear();
                started = None;
                // A reply the client does not take within the request timeout ends it.
                if let Some(reply) = reply
                    && writer.write_all(reply.as_bytes()).is_err()
                {
                    return;
                }
                if shared.stop_now() || slot.evicted() {
                    return;
                }
                silent_since = Instant::now();
                slot.idle(shared);
                continue;
            }
            // A half-closed client's last line needs no newline: it is still a request.
            Chunk::Eof => {
                if !line.is_empty()
                    && let Some(reply) = answer(&line, shared)
                {
                    let _ = writer.write_all(reply.as_bytes());
                }
                return;
            }
            Chunk::TooLong => {
                let msg = format!("request line above {} bytes", protocol::MAX_LINE);
                return last_words(&mut writer, protocol::INVALID_REQUEST, &msg);
            }
            Chunk::Quiet if line.is_empty() => {
                // Between requests a stop or an eviction closes the connection.
                if shared.stop_now()
                    || slot.evicted()
                    || silent_since.elapsed() >= shared.cfg.daemon.idle
                {
                    return;
                }
            }
            Chunk::Quiet | Chunk::Partial => {}
            Chunk::Failed => return,
        }
        if started.is_some_and(|t| t.elapsed() >= limit) {
            let ms = limit.as_millis();
            let msg = format!("request line not complete within {ms} ms; closing the connection");
            return last_words(&mut writer, protocol::REQUEST_TIMEOUT, &msg);
        }
    }
}

/// The error line written before the daemon closes a connection that crossed a limit (best
/// effort: the write is bounded by the connection's write timeout).
fn last_words(writer: &mut UnixStream, code: i64, message: &str) {
    let _ = writer.write_all(protocol::error_line(&Value::Null, code, message, None).as_bytes());
}

/// The response line for one request line (`None` for a notification).
fn answer(line: &[u8], shared: &Shared) -> Option<String> {
    let t = Instant::now();
    shared.touch();
    let req = match protocol::parse_request(line).and_then(|r| for_this_segment(r, shared)) {
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
    if !shared.telemetry.enabled(Level::Lite) {
        // Nothing to write: skip building the line (it goes through a JSON value).
        return req.id.is_some().then_some(reply);
    }
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

/// A request that names a segment (`params.segment`, sent by trifecta's own client) must name
/// this daemon's: a socket that leads to another segment's daemon is a protocol error, so the
/// client answers locally instead of printing another segment's symbols.
fn for_this_segment(req: Request, shared: &Shared) -> Result<Request, protocol::BadRequest> {
    match req.params.get("segment") {
        None => Ok(req),
        // Compared as the client renders it (lossily, like `segment_root` in every answer), so
        // a segment whose path is not UTF-8 is still served.
        Some(Value::String(s)) if *s == shared.root.path.to_string_lossy() => Ok(req),
        Some(other) => Err(protocol::BadRequest {
            id: req.id.clone().unwrap_or(Value::Null),
            code: protocol::WRONG_SEGMENT,
            message: format!(
                "this daemon serves {}, not {other}",
                shared.root.path.display()
            ),
        }),
    }
}

/// Who answers: the `daemon.status` result, and the `shutdown` result's `pid` and segment.
#[derive(Serialize)]
struct Identity {
    status: &'static str,
    pid: u32,
    segment_root: String,
    requests: u64,
}

impl Identity {
    fn of(shared: &Shared, status: &'static str) -> Identity {
        Identity {
            status,
            pid: std::process::id(),
            segment_root: shared.root.path.to_string_lossy().into_owned(),
            requests: shared.requests.load(Ordering::SeqCst),
        }
    }
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
            let who = Identity::of(shared, "stopping");
            Ok(Box::new(move |id| protocol::ok_line(id, &who)))
        }
        Method::Status => {
            let who = Identity::of(shared, "running");
            Ok(Box::new(move |id| protocol::ok_line(id, &who)))
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
    flush_tallies(shared);
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
