//! `kind = "plant"`.

use super::{StepFuture, StepKind, ValidateCx, clip, plain_relative};
use crate::verify::excerpt::excerpt;
use crate::verify::process;
use crate::verify::steps::hostile::{kind_name, remove_entry};
use crate::verify::steps::in_process;
use crate::verify::steps::{GateCtx, StepResult};
use rustix::fs::{CWD, FileType, Mode};
use serde::Deserialize;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

/// The `kind` spelling.
pub const KIND: &str = "plant";

/// The smallest valid table of this kind (besides `kind`): the registry's test parses it.
pub const EXAMPLE: &str = "entries = []";

/// What a `plant` entry puts at its path.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PlantType {
    /// A symbolic link to `target` (never resolved by the harness).
    Symlink,
    /// A named pipe (`mkfifo`): a reader that blocks on it hangs.
    Fifo,
    /// A directory (where a file belongs), with one file inside so it is not empty.
    Dir,
    /// A regular file with `text` (where a directory belongs).
    File,
    /// A character device (`mknod c MAJ:MIN`); needs CAP_MKNOD.
    CharDevice,
    /// Nothing: remove whatever is there (without following it).
    Absent,
}

/// One entry of a `plant` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlantEntry {
    /// Segment-relative path (plain components only).
    pub path: String,
    /// What to put there. Whatever is at `path` first is removed (never followed).
    #[serde(rename = "type")]
    pub kind: PlantType,
    /// Link target of a `symlink` (placeholders such as `{outside}` expand).
    pub target: Option<String>,
    /// `MAJ:MIN` of a `char-device` (default `1:5`, like `/dev/zero`).
    pub device: Option<String>,
    /// Content of a `file`.
    pub text: Option<String>,
    /// For `char-device` only: when `mknod` is refused (EPERM, not root), report the variant
    /// as NOT covered in the step output instead of failing the step.
    #[serde(default)]
    pub if_permitted: bool,
}

/// `kind = "plant"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlantStep {
    /// Entries, planted in order. Parents are created as real directories; a parent that is
    /// anything else (a link above all) fails the step, so planting never writes outside.
    pub entries: Vec<PlantEntry>,
}

impl StepKind for PlantStep {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn label(&self) -> String {
        clip(
            &self
                .entries
                .iter()
                .map(|e| e.path.as_str())
                .collect::<Vec<_>>()
                .join(" "),
        )
    }

    fn validate(&self, _cx: &ValidateCx, err: &mut dyn FnMut(&str, String)) {
        if self.entries.is_empty() {
            err("entries", "plant needs at least one entry".into());
        }
        for (i, e) in self.entries.iter().enumerate() {
            validate_entry(i + 1, e, &mut *err);
        }
    }
    fn exec<'a>(&'a self, ctx: &'a mut GateCtx, _index: usize) -> StepFuture<'a> {
        Box::pin(std::future::ready(plant(ctx, self)))
    }
}

/// Field rules of one `plant` entry: each type takes exactly the fields it uses, so a typo
/// (a target on a FIFO, a device on a link) is a spec error, not a silently different plant.
pub fn validate_entry(n: usize, e: &PlantEntry, err: &mut dyn FnMut(&str, String)) {
    let t = e.kind;
    if !plain_relative(&e.path) {
        err(
            "entries",
            format!(
                "entry {n}: path `{}` must be segment-relative without `..`",
                e.path
            ),
        );
    }
    match (t, &e.target) {
        (PlantType::Symlink, None) => {
            err("entries", format!("entry {n}: a symlink needs `target`"))
        }
        (PlantType::Symlink, Some(x)) if x.is_empty() => {
            err("entries", format!("entry {n}: empty `target`"))
        }
        (PlantType::Symlink, Some(_)) | (_, None) => {}
        (_, Some(_)) => err(
            "entries",
            format!("entry {n}: `target` is only for symlinks"),
        ),
    }
    if e.text.is_some() && t != PlantType::File {
        err("entries", format!("entry {n}: `text` is only for files"));
    }
    if t != PlantType::CharDevice && (e.device.is_some() || e.if_permitted) {
        err(
            "entries",
            format!("entry {n}: `device`/`if_permitted` are only for char-device"),
        );
    }
    if let Some(d) = &e.device
        && parse_device(d).is_none()
    {
        err("entries", format!("entry {n}: device `{d}` is not MAJ:MIN"));
    }
}

/// `MAJ:MIN` of a device number.
pub fn parse_device(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once(':')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// `plant`: put each entry in place, replacing whatever was there, and confirm it with `lstat`.
pub fn plant(ctx: &mut GateCtx, s: &PlantStep) -> StepResult {
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
                commands.push(in_process(command));
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
        StepResult::pass(d)
    } else {
        StepResult::fail(problems.join("; "))
    };
    StepResult {
        commands,
        excerpt: excerpt(&lines.join("\n"), 40, 4000, false),
        ..detail
    }
}

/// One planted entry: its report line, its shell equivalent, and whether it was exercised.
struct Planted {
    line: String,
    command: String,
    covered: bool,
}

/// Plant `e` under `seg` (creating real parent directories), then confirm it with lstat.
fn plant_one(seg: &Path, e: &PlantEntry, target: Option<&str>) -> Result<Planted, String> {
    let rel = Path::new(&e.path);
    let path = seg.join(rel);
    make_parents(seg, rel)?;
    remove_entry(&path)?;
    let command = match create(&path, e, target) {
        Made::NotCovered(planted) => return Ok(planted),
        Made::Tried(command, made) => {
            made.map_err(|x| format!("{command}: {x}"))?;
            command
        }
    };
    confirm(&path, e.kind, target, &command)?;
    Ok(Planted {
        line: format!("{}: {}", e.path, description(e, target)),
        command,
        covered: true,
    })
}

/// Create the missing parents of `rel` under `seg`, refusing any existing one that is not a
/// real directory.
fn make_parents(seg: &Path, rel: &Path) -> Result<(), String> {
    // Parents: real directories only. A parent that is a link (planted by an earlier entry, or
    // a bad spec) would make every operation below land wherever the link points.
    let mut cur = seg.to_path_buf();
    let Some(parent) = rel.parent() else {
        return Ok(());
    };
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
            Err(x) if x.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&cur).map_err(|x| format!("mkdir {}: {x}", cur.display()))?
            }
            Err(x) => return Err(format!("lstat {}: {x}", cur.display())),
        }
    }
    Ok(())
}

/// What [`create`] did.
enum Made {
    /// The shell equivalent of what was attempted, and how it went.
    Tried(String, std::io::Result<()>),
    /// The entry could not be made on this machine and the spec allows that: reported loudly.
    NotCovered(Planted),
}

/// Create the entry `e` at `path` (which no longer exists).
fn create(path: &Path, e: &PlantEntry, target: Option<&str>) -> Made {
    let q = |p: &Path| process::quote(&p.to_string_lossy());
    let mode = Mode::from_raw_mode(0o644);
    let (command, made) = match e.kind {
        PlantType::Absent => (format!("rm -rf {}", q(path)), Ok(())),
        PlantType::Symlink => {
            let t = target.unwrap_or_default();
            (
                format!("ln -s {} {}", process::quote(t), q(path)),
                std::os::unix::fs::symlink(t, path),
            )
        }
        PlantType::Fifo => (
            format!("mkfifo {}", q(path)),
            rustix::fs::mknodat(CWD, path, FileType::Fifo, mode, 0).map_err(Into::into),
        ),
        PlantType::Dir => (
            format!("mkdir {0} && echo planted > {0}/planted.txt", q(path)),
            std::fs::create_dir(path)
                .and_then(|()| std::fs::write(path.join("planted.txt"), "planted\n")),
        ),
        PlantType::File => (
            format!("printf %s … > {}", q(path)),
            std::fs::write(
                path,
                e.text.as_deref().unwrap_or("planted by trifecta-verify\n"),
            ),
        ),
        PlantType::CharDevice => return create_char_device(path, e, mode),
    };
    Made::Tried(command, made)
}

/// `mknod` a character device (default 1:5, /dev/zero); a refusal for lack of privilege is
/// "not covered" when the entry says `if_permitted`.
fn create_char_device(path: &Path, e: &PlantEntry, mode: Mode) -> Made {
    let (maj, min) = e.device.as_deref().and_then(parse_device).unwrap_or((1, 5));
    let r = rustix::fs::mknodat(
        CWD,
        path,
        FileType::CharacterDevice,
        mode,
        rustix::fs::makedev(maj, min),
    );
    let command = format!(
        "mknod {} c {maj} {min}",
        process::quote(&path.to_string_lossy())
    );
    match r {
        Err(x) if e.if_permitted && (x == rustix::io::Errno::PERM) => {
            // Said loudly, never silent: the variant is not exercised on this machine.
            Made::NotCovered(Planted {
                line: format!(
                    "{}: NOT COVERED — mknod refused ({x}); run as root (CI does) to plant a character device",
                    e.path
                ),
                command: format!("{command}  # refused: {x}"),
                covered: false,
            })
        }
        r => Made::Tried(command, r.map_err(Into::into)),
    }
}

/// Check with lstat that `path` now is what `kind` asked for.
fn confirm(
    path: &Path,
    kind: PlantType,
    target: Option<&str>,
    command: &str,
) -> Result<(), String> {
    // Confirm: a plant that silently did nothing would make every later check vacuous.
    let got = match std::fs::symlink_metadata(path) {
        Ok(m) => Some(m.file_type()),
        Err(x) if x.kind() == std::io::ErrorKind::NotFound => None,
        Err(x) => return Err(format!("lstat after planting: {x}")),
    };
    let ok = match (kind, got) {
        (PlantType::Absent, None) => true,
        (PlantType::Symlink, Some(t)) => {
            t.is_symlink() && std::fs::read_link(path).ok().as_deref() == target.map(Path::new)
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
    Ok(())
}

/// What a planted entry is, for its report line.
fn description(e: &PlantEntry, target: Option<&str>) -> String {
    match e.kind {
        PlantType::Symlink => format!("symlink → {}", target.unwrap_or_default()),
        PlantType::Fifo => "fifo".into(),
        PlantType::Dir => "directory".into(),
        PlantType::File => "file".into(),
        PlantType::CharDevice => format!("char device {}", e.device.as_deref().unwrap_or("1:5")),
        PlantType::Absent => "removed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plant_entries_take_only_their_fields() {
        let mut errs = Vec::new();
        let e = |kind, target: Option<&str>, path: &str| PlantEntry {
            path: path.into(),
            kind,
            target: target.map(String::from),
            device: None,
            text: None,
            if_permitted: false,
        };
        for (entry, want) in [
            (e(PlantType::Symlink, None, "a"), "needs `target`"),
            (e(PlantType::Fifo, Some("/x"), "a"), "only for symlinks"),
            (e(PlantType::Fifo, None, "../a"), "without `..`"),
            (e(PlantType::Dir, None, "/abs"), "without `..`"),
        ] {
            errs.clear();
            validate_entry(1, &entry, &mut |_, m| errs.push(m));
            assert!(errs.iter().any(|m| m.contains(want)), "{want}: {errs:?}");
        }
        errs.clear();
        validate_entry(
            1,
            &e(PlantType::Symlink, Some("/dev/zero"), "pkg/z.py"),
            &mut |_, m| errs.push(m),
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(parse_device("1:5"), Some((1, 5)));
        assert_eq!(parse_device("1"), None);
    }
}
