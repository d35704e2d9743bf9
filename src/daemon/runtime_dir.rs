//! Where a segment's daemon keeps its socket, pid file and instance lock: a private per-user
//! directory outside the segment, `$XDG_RUNTIME_DIR/trifecta/` or `/tmp/trifecta-<uid>/`.
//!
//! The directory is the daemon's whole security boundary on the file system, so it is checked
//! every time it is used, by daemon and client alike: a real directory (not a link), owned by
//! the current user, with no permission bits for group or others (mode 0700), in a parent
//! nobody else can rename it out of (owned by the user or root, sticky if others may write).
//! Anything else is refused, never repaired: in a shared `/tmp` someone else may have created
//! the name first to catch our clients' requests (the sccache and ssh-agent lesson). The check
//! is made on an open handle ([`PrivateDir`]) and every later bind, connect, write and unlink
//! goes through that handle, so nothing swapped in after the check is ever used.
//!
//! Files are named by the segment's fingerprint (16 hex digits of BLAKE3 of the canonical
//! root), so a socket path stays far below the 108-byte `sun_path` limit whatever the segment's
//! path, and two segments never share a daemon.

use crate::error::{CliError, ErrorCode};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Longest socket path the kernel accepts (`sun_path` is 108 bytes with the terminating NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// The files of one segment's daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonPaths {
    /// The private directory.
    pub dir: PathBuf,
    /// The Unix socket clients connect to.
    pub socket: PathBuf,
    /// The pid of the daemon that holds [`DaemonPaths::lock`].
    pub pid: PathBuf,
    /// Held exclusively (`flock`) by the one live daemon: the single-instance guarantee.
    pub lock: PathBuf,
}

/// The effective uid of this process.
pub fn current_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// `$XDG_RUNTIME_DIR/trifecta` when set (absolute), else `/tmp/trifecta-<uid>`.
pub fn private_dir(xdg_runtime_dir: Option<&Path>) -> PathBuf {
    match xdg_runtime_dir {
        Some(x) => x.join("trifecta"),
        None => PathBuf::from(format!("/tmp/trifecta-{}", current_uid())),
    }
}

/// The segment's fingerprint: 16 hex digits of BLAKE3 of its canonical path.
pub fn fingerprint(canonical_root: &Path) -> String {
    let h = blake3::hash(canonical_root.as_os_str().as_encoded_bytes());
    h.to_hex()[..16].to_string()
}

/// The paths for the segment at `canonical_root`, under `dir`. Fails when the socket path would
/// not fit in `sun_path`.
pub fn paths_in(dir: &Path, canonical_root: &Path) -> Result<DaemonPaths, CliError> {
    let fp = fingerprint(canonical_root);
    let socket = dir.join(format!("{fp}.sock"));
    if socket.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(unavailable(format!(
            "the daemon's socket path would be {} bytes, above the {MAX_SOCKET_PATH}-byte \
             limit of Unix sockets: set XDG_RUNTIME_DIR to a shorter directory",
            socket.as_os_str().len()
        )));
    }
    Ok(DaemonPaths {
        dir: dir.to_path_buf(),
        pid: dir.join(format!("{fp}.pid")),
        lock: dir.join(format!("{fp}.lock")),
        socket,
    })
}

/// The private directory, opened and checked: every later operation on the daemon's files goes
/// through this handle ([`PrivateDir::at`]), so renaming or replacing the directory after the
/// check cannot redirect a bind, a connect, a write or an unlink somewhere else.
#[derive(Debug)]
pub struct PrivateDir {
    /// The directory's path (for messages and output).
    pub path: PathBuf,
    fd: OwnedFd,
}

impl PrivateDir {
    /// `name` inside the checked directory, reached through the open handle
    /// (`/proc/self/fd/N/name`): short enough for `sun_path` whatever the directory's path.
    pub fn at(&self, name: &Path) -> PathBuf {
        let base = name.file_name().map_or(name.as_os_str(), |n| n);
        PathBuf::from(format!("/proc/self/fd/{}", self.fd.as_raw_fd())).join(base)
    }

    /// The file type of `name` (links not followed), `None` when it does not exist.
    pub fn kind_of(&self, name: &Path) -> std::io::Result<Option<(FileType, u32)>> {
        let base = name.file_name().unwrap_or(name.as_os_str());
        match rustix::fs::statat(&self.fd, base, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some((FileType::from_raw_mode(st.st_mode), st.st_uid))),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Remove `name` (whatever it is, a link itself and never its target); absent is fine.
    pub fn remove(&self, name: &Path) -> std::io::Result<()> {
        let base = name.file_name().unwrap_or(name.as_os_str());
        match rustix::fs::unlinkat(&self.fd, base, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// True while a live daemon holds the instance lock `name` (probed with a shared
    /// `flock` that is let go at once). This, not the pid file, says whether a daemon lives:
    /// the lock vanishes with its holder, a pid file can say anything.
    pub fn lock_held(&self, name: &Path) -> bool {
        let base = name.file_name().unwrap_or(name.as_os_str());
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let Ok(fd) = rustix::fs::openat(&self.fd, base, flags, Mode::empty()) else {
            return false;
        };
        let regular = rustix::fs::fstat(&fd)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::RegularFile);
        let file = std::fs::File::from(fd);
        regular
            && matches!(
                file.try_lock_shared(),
                Err(std::fs::TryLockError::WouldBlock)
            )
    }

    /// A new file `name` (mode 0600), replacing whatever was there: removed first, then
    /// created with `O_EXCL|O_NOFOLLOW`, so a planted link or FIFO is never written through.
    pub fn create_file(&self, name: &Path) -> std::io::Result<std::fs::File> {
        self.remove(name)?;
        let base = name.file_name().unwrap_or(name.as_os_str());
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, base, flags, Mode::from_raw_mode(0o600))?;
        Ok(std::fs::File::from(fd))
    }
}

/// Create `dir` (mode 0700) if it is missing, then open and check it as [`check_private`]
/// does. Used by the daemon and `daemon start`.
pub fn ensure_private(dir: &Path) -> Result<PrivateDir, CliError> {
    open_private(dir, true)
}

/// Open `dir` and check it: a directory (not a link to one), owned by this user, mode `0700`
/// or stricter, in a parent that nobody else can rename it out of (owned by this user or root,
/// and sticky if others may write to it, like `/tmp`). Used by clients before they connect and
/// by the daemon before it binds.
pub fn check_private(dir: &Path) -> Result<PrivateDir, CliError> {
    open_private(dir, false)
}

fn open_private(dir: &Path, create: bool) -> Result<PrivateDir, CliError> {
    let refuse = |why: String| {
        unavailable(format!(
            "refusing the daemon directory {}: {why}",
            dir.display()
        ))
    };
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Err(refuse("it has no parent directory".into()));
    };
    // The parent may be a link (XDG_RUNTIME_DIR often is one): what counts is the directory
    // it leads to, checked on the open handle.
    let parent_fd = rustix::fs::open(
        parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| refuse(format!("its parent is not usable: {e}")))?;
    let pst = rustix::fs::fstat(&parent_fd).map_err(|e| refuse(format!("parent: {e}")))?;
    if pst.st_uid != current_uid() && pst.st_uid != 0 {
        return Err(refuse(format!(
            "its parent is owned by uid {}, neither this user nor root",
            pst.st_uid
        )));
    }
    if pst.st_mode & 0o022 != 0 && pst.st_mode & 0o1000 == 0 {
        return Err(refuse(format!(
            "its parent has mode {:o}: others may write to it and it is not sticky",
            pst.st_mode & 0o7777
        )));
    }
    if create {
        match rustix::fs::mkdirat(&parent_fd, name, Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(refuse(format!("cannot create it: {e}"))),
        }
    }
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(&parent_fd, name, flags, Mode::empty()).map_err(|e| match e {
        rustix::io::Errno::NOTDIR | rustix::io::Errno::LOOP => {
            refuse("it is not a directory (a symlink or a file)".into())
        }
        e => unavailable(format!(
            "the daemon directory {} is not usable: {e}",
            dir.display()
        )),
    })?;
    let st = rustix::fs::fstat(&fd).map_err(|e| refuse(e.to_string()))?;
    if st.st_uid != current_uid() {
        return Err(refuse(format!(
            "it is owned by uid {}, not by uid {}",
            st.st_uid,
            current_uid()
        )));
    }
    if st.st_mode & 0o077 != 0 {
        return Err(refuse(format!(
            "its mode is {:o}; group and others must have no access (0700)",
            st.st_mode & 0o777
        )));
    }
    Ok(PrivateDir {
        path: dir.to_path_buf(),
        fd,
    })
}

/// Longest pid file we read: a pid is at most 7 digits on Linux; anything longer is garbage.
const MAX_PID_FILE: u64 = 32;

/// The pid recorded in a daemon's pid file, or `None` when it is missing or not a plain file
/// holding a positive number. Opened without following a link and without blocking (a FIFO
/// planted there must not hang `daemon status`), read up to [`MAX_PID_FILE`] bytes.
pub fn read_pid(path: &Path) -> Option<u32> {
    use std::io::Read;
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty()).ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return None;
    }
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(MAX_PID_FILE)
        .read_to_string(&mut text)
        .ok()?;
    text.trim().parse().ok().filter(|&p: &u32| p > 0)
}

/// A `DAEMON_UNAVAILABLE` error.
pub fn unavailable(message: String) -> CliError {
    CliError::new(ErrorCode::DaemonUnavailable, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_private_directory_passes_and_a_loose_or_linked_one_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("trifecta");
        ensure_private(&dir).unwrap();
        assert_eq!(
            std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = check_private(&dir).unwrap_err();
        assert_eq!(err.code, ErrorCode::DaemonUnavailable);
        assert!(err.message.contains("755"), "{}", err.message);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(check_private(&link).is_err(), "a link is refused");
        assert!(check_private(&dir).is_ok());
    }

    #[test]
    fn a_parent_others_can_write_must_be_sticky_and_planted_files_are_not_followed() {
        let t = tempfile::tempdir().unwrap();
        let mode = |m| std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(m));
        mode(0o777).unwrap();
        let err = ensure_private(&t.path().join("trifecta")).unwrap_err();
        assert!(err.message.contains("sticky"), "{}", err.message);
        assert!(!t.path().join("trifecta").exists(), "nothing created in it");
        mode(0o1777).unwrap();
        let dir = ensure_private(&t.path().join("trifecta")).unwrap();
        // Files are reached through the handle, and a planted link is replaced, not followed.
        let victim = t.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path.join("x.log")).unwrap();
        use std::io::Write;
        dir.create_file(Path::new("x.log"))
            .unwrap()
            .write_all(b"log")
            .unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(
            std::fs::read_to_string(dir.path.join("x.log")).unwrap(),
            "log"
        );
        // A FIFO, garbage or pid 0 in a pid file is no pid, and reading it never blocks.
        let fifo = std::ffi::CString::new(dir.path.join("f.pid").to_str().unwrap()).unwrap();
        // SAFETY: mkfifo(3) on a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert_eq!(read_pid(&dir.at(Path::new("f.pid"))), None);
        for (text, pid) in [("42\n", Some(42)), ("0\n", None), ("x", None), ("-5", None)] {
            std::fs::write(dir.path.join("p.pid"), text).unwrap();
            assert_eq!(read_pid(&dir.path.join("p.pid")), pid, "{text:?}");
        }
        assert!(!dir.lock_held(Path::new("none.lock")));
        mode(0o700).unwrap();
    }

    #[test]
    fn socket_paths_are_short_and_long_directories_are_refused() {
        let p = paths_in(Path::new("/tmp/trifecta-0"), Path::new("/a/b")).unwrap();
        assert!(p.socket.as_os_str().len() <= MAX_SOCKET_PATH);
        assert_ne!(
            fingerprint(Path::new("/a/b")),
            fingerprint(Path::new("/a/c"))
        );
        let long = PathBuf::from(format!("/{}", "x".repeat(100)));
        let err = paths_in(&long, Path::new("/a/b")).unwrap_err();
        assert_eq!(err.code, ErrorCode::DaemonUnavailable);
    }
}
