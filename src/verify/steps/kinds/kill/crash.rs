//! The `kill` step: crash writers in the middle of a write transaction on a populated database,
//! and check the database right after each crash, before anything could repair it.
//!
//! A kill only tests something when it lands while the writer is writing. Killing at a fixed
//! delay after spawn does not ensure that (on a loaded machine most such kills landed before the
//! database even existed), so every kill here is *observed*:
//!
//! 1. the writer's process group is stopped (SIGSTOP) at a seeded point of its write phase and
//!    the harness waits until every thread of the writer is in the stopped state;
//! 2. from outside, it reads who holds SQLite's WAL write lock — the POSIX lock on byte 120 of
//!    the `-shm` file (`fcntl(F_GETLK)` reports the holder's pid) — and counts the rows of the
//!    database through its own read-only connection;
//! 3. only when the writer itself holds the write lock on a database with rows is the group
//!    SIGKILLed: a *landed* kill. Otherwise it is resumed (SIGCONT) and stopped again in a later
//!    transaction, until a kill lands or the writer exits.
//!
//! The writer cannot run between the observation and the kill (it is stopped), so what is
//! recorded is exactly the state it died in.
//!
//! Seeded points are spread over the write phase by transaction count: an unkilled calibration
//! writer first shows how many write transactions a writer makes and how long they hold the
//! lock; each kill then skips a seeded share of the transactions and stops a seeded share into
//! the next one.
//!
//! With `populate` and `generate`, every writer starts from the same populated database (a
//! snapshot of variant 0's entries, restored before it) and finds every generated module
//! changed (variant 1 is on disk), so it rewrites existing rows for its whole write phase.

use super::{GenerateSpec, KillStep};
use crate::verify::event::{ScheduledFault, Status};
use crate::verify::process::{self, ProcSpec};
use crate::verify::steps::kinds::Step;
use crate::verify::steps::{GateCtx, StepResult};
use crate::verify::workspace;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// Offset of SQLite's WAL write lock in the `-shm` file. The unix VFS locks bytes from
/// `UNIX_SHM_BASE = (22 + SQLITE_SHM_NLOCK) * 4 = 120`, and `WAL_WRITE_LOCK` is lock 0.
pub const WAL_WRITE_LOCK_BYTE: i64 = 120;

/// Writers tried per kill before it counts as not landed.
const ATTEMPTS: usize = 3;

/// How often a running writer's lock is sampled. Write transactions last milliseconds.
const POLL: Duration = Duration::from_micros(100);

/// The pid holding the WAL write lock of the database whose `-shm` file is `shm`, if any.
/// Another process's lock only: `F_GETLK` never reports the caller's own locks.
pub fn write_lock_holder(shm: &Path) -> io::Result<Option<i32>> {
    lock_holder(&std::fs::File::open(shm)?)
}

/// [`write_lock_holder`] on an open `-shm` file.
fn lock_holder(shm: &std::fs::File) -> io::Result<Option<i32>> {
    use std::os::fd::AsRawFd;
    // SAFETY: `flock` is plain old data; all-zero is a valid value that we then fill in.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = WAL_WRITE_LOCK_BYTE;
    fl.l_len = 1;
    // SAFETY: F_GETLK reads and writes exactly one `flock` through the pointer, which points at
    // a live local; the fd is open for the duration of the call. It only queries, never locks.
    let r = unsafe { libc::fcntl(shm.as_raw_fd(), libc::F_GETLK, &mut fl) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((fl.l_type != libc::F_UNLCK as libc::c_short).then_some(fl.l_pid))
}

/// The wal-index change counter (`iChange`, native-endian u32 at offset 8 of the `-shm` file's
/// header), which SQLite increments on every commit. Read through the page cache, which is what
/// the writer's shared mapping of the file is.
fn change_counter(shm: &std::fs::File) -> Option<u32> {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 4];
    shm.read_exact_at(&mut b, 8).ok()?;
    Some(u32::from_ne_bytes(b))
}

/// Send `sig` to the process group led by `pid`.
fn signal_group(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a process group we created (process_group(0)) and have not reaped;
    // it touches no memory.
    unsafe {
        libc::kill(-pid, sig);
    }
}

/// Whether every thread of `pid` is in the stopped state (`T`/`t` in `/proc/<pid>/task/*/stat`).
fn all_threads_stopped(pid: i32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|t| {
        std::fs::read_to_string(t.path().join("stat")).is_ok_and(|st| {
            // The state follows the last ')' (the command name may contain parentheses).
            st.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next())
                .is_some_and(|c| c == 'T' || c == 't')
        })
    })
}

/// What the harness saw while a writer was stopped.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The writer's pid.
    pub writer: i32,
    /// Milliseconds since the writer was spawned.
    pub at_ms: f64,
    /// Holder of the WAL write lock.
    pub holder: Option<i32>,
    /// Size of the database file, when it exists.
    pub db_bytes: Option<u64>,
    /// Rows of `entries` visible to a reader, or why they could not be counted.
    pub rows: Result<i64, String>,
}

impl Observation {
    /// A kill now lands inside a write transaction of `pid` on a populated database.
    pub fn in_write(&self) -> bool {
        self.holder == Some(self.writer) && matches!(self.rows, Ok(n) if n > 0)
    }

    /// One line for the kill log.
    pub fn describe(&self) -> String {
        let pid = self.writer;
        let lock = match self.holder {
            Some(h) if h == pid => {
                format!("WAL write lock (-shm byte 120) held by the writer (pid {pid})")
            }
            Some(h) => format!("WAL write lock held by another process (pid {h})"),
            None => "WAL write lock free".to_string(),
        };
        let db = match (self.db_bytes, &self.rows) {
            (None, _) => "no database".to_string(),
            (Some(b), Ok(n)) => format!("DB {b} bytes, {n} rows"),
            (Some(b), Err(e)) => format!("DB {b} bytes, rows not counted ({e})"),
        };
        format!("stopped at {:.1} ms: {lock}; {db}", self.at_ms)
    }
}

/// Count the committed rows of `entries` through a read-only connection of our own.
fn count_rows(db: &Path) -> Result<i64, String> {
    use rusqlite::OpenFlags as F;
    let conn = rusqlite::Connection::open_with_flags(
        db,
        F::SQLITE_OPEN_READ_ONLY | F::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| e.to_string())?;
    conn.busy_timeout(Duration::from_millis(200))
        .map_err(|e| e.to_string())?;
    conn.query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
        .map_err(|e| e.to_string())
}

/// Observe a stopped writer (call only while its whole group is stopped).
fn observe(writer: i32, t0: Instant, shm: &Path, db: &Path) -> Observation {
    let at_ms = t0.elapsed().as_secs_f64() * 1e3;
    // The lock query closes its own descriptor of `-shm` before SQLite opens the database in
    // this process: closing any descriptor of a file drops the process's POSIX locks on it.
    let holder = write_lock_holder(shm).ok().flatten();
    let db_bytes = std::fs::metadata(db).ok().map(|m| m.len());
    let rows = match db_bytes {
        Some(_) => count_rows(db),
        None => Err("no database".into()),
    };
    Observation {
        writer,
        at_ms,
        holder,
        db_bytes,
        rows,
    }
}

/// The write transactions an unkilled writer made: when it held the lock, and when it exited.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    /// `(from_ms, until_ms)` since spawn, one per observed write transaction.
    pub windows: Vec<(f64, f64)>,
    /// Commits observed (advances of the wal-index change counter after its first write).
    pub commits: usize,
    /// Exit time since spawn.
    pub exit_ms: f64,
    /// How it ended (`exit 0`, …).
    pub status: String,
}

impl Timeline {
    /// The shortest time a transaction held the write lock (ms), at least one poll interval:
    /// an offset below it falls inside whichever transaction it is aimed at.
    pub fn min_window_ms(&self) -> f64 {
        self.windows
            .iter()
            .map(|(a, b)| b - a)
            .reduce(f64::min)
            .unwrap_or(0.0)
            .max(POLL.as_secs_f64() * 1e3)
    }
}

impl Timeline {
    /// Record the writer's exit at `now_ms`, closing a window still open.
    fn exited(&mut self, now_ms: f64, held_since: Option<f64>, st: std::process::ExitStatus) {
        if let Some(from) = held_since {
            self.windows.push((from, now_ms));
        }
        self.exit_ms = now_ms;
        self.status = status_text(st);
    }
}

/// What the poller knows about the writer's transactions so far.
#[derive(Debug, Default)]
struct Sampling {
    /// Start of the write window in progress (ms since spawn).
    held_since: Option<f64>,
    /// Write windows seen to begin.
    seen: usize,
    /// The change counter when the writer first held the write lock: opening the database may
    /// rewrite the wal-index header (recovery), so earlier values are not commits of ours.
    base: Option<u32>,
}

impl Sampling {
    /// Fold one sample (lock held by the writer?, change counter) into `tl`; whether a write
    /// window began with it.
    fn update(&mut self, tl: &mut Timeline, held: bool, counter: Option<u32>, now_ms: f64) -> bool {
        if held && self.base.is_none() {
            self.base = counter;
        }
        if let (Some(b), Some(c)) = (self.base, counter) {
            tl.commits = tl.commits.max(c.wrapping_sub(b) as usize);
        }
        match (held, self.held_since) {
            (true, None) => {
                self.held_since = Some(now_ms);
                self.seen += 1;
                true
            }
            (false, Some(from)) => {
                tl.windows.push((from, now_ms));
                self.held_since = None;
                false
            }
            _ => false,
        }
    }
}

/// Stop the writer's process group, wait (up to 2 s) until every one of its threads is in the
/// stopped state, and observe it. Also says whether it was fully stopped: an observation of a
/// writer still running proves nothing.
fn stop_and_observe(pid: i32, t0: Instant, shm: &Path, db: &Path) -> (Observation, bool) {
    signal_group(pid, libc::SIGSTOP);
    let deadline = Instant::now() + Duration::from_secs(2);
    while !all_threads_stopped(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(50));
    }
    let obs = observe(pid, t0, shm, db);
    (obs, all_threads_stopped(pid))
}

/// Where a kill is aimed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Aim {
    /// At the first moment after the writer's `commits`-th commit at which it holds the write
    /// lock again: the start of the next transaction, the boundary where a change split
    /// across two transactions is half published.
    AfterCommit {
        /// Commits to let pass first (≥ 1).
        commits: usize,
    },
    /// Inside a transaction: after `skip` observed transactions, `offset` into the next one.
    Inside {
        /// Write transactions to let pass first.
        skip: usize,
        /// Delay after the next transaction is seen to start.
        offset: Duration,
    },
}

impl Aim {
    /// A seeded aim. Three kills in four go to a seeded commit boundary (never after the last
    /// commit, when only the exit follows), one in four to a seeded share of the calibration's
    /// transactions and a seeded share of the shortest one's length into the next one.
    pub fn from_seed(seed: u64, cal: &Timeline) -> Self {
        let (a, b, c) = seed_fractions(seed);
        if c >= 0.25 {
            let boundaries = cal.commits.saturating_sub(1).max(1);
            return Aim::AfterCommit {
                commits: 1 + ((a * boundaries as f64) as usize).min(boundaries - 1),
            };
        }
        let n = cal.windows.len();
        Aim::Inside {
            skip: ((a * n as f64) as usize).min(n.saturating_sub(1)),
            offset: Duration::from_secs_f64(b * cal.min_window_ms() / 1e3),
        }
    }

    /// For the kill log.
    pub fn describe(&self, cal: &Timeline) -> String {
        match self {
            Aim::AfterCommit { commits } => format!(
                "at the next write after commit {commits} of {}",
                cal.commits
            ),
            Aim::Inside { skip, offset } => format!(
                "inside a transaction: after {skip} of {}, +{:.2} ms",
                cal.windows.len(),
                offset.as_secs_f64() * 1e3
            ),
        }
    }
}

/// Three independent fractions in [0, 1) from a fault seed (recorded in the fault schedule).
pub fn seed_fractions(seed: u64) -> (f64, f64, f64) {
    let f = |shift: u32| ((seed >> shift) & 0xffff) as f64 / 65536.0;
    (f(0), f(16), f(32))
}

/// How a supervised writer ended.
#[derive(Debug)]
pub enum Ending {
    /// Killed inside a write transaction, as observed.
    Landed(Observation),
    /// It exited first; the stops that did not land are listed.
    Exited {
        /// `exit 0`, `killed by signal 6`, …
        status: String,
        /// Whether it exited 0.
        ok: bool,
        /// Observations of stops that found it outside a write transaction.
        missed: Vec<Observation>,
    },
    /// It outlived the timeout and was killed.
    TimedOut,
}

fn status_text(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "unknown status".into(),
    }
}

/// Run a writer to its end, sampling its write lock and commits (calibration; `aim` is `None`),
/// or crash it at `aim`. Blocking: called on a blocking thread. Only this function reaps
/// `child`, so its pid cannot be reused while it signals the group.
fn supervise(
    mut child: Child,
    t0: Instant,
    shm_path: &Path,
    db: &Path,
    aim: Option<Aim>,
    timeout: Duration,
) -> io::Result<(Ending, Timeline)> {
    let pid = child.id() as i32;
    let mut tl = Timeline::default();
    let mut shm: Option<std::fs::File> = None;
    let mut sampling = Sampling::default();
    let mut armed: Option<Instant> = None;
    let mut aim = aim;
    let mut missed = Vec::new();
    let ms = |t: Instant| t.duration_since(t0).as_secs_f64() * 1e3;
    loop {
        if let Some(st) = child.try_wait()? {
            tl.exited(ms(Instant::now()), sampling.held_since, st);
            let ending = Ending::Exited {
                status: tl.status.clone(),
                ok: st.success(),
                missed,
            };
            return Ok((ending, tl));
        }
        if t0.elapsed() > timeout {
            signal_group(pid, libc::SIGKILL);
            child.wait()?;
            return Ok((Ending::TimedOut, tl));
        }
        if shm.is_none() {
            shm = std::fs::File::open(shm_path).ok();
        }
        let now = Instant::now();
        let held = shm.as_ref().and_then(|f| lock_holder(f).ok().flatten()) == Some(pid);
        let counter = shm.as_ref().and_then(change_counter);
        let began = sampling.update(&mut tl, held, counter, ms(now));
        if let Some(Aim::Inside { skip, offset }) = aim
            && began
            && armed.is_none()
            && sampling.seen > skip
        {
            armed = Some(now + offset);
        }
        if let Some(Aim::AfterCommit { commits }) = aim
            && held
            && tl.commits >= commits
        {
            armed = Some(now);
        }
        if let Some(at) = armed
            && now >= at
        {
            let (obs, stopped) = stop_and_observe(pid, t0, shm_path, db);
            if stopped && obs.in_write() {
                signal_group(pid, libc::SIGKILL);
                child.wait()?;
                return Ok((Ending::Landed(obs), tl));
            }
            missed.push(obs);
            signal_group(pid, libc::SIGCONT);
            // Missed (the transaction ended first): aim at the next one, earlier into it.
            armed = None;
            if let Some(Aim::Inside { skip, offset }) = aim {
                aim = Some(Aim::Inside {
                    skip,
                    offset: offset / 2,
                });
            }
            sampling.held_since = None;
        }
        std::thread::sleep(POLL);
    }
}

/// The text of generated module `j` in variant `v`, with `defs` functions and `defs / 2`
/// methods: names carry the variant, so two variants have different symbols and a writer that
/// finds the other variant rewrites every entry.
pub fn module_text(j: usize, v: usize, defs: usize) -> String {
    let mut s = format!("\"\"\"Generated module {j}, variant {v}.\"\"\"\nVARIANT = {v}\n\n");
    for k in 0..defs {
        s.push_str(&format!(
            "def f{k}_v{v}(a, b=1, *args, **kw):\n    \"\"\"Doc {k}.\"\"\"\n    return a + b\n\n"
        ));
    }
    s.push_str(&format!("class C{j}_v{v}:\n    x: int = 0\n\n"));
    for k in 0..defs / 2 {
        s.push_str(&format!("    def m{k}(self, y):\n        return y\n\n"));
    }
    s
}

/// Write variant `v` of every generated module.
fn generate(seg: &Path, g: &GenerateSpec, v: usize) -> io::Result<()> {
    let dir = seg.join(&g.dir);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("__init__.py"), "")?;
    for j in 0..g.modules {
        std::fs::write(dir.join(format!("m{j:04}.py")), module_text(j, v, g.defs))?;
    }
    Ok(())
}

/// Put the cache directory back exactly as `snapshot` holds it.
fn restore(snapshot: &Path, cache_dir: &Path) -> io::Result<()> {
    if cache_dir.exists() {
        std::fs::remove_dir_all(cache_dir)?;
    }
    workspace::copy_tree(snapshot, cache_dir)
}

/// Spawn the writer with its output in `log` and supervise it on a blocking thread.
async fn run_writer(
    spec: &ProcSpec,
    log: PathBuf,
    shm: PathBuf,
    db: PathBuf,
    aim: Option<Aim>,
) -> Result<(Ending, Timeline), String> {
    let out = std::fs::File::create(&log).map_err(|e| format!("writer log: {e}"))?;
    let mut cmd = process::std_command(spec, out).map_err(|e| format!("writer log: {e}"))?;
    let t0 = Instant::now();
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot spawn writer: {e}"))?;
    let timeout = spec.timeout;
    tokio::task::spawn_blocking(move || supervise(child, t0, &shm, &db, aim, timeout))
        .await
        .map_err(|e| format!("writer supervisor panicked: {e}"))?
        .map_err(|e| format!("supervising the writer: {e}"))
}

/// Run one `after_each` check (validation allows only kinds that run after a kill).
async fn exec_check(ctx: &mut GateCtx, step: &Step, index: usize) -> StepResult {
    if step.runs_after_kill() {
        step.exec(ctx, index).await
    } else {
        StepResult::error(format!("`{}` cannot run after a kill", step.kind()))
    }
}

/// How a writer ended, for the kill log; a writer that failed on its own is a failure.
fn describe_ending(ending: &Ending, i: usize, failed: &mut Vec<String>) -> String {
    match ending {
        Ending::Landed(obs) => format!("landed: {} → SIGKILL", obs.describe()),
        Ending::Exited { status, ok, missed } => {
            if !ok {
                failed.push(format!("writer {i}: {status}"));
            }
            let m: Vec<String> = missed.iter().map(Observation::describe).collect();
            format!(
                "not landed: the writer exited first ({status}); {} stop(s) outside a write: {}",
                missed.len(),
                m.join(" | ")
            )
        }
        Ending::TimedOut => {
            failed.push(format!("writer {i}: timed out"));
            "not landed: timed out".to_string()
        }
    }
}

/// Run every `after_each` check after kill `i`; the failures, labelled.
async fn checks_after(ctx: &mut GateCtx, s: &KillStep, index: usize, i: usize) -> Vec<String> {
    let mut failed = Vec::new();
    for (j, sub) in s.after_each.iter().enumerate() {
        // Distinct log names per kill and check (`step-<index>0<kill>0<check>-run.log`).
        let sub_index = (index * 1000 + i) * 100 + j + 1;
        let out = exec_check(ctx, sub, sub_index).await;
        if matches!(out.status, Status::Fail | Status::Error) {
            // The output's first lines say why (e.g. the CLI's error message).
            let why = crate::verify::excerpt::excerpt(out.excerpt.trim(), 3, 300, false);
            failed.push(format!(
                "kill {i}: after_each {} `{}` ({}) failed: {} [{}]",
                j + 1,
                sub.label(),
                sub.kind(),
                out.detail,
                why.replace('\n', " ")
            ));
        }
    }
    failed
}

/// Everything prepared before the kills: the snapshot to restore, and the calibration.
struct Prepared {
    snapshot: Option<PathBuf>,
    calibration: Timeline,
}

/// Generate variant 0, populate and snapshot the cache, then run one unkilled writer on a new
/// variant to learn its write transactions.
async fn prepare(
    ctx: &mut GateCtx,
    s: &KillStep,
    index: usize,
    spec: &ProcSpec,
    lines: &mut Vec<String>,
) -> Result<Prepared, StepResult> {
    let seg = ctx.segment()?.to_path_buf();
    let db = ctx.db()?;
    let cache_dir = db.parent().map(Path::to_path_buf).unwrap_or_default();
    let shm = db.with_extension("db-shm");
    if let Some(g) = &s.generate {
        generate(&seg, g, 0).map_err(|e| StepResult::error(format!("generate modules: {e}")))?;
    }
    let mut snapshot = None;
    if !s.populate.is_empty() {
        let p = ctx.trifecta_spec(&s.populate, &s.env, 300);
        let o = process::run(&p)
            .await
            .map_err(|e| StepResult::error(format!("cannot spawn populate command: {e}")))?;
        if o.code != Some(0) {
            return Err(StepResult::fail(format!(
                "populate command: {} ({})",
                o.status_text(),
                p.display()
            )));
        }
        let rows = count_rows(&db).map_err(|e| StepResult::fail(format!("populated DB: {e}")))?;
        if rows == 0 {
            return Err(StepResult::fail("the populate command left no rows"));
        }
        let snap = ctx.tmp.path().join(format!("kill-{index}-snapshot"));
        workspace::copy_tree(&cache_dir, &snap)
            .map_err(|e| StepResult::error(format!("snapshot the cache: {e}")))?;
        lines.push(format!("populated: {rows} rows ({})", p.display()));
        snapshot = Some(snap);
    }
    // Variant 1 stays on disk for every writer; the snapshot holds variant 0's entries, so each
    // writer restored onto it rewrites every generated entry.
    if let Some(g) = &s.generate {
        generate(&seg, g, 1).map_err(|e| StepResult::error(format!("generate modules: {e}")))?;
    }
    let log = ctx.log_dir.join(format!("step-{index}-calibration.log"));
    if let Some(snap) = &snapshot {
        restore(snap, &cache_dir).map_err(|e| StepResult::error(format!("restore: {e}")))?;
    }
    let (_, cal) = run_writer(spec, log, shm, db, None)
        .await
        .map_err(StepResult::error)?;
    let span = match (cal.windows.first(), cal.windows.last()) {
        (Some(f), Some(l)) => format!("{:.1}–{:.1} ms", f.0, l.1),
        _ => "never".into(),
    };
    lines.push(format!(
        "calibration writer (not killed): {} after {:.1} ms; {} commits; held the WAL write lock in {} observed windows, {span}, shortest {:.2} ms",
        cal.status,
        cal.exit_ms,
        cal.commits,
        cal.windows.len(),
        cal.min_window_ms()
    ));
    Ok(Prepared {
        snapshot,
        calibration: cal,
    })
}

/// `kill`: crash `times` writers inside a write transaction, checking after each landed kill.
pub async fn kill(ctx: &mut GateCtx, s: &KillStep, index: usize) -> StepResult {
    let spec = ctx.trifecta_spec(&s.args, &s.env, 120);
    let db = match ctx.db() {
        Ok(db) => db,
        Err(o) => return o,
    };
    let cache_dir = db.parent().map(Path::to_path_buf).unwrap_or_default();
    let shm = db.with_extension("db-shm");
    let mut lines = Vec::new();
    let prep = match prepare(ctx, s, index, &spec, &mut lines).await {
        Ok(p) => p,
        Err(o) => return o,
    };
    let mut failed = Vec::new();
    let mut landed = 0;
    for i in 0..s.times {
        let seed = ctx.fault_seed(index, i);
        let aim = Aim::from_seed(seed, &prep.calibration);
        let aimed = aim.describe(&prep.calibration);
        let mut what = String::new();
        let mut ending = None;
        // A writer can exit before the aimed point arrives (a loaded machine starves the poller
        // through a whole transaction): the same kill is tried on a new writer, a few times.
        for attempt in 0..ATTEMPTS {
            if let Some(snap) = &prep.snapshot
                && let Err(e) = restore(snap, &cache_dir)
            {
                return StepResult::error(format!("restore before writer {i}: {e}"));
            }
            let log = ctx
                .log_dir
                .join(format!("step-{index}-writer-{i}-{attempt}.log"));
            let e = match run_writer(&spec, log, shm.clone(), db.clone(), Some(aim)).await {
                Ok((e, _)) => e,
                Err(e) => return StepResult::error(e),
            };
            what = describe_ending(&e, i, &mut failed);
            lines.push(format!(
                "kill {i} (aimed {aimed}), writer {attempt}: {what}"
            ));
            let retry = matches!(e, Ending::Exited { ok: true, .. });
            ending = Some(e);
            if !retry {
                break;
            }
        }
        if matches!(ending, Some(Ending::Landed(_))) {
            landed += 1;
        }
        let (a, b, c) = seed_fractions(seed);
        let scheduled = if c >= 0.25 {
            format!("kill -9 at the write after commit {a:.3} of the way through")
        } else {
            format!("kill -9 {a:.3} through the write transactions, {b:.3} into one")
        };
        ctx.faults.push(ScheduledFault {
            gate: ctx.gate_id.clone(),
            step: index,
            kind: "kill".into(),
            what: scheduled,
            seed,
            detail: what,
        });
        if matches!(ending, Some(Ending::Landed(_))) {
            let problems = checks_after(ctx, s, index, i).await;
            lines.push(format!(
                "kill {i}: {} after_each check(s), {} failed",
                s.after_each.len(),
                problems.len()
            ));
            failed.extend(problems);
        }
    }
    finish(ctx, s, index, &spec, landed, lines, failed)
}

/// The step's outcome: `min_landed` enforced, every kill and check in the log.
fn finish(
    ctx: &GateCtx,
    s: &KillStep,
    index: usize,
    spec: &ProcSpec,
    landed: usize,
    mut lines: Vec<String>,
    mut failed: Vec<String>,
) -> StepResult {
    lines.push(format!(
        "{landed} of {} writer(s) were killed inside a write transaction on a populated database (min_landed = {})",
        s.times, s.min_landed
    ));
    if landed < s.min_landed {
        failed.push(format!(
            "vacuous: only {landed} of {} writers were killed inside a write transaction (need {})",
            s.times, s.min_landed
        ));
    }
    let log = ctx.log(&format!("step-{index}-kill.log"), &lines.join("\n"));
    StepResult {
        status: if failed.is_empty() {
            Status::Pass
        } else {
            Status::Fail
        },
        commands: vec![format!(
            "# {} × (restore the populated cache, spawn, SIGSTOP the group at a seeded point, \
             check the WAL write lock holder with fcntl(F_GETLK) on -shm byte 120 and the row count, \
             SIGKILL if it is writing, else SIGCONT and retry):\n{}",
            s.times,
            spec.display()
        )],
        excerpt: crate::verify::excerpt::excerpt(&lines.join("\n"), 40, 4000, false),
        detail: if failed.is_empty() {
            format!(
                "{landed} of {} writers killed inside a write transaction; every after_each check passed after each",
                s.times
            )
        } else {
            failed.join("; ")
        },
        logs: log.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn the_lock_query_reports_another_process_holding_byte_120() {
        use std::os::fd::AsRawFd;
        let d = tempfile::tempdir().unwrap();
        let shm = d.path().join("x.db-shm");
        std::fs::write(&shm, [0u8; 256]).unwrap();
        assert_eq!(write_lock_holder(&shm).unwrap(), None, "nobody holds it");
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&shm)
            .unwrap();
        // SAFETY: the child only calls async-signal-safe functions (fcntl, pause, _exit) and
        // touches only the `flock` built before the fork.
        let mut fl: libc::flock = unsafe { std::mem::zeroed() };
        fl.l_type = libc::F_WRLCK as libc::c_short;
        fl.l_whence = libc::SEEK_SET as libc::c_short;
        fl.l_start = WAL_WRITE_LOCK_BYTE;
        fl.l_len = 1;
        let child = unsafe { libc::fork() };
        if child == 0 {
            // The lock SQLite's unix VFS takes for a write transaction.
            unsafe {
                if libc::fcntl(f.as_raw_fd(), libc::F_SETLK, &fl) != 0 {
                    libc::_exit(1);
                }
                loop {
                    libc::pause();
                }
            }
        }
        assert!(child > 0, "fork failed");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = None;
        while got.is_none() && Instant::now() < deadline {
            got = write_lock_holder(&shm).unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
        // SAFETY: signal and reap the child forked above.
        unsafe {
            libc::kill(child, libc::SIGKILL);
            libc::waitpid(child, std::ptr::null_mut(), 0);
        }
        assert_eq!(got, Some(child), "the holder's pid is reported");
        // Once the holder is gone, the lock is free again.
        assert_eq!(write_lock_holder(&shm).unwrap(), None);
    }

    #[test]
    fn aims_spread_over_commits_and_transactions_and_stay_inside() {
        let cal = Timeline {
            windows: (0..8)
                .map(|k| (k as f64 * 10.0, k as f64 * 10.0 + 4.0))
                .collect(),
            commits: 8,
            exit_ms: 90.0,
            status: "exit 0".into(),
        };
        assert!((cal.min_window_ms() - 4.0).abs() < 1e-9);
        let (mut skips, mut commits) = (BTreeSet::new(), BTreeSet::new());
        for seed in 0..4000u64 {
            match Aim::from_seed(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), &cal) {
                Aim::Inside { skip, offset } => {
                    assert!(skip < 8);
                    assert!(offset <= Duration::from_millis(4));
                    skips.insert(skip);
                }
                Aim::AfterCommit { commits: k } => {
                    assert!((1..8).contains(&k), "never after the last commit: {k}");
                    commits.insert(k);
                }
            }
        }
        assert_eq!(skips.len(), 8, "every transaction can be aimed inside");
        assert_eq!(
            commits.len(),
            7,
            "every commit but the last can be aimed after"
        );
    }

    #[test]
    fn sampling_counts_windows_and_commits_from_the_first_write() {
        let mut tl = Timeline::default();
        let mut sm = Sampling::default();
        // The counter moves before the first write (recovery at open): not a commit of ours.
        assert!(!sm.update(&mut tl, false, Some(40), 1.0));
        assert!(!sm.update(&mut tl, false, Some(1), 2.0));
        assert!(sm.update(&mut tl, true, Some(1), 3.0), "a window begins");
        assert!(!sm.update(&mut tl, true, Some(1), 4.0));
        assert!(!sm.update(&mut tl, false, Some(2), 5.0));
        assert!(sm.update(&mut tl, true, Some(2), 6.0));
        assert!(!sm.update(&mut tl, false, Some(3), 8.0));
        assert_eq!(tl.windows, vec![(3.0, 5.0), (6.0, 8.0)]);
        assert_eq!(tl.commits, 2);
        assert_eq!(sm.seen, 2);
    }

    #[test]
    fn a_stop_lands_only_in_the_writers_own_write_on_a_populated_db() {
        let obs = |holder, rows: Result<i64, String>| Observation {
            writer: 7,
            at_ms: 1.0,
            holder,
            db_bytes: Some(4096),
            rows,
        };
        assert!(obs(Some(7), Ok(3)).in_write());
        assert!(!obs(Some(8), Ok(3)).in_write(), "someone else's write");
        assert!(!obs(None, Ok(3)).in_write(), "between transactions");
        assert!(!obs(Some(7), Ok(0)).in_write(), "empty database");
        assert!(!obs(Some(7), Err("no database".into())).in_write());
    }

    #[test]
    fn the_change_counter_advances_with_every_commit() {
        let d = tempfile::tempdir().unwrap();
        let db = d.path().join("t.db");
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t(x);")
            .unwrap();
        let shm = std::fs::File::open(db.with_extension("db-shm")).unwrap();
        let before = change_counter(&shm).unwrap();
        for i in 0..3 {
            conn.execute("INSERT INTO t VALUES (?1)", [i]).unwrap();
        }
        let after = change_counter(&shm).unwrap();
        assert_eq!(after.wrapping_sub(before), 3, "one advance per commit");
        conn.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
            .unwrap();
        assert_eq!(
            change_counter(&shm).unwrap(),
            after,
            "a read commits nothing"
        );
    }

    #[test]
    fn every_variant_of_a_module_differs() {
        assert_ne!(module_text(3, 0, 4), module_text(3, 1, 4));
        assert!(module_text(3, 1, 4).contains("def f3_v1("));
    }
}
