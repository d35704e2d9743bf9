//! What the hostile-segment kinds share (`plant`, `tree-snapshot`, `tree-unchanged`, in
//! [`super::kinds`]): `plant` puts links, FIFOs, devices and wrong-typed entries at the paths the
//! tool reads and writes; `tree-snapshot` and `tree-unchanged` prove that a folder outside the
//! segment (`{outside}`, the target of the planted links) was not read, written, added to or
//! deleted from. This module holds the recorded tree state and the `lstat`-only file helpers.
//!
//! How a *read* is seen: the snapshot sets every entry's access time to a fixed instant in 2001.
//! Under Linux's default `relatime` (and `strictatime`) an atime older than 24 hours is updated
//! by the next `read`/`readdir`, so any read of an outside file or listing of an outside folder
//! moves its atime. The snapshot step probes this on a private file first; where the mount does
//! not record reads (`noatime`), `tree-unchanged` says so and fails unless told otherwise.
//! Writes and deletions are seen from names, types, sizes, modes, link counts, mtime, ctime,
//! link targets and a BLAKE3 digest of every file's bytes.
//!
//! The harness itself never follows a link or opens a non-regular file here: it `lstat`s, reads
//! links with `readlink`, and opens files with `O_NOFOLLOW | O_NONBLOCK` and checks them with
//! `fstat` before reading, so a hostile tree cannot hang or redirect the checker.

use super::{GateCtx, StepResult};
use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, UTIME_OMIT};
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The access time the snapshot gives every entry: 2001-09-09, far older than 24 h, so
/// `relatime` updates it on the next read.
pub const OLD_ATIME_S: i64 = 1_000_000_000;

/// Remove whatever is at `path` without following it (a link is unlinked, never its target).
pub fn remove_entry(path: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(path) {
        // `remove_dir_all` does not follow links inside the tree (std's CVE-2022-21658 fix).
        Ok(m) if m.file_type().is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
    .map_err(|e| format!("remove existing {}: {e}", path.display()))
}

pub fn kind_name(t: &std::fs::FileType) -> &'static str {
    if t.is_symlink() {
        "symlink"
    } else if t.is_dir() {
        "directory"
    } else if t.is_file() {
        "file"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_char_device() {
        "char device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_socket() {
        "socket"
    } else {
        "unknown"
    }
}

/// Metadata of one entry, from `lstat` (links are never followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// Entry type ([`kind_name`]).
    pub kind: &'static str,
    /// Size in bytes.
    pub size: u64,
    /// Mode bits.
    pub mode: u32,
    /// Link count.
    pub nlink: u64,
    /// Modification time (s, ns).
    pub mtime: (i64, i64),
    /// Status-change time (s, ns).
    pub ctime: (i64, i64),
    /// Access time (s, ns): moved by a read.
    pub atime: (i64, i64),
}

impl Meta {
    /// From an `lstat` result.
    pub fn of(m: &std::fs::Metadata) -> Meta {
        Meta {
            kind: kind_name(&m.file_type()),
            size: m.size(),
            mode: m.mode(),
            nlink: m.nlink(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            atime: (m.atime(), m.atime_nsec()),
        }
    }
}

/// Content of one entry: a file's BLAKE3, a link's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// A regular file's BLAKE3.
    Digest(String),
    /// A link's target.
    Target(PathBuf),
    /// Anything else.
    None,
}

/// A recorded tree: every entry (key `""` is the root) and whether reads are detectable.
#[derive(Debug, Clone)]
pub struct TreeState {
    /// The recorded directory.
    pub root: PathBuf,
    /// Every entry's metadata.
    pub meta: BTreeMap<String, Meta>,
    /// Every entry's content.
    pub content: BTreeMap<String, Content>,
    /// Whether this mount records reads (atime).
    pub reads_detectable: bool,
}

/// Metadata of every entry, each `lstat`ed *before* its directory is listed, so the listing
/// (which updates the directory's atime) never hides an earlier read.
pub fn walk_meta(root: &Path) -> std::io::Result<BTreeMap<String, Meta>> {
    fn go(root: &Path, rel: &str, out: &mut BTreeMap<String, Meta>) -> std::io::Result<()> {
        let p = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(rel)
        };
        let m = std::fs::symlink_metadata(&p)?;
        out.insert(rel.to_string(), Meta::of(&m));
        if m.file_type().is_dir() {
            let mut names: Vec<String> = std::fs::read_dir(&p)?
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<Result<_, _>>()?;
            names.sort();
            for n in names {
                let child = if rel.is_empty() {
                    n
                } else {
                    format!("{rel}/{n}")
                };
                go(root, &child, out)?;
            }
        }
        Ok(())
    }
    let mut out = BTreeMap::new();
    go(root, "", &mut out)?;
    Ok(out)
}

/// A file's BLAKE3, opened without following a link or blocking on a FIFO, and read only if
/// `fstat` says it is a regular file.
pub fn digest(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    if !f.metadata()?.file_type().is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().to_hex().to_string())
}

pub fn walk_content(root: &Path, meta: &BTreeMap<String, Meta>) -> BTreeMap<String, Content> {
    meta.iter()
        .map(|(rel, m)| {
            let p = root.join(rel);
            let c = match m.kind {
                "file" => {
                    Content::Digest(digest(&p).unwrap_or_else(|e| format!("unreadable: {e}")))
                }
                "symlink" => std::fs::read_link(&p)
                    .map(Content::Target)
                    .unwrap_or(Content::None),
                _ => Content::None,
            };
            (rel.clone(), c)
        })
        .collect()
}

pub fn set_old_atime(path: &Path) -> std::io::Result<()> {
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: OLD_ATIME_S,
            tv_nsec: 0,
        },
        last_modification: Timespec {
            tv_sec: 0,
            tv_nsec: UTIME_OMIT,
        },
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(Into::into)
}

/// Whether this file system updates atime on a read once it is old: checked on a private file
/// in the gate's temp dir (beside `{outside}`, normally the same mount).
pub fn reads_detectable(dir: &Path) -> bool {
    let p = dir.join(".atime-probe");
    let ok = (|| -> std::io::Result<bool> {
        std::fs::write(&p, b"probe")?;
        set_old_atime(&p)?;
        std::fs::read(&p)?;
        Ok(std::fs::symlink_metadata(&p)?.atime() != OLD_ATIME_S)
    })()
    .unwrap_or(false);
    let _ = std::fs::remove_file(&p);
    ok
}

pub fn tree_root(ctx: &GateCtx, dir: &str) -> Result<PathBuf, StepResult> {
    let d = PathBuf::from(ctx.expand(dir));
    if d.is_absolute() {
        Ok(d)
    } else {
        Ok(ctx.segment()?.join(d))
    }
}
