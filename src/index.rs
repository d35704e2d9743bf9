//! Whole-segment indexing: every `.py` file of a segment through the same cache-aside path as
//! `ast symbols`, in parallel, written back in batched transactions.
//!
//! Pipeline, one chunk of files at a time so memory stays bounded whatever the segment size:
//! 1. read + hash the chunk's files in parallel (rayon), on a prefetch thread;
//! 2. look each up in the store, in order (one SQLite connection is not shareable across threads);
//! 3. extract the misses in parallel;
//! 4. write the chunk's misses in one `put_batch` transaction, then hand every result, in path
//!    order, to the caller's sink.
//!
//! Stages 1 and 3 of one chunk overlap stages 2 and 4 of its neighbours (see [`run`]), so the
//! single-threaded SQLite work does not leave the cores idle.
//!
//! Output order is the sorted segment-relative path (as escaped by [`crate::file_rel`]), so
//! `--jobs 1` and `--jobs N` produce byte-identical results.
//!
//! Store trouble is per file: a lookup or batch write that fails is counted and that file is
//! served uncached, and an entry that does not decode is a miss for that file alone
//! (`entry_unreadable`). The store stops answering for the rest of the run only when the
//! database itself is found damaged and quarantined (the next run rebuilds it).

use crate::cache::service::{Found, StoreTrouble, SymbolCache, ToStore, elapsed_ms};
use crate::cache::{CacheKey, MissReason};
use crate::mutant::{self, Mutant};
use crate::segment_fs::{Anchor, ModuleOpen, open_module};
use crate::symbols::read::{ReadError, read_capped};
use crate::symbols::{SymbolTable, extract};
use rayon::prelude::*;
use std::path::PathBuf;

mod walk;

/// Files per chunk: large enough to keep both cores busy, small enough to bound memory
/// (at most this many source files are held at once).
pub const CHUNK: usize = 256;

/// Stack of each extraction worker. Parsing needs a stack proportional to the module's size
/// (see `symbols::extract::exact`), grown on demand; with 64 MiB (address space, touched only
/// as deep as used) that happens only for modules over ~500 KB, instead of mapping and faulting
/// in a fresh stack for every module over ~14 KB on rayon's default 2 MiB.
pub const WORKER_STACK: usize = 64 * 1024 * 1024;

/// Directory names never descended into, wherever they appear.
pub const SKIPPED_DIRS: &[&str] = &[".trifecta", "_ctx", "__pycache__", ".git", "node_modules"];

/// One Python file found by the walk.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SourceFile {
    /// Segment-relative, `/`-separated path, escaped losslessly ([`crate::file_rel`]).
    pub file_rel: String,
    /// Segment-relative path to open (beneath the root, no link followed).
    pub rel: PathBuf,
}

pub use walk::walk;

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
pub enum FileOutcome {
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
    /// Segment-relative path, escaped losslessly ([`crate::file_rel`]).
    pub file_rel: String,
    /// Bytes read (0 on error).
    pub bytes: u64,
    /// Content key (None on error).
    pub key: Option<CacheKey>,
    /// Hit, miss or error.
    pub outcome: FileOutcome,
}

/// One file as read and hashed by the prefetch stage.
struct Read {
    file_rel: String,
    bytes: Result<Vec<u8>, String>,
    key: Option<CacheKey>,
}

/// Read (capped) and hash one file. Errors are path-free: the I/O error's kind only.
fn read_one(root: &Anchor, f: &SourceFile, max_bytes: u64) -> Read {
    // Opened beneath the root without following any link: the walk saw a regular file, and
    // whatever replaced it since (a link out, a FIFO) is refused on the handle.
    let (bytes, key) = match open_module(root, &f.rel, false) {
        Ok(file) => {
            let bytes = read_capped(&file, max_bytes).map_err(|e| match e {
                ReadError::Io(io) => io.kind().to_string(),
                too_large => too_large.to_string(),
            });
            let key = bytes.as_ref().ok().map(|b| CacheKey::for_file(&file, b));
            (bytes, key)
        }
        Err(ModuleOpen::Absent(None)) => (Err("not found".to_string()), None),
        Err(ModuleOpen::Absent(Some(k))) => {
            (Err(format!("not a regular file ({})", k.as_str())), None)
        }
        Err(ModuleOpen::Outside) => (Err("leads outside the segment".to_string()), None),
        Err(ModuleOpen::Io(io)) => (Err(io.kind().to_string()), None),
    };
    Read {
        file_rel: f.file_rel.clone(),
        bytes,
        key,
    }
}

/// A chunk whose lookups are done and whose misses have been extracted: what is left is writing
/// the misses and handing results to the sink.
struct Extracted {
    reads: Vec<Read>,
    slots: Vec<Option<FileOutcome>>,
    /// Each miss's table and its extraction time in milliseconds.
    tables: Vec<Option<(SymbolTable, f64)>>,
}

/// Index `files` through `cache` on `pool`, calling `sink` once per file in path order. `on_chunk` is
/// called after each chunk with the number of files done (for a progress bar).
///
/// Three stages overlap, so neither core waits on the single-threaded SQLite work:
/// a prefetch thread reads and hashes chunk N+1 (on `pool`) while the calling thread looks up
/// chunk N, and chunk N's misses are extracted (on `pool`) while the calling thread writes
/// chunk N-1 and hands its results to `sink`. Each file appears once, so a chunk's lookups never
/// depend on an earlier chunk's writes. At most three chunks are held at once.
pub fn run(
    pool: &rayon::ThreadPool,
    root: &Anchor,
    files: &[SourceFile],
    cache: &mut SymbolCache,
    max_bytes: u64,
    mut sink: impl FnMut(FileResult),
    mut on_chunk: impl FnMut(usize),
) -> StoreTrouble {
    let mut done = 0;
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Read>>(1);
        scope.spawn(move || {
            for chunk in files.chunks(CHUNK) {
                let reads = pool.install(|| {
                    chunk
                        .par_iter()
                        .map(|f| read_one(root, f, max_bytes))
                        .collect()
                });
                if tx.send(reads).is_err() {
                    return;
                }
            }
        });
        let mut previous: Option<Extracted> = None;
        for reads in rx {
            let slots = look_up(&reads, cache);
            let mut tables = Vec::new();
            pool.in_place_scope(|s| {
                s.spawn(|_| tables = extract_misses(&reads, &slots));
                if let Some(chunk) = previous.take() {
                    done += finish(chunk, cache, &mut sink);
                    on_chunk(done);
                }
            });
            previous = Some(Extracted {
                reads,
                slots,
                tables,
            });
        }
        if let Some(chunk) = previous.take() {
            done += finish(chunk, cache, &mut sink);
            on_chunk(done);
        }
    });
    cache.trouble().clone()
}

/// Look up each read file, in order (one SQLite connection, one thread), through the same
/// cache-aside as `ast symbols` (so every lookup is in the telemetry). `None` marks a file that
/// could not be hashed; a miss carries an empty table until extraction fills it.
fn look_up(reads: &[Read], cache: &mut SymbolCache) -> Vec<Option<FileOutcome>> {
    // The chunk's readable files are looked up together: L1 one by one, then their L1 misses
    // in one remote `MGET` (when a remote is configured).
    let keyed: Vec<(&str, &CacheKey)> = reads
        .iter()
        .filter_map(|r| match (&r.bytes, &r.key) {
            (Ok(_), Some(k)) if !mutant::active(Mutant::IndexIgnoresCache) => {
                Some((r.file_rel.as_str(), k))
            }
            _ => None,
        })
        .collect();
    let mut found = cache.lookup_many(&keyed).into_iter();
    reads
        .iter()
        .map(|r| match (&r.bytes, &r.key) {
            (Err(e), _) => Some(FileOutcome::Error(e.clone())),
            (Ok(_), Some(_)) if mutant::active(Mutant::IndexIgnoresCache) => Some(
                FileOutcome::Miss(SymbolTable::default(), MissReason::KeyMiss),
            ),
            (Ok(_), Some(_)) => Some(match found.next() {
                Some(Found::Hit(t)) => FileOutcome::Hit(t),
                Some(Found::Miss(reason)) => FileOutcome::Miss(SymbolTable::default(), reason),
                None => FileOutcome::Miss(SymbolTable::default(), MissReason::CacheUnavailable),
            }),
            (Ok(_), None) => None,
        })
        .collect()
}

/// Extract every miss of a chunk in parallel (on the pool that runs the caller).
fn extract_misses(
    reads: &[Read],
    slots: &[Option<FileOutcome>],
) -> Vec<Option<(SymbolTable, f64)>> {
    reads
        .par_iter()
        .zip(slots.par_iter())
        .map(|(r, slot)| match (slot, &r.bytes) {
            (Some(FileOutcome::Miss(..)), Ok(b)) => {
                let t = std::time::Instant::now();
                let table = extract::extract(b);
                Some((table, elapsed_ms(t)))
            }
            _ => None,
        })
        .collect()
}

/// Write a chunk's misses in one transaction, then hand every result to `sink` in path order.
/// Returns the number of files handed over.
fn finish(chunk: Extracted, cache: &mut SymbolCache, sink: &mut impl FnMut(FileResult)) -> usize {
    let Extracted {
        reads,
        mut slots,
        tables,
    } = chunk;
    let mut batch = Vec::new();
    for ((slot, table), r) in slots.iter_mut().zip(tables).zip(&reads) {
        if let (Some(FileOutcome::Miss(t, _)), Some((table, extract_ms)), Some(key)) =
            (slot.as_mut(), table, r.key)
        {
            batch.push(ToStore {
                file_rel: r.file_rel.clone(),
                key,
                table: table.clone(),
                extract_ms,
            });
            *t = table;
        }
    }
    cache.store(batch);
    let n = reads.len();
    for (r, slot) in reads.into_iter().zip(slots) {
        let bytes = r.bytes.as_ref().map(|b| b.len() as u64).unwrap_or(0);
        sink(FileResult {
            file_rel: r.file_rel,
            bytes,
            key: r.key,
            outcome: slot.unwrap_or_else(|| FileOutcome::Error("unreadable".into())),
        });
    }
    n
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
        let (files, errors) = walk(&crate::segment_fs::Anchor::open(root).unwrap());
        let rels: Vec<&str> = files.iter().map(|f| f.file_rel.as_str()).collect();
        assert_eq!(rels, ["a.py", "pkg/__init__.py", "pkg/b.py"]);
        assert!(errors.is_empty());
    }
}
