//! The one way to touch the file system under a segment (architecture guide §7).
//!
//! A segment is someone else's tree: any path below it — `.trifecta/` and `_ctx/` included —
//! may be a symlink to anywhere, a FIFO, a device, a directory where a file belongs, or change
//! between a check and a use. So nothing under a segment is ever named by an absolute path
//! string that the kernel resolves afresh. Instead:
//!
//! - An [`Anchor`] is a directory the *user* named (the segment root, `TRIFECTA_TELEMETRY_DIR`,
//!   the folder of `--output`), opened once; it is trusted, so following links to it is fine.
//! - An [`Anchored`] path is an anchor plus a relative path. Every operation resolves the
//!   relative parent beneath the anchor in one kernel call (`openat2` with `RESOLVE_BENEATH |
//!   RESOLVE_NO_SYMLINKS`; a component-by-component `O_NOFOLLOW` walk where `openat2` is
//!   missing) and then acts on the last component through that directory handle with the
//!   `*at` calls, never following a link: `openat(O_NOFOLLOW|O_NONBLOCK|O_NOCTTY)` followed by
//!   `fstat` on the handle (a regular file, or a refusal), `mkdirat`, `renameat`, `linkat`,
//!   `unlinkat`, and an `fd`-based recursive removal that never descends through a link.
//! - Module reads ([`open_module`]) resolve and open the module beneath the segment root in
//!   one step (`openat2` with `RESOLVE_BENEATH`), so links inside the segment work and links
//!   out of it cannot, however the tree changes meanwhile.
//! - What we find at one of our own names that we did not put there (a link, a FIFO, a
//!   directory for a file) is an [`Incident`]: it is moved aside inside its own directory
//!   (`<name>.foreign-<pid>-<random>`, never following it) and reported; the command goes on.
//!
//! Every open is non-blocking (`O_NONBLOCK`), so a FIFO never hangs a command, and `O_NOCTTY`
//! so a terminal device cannot become our controlling terminal.

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// What kind of entry a name holds (from `lstat`, so a link is a link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed).
    Symlink,
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A regular file with more than one name (a hard link): writing to it could change a
    /// file outside the segment that shares its inode, so the tool never writes one (reading
    /// is fine: the bytes are the segment's own).
    HardLink,
    /// Anything else.
    Unknown,
}

impl Kind {
    fn of(t: FileType) -> Kind {
        match t {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Symlink,
            FileType::Fifo => Kind::Fifo,
            FileType::Socket => Kind::Socket,
            FileType::CharacterDevice => Kind::CharDevice,
            FileType::BlockDevice => Kind::BlockDevice,
            _ => Kind::Unknown,
        }
    }

    fn of_mode(mode: u32) -> Kind {
        Kind::of(FileType::from_raw_mode(mode as _))
    }

    /// The kind of an `lstat`/`fstat` result, telling hard-linked regular files apart.
    fn of_stat(st: &rustix::fs::Stat) -> Kind {
        match Kind::of_mode(st.st_mode) {
            Kind::File if st.st_nlink > 1 => Kind::HardLink,
            k => k,
        }
    }

    /// Stable lower-case name (telemetry `args.found`, messages).
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "directory",
            Kind::Symlink => "symlink",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
            Kind::CharDevice => "char_device",
            Kind::BlockDevice => "block_device",
            Kind::HardLink => "hardlink",
            Kind::Unknown => "unknown",
        }
    }
}

/// Something found at one of our own names that we did not put there, and what we did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    /// The path relative to its anchor (never absolute: events must not reveal locations).
    pub path: String,
    /// What was there.
    pub found: Kind,
    /// What we did: `moved_aside` (to the name in `moved_to`) or `refused`.
    pub action: &'static str,
    /// The name it was moved to, relative to the same anchor.
    pub moved_to: Option<String>,
}

/// A directory the user named (trusted), held open so later operations are relative to it.
#[derive(Debug)]
pub struct Anchor {
    fd: OwnedFd,
    path: PathBuf,
}

impl Anchor {
    /// Open the directory at `path` (following links: the user chose this path).
    pub fn open(path: &Path) -> io::Result<Arc<Anchor>> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )?;
        Ok(Arc::new(Anchor {
            fd,
            path: path.to_path_buf(),
        }))
    }

    /// The path the anchor was opened at (for messages and for SQLite, which opens by name).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The anchor itself as an [`Anchored`] path (`rel` empty).
    pub fn root(self: &Arc<Self>) -> Anchored {
        Anchored {
            anchor: Arc::clone(self),
            rel: PathBuf::new(),
        }
    }

    /// `rel` below this anchor.
    pub fn at(self: &Arc<Self>, rel: impl AsRef<Path>) -> Anchored {
        self.root().join(rel)
    }
}

/// A path below an [`Anchor`]. Cheap to clone; every operation re-resolves it beneath the
/// anchor without following links.
#[derive(Debug, Clone)]
pub struct Anchored {
    anchor: Arc<Anchor>,
    rel: PathBuf,
}

/// How a file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read only; the file must exist.
    Read,
    /// Read and write, created (mode 0666 & umask) when `create`.
    ReadWrite {
        /// Create when missing.
        create: bool,
    },
    /// Append, created when `create`.
    Append {
        /// Create when missing.
        create: bool,
    },
}

/// Why an open failed.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The name holds something other than a regular file (or a directory, for directories).
    #[error("{path} is a {} where a {expected} was expected", found.as_str())]
    Foreign {
        /// Path relative to the anchor.
        path: String,
        /// What is there.
        found: Kind,
        /// What we expected.
        expected: &'static str,
    },
    /// The path would leave its anchor (a link out, `..`).
    #[error("{0} leads outside its directory")]
    Outside(String),
    /// Any other I/O error (including not found: check [`FsError::is_not_found`]).
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl FsError {
    /// True when nothing is at the path (or a directory on the way is missing).
    pub fn is_not_found(&self) -> bool {
        matches!(self, FsError::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }
}

impl From<Errno> for FsError {
    fn from(e: Errno) -> Self {
        FsError::Io(e.into())
    }
}

impl From<FsError> for io::Error {
    fn from(e: FsError) -> Self {
        match e {
            FsError::Io(e) => e,
            // Something in the tree is not what it must be (a planted link, FIFO…).
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}

/// Flags of every open: never block on a FIFO or device, never take a controlling terminal,
/// never leak into children.
fn base_flags() -> OFlags {
    OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC
}

/// `openat2` is tried once per process; `ENOSYS` (old kernel, seccomp filter) switches to the
/// component walk for good.
static OPENAT2_MISSING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Resolve `rel` (relative, no `..`) beneath `dir` without following any link, as a directory
/// handle (`O_PATH`-free, so it can also be read).
fn open_dir_beneath(dir: BorrowedFd<'_>, rel: &Path) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | base_flags();
    if rel.as_os_str().is_empty() {
        return rustix::fs::openat(dir, c".", flags, Mode::empty());
    }
    use std::sync::atomic::Ordering::Relaxed;
    if !OPENAT2_MISSING.load(Relaxed) {
        let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(dir, rel, flags, Mode::empty(), how) {
            Err(Errno::NOSYS) | Err(Errno::PERM) => OPENAT2_MISSING.store(true, Relaxed),
            // EAGAIN: the kernel saw a concurrent rename and wants a retry; the walk does it.
            Err(Errno::AGAIN) => {}
            r => return r,
        }
    }
    let mut cur: Option<OwnedFd> = None;
    for c in rel.components() {
        let Component::Normal(name) = c else {
            return Err(Errno::XDEV);
        };
        let at = cur.as_ref().map_or(dir, |f| f.as_fd());
        cur = Some(rustix::fs::openat(at, name, flags, Mode::empty())?);
    }
    match cur {
        Some(fd) => Ok(fd),
        None => rustix::fs::openat(dir, c".", flags, Mode::empty()),
    }
}

fn check_relative(rel: &Path) -> io::Result<()> {
    if rel
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a plain relative path", rel.display()),
        ))
    }
}

impl Anchored {
    /// The file at `path`, a path the user named: its directory is the (trusted) anchor, the
    /// last component is acted on without following it.
    pub fn user_path(path: &Path) -> io::Result<Anchored> {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
        Ok(Anchor::open(parent)?.at(name))
    }

    /// `name` (one or more plain components) below this path.
    pub fn join(&self, name: impl AsRef<Path>) -> Anchored {
        Anchored {
            anchor: Arc::clone(&self.anchor),
            rel: self.rel.join(name),
        }
    }

    /// This path with `suffix` appended to its last component (`db` → `db-wal`).
    pub fn with_suffix(&self, suffix: &str) -> Anchored {
        let mut s = self.rel.as_os_str().to_owned();
        s.push(suffix);
        Anchored {
            anchor: Arc::clone(&self.anchor),
            rel: PathBuf::from(s),
        }
    }

    /// The containing directory (the anchor itself for a single component).
    pub fn parent(&self) -> Anchored {
        Anchored {
            anchor: Arc::clone(&self.anchor),
            rel: self.rel.parent().map(Path::to_path_buf).unwrap_or_default(),
        }
    }

    /// The anchor this path hangs off.
    pub fn anchor(&self) -> &Arc<Anchor> {
        &self.anchor
    }

    /// The path relative to the anchor (what events and messages show).
    pub fn rel(&self) -> &Path {
        &self.rel
    }

    /// `rel` as a `/`-separated string (lossy only for display).
    pub fn rel_display(&self) -> String {
        self.rel.to_string_lossy().into_owned()
    }

    /// The absolute path (anchor path + rel). Only for SQLite, which opens by name, and for the
    /// user's own messages; never resolved by us.
    pub fn abs(&self) -> PathBuf {
        self.anchor.path.join(&self.rel)
    }

    /// The last component (empty for the anchor itself).
    pub fn name(&self) -> &OsStr {
        self.rel.file_name().unwrap_or_default()
    }

    /// A handle on the directory that holds the last component, resolved beneath the anchor
    /// without following links.
    fn parent_fd(&self) -> io::Result<OwnedFd> {
        check_relative(&self.rel)?;
        let parent = self.rel.parent().unwrap_or(Path::new(""));
        open_dir_beneath(self.anchor.fd.as_fd(), parent).map_err(|e| self.explain(e))
    }

    /// Errors of a beneath-resolution, in words a user can act on. A link on the way or a way
    /// out is `InvalidData` (the tree is not what it must be), like [`FsError::Foreign`].
    fn explain(&self, e: Errno) -> io::Error {
        match e {
            Errno::LOOP => io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} has a symbolic link on its way; not followed",
                    self.rel_display()
                ),
            ),
            Errno::NOTDIR => io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} has something other than a directory on its way",
                    self.rel_display()
                ),
            ),
            Errno::XDEV => io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} leads outside its directory", self.rel_display()),
            ),
            e => e.into(),
        }
    }

    fn last(&self) -> io::Result<&OsStr> {
        let name = self.name();
        if name.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "operation needs a name below the anchor",
            ));
        }
        Ok(name)
    }

    /// What the last component holds, without following it; `None` when nothing is there.
    pub fn kind(&self) -> io::Result<Option<Kind>> {
        Ok(self.stat()?.map(|s| Kind::of_stat(&s)))
    }

    /// `lstat` of the last component beneath the anchor; `None` when nothing is there (or a
    /// directory on the way is missing).
    pub fn stat(&self) -> io::Result<Option<rustix::fs::Stat>> {
        let dir = match self.parent_fd() {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if self.rel.as_os_str().is_empty() {
            return Ok(Some(rustix::fs::fstat(&dir)?));
        }
        match rustix::fs::statat(&dir, self.last()?, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(s) => Ok(Some(s)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Size in bytes of what is at this name (not following a link); 0 when nothing is there
    /// or it cannot be examined.
    pub fn size(&self) -> u64 {
        self.stat()
            .ok()
            .flatten()
            .map_or(0, |s| u64::try_from(s.st_size).unwrap_or(0))
    }

    /// Open the regular file at this path. Never follows a link, never blocks, and checks the
    /// handle: anything but a regular file is [`FsError::Foreign`].
    pub fn open(&self, access: Access) -> Result<File, FsError> {
        let dir = self.parent_fd()?;
        let mut flags = OFlags::NOFOLLOW | base_flags();
        flags |= match access {
            Access::Read => OFlags::RDONLY,
            Access::ReadWrite { create } => {
                OFlags::RDWR
                    | if create {
                        OFlags::CREATE
                    } else {
                        OFlags::empty()
                    }
            }
            Access::Append { create } => {
                OFlags::WRONLY
                    | OFlags::APPEND
                    | if create {
                        OFlags::CREATE
                    } else {
                        OFlags::empty()
                    }
            }
        };
        let fd = match rustix::fs::openat(&dir, self.last()?, flags, Mode::from_raw_mode(0o666)) {
            Ok(fd) => fd,
            // O_NOFOLLOW on a link: ELOOP. Opening a directory for writing: EISDIR. A FIFO
            // without a reader, opened for writing: ENXIO. Say what is there instead.
            Err(e @ (Errno::LOOP | Errno::ISDIR | Errno::NXIO | Errno::OPNOTSUPP)) => {
                return Err(match self.kind() {
                    Ok(Some(found)) if found != Kind::File => self.foreign(found, "file"),
                    _ => e.into(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let st = rustix::fs::fstat(&fd)?;
        match Kind::of_stat(&st) {
            Kind::File => Ok(File::from(fd)),
            // Read-only use of a multi-linked file reads the segment's own bytes; writing
            // through it could change an outside file with the same inode.
            Kind::HardLink if access == Access::Read => Ok(File::from(fd)),
            found => Err(self.foreign(found, "file")),
        }
    }

    fn foreign(&self, found: Kind, expected: &'static str) -> FsError {
        FsError::Foreign {
            path: self.rel_display(),
            found,
            expected,
        }
    }

    /// Read the whole regular file (at most `max` bytes, else `InvalidData`).
    pub fn read(&self, max: u64) -> Result<Vec<u8>, FsError> {
        let f = self.open(Access::Read)?;
        let mut buf = Vec::new();
        io::Read::read_to_end(&mut io::Read::take(f, max.saturating_add(1)), &mut buf)?;
        if buf.len() as u64 > max {
            return Err(FsError::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is larger than {max} bytes", self.rel_display()),
            )));
        }
        Ok(buf)
    }

    /// Create this directory (its parent must exist); an existing directory is fine, anything
    /// else there is [`FsError::Foreign`].
    pub fn create_dir(&self) -> Result<(), FsError> {
        let dir = self.parent_fd()?;
        match rustix::fs::mkdirat(&dir, self.last()?, Mode::from_raw_mode(0o777)) {
            Ok(()) => Ok(()),
            Err(Errno::EXIST) => match self.kind()? {
                Some(Kind::Dir) => Ok(()),
                Some(k) => Err(self.foreign(k, "directory")),
                None => Err(Errno::EXIST.into()),
            },
            Err(e) => Err(e.into()),
        }
    }

    /// What each of `names` (single components inside this directory) holds, with one
    /// directory resolution for all of them; `Ok(None)` when this directory does not exist (or
    /// is not a real directory on a link-free path).
    pub fn child_kinds(&self, names: &[&str]) -> io::Result<Option<Vec<Option<Kind>>>> {
        check_relative(&self.rel)?;
        let dir = match open_dir_beneath(self.anchor.fd.as_fd(), &self.rel) {
            Ok(d) => d,
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::XDEV) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            out.push(
                match rustix::fs::statat(&dir, *name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => Some(Kind::of_stat(&st)),
                    Err(Errno::NOENT) => None,
                    Err(e) => return Err(e.into()),
                },
            );
        }
        Ok(Some(out))
    }

    /// Make sure every component of this path that exists is a real directory, and create the
    /// missing ones when `create`. Returns whether the whole chain now exists.
    ///
    /// What is found instead of a directory is an [`Incident`] in `incidents`. Below the first
    /// component (inside our own directories: `cache` in `.trifecta/cache`) it is moved aside
    /// and replaced. The first component sits in the user's own directory (`.trifecta`, `_ctx`
    /// at the segment root), so it is never renamed: the incident says `refused` and the call
    /// fails with [`FsError::Foreign`].
    pub fn ensure_dir_chain(
        &self,
        create: bool,
        incidents: &mut Vec<Incident>,
    ) -> Result<bool, FsError> {
        check_relative(&self.rel)?;
        let mut cur = self.anchor.root();
        for (depth, c) in self.rel.components().enumerate() {
            cur = cur.join(c);
            match cur.kind()? {
                Some(Kind::Dir) => continue,
                Some(found) if depth == 0 => {
                    incidents.push(Incident {
                        path: cur.rel_display(),
                        found,
                        action: "refused",
                        moved_to: None,
                    });
                    return Err(cur.foreign(found, "directory"));
                }
                Some(found) => incidents.push(cur.move_aside(found)?),
                None => {}
            }
            if !create {
                return Ok(false);
            }
            cur.create_dir()?;
        }
        Ok(true)
    }

    /// If the last component holds anything but a regular file, move it aside and report it.
    /// `Ok(true)` when a regular file is there, `Ok(false)` when nothing is (any more).
    pub fn claim_file(&self, incidents: &mut Vec<Incident>) -> Result<bool, FsError> {
        match self.kind()? {
            None => Ok(false),
            Some(Kind::File) => Ok(true),
            Some(found) => {
                incidents.push(self.move_aside(found)?);
                Ok(false)
            }
        }
    }

    /// Rename the last component (whatever it is, never following it) to a fresh name in the
    /// same directory: `<name>.foreign-<pid>-<random>`.
    pub fn move_aside(&self, found: Kind) -> Result<Incident, FsError> {
        let dir = self.parent_fd()?;
        let name = self.last()?;
        for _ in 0..8 {
            let mut aside = name.to_owned();
            aside.push(format!(
                ".foreign-{}-{:08x}",
                std::process::id(),
                fastrand::u32(..)
            ));
            match rustix::fs::renameat_with(
                &dir,
                name,
                &dir,
                &aside,
                rustix::fs::RenameFlags::NOREPLACE,
            ) {
                Ok(()) => {
                    let moved = self.parent().join(&aside);
                    return Ok(Incident {
                        path: self.rel_display(),
                        found,
                        action: "moved_aside",
                        moved_to: Some(moved.rel_display()),
                    });
                }
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(FsError::Io(io::Error::other(
            "no free name to move aside to",
        )))
    }

    /// `renameat` to `to` (same anchor), never following either name; replaces a file at `to`.
    pub fn rename(&self, to: &Anchored) -> io::Result<()> {
        let (a, b) = (self.parent_fd()?, to.parent_fd()?);
        Ok(rustix::fs::renameat(&a, self.last()?, &b, to.last()?)?)
    }

    /// `linkat` without following: a second name for the same file.
    pub fn hard_link(&self, to: &Anchored) -> io::Result<()> {
        let (a, b) = (self.parent_fd()?, to.parent_fd()?);
        Ok(rustix::fs::linkat(
            &a,
            self.last()?,
            &b,
            to.last()?,
            AtFlags::empty(),
        )?)
    }

    /// Remove a non-directory (file, link, FIFO…) through its directory handle. Missing is
    /// `NotFound`.
    pub fn remove_file(&self) -> io::Result<()> {
        let dir = self.parent_fd()?;
        Ok(rustix::fs::unlinkat(&dir, self.last()?, AtFlags::empty())?)
    }

    /// Remove whatever is at this name; a directory is emptied first, recursively through
    /// directory handles, never through a link (a link is removed, not followed). Missing is
    /// fine.
    pub fn remove_tree(&self) -> io::Result<()> {
        let dir = match self.parent_fd() {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        remove_entry(dir.as_fd(), self.last()?, 0)
    }

    /// Open this directory (beneath the anchor, no link followed) for several operations.
    pub fn open_dir(&self) -> io::Result<OpenDir> {
        check_relative(&self.rel)?;
        let fd =
            open_dir_beneath(self.anchor.fd.as_fd(), &self.rel).map_err(|e| self.explain(e))?;
        Ok(OpenDir { fd })
    }

    /// The names in this directory with their kinds (without `.`/`..`), unsorted.
    pub fn entries(&self) -> io::Result<Vec<(OsString, Kind)>> {
        check_relative(&self.rel)?;
        let fd =
            open_dir_beneath(self.anchor.fd.as_fd(), &self.rel).map_err(|e| self.explain(e))?;
        list(fd.as_fd())
    }

    /// Write `bytes` as this file atomically: a new temporary file (`O_EXCL`) in the same
    /// directory, synced, then renamed over the name. An existing regular file keeps its
    /// permission bits; anything else at the name is refused ([`FsError::Foreign`]).
    pub fn write_atomic(&self, bytes: &[u8]) -> Result<(), FsError> {
        let dir = self.parent_fd()?;
        let name = self.last()?;
        let mode = match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            // A hard link is replaced by the rename like a file: its other names keep the old
            // inode, untouched.
            Ok(st) if Kind::of_mode(st.st_mode) == Kind::File => st.st_mode & 0o7777,
            Ok(st) => return Err(self.foreign(Kind::of_mode(st.st_mode), "file")),
            Err(Errno::NOENT) => 0o666,
            Err(e) => return Err(e.into()),
        };
        let mut tmp = name.to_owned();
        tmp.push(format!(
            ".tmp-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        let fd = rustix::fs::openat(
            &dir,
            &tmp,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | base_flags(),
            Mode::from_raw_mode(mode as _),
        )?;
        let mut f = File::from(fd);
        let written = (|| -> io::Result<()> {
            // The umask narrowed the creation mode; restore an existing file's exact bits.
            if mode != 0o666 {
                rustix::fs::fchmod(&f, Mode::from_raw_mode(mode as _))?;
            }
            f.write_all(bytes)?;
            f.sync_all()?;
            rustix::fs::renameat(&dir, &tmp, &dir, name)?;
            Ok(())
        })();
        if let Err(e) = written {
            let _ = rustix::fs::unlinkat(&dir, &tmp, AtFlags::empty());
            return Err(e.into());
        }
        Ok(())
    }

    /// Create the file with `bytes` unless a regular file is already there; anything else at
    /// the name is moved aside first (an [`Incident`]). Written atomically, so a full disk can
    /// never leave an empty file behind for good.
    pub fn write_if_missing(
        &self,
        bytes: &[u8],
        incidents: &mut Vec<Incident>,
    ) -> Result<(), FsError> {
        if self.claim_file(incidents)? {
            return Ok(());
        }
        self.write_atomic(bytes)
    }

    /// Does `file` (an open handle) still have this name? False when the name is gone or names
    /// another inode.
    pub fn names(&self, file: &File) -> io::Result<bool> {
        let held = rustix::fs::fstat(file)?;
        Ok(self
            .stat()?
            .is_some_and(|now| now.st_dev == held.st_dev && now.st_ino == held.st_ino))
    }
}

/// A directory held open (resolved beneath its anchor without links), for work on many of its
/// entries with one resolution: `ast index`'s walk.
#[derive(Debug)]
pub struct OpenDir {
    fd: OwnedFd,
}

impl std::os::fd::AsFd for OpenDir {
    /// The directory's descriptor (e.g. to watch it through `/proc/self/fd/N`, which names
    /// exactly the directory opened, whatever its path has become since).
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl OpenDir {
    /// The names in the directory with their kinds (without `.`/`..`), unsorted.
    pub fn entries(&self) -> io::Result<Vec<(OsString, Kind)>> {
        list(self.fd.as_fd())
    }

    /// What `name` (one component) holds, without following it.
    pub fn kind(&self, name: &str) -> io::Result<Option<Kind>> {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(Kind::of_mode(st.st_mode))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The bytes of the regular file `name` (one component, at most `max` bytes); `Ok(None)`
    /// when it is missing or not a regular file (a link, a FIFO: never followed or opened for
    /// long).
    pub fn read_file(&self, name: &str, max: u64) -> io::Result<Option<Vec<u8>>> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | base_flags();
        let fd = match rustix::fs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::LOOP | Errno::NXIO) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if Kind::of_mode(rustix::fs::fstat(&fd)?.st_mode) != Kind::File {
            return Ok(None);
        }
        let mut buf = Vec::new();
        io::Read::read_to_end(&mut io::Read::take(File::from(fd), max), &mut buf)?;
        Ok(Some(buf))
    }
}

/// Entries of an open directory.
fn list(fd: BorrowedFd<'_>) -> io::Result<Vec<(OsString, Kind)>> {
    let mut out = Vec::new();
    for e in rustix::fs::Dir::read_from(fd)? {
        let e = e?;
        let name = e.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name = OsStr::from_bytes(name);
        let kind = match Kind::of(e.file_type()) {
            // Some file systems do not fill d_type: ask lstat.
            Kind::Unknown => match rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => Kind::of_mode(st.st_mode),
                Err(_) => Kind::Unknown,
            },
            k => k,
        };
        out.push((name.to_owned(), kind));
    }
    Ok(out)
}

/// Deepest directory nesting [`Anchored::remove_tree`] descends (one open descriptor per
/// level); deeper trees are left in place with an error rather than exhausting descriptors.
const MAX_REMOVE_DEPTH: usize = 64;

fn remove_entry(dir: BorrowedFd<'_>, name: &OsStr, depth: usize) -> io::Result<()> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR) | Err(Errno::PERM) => {}
        Err(e) => return Err(e.into()),
    }
    if depth >= MAX_REMOVE_DEPTH {
        return Err(io::Error::other("directory tree too deep to remove"));
    }
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | base_flags();
    let sub = match rustix::fs::openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for (child, _) in list(sub.as_fd())? {
        remove_entry(sub.as_fd(), &child, depth + 1)?;
    }
    match rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Why a module could not be opened.
#[derive(Debug)]
pub enum ModuleOpen {
    /// Nothing there (or not a regular file: a FIFO, a device, a directory), with what was
    /// found if anything.
    Absent(Option<Kind>),
    /// It resolves outside the segment (a link out).
    Outside,
    /// Another I/O error.
    Io(io::Error),
}

/// Open the module file `rel` beneath `root` in one step: `openat2(RESOLVE_BENEATH)` resolves
/// every component (links inside the segment included) and refuses any that leads out, so no
/// check-then-open gap exists. With `follow_links` false no link is followed at all (`ast
/// index`, whose walk never follows links). The handle is then checked to be a regular file.
pub fn open_module(root: &Anchor, rel: &Path, follow_links: bool) -> Result<File, ModuleOpen> {
    if check_relative(rel).is_err() {
        return Err(ModuleOpen::Outside);
    }
    if crate::mutant::active(crate::mutant::Mutant::PlainModuleOpen) {
        // The regression this guards against: a plain open by path, which follows any link.
        return File::open(root.path().join(rel)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => ModuleOpen::Absent(None),
            _ => ModuleOpen::Io(e),
        });
    }
    let flags = OFlags::RDONLY
        | base_flags()
        | if follow_links {
            OFlags::empty()
        } else {
            OFlags::NOFOLLOW
        };
    let mut how = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    if !follow_links {
        how |= ResolveFlags::NO_SYMLINKS;
    }
    use std::sync::atomic::Ordering::Relaxed;
    let opened = if OPENAT2_MISSING.load(Relaxed) {
        open_module_walk(root, rel, flags)
    } else {
        match rustix::fs::openat2(&root.fd, rel, flags, Mode::empty(), how) {
            Err(Errno::NOSYS) | Err(Errno::PERM) => {
                OPENAT2_MISSING.store(true, Relaxed);
                open_module_walk(root, rel, flags)
            }
            Err(Errno::AGAIN) => open_module_walk(root, rel, flags),
            // An absolute link that points back inside the segment is refused by
            // RESOLVE_BENEATH; resolve it by name and, if it lands inside, open the landing
            // place beneath the root again (the second open is still confined).
            Err(Errno::XDEV) if follow_links => match inside_by_name(root, rel) {
                Ok(inner) => rustix::fs::openat2(&root.fd, &inner, flags, Mode::empty(), how),
                Err(e) => Err(e),
            },
            r => r,
        }
    };
    let fd = match opened {
        Ok(fd) => fd,
        Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Err(ModuleOpen::Absent(None)),
        Err(Errno::XDEV) => return Err(ModuleOpen::Outside),
        Err(Errno::LOOP) if !follow_links => return Err(ModuleOpen::Absent(Some(Kind::Symlink))),
        Err(Errno::LOOP) => return Err(ModuleOpen::Absent(None)),
        Err(e) => return Err(ModuleOpen::Io(e.into())),
    };
    match rustix::fs::fstat(&fd) {
        Ok(st) if Kind::of_mode(st.st_mode) == Kind::File => Ok(File::from(fd)),
        Ok(st) => Err(ModuleOpen::Absent(Some(Kind::of_mode(st.st_mode)))),
        Err(e) => Err(ModuleOpen::Io(e.into())),
    }
}

/// Where `rel` lands when the kernel resolves it by name, relative to the root: `XDEV` when
/// outside, `NOENT` when it leads nowhere (a dangling link). Only a hint: the caller opens the
/// result beneath the root again, so a change meanwhile cannot lead out.
fn inside_by_name(root: &Anchor, rel: &Path) -> Result<PathBuf, Errno> {
    let canon_root = std::fs::canonicalize(&root.path).map_err(|_| Errno::XDEV)?;
    let landed = match std::fs::canonicalize(root.path.join(rel)) {
        Ok(p) => p,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Errno::NOENT),
        Err(_) => return Err(Errno::XDEV),
    };
    match landed.strip_prefix(&canon_root) {
        Ok(inner) if !inner.as_os_str().is_empty() => Ok(inner.to_path_buf()),
        _ => Err(Errno::XDEV),
    }
}

/// [`open_module`] without `openat2`: no link is followed at all (safe, stricter).
fn open_module_walk(root: &Anchor, rel: &Path, flags: OFlags) -> Result<OwnedFd, Errno> {
    let parent = rel.parent().unwrap_or(Path::new(""));
    let dir = open_dir_beneath(root.fd.as_fd(), parent)?;
    let name = rel.file_name().ok_or(Errno::NOENT)?;
    rustix::fs::openat(&dir, name, flags | OFlags::NOFOLLOW, Mode::empty())
}

#[cfg(test)]
mod tests;
