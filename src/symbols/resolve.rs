//! Module → file resolution that never leaves the segment.
//!
//! A module `a.b` resolves to `<root>/a/b.py`, else `<root>/a/b/__init__.py`. The URI grammar
//! already forbids `..`, absolute paths and NUL bytes; here every candidate is resolved beneath
//! the segment root (links inside it are followed, a link out is refused), otherwise the answer is `PATH_OUTSIDE_SEGMENT` and nothing is read. Resolution and opening are
//! one kernel call beneath the segment ([`crate::segment_fs::open_module`]), so the file read is
//! exactly the one checked, however the tree changes meanwhile.

use crate::error::{CliError, ErrorCode};
use crate::segment_fs::{Anchor, ModuleOpen, open_module};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The segment a command works on: its canonical path and a handle on the directory, so every
/// later file operation is made relative to the directory that was checked (see
/// [`crate::segment_fs`]). Derefs to the path.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Canonical absolute path.
    pub path: PathBuf,
    /// The open directory.
    pub anchor: Arc<Anchor>,
}

impl std::ops::Deref for Segment {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for Segment {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

/// A module file inside the segment, opened.
#[derive(Debug)]
pub struct ModuleFile {
    /// Absolute path (inside the segment), for messages only: the bytes are read from `file`.
    pub abs: PathBuf,
    /// Segment-relative path as the URI named it, `/`-separated (`pkg/__init__.py`).
    pub file_rel: String,
    /// The handle opened beneath the segment and checked to be a regular file.
    pub file: File,
}

/// Canonicalise `--segment` and open it. Missing or not a directory → `SEGMENT_NOT_FOUND`;
/// nothing is created.
pub fn segment_root(segment: &Path) -> Result<Segment, CliError> {
    let not_found = |why: String| {
        CliError::new(
            ErrorCode::SegmentNotFound,
            format!("segment {} {why}", segment.display()),
        )
    };
    let root = if crate::mutant::active(crate::mutant::Mutant::SegmentAsSpelled) {
        std::path::absolute(segment).map_err(|e| not_found(format!("is not accessible: {e}")))?
    } else {
        std::fs::canonicalize(segment).map_err(|e| not_found(format!("is not accessible: {e}")))?
    };
    let anchor = Anchor::open(&root).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOTDIR) => not_found("is not a directory".into()),
        _ => not_found(format!("is not accessible: {e}")),
    })?;
    Ok(Segment { path: root, anchor })
}

/// Check one candidate: `Ok(None)` when it is not a regular file there (missing, a FIFO, a
/// device, a directory), an error when it leads outside the segment. Resolved and opened in one
/// step beneath the segment, so what is read is what was checked.
fn check_candidate(root: &Segment, rel: &str) -> Result<Option<ModuleFile>, CliError> {
    match open_module(&root.anchor, Path::new(rel), true) {
        Ok(file) => Ok(Some(ModuleFile {
            abs: root.join(rel),
            file_rel: rel.to_string(),
            file,
        })),
        Err(ModuleOpen::Absent(_)) => Ok(None),
        Err(ModuleOpen::Outside) => Err(CliError::new(
            ErrorCode::PathOutsideSegment,
            format!("{rel} resolves outside the segment (symlink); refusing to read it"),
        )),
        Err(ModuleOpen::Io(e)) => Err(CliError::new(
            ErrorCode::FileReadError,
            format!("cannot open {rel}: {e}"),
        )),
    }
}

/// Resolve module `components` (already validated identifiers) under canonical `root`.
pub fn module_file(root: &Segment, components: &[String]) -> Result<Option<ModuleFile>, CliError> {
    let [file, package] = candidates(components);
    if let Some(f) = check_candidate(root, &file)? {
        return Ok(Some(f));
    }
    check_candidate(root, &package)
}

/// Resolve a `mod` URI: `FILE_NOT_FOUND` when neither candidate exists.
pub fn resolve_module(root: &Segment, components: &[String]) -> Result<ModuleFile, CliError> {
    module_file(root, components)?.ok_or_else(|| {
        CliError::new(
            ErrorCode::FileNotFound,
            format!("Could not find module for {}", components.join(".")),
        )
        .with_detail(format!("tried {}", candidates(components).join(", ")))
    })
}

/// Resolve a `type` URI: the longest module prefix (leaving at least one class component) that
/// names a file wins; the remaining components are the class path.
pub fn resolve_type(
    root: &Segment,
    components: &[String],
) -> Result<(ModuleFile, Vec<String>), CliError> {
    for split in (1..components.len()).rev() {
        if let Some(f) = module_file(root, &components[..split])? {
            return Ok((f, components[split..].to_vec()));
        }
    }
    let tried: Vec<String> = (1..components.len())
        .rev()
        .flat_map(|split| candidates(&components[..split]))
        .collect();
    Err(CliError::new(
        ErrorCode::FileNotFound,
        format!(
            "Could not find a module for any prefix of {}",
            components.join(".")
        ),
    )
    .with_detail(format!("tried {}", tried.join(", "))))
}

/// The segment-relative files a module name can live in, in the order they are tried.
fn candidates(components: &[String]) -> [String; 2] {
    let base = components.join("/");
    [format!("{base}.py"), format!("{base}/__init__.py")]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn prefers_module_file_then_package() {
        let d = tempfile::tempdir().unwrap();
        let root = segment_root(d.path()).unwrap();
        std::fs::create_dir_all(root.join("pkg")).unwrap();
        std::fs::write(root.join("pkg/__init__.py"), "").unwrap();
        assert_eq!(
            resolve_module(&root, &v(&["pkg"])).unwrap().file_rel,
            "pkg/__init__.py"
        );
        std::fs::write(root.join("pkg.py"), "").unwrap();
        assert_eq!(
            resolve_module(&root, &v(&["pkg"])).unwrap().file_rel,
            "pkg.py"
        );
        assert_eq!(
            resolve_module(&root, &v(&["nope"])).unwrap_err().code,
            ErrorCode::FileNotFound
        );
    }

    #[test]
    fn type_uses_longest_module_prefix() {
        let d = tempfile::tempdir().unwrap();
        let root = segment_root(d.path()).unwrap();
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(root.join("a/b.py"), "").unwrap();
        let (f, class_path) = resolve_type(&root, &v(&["a", "b", "Outer", "Inner"])).unwrap();
        assert_eq!(
            (f.file_rel.as_str(), class_path),
            ("a/b.py", v(&["Outer", "Inner"]))
        );
    }

    #[test]
    fn symlink_escaping_the_segment_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.py"), "def s(): pass\n").unwrap();
        let d = tempfile::tempdir().unwrap();
        let root = segment_root(d.path()).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.py"), root.join("leak.py")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.join("dir")).unwrap();
        assert_eq!(
            resolve_module(&root, &v(&["leak"])).unwrap_err().code,
            ErrorCode::PathOutsideSegment
        );
        assert_eq!(
            resolve_module(&root, &v(&["dir", "secret"]))
                .unwrap_err()
                .code,
            ErrorCode::PathOutsideSegment
        );
        // A dangling link is simply not found.
        std::os::unix::fs::symlink(root.join("missing.py"), root.join("dangling.py")).unwrap();
        assert_eq!(
            resolve_module(&root, &v(&["dangling"])).unwrap_err().code,
            ErrorCode::FileNotFound
        );
    }

    #[test]
    fn missing_segment_is_an_error_and_creates_nothing() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("nope");
        assert_eq!(
            segment_root(&missing).unwrap_err().code,
            ErrorCode::SegmentNotFound
        );
        assert!(!missing.exists());
    }
}
