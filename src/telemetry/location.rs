//! Where a segment's telemetry lives, reached through [`crate::segment_fs`] so that a planted
//! `_ctx/telemetry` link, FIFO or file never makes us write, rotate, delete or read outside the
//! segment.

use crate::segment_fs::{Anchor, Anchored, FsError, Incident, Kind};
use std::io;
use std::path::{Path, PathBuf};

/// A telemetry directory: a trusted base the user named (the segment root, or
/// `TRIFECTA_TELEMETRY_DIR` itself) and a path beneath it that is not trusted (`_ctx/telemetry`
/// in a segment, which the repository may have committed as anything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    base: PathBuf,
    rel: PathBuf,
}

impl Location {
    /// `rel` beneath the segment root `root`.
    pub fn in_segment(root: &Path, rel: &str) -> Self {
        Location {
            base: root.to_path_buf(),
            rel: PathBuf::from(rel),
        }
    }

    /// A directory the user named (`TRIFECTA_TELEMETRY_DIR`): created when missing, links to
    /// it followed (the user chose it); the files inside are still opened without following.
    pub fn user(dir: impl Into<PathBuf>) -> Self {
        Location {
            base: dir.into(),
            rel: PathBuf::new(),
        }
    }

    /// The directory's path, for messages.
    pub fn path(&self) -> PathBuf {
        self.base.join(&self.rel)
    }

    /// The directory, ready to write into: created when missing; anything planted on the way
    /// is moved aside and returned as incidents.
    pub fn for_write(&self, incidents: &mut Vec<Incident>) -> io::Result<Anchored> {
        if self.rel.as_os_str().is_empty() {
            std::fs::create_dir_all(&self.base)?;
        }
        let dir = Anchor::open(&self.base)?.at(&self.rel);
        if !self.rel.as_os_str().is_empty() {
            dir.ensure_dir_chain(true, incidents)?;
        }
        Ok(dir)
    }

    /// The directory, to read from; `None` when it does not exist. Something other than a
    /// directory there (a link, a file) is an error, and nothing is followed.
    pub fn for_read(&self) -> io::Result<Option<Anchored>> {
        let anchor = match Anchor::open(&self.base) {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                return Err(io::Error::other(format!(
                    "{} exists but is not a directory",
                    self.base.display()
                )));
            }
            Err(e) => return Err(e),
        };
        let dir = anchor.at(&self.rel);
        match dir.kind()? {
            None => Ok(None),
            Some(Kind::Dir) => Ok(Some(dir)),
            Some(k) => Err(FsError::Foreign {
                path: dir.rel_display(),
                found: k,
                expected: "directory",
            }
            .into()),
        }
    }
}
