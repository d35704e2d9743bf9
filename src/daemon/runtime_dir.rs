//! Where a segment's daemon keeps its socket, pid file and instance lock: a private per-user
//! directory outside the segment, `$XDG_RUNTIME_DIR/trifecta/` or `/tmp/trifecta-<uid>/`.
//!
//! The directory is the daemon's whole security boundary on the file system, so it is checked
//! every time it is used, by daemon and client alike: a real directory (not a link), owned by
//! the current user, with no permission bits for group or others (mode 0700). Anything else is
//! refused, never repaired: in a shared `/tmp` someone else may have created the name first to
//! catch our clients' requests (the sccache and ssh-agent lesson).
//!
//! Files are named by the segment's fingerprint (16 hex digits of BLAKE3 of the canonical
//! root), so a socket path stays far below the 108-byte `sun_path` limit whatever the segment's
//! path, and two segments never share a daemon.

use crate::error::{CliError, ErrorCode};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
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

/// Create `dir` (mode 0700) if it is missing, then [`check_private`] it. Used by the daemon.
pub fn ensure_private(dir: &Path) -> Result<(), CliError> {
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(unavailable(format!(
                "cannot create the daemon directory {}: {e}",
                dir.display()
            )));
        }
    }
    check_private(dir)
}

/// `Ok` when `dir` is a directory (not a link to one), owned by this user, mode `0700` or
/// stricter. Used by clients before they connect and by the daemon before it binds.
pub fn check_private(dir: &Path) -> Result<(), CliError> {
    let meta = std::fs::symlink_metadata(dir).map_err(|e| {
        unavailable(format!(
            "the daemon directory {} is not usable: {e}",
            dir.display()
        ))
    })?;
    let refuse = |why: &str| {
        Err(unavailable(format!(
            "refusing the daemon directory {}: {why}",
            dir.display()
        )))
    };
    if !meta.file_type().is_dir() {
        return refuse("it is not a directory (a symlink or a file)");
    }
    if meta.uid() != current_uid() {
        return refuse(&format!(
            "it is owned by uid {}, not by uid {}",
            meta.uid(),
            current_uid()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        return refuse(&format!(
            "its mode is {:o}; group and others must have no access (0700)",
            meta.mode() & 0o777
        ));
    }
    Ok(())
}

/// The pid recorded in a daemon's pid file.
pub fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
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
