//! The segment walk of `ast index`, through directory handles ([`crate::segment_fs`]).
//!
//! Every directory is listed by resolving it beneath the segment root without following any
//! link, so a directory swapped for a link during the walk is an error for that directory, not a
//! way out of the segment. Ignore rules are read the same way (regular files only) and matched
//! with `ignore`'s gitignore matcher, with the precedence of `ignore`'s own walker: `.ignore`
//! over `.gitignore` over `.git/info/exclude`, a deeper file over a shallower one, and a
//! whitelisted (`!pattern`) hidden entry is kept. Nothing above the segment is read: neither the
//! ignore files of parent directories nor the user's global git excludes, so the same tree gives
//! the same file list on every machine.

use super::{SKIPPED_DIRS, SourceFile};
use crate::segment_fs::{Anchor, Kind, OpenDir};
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest ignore file read; a larger one is an error for its directory (and ignored).
const MAX_IGNORE_BYTES: u64 = 1 << 20;

/// The ignore files of one directory, in precedence order (`.ignore`, `.gitignore`, and for the
/// root `.git/info/exclude`).
struct Rules {
    by_kind: [Option<Gitignore>; 3],
}

/// Walk the segment for `.py` files, honouring ignore files, skipping hidden entries,
/// [`SKIPPED_DIRS`], virtualenvs and links. Sorted by path. Errors are `(directory, message)`
/// with segment-relative names only.
pub fn walk(root: &Arc<Anchor>) -> (Vec<SourceFile>, Vec<(String, String)>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    // (directory, rules of every directory from the root down to it, innermost last)
    let mut stack: Vec<(PathBuf, Arc<Vec<Arc<Rules>>>)> =
        vec![(PathBuf::new(), Arc::new(Vec::new()))];
    while let Some((rel, outer)) = stack.pop() {
        let is_root = rel.as_os_str().is_empty();
        // One resolution per directory; its entries, ignore files and venv marker are all
        // examined through this handle.
        let dir = match root.at(&rel).open_dir() {
            Ok(d) => d,
            Err(e) => {
                errors.push((display(&rel), e.to_string()));
                continue;
            }
        };
        if !is_root && matches!(dir.kind("pyvenv.cfg"), Ok(Some(Kind::File))) {
            continue; // a virtualenv root is never indexed
        }
        let entries = match dir.entries() {
            Ok(e) => e,
            Err(e) => {
                errors.push((display(&rel), e.to_string()));
                continue;
            }
        };
        let mut chain = Vec::with_capacity(outer.len() + 1);
        chain.extend(outer.iter().cloned());
        chain.push(Arc::new(read_rules(root, &rel, &dir, &mut errors)));
        let chain = Arc::new(chain);
        for (name, kind) in entries {
            let child = rel.join(&name);
            let is_dir = kind == Kind::Dir;
            if kind != Kind::File && !is_dir {
                continue; // links, FIFOs, devices, sockets: never indexed, never followed
            }
            let abs = root.path().join(&child);
            match decide(&chain, &abs, is_dir) {
                Some(false) => continue,
                Some(true) => {}
                None if name.as_encoded_bytes().starts_with(b".") => continue,
                None => {}
            }
            if is_dir {
                let skipped = name.to_str().is_some_and(|n| SKIPPED_DIRS.contains(&n));
                if !skipped {
                    stack.push((child, Arc::clone(&chain)));
                }
            } else if child.extension().is_some_and(|x| x == "py") {
                files.push(SourceFile {
                    // Lossless: names differing only in non-UTF-8 bytes keep distinct rows.
                    file_rel: crate::file_rel::encode(&child),
                    rel: child,
                });
            }
        }
    }
    files.sort();
    (files, errors)
}

/// `/`-separated segment-relative name (`.` for the root).
fn display(rel: &Path) -> String {
    if rel.as_os_str().is_empty() {
        return ".".into();
    }
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Read this directory's ignore files (regular files only, never through a link).
fn read_rules(
    root: &Arc<Anchor>,
    rel: &Path,
    dir: &OpenDir,
    errors: &mut Vec<(String, String)>,
) -> Rules {
    let mut by_kind: [Option<Gitignore>; 3] = [None, None, None];
    let mut texts: [Option<Vec<u8>>; 3] = [None, None, None];
    for (slot, name) in texts.iter_mut().zip([".ignore", ".gitignore"]) {
        match dir.read_file(name, MAX_IGNORE_BYTES) {
            Ok(t) => *slot = t,
            Err(e) => errors.push((display(&rel.join(name)), e.to_string())),
        }
    }
    if rel.as_os_str().is_empty() {
        let exclude = root.at(".git/info/exclude");
        match exclude.read(MAX_IGNORE_BYTES) {
            Ok(b) => texts[2] = Some(b),
            Err(e) if e.is_not_found() => {}
            Err(crate::segment_fs::FsError::Foreign { .. }) => {} // not ours to read
            Err(e) => errors.push((exclude.rel_display(), e.to_string())),
        }
    }
    for (slot, text) in by_kind.iter_mut().zip(texts) {
        let Some(bytes) = text else { continue };
        let mut b = GitignoreBuilder::new(root.path().join(rel));
        for line in String::from_utf8_lossy(&bytes).lines() {
            // A malformed glob is skipped, as git itself does.
            let _ = b.add_line(None, line);
        }
        if let Ok(g) = b.build() {
            *slot = Some(g);
        }
    }
    Rules { by_kind }
}

/// `Some(true)` whitelisted, `Some(false)` ignored, `None` no rule says anything.
fn decide(chain: &[Arc<Rules>], abs: &Path, is_dir: bool) -> Option<bool> {
    for kind in 0..3 {
        for rules in chain.iter().rev() {
            if let Some(g) = &rules.by_kind[kind] {
                let m = g.matched(abs, is_dir);
                if m.is_ignore() {
                    return Some(false);
                }
                if m.is_whitelist() {
                    return Some(true);
                }
            }
        }
    }
    None
}
