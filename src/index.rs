//! Whole-segment indexing: every `.py` file of a segment through the same cache-aside path as
//! `ast symbols`, in parallel, written back in batched transactions.
//!
//! Pipeline, one chunk of files at a time so memory stays bounded whatever the segment size:
//! 1. read + hash the chunk's files in parallel (rayon);
//! 2. look each up in the store, in order (one SQLite connection is not shareable across threads,
//!    and a lookup is tens of microseconds, so this is not the bottleneck);
//! 3. extract the misses in parallel;
//! 4. write the chunk's misses in one `put_batch` transaction, then hand every result, in path
//!    order, to the caller's sink.
//!
//! Output order is the sorted segment-relative path, so `--jobs 1` and `--jobs N` produce
//! byte-identical results.

use crate::cache::{CacheKey, Lookup, MissReason, Store};
use crate::symbols::{SymbolTable, extract};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// Files per chunk: large enough to keep both cores busy, small enough to bound memory
/// (at most this many source files are held at once).
pub const CHUNK: usize = 256;

/// Directory names never descended into, wherever they appear.
pub const SKIPPED_DIRS: &[&str] = &[".trifecta", "_ctx", "__pycache__", ".git", "node_modules"];

/// One Python file found by the walk.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SourceFile {
    /// Segment-relative, `/`-separated path.
    pub file_rel: String,
    /// Absolute path to read.
    pub abs: PathBuf,
}

/// True for a virtualenv root (it holds `pyvenv.cfg`), which is never indexed.
fn is_virtualenv(dir: &Path) -> bool {
    dir.join("pyvenv.cfg").is_file()
}

/// Walk `root` for `.py` files, honouring `.gitignore` (also outside a git repository) and
/// `.ignore`, skipping hidden entries, [`SKIPPED_DIRS`], virtualenvs and symlinks (a link could
/// lead outside the segment). Sorted by path.
pub fn walk(root: &Path) -> (Vec<SourceFile>, Vec<(String, String)>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let walker = ignore::WalkBuilder::new(root)
        .hidden(true)
        .follow_links(false)
        .require_git(false)
        .filter_entry(|e| {
            let is_dir = e.file_type().is_some_and(|t| t.is_dir());
            !(is_dir
                && (e
                    .file_name()
                    .to_str()
                    .is_some_and(|n| SKIPPED_DIRS.contains(&n))
                    || is_virtualenv(e.path())))
        })
        .build();
    for entry in walker {
        match entry {
            Ok(e) => {
                let is_file = e.file_type().is_some_and(|t| t.is_file());
                if !is_file || e.path().extension().is_none_or(|x| x != "py") {
                    continue;
                }
                let Ok(rel) = e.path().strip_prefix(root) else {
                    continue;
                };
                let file_rel = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                files.push(SourceFile {
                    file_rel,
                    abs: e.path().to_path_buf(),
                });
            }
            Err(err) => errors.push((String::from("<walk>"), relativize(&err.to_string(), root))),
        }
    }
    files.sort();
    (files, errors)
}

/// Strip the segment root from an error message so reports carry no absolute paths.
fn relativize(msg: &str, root: &Path) -> String {
    let r = root.to_string_lossy();
    msg.replace(&format!("{r}/"), "").replace(r.as_ref(), ".")
}

/// The dotted module name a `sym://python/mod/…` URI would use for `file_rel`, or `None` when
/// a component is not an identifier (such a file cannot be addressed by a URI).
pub fn module_name(file_rel: &str) -> Option<String> {
    let stem = file_rel.strip_suffix(".py")?;
    let stem = stem.strip_suffix("/__init__").unwrap_or(stem);
    let parts: Vec<&str> = stem.split('/').collect();
    parts
        .iter()
        .all(|p| crate::symbols::uri::is_identifier(p))
        .then(|| parts.join("."))
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Served from the cache.
    Hit(SymbolTable),
    /// Extracted (and written, unless the store refused), with the miss reason.
    Miss(SymbolTable, MissReason),
    /// Could not be read; the message is path-free.
    Error(String),
}

/// One file's result, handed to the sink in path order.
#[derive(Debug, Clone)]
pub struct FileResult {
    /// Segment-relative path.
    pub file_rel: String,
    /// Bytes read (0 on error).
    pub bytes: u64,
    /// Content key (None on error).
    pub key: Option<CacheKey>,
    /// Hit, miss or error.
    pub outcome: Outcome,
}

/// Counters the caller may not want to recompute from the stream.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StoreTrouble {
    /// Lookups or batch writes that failed and were served uncached.
    pub failures: u64,
    /// The last such error, for the summary.
    pub last_error: Option<String>,
}

struct Read {
    file_rel: String,
    bytes: Result<Vec<u8>, String>,
}

fn read_one(f: &SourceFile, max_bytes: u64) -> Read {
    let bytes = match std::fs::metadata(&f.abs) {
        Ok(m) if m.len() > max_bytes => Err(format!(
            "{} bytes exceeds the {max_bytes}-byte limit",
            m.len()
        )),
        Ok(_) => std::fs::read(&f.abs).map_err(|e| e.kind().to_string()),
        Err(e) => Err(e.kind().to_string()),
    };
    Read {
        file_rel: f.file_rel.clone(),
        bytes,
    }
}

/// Index `files` through `store` on `pool`, calling `sink` once per file in path order. `on_chunk` is
/// called after each chunk with the number of files done (for a progress bar).
pub fn run(
    pool: &rayon::ThreadPool,
    files: &[SourceFile],
    store: &mut dyn Store,
    max_bytes: u64,
    mut sink: impl FnMut(FileResult),
    mut on_chunk: impl FnMut(usize),
) -> StoreTrouble {
    let mut trouble = StoreTrouble::default();
    let mut done = 0;
    for chunk in files.chunks(CHUNK) {
        let reads: Vec<(Read, Option<CacheKey>)> = pool.install(|| {
            chunk
                .par_iter()
                .map(|f| {
                    let r = read_one(f, max_bytes);
                    let key = r.bytes.as_ref().ok().map(|b| CacheKey::of(b));
                    (r, key)
                })
                .collect()
        });
        // Sequential lookups; remember which entries need extraction.
        let mut slots: Vec<Option<Outcome>> = Vec::with_capacity(reads.len());
        for (r, key) in &reads {
            slots.push(match (&r.bytes, key) {
                (Err(e), _) => Some(Outcome::Error(e.clone())),
                (Ok(_), Some(k)) => match store.get(&r.file_rel, k) {
                    Ok(Lookup::Hit(t)) => Some(Outcome::Hit(t)),
                    Ok(Lookup::Miss(reason)) => Some(Outcome::Miss(SymbolTable::default(), reason)),
                    Err(e) => {
                        trouble.failures += 1;
                        trouble.last_error = Some(e.to_string());
                        Some(Outcome::Miss(
                            SymbolTable::default(),
                            MissReason::CacheUnavailable,
                        ))
                    }
                },
                (Ok(_), None) => None,
            });
        }
        // Parallel extraction of the misses.
        let extracted: Vec<Option<SymbolTable>> = pool.install(|| {
            reads
                .par_iter()
                .zip(slots.par_iter())
                .map(|((r, _), slot)| match (slot, &r.bytes) {
                    (Some(Outcome::Miss(..)), Ok(b)) => Some(extract::extract(b)),
                    _ => None,
                })
                .collect()
        });
        let mut batch = Vec::new();
        for ((slot, table), (r, key)) in slots.iter_mut().zip(extracted).zip(&reads) {
            if let (Some(Outcome::Miss(t, _)), Some(table), Some(k)) = (slot.as_mut(), table, key) {
                batch.push((r.file_rel.clone(), *k, table.clone()));
                *t = table;
            }
        }
        if !batch.is_empty()
            && let Err(e) = store.put_batch(&batch)
        {
            trouble.failures += 1;
            trouble.last_error = Some(e.to_string());
        }
        for ((r, key), slot) in reads.into_iter().zip(slots) {
            let bytes = r.bytes.as_ref().map(|b| b.len() as u64).unwrap_or(0);
            let outcome = slot.unwrap_or_else(|| Outcome::Error("unreadable".into()));
            sink(FileResult {
                file_rel: r.file_rel,
                bytes,
                key,
                outcome,
            });
        }
        done += chunk.len();
        on_chunk(done);
    }
    trouble
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_follow_the_uri_grammar() {
        assert_eq!(module_name("pkg/mod.py").as_deref(), Some("pkg.mod"));
        assert_eq!(module_name("pkg/__init__.py").as_deref(), Some("pkg"));
        assert_eq!(module_name("top.py").as_deref(), Some("top"));
        assert_eq!(module_name("my-pkg/mod.py"), None);
        assert_eq!(module_name("notes.txt"), None);
    }

    #[test]
    fn walk_skips_ignored_hidden_venv_and_cache_dirs_and_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for rel in [
            "a.py",
            "pkg/__init__.py",
            "pkg/b.py",
            "ignored/c.py",
            ".hidden/d.py",
            "venv/lib/e.py",
            "_ctx/f.py",
            ".trifecta/g.py",
            "pkg/__pycache__/h.py",
            "notes.txt",
        ] {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "").unwrap();
        }
        std::fs::write(root.join("venv/pyvenv.cfg"), "").unwrap();
        std::fs::write(root.join(".gitignore"), "ignored/\n").unwrap();
        std::os::unix::fs::symlink(root.join("a.py"), root.join("link.py")).unwrap();
        let (files, errors) = walk(root);
        let rels: Vec<&str> = files.iter().map(|f| f.file_rel.as_str()).collect();
        assert_eq!(rels, ["a.py", "pkg/__init__.py", "pkg/b.py"]);
        assert!(errors.is_empty());
    }
}
