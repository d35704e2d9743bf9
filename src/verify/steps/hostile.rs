//! Steps for hostile segments: `plant` puts links, FIFOs, devices and wrong-typed entries at the
//! paths the tool reads and writes; `tree-snapshot` and `tree-unchanged` prove that a folder
//! outside the segment (`{outside}`, the target of the planted links) was not read, written,
//! added to or deleted from.
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

use super::{GateCtx, Outcome};
use crate::verify::process;
use crate::verify::report::excerpt;
use crate::verify::spec::{
    PlantEntry, PlantStep, PlantType, TreeSnapshotStep, TreeUnchangedStep, parse_device,
};
use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps, UTIME_OMIT};
use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The access time the snapshot gives every entry: 2001-09-09, far older than 24 h, so
/// `relatime` updates it on the next read.
const OLD_ATIME_S: i64 = 1_000_000_000;

/// `plant`: put each entry in place, replacing whatever was there, and confirm it with `lstat`.
pub fn plant(ctx: &mut GateCtx, s: &PlantStep) -> Outcome {
    let seg = match ctx.segment() {
        Ok(p) => p.to_path_buf(),
        Err(o) => return o,
    };
    let mut lines = Vec::new();
    let mut commands = Vec::new();
    let mut problems = Vec::new();
    let mut not_covered = 0;
    for e in &s.entries {
        let target = e.target.as_ref().map(|t| ctx.expand(t));
        match plant_one(&seg, e, target.as_deref()) {
            Ok(Planted {
                line,
                command,
                covered,
            }) => {
                if !covered {
                    not_covered += 1;
                }
                lines.push(line);
                commands.push(super::in_process(command));
            }
            Err(p) => problems.push(format!("{}: {p}", e.path)),
        }
    }
    let detail = if problems.is_empty() {
        let mut d = format!("{} entr(ies) planted and confirmed by lstat", lines.len());
        if not_covered > 0 {
            d.push_str(&format!(
                "; {not_covered} NOT COVERED (see output: mknod refused)"
            ));
        }
        Outcome::pass(d)
    } else {
        Outcome::fail(problems.join("; "))
    };
    Outcome {
        commands,
        excerpt: excerpt(&lines.join("\n"), 40, 4000, false),
        ..detail
    }
}

struct Planted {
    line: String,
    command: String,
    covered: bool,
}

fn plant_one(seg: &Path, e: &PlantEntry, target: Option<&str>) -> Result<Planted, String> {
    let rel = Path::new(&e.path);
    let path = seg.join(rel);
    // Parents: real directories only. A parent that is a link (planted by an earlier entry, or
    // a bad spec) would make every operation below land wherever the link points.
    let mut cur = seg.to_path_buf();
    if let Some(parent) = rel.parent() {
        for c in parent.components() {
            cur.push(c);
            match std::fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_dir() => {}
                Ok(m) => {
                    return Err(format!(
                        "parent `{}` is a {}, not a directory: planting through it could write outside the segment",
                        cur.strip_prefix(seg).unwrap_or(&cur).display(),
                        kind_name(&m.file_type())
                    ));
                }
                Err(x) if x.kind() == std::io::ErrorKind::NotFound => std::fs::create_dir(&cur)
                    .map_err(|x| format!("mkdir {}: {x}", cur.display()))?,
                Err(x) => return Err(format!("lstat {}: {x}", cur.display())),
            }
        }
    }
    remove_entry(&path)?;
    let q = |p: &Path| process::quote(&p.to_string_lossy());
    let mode = Mode::from_raw_mode(0o644);
    let (command, made) = match e.kind {
        PlantType::Absent => (format!("rm -rf {}", q(&path)), Ok(())),
        PlantType::Symlink => {
            let t = target.unwrap_or_default();
            (
                format!("ln -s {} {}", process::quote(t), q(&path)),
                std::os::unix::fs::symlink(t, &path),
            )
        }
        PlantType::Fifo => (
            format!("mkfifo {}", q(&path)),
            rustix::fs::mknodat(CWD, &path, FileType::Fifo, mode, 0).map_err(Into::into),
        ),
        PlantType::Dir => (
            format!("mkdir {0} && echo planted > {0}/planted.txt", q(&path)),
            std::fs::create_dir(&path)
                .and_then(|()| std::fs::write(path.join("planted.txt"), "planted\n")),
        ),
        PlantType::File => (
            format!("printf %s … > {}", q(&path)),
            std::fs::write(
                &path,
                e.text.as_deref().unwrap_or("planted by trifecta-verify\n"),
            ),
        ),
        PlantType::CharDevice => {
            let (maj, min) = e.device.as_deref().and_then(parse_device).unwrap_or((1, 5));
            let r = rustix::fs::mknodat(
                CWD,
                &path,
                FileType::CharacterDevice,
                mode,
                rustix::fs::makedev(maj, min),
            );
            let command = format!("mknod {} c {maj} {min}", q(&path));
            match r {
                Err(x) if e.if_permitted && (x == rustix::io::Errno::PERM) => {
                    // Said loudly, never silent: the variant is not exercised on this machine.
                    return Ok(Planted {
                        line: format!(
                            "{}: NOT COVERED — mknod refused ({x}); run as root (CI does) to plant a character device",
                            e.path
                        ),
                        command: format!("{command}  # refused: {x}"),
                        covered: false,
                    });
                }
                r => (command, r.map_err(Into::into)),
            }
        }
    };
    made.map_err(|x| format!("{command}: {x}"))?;
    // Confirm: a plant that silently did nothing would make every later check vacuous.
    let got = match std::fs::symlink_metadata(&path) {
        Ok(m) => Some(m.file_type()),
        Err(x) if x.kind() == std::io::ErrorKind::NotFound => None,
        Err(x) => return Err(format!("lstat after planting: {x}")),
    };
    let ok = match (e.kind, got) {
        (PlantType::Absent, None) => true,
        (PlantType::Symlink, Some(t)) => {
            t.is_symlink() && std::fs::read_link(&path).ok().as_deref() == target.map(Path::new)
        }
        (PlantType::Fifo, Some(t)) => t.is_fifo(),
        (PlantType::Dir, Some(t)) => t.is_dir(),
        (PlantType::File, Some(t)) => t.is_file(),
        (PlantType::CharDevice, Some(t)) => t.is_char_device(),
        _ => false,
    };
    if !ok {
        return Err(format!(
            "after `{command}`, lstat shows {}",
            got.map_or("nothing".into(), |t| kind_name(&t).to_string())
        ));
    }
    let what = match e.kind {
        PlantType::Symlink => format!("symlink → {}", target.unwrap_or_default()),
        PlantType::Fifo => "fifo".into(),
        PlantType::Dir => "directory".into(),
        PlantType::File => "file".into(),
        PlantType::CharDevice => format!("char device {}", e.device.as_deref().unwrap_or("1:5")),
        PlantType::Absent => "removed".into(),
    };
    Ok(Planted {
        line: format!("{}: {what}", e.path),
        command,
        covered: true,
    })
}

/// Remove whatever is at `path` without following it (a link is unlinked, never its target).
fn remove_entry(path: &Path) -> Result<(), String> {
    match std::fs::symlink_metadata(path) {
        // `remove_dir_all` does not follow links inside the tree (std's CVE-2022-21658 fix).
        Ok(m) if m.file_type().is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
    .map_err(|e| format!("remove existing {}: {e}", path.display()))
}

fn kind_name(t: &std::fs::FileType) -> &'static str {
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
struct Meta {
    kind: &'static str,
    size: u64,
    mode: u32,
    nlink: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
    atime: (i64, i64),
}

impl Meta {
    fn of(m: &std::fs::Metadata) -> Meta {
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
enum Content {
    Digest(String),
    Target(PathBuf),
    None,
}

/// A recorded tree: every entry (key `""` is the root) and whether reads are detectable.
#[derive(Debug, Clone)]
pub struct TreeState {
    root: PathBuf,
    meta: BTreeMap<String, Meta>,
    content: BTreeMap<String, Content>,
    reads_detectable: bool,
}

/// Metadata of every entry, each `lstat`ed *before* its directory is listed, so the listing
/// (which updates the directory's atime) never hides an earlier read.
fn walk_meta(root: &Path) -> std::io::Result<BTreeMap<String, Meta>> {
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
fn digest(path: &Path) -> std::io::Result<String> {
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

fn walk_content(root: &Path, meta: &BTreeMap<String, Meta>) -> BTreeMap<String, Content> {
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

fn set_old_atime(path: &Path) -> std::io::Result<()> {
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
fn reads_detectable(dir: &Path) -> bool {
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

fn tree_root(ctx: &GateCtx, dir: &str) -> Result<PathBuf, Outcome> {
    let d = PathBuf::from(ctx.expand(dir));
    if d.is_absolute() {
        Ok(d)
    } else {
        Ok(ctx.segment()?.join(d))
    }
}

/// `tree-snapshot`: record names, types, sizes, modes, link targets and digests of every entry
/// below `dir`, then age every atime so a later read shows.
pub fn tree_snapshot(ctx: &mut GateCtx, s: &TreeSnapshotStep) -> Outcome {
    let root = match tree_root(ctx, &s.dir) {
        Ok(r) => r,
        Err(o) => return o,
    };
    match std::fs::symlink_metadata(&root) {
        Ok(m) if m.file_type().is_dir() => {}
        Ok(m) => {
            return Outcome::error(format!(
                "{} is a {}, not a directory",
                root.display(),
                kind_name(&m.file_type())
            ));
        }
        Err(e) => return Outcome::error(format!("{}: {e}", root.display())),
    }
    let meta = match walk_meta(&root) {
        Ok(m) => m,
        Err(e) => return Outcome::error(format!("walk {}: {e}", root.display())),
    };
    let content = walk_content(&root, &meta);
    for rel in meta.keys() {
        if let Err(e) = set_old_atime(&root.join(rel)) {
            return Outcome::error(format!("set atime of {rel:?}: {e}"));
        }
    }
    // Re-`lstat` by name (no listing, no reading), so the recorded atime/ctime are the aged ones.
    let mut aged = BTreeMap::new();
    for rel in meta.keys() {
        match std::fs::symlink_metadata(root.join(rel)) {
            Ok(m) => {
                aged.insert(rel.clone(), Meta::of(&m));
            }
            Err(e) => return Outcome::error(format!("lstat {rel:?}: {e}")),
        }
    }
    let reads = reads_detectable(ctx.tmp.path());
    let files = aged.values().filter(|m| m.kind == "file").count();
    let listing: Vec<String> = aged
        .iter()
        .map(|(rel, m)| {
            let c = match content.get(rel) {
                Some(Content::Digest(d)) => format!(" blake3 {}", &d[..d.len().min(16)]),
                Some(Content::Target(t)) => format!(" → {}", t.display()),
                _ => String::new(),
            };
            format!(
                "{:<30} {:<9} {:>7} B{c}",
                if rel.is_empty() { "." } else { rel.as_str() },
                m.kind,
                m.size
            )
        })
        .collect();
    let n = aged.len();
    ctx.trees.insert(
        s.name.clone(),
        TreeState {
            root: root.clone(),
            meta: aged,
            content,
            reads_detectable: reads,
        },
    );
    Outcome {
        commands: vec![super::in_process(format!(
            "find {} -exec stat … ; b3sum (files) ; touch -a -h -d @{OLD_ATIME_S} (every entry)",
            process::quote(&root.to_string_lossy())
        ))],
        excerpt: excerpt(&listing.join("\n"), 40, 4000, false),
        ..Outcome::pass(format!(
            "{n} entries ({files} files) recorded under {}; reads {}",
            root.display(),
            if reads {
                "are detectable (atime is updated by a read on this mount)"
            } else {
                "are NOT detectable here (the mount does not update atime)"
            }
        ))
    }
}

/// `tree-unchanged`: the tree equals its snapshot — no entry read (atime), written (mtime,
/// ctime, size, bytes), retyped, relinked, added or removed.
pub fn tree_unchanged(ctx: &mut GateCtx, s: &TreeUnchangedStep) -> Outcome {
    let Some(before) = ctx.trees.get(&s.snapshot).cloned() else {
        return Outcome::error(format!("no tree snapshot `{}`", s.snapshot));
    };
    let root = &before.root;
    let name = |rel: &str| {
        if rel.is_empty() {
            ".".to_string()
        } else {
            rel.to_string()
        }
    };
    // Metadata first: a content pass reads files and links and would move their atimes.
    let now = match walk_meta(root) {
        Ok(m) => m,
        Err(e) => {
            return Outcome::fail(format!(
                "cannot walk {} any more: {e} (removed or replaced?)",
                root.display()
            ));
        }
    };
    let mut problems = Vec::new();
    for (rel, b) in &before.meta {
        let Some(a) = now.get(rel) else {
            problems.push(format!("removed: {}", name(rel)));
            continue;
        };
        if a.kind != b.kind {
            problems.push(format!(
                "type changed: {} ({} → {})",
                name(rel),
                b.kind,
                a.kind
            ));
            continue;
        }
        if a.atime != b.atime {
            let what = if a.kind == "directory" {
                "listed"
            } else {
                "read"
            };
            problems.push(format!(
                "{what}: {} (atime {} → {})",
                name(rel),
                b.atime.0,
                a.atime.0
            ));
        }
        if a.size != b.size || a.mtime != b.mtime {
            problems.push(format!(
                "written: {} (size {} → {}, mtime {} → {})",
                name(rel),
                b.size,
                a.size,
                b.mtime.0,
                a.mtime.0
            ));
        }
        if a.mode != b.mode || a.nlink != b.nlink || a.ctime != b.ctime {
            problems.push(format!(
                "inode changed: {} (mode {:o} → {:o}, links {} → {}, ctime {} → {})",
                name(rel),
                b.mode,
                a.mode,
                b.nlink,
                a.nlink,
                b.ctime.0,
                a.ctime.0
            ));
        }
    }
    for rel in now.keys().filter(|r| !before.meta.contains_key(*r)) {
        problems.push(format!("new: {} ({})", name(rel), now[rel].kind));
    }
    let content = walk_content(root, &now);
    let mut compared = 0;
    for (rel, b) in &before.content {
        match content.get(rel) {
            Some(a) if a == b => {
                if matches!(b, Content::Digest(_)) {
                    compared += 1;
                }
            }
            Some(a) => problems.push(format!("content changed: {} ({b:?} → {a:?})", name(rel))),
            None => {}
        }
    }
    let mut detail = format!(
        "{} entries of {}: names, types, sizes, modes, link counts, mtime/ctime, link targets and {compared} files' BLAKE3 compared",
        before.meta.len(),
        root.display()
    );
    if before.reads_detectable {
        detail.push_str("; atime shows any read or listing");
    } else {
        detail.push_str(
            "; reads are NOT detectable on this mount (atime not updated), only writes and deletions",
        );
        if s.require_read_detection {
            problems.push(
                "this file system does not record reads (noatime?): `nothing outside is read` cannot be shown"
                    .into(),
            );
        }
    }
    if problems.is_empty() {
        // This check listed every folder (moving their atimes): age them again and record the
        // new state, so a later `tree-unchanged` on the same snapshot sees only later reads.
        if let Err(e) = reage(ctx, &s.snapshot) {
            return Outcome::error(format!("re-age {}: {e}", root.display()));
        }
    }
    let mut out = if problems.is_empty() {
        Outcome::pass(format!("unchanged: {detail}"))
    } else {
        Outcome::fail(format!(
            "{} difference(s): {}",
            problems.len(),
            excerpt(&problems.join("; "), 1, 2500, false)
        ))
    };
    out.excerpt = excerpt(&problems.join("\n"), 40, 4000, false);
    out.commands = vec![super::in_process(format!(
        "find {} -exec stat … ; b3sum (files) ; compare with snapshot `{}`",
        process::quote(&root.to_string_lossy()),
        s.snapshot
    ))];
    out
}

/// Age every atime of a snapshot's tree again and record the resulting metadata.
fn reage(ctx: &mut GateCtx, name: &str) -> std::io::Result<()> {
    let Some(t) = ctx.trees.get_mut(name) else {
        return Ok(());
    };
    for (rel, m) in t.meta.iter_mut() {
        let p = t.root.join(rel);
        set_old_atime(&p)?;
        *m = Meta::of(&std::fs::symlink_metadata(&p)?);
    }
    Ok(())
}
