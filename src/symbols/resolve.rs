//! Module → file resolution that never leaves the segment.
//!
//! A module `a.b` resolves to `<root>/a/b.py`, else `<root>/a/b/__init__.py`. The URI grammar
//! already forbids `..`, absolute paths and NUL bytes; here every candidate is canonicalised
//! (resolving every symlink on the way) and must still lie under the canonical segment root,
//! otherwise the answer is `PATH_OUTSIDE_SEGMENT` and nothing is read. The file that is later
//! read is the canonical path that passed this check.

use crate::error::{CliError, ErrorCode};
use std::path::{Path, PathBuf};

/// A module file inside the segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleFile {
    /// Canonical absolute path (inside the segment) to read.
    pub abs: PathBuf,
    /// Segment-relative path as the URI named it, `/`-separated (`pkg/__init__.py`).
    pub file_rel: String,
}

/// Canonicalise `--segment`. Missing or not a directory → `SEGMENT_NOT_FOUND`; nothing is
/// created.
pub fn segment_root(segment: &Path) -> Result<PathBuf, CliError> {
    let root = std::fs::canonicalize(segment).map_err(|e| {
        CliError::new(
            ErrorCode::SegmentNotFound,
            format!("segment {} is not accessible: {e}", segment.display()),
        )
    })?;
    if !root.is_dir() {
        return Err(CliError::new(
            ErrorCode::SegmentNotFound,
            format!("segment {} is not a directory", segment.display()),
        ));
    }
    Ok(root)
}

/// Check one candidate: `Ok(None)` when it does not exist as a file, an error when it exists
/// but escapes the segment.
fn check_candidate(root: &Path, rel: &str) -> Result<Option<ModuleFile>, CliError> {
    let candidate = root.join(rel);
    // symlink_metadata first: a dangling link is "not found", not an I/O error.
    if std::fs::symlink_metadata(&candidate).is_err() {
        return Ok(None);
    }
    let Ok(abs) = std::fs::canonicalize(&candidate) else {
        return Ok(None);
    };
    if !abs.starts_with(root) {
        return Err(CliError::new(
            ErrorCode::PathOutsideSegment,
            format!("{rel} resolves outside the segment (symlink); refusing to read it"),
        ));
    }
    Ok(abs.is_file().then(|| ModuleFile {
        abs,
        file_rel: rel.to_string(),
    }))
}

/// Resolve module `components` (already validated identifiers) under canonical `root`.
pub fn module_file(root: &Path, components: &[String]) -> Result<Option<ModuleFile>, CliError> {
    let base = components.join("/");
    if let Some(f) = check_candidate(root, &format!("{base}.py"))? {
        return Ok(Some(f));
    }
    check_candidate(root, &format!("{base}/__init__.py"))
}

/// Resolve a `mod` URI: `FILE_NOT_FOUND` when neither candidate exists.
pub fn resolve_module(root: &Path, components: &[String]) -> Result<ModuleFile, CliError> {
    module_file(root, components)?.ok_or_else(|| {
        CliError::new(
            ErrorCode::FileNotFound,
            format!("Could not find module for {}", components.join(".")),
        )
    })
}

/// Resolve a `type` URI: the longest module prefix (leaving at least one class component) that
/// names a file wins; the remaining components are the class path.
pub fn resolve_type(
    root: &Path,
    components: &[String],
) -> Result<(ModuleFile, Vec<String>), CliError> {
    for split in (1..components.len()).rev() {
        if let Some(f) = module_file(root, &components[..split])? {
            return Ok((f, components[split..].to_vec()));
        }
    }
    Err(CliError::new(
        ErrorCode::FileNotFound,
        format!(
            "Could not find a module for any prefix of {}",
            components.join(".")
        ),
    ))
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
