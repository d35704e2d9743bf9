//! Appending to `events.jsonl` safely from many processes.
//!
//! Each process writes its whole batch with one `write(2)` on an `O_APPEND` descriptor while
//! holding an exclusive `flock` on the events file itself, so lines from concurrent writers
//! never interleave or tear. The lock wait is bounded: a writer that cannot get the lock in
//! [`LOCK_WAIT`] gives up on this batch rather than stall the command.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// The events file name inside the telemetry directory.
pub const EVENTS_FILE: &str = "events.jsonl";
/// Longest a writer waits for the events-file lock.
pub const LOCK_WAIT: Duration = Duration::from_millis(500);

/// Append `bytes` (whole lines) to `<dir>/events.jsonl`, creating the directory if needed.
pub fn append(dir: &Path, bytes: &[u8]) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(EVENTS_FILE);
    let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
    lock_bounded(&file, LOCK_WAIT)?;
    let res = file.write_all(bytes);
    let _ = file.unlock();
    res
}

/// Take an exclusive lock on `file`, polling with a short sleep up to `wait`.
fn lock_bounded(file: &File, wait: Duration) -> io::Result<()> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(200);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(TryLockError::WouldBlock) if start.elapsed() < wait => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(10));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "events file lock busy",
                ));
            }
            Err(TryLockError::Error(e)) => return Err(e),
        }
    }
}
