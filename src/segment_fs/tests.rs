//! Unit tests of the segment file-system layer: links, FIFOs and devices at every kind of
//! name, and the guarantee that nothing outside the anchor is read, written or removed.

use super::*;
use std::os::unix::fs::{PermissionsExt, symlink};

fn mkfifo(p: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p,
        FileType::Fifo,
        Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
}

/// What a `Foreign` refusal found.
fn found(err: &FsError) -> Option<Kind> {
    match err {
        FsError::Foreign { found, .. } => Some(*found),
        _ => None,
    }
}

struct Tree {
    seg: tempfile::TempDir,
    out: tempfile::TempDir,
    anchor: Arc<Anchor>,
}

fn tree() -> Tree {
    let seg = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("secret.py"), "def secret(): pass\n").unwrap();
    let anchor = Anchor::open(seg.path()).unwrap();
    Tree { seg, out, anchor }
}

#[test]
fn a_link_on_the_way_is_never_followed() {
    let t = tree();
    symlink(t.out.path(), t.seg.path().join("_ctx")).unwrap();
    let p = t.anchor.at("_ctx/secret.py");
    assert!(p.open(Access::Read).is_err());
    assert!(p.stat().is_err() || p.stat().unwrap().is_none());
    assert!(t.anchor.at("_ctx/new").create_dir().is_err());
    assert!(t.anchor.at("_ctx/secret.py").remove_file().is_err());
    assert!(
        t.out.path().join("secret.py").exists(),
        "outside file untouched"
    );
    assert!(
        !t.out.path().join("new").exists(),
        "nothing created outside"
    );
}

#[test]
fn a_final_link_is_refused_and_named() {
    let t = tree();
    symlink(t.out.path().join("secret.py"), t.seg.path().join("x.db")).unwrap();
    let err = t
        .anchor
        .at("x.db")
        .open(Access::ReadWrite { create: true })
        .unwrap_err();
    assert_eq!(found(&err), Some(Kind::Symlink), "{err}");
}

#[test]
fn a_fifo_never_blocks_and_is_refused() {
    let t = tree();
    mkfifo(&t.seg.path().join("events.jsonl"));
    for access in [
        Access::Read,
        Access::ReadWrite { create: true },
        Access::Append { create: true },
    ] {
        let err = t.anchor.at("events.jsonl").open(access).unwrap_err();
        assert!(
            matches!(
                err,
                FsError::Foreign {
                    found: Kind::Fifo,
                    ..
                }
            ),
            "{err}"
        );
    }
}

#[test]
fn a_device_is_refused_and_write_atomic_never_replaces_it() {
    let t = tree();
    // A link to /dev/null stands in for a device we may not create without privileges; the
    // open must refuse it whatever it points to.
    symlink("/dev/null", t.seg.path().join("dev")).unwrap();
    assert!(t.anchor.at("dev").open(Access::Read).is_err());
    assert!(t.anchor.at("dev").write_atomic(b"x").is_err());
    assert!(
        std::fs::symlink_metadata(t.seg.path().join("dev"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
fn ensure_dir_chain_refuses_at_the_top_and_moves_aside_below() {
    let t = tree();
    symlink(t.out.path(), t.seg.path().join(".trifecta")).unwrap();
    let mut incidents = Vec::new();
    let err = t
        .anchor
        .at(".trifecta/cache")
        .ensure_dir_chain(true, &mut incidents)
        .unwrap_err();
    assert_eq!(found(&err), Some(Kind::Symlink), "{err}");
    assert_eq!(incidents[0].action, "refused");
    assert!(
        t.seg.path().join(".trifecta").is_symlink(),
        "the user's entry is left alone"
    );
    std::fs::remove_file(t.seg.path().join(".trifecta")).unwrap();
    std::fs::create_dir(t.seg.path().join(".trifecta")).unwrap();
    symlink(t.out.path(), t.seg.path().join(".trifecta/cache")).unwrap();
    let mut incidents = Vec::new();
    t.anchor
        .at(".trifecta/cache")
        .ensure_dir_chain(true, &mut incidents)
        .unwrap();
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0].found, Kind::Symlink);
    assert_eq!(incidents[0].action, "moved_aside");
    assert!(t.seg.path().join(".trifecta/cache").is_dir());
    assert!(!t.seg.path().join(".trifecta/cache").is_symlink());
    assert_eq!(
        std::fs::read_dir(t.out.path()).unwrap().count(),
        1,
        "outside unchanged"
    );
}

#[test]
fn remove_tree_removes_links_not_their_targets() {
    let t = tree();
    let q = t.seg.path().join("q/a/b");
    std::fs::create_dir_all(&q).unwrap();
    symlink(t.out.path(), q.join("out")).unwrap();
    symlink(t.out.path().join("secret.py"), q.join("f")).unwrap();
    t.anchor.at("q").remove_tree().unwrap();
    assert!(!t.seg.path().join("q").exists());
    assert!(t.out.path().join("secret.py").exists());
    // A link at the top is removed itself, never followed.
    symlink(t.out.path(), t.seg.path().join("q")).unwrap();
    t.anchor.at("q").remove_tree().unwrap();
    assert!(t.out.path().join("secret.py").exists());
    assert!(std::fs::symlink_metadata(t.seg.path().join("q")).is_err());
}

#[test]
fn write_atomic_keeps_an_existing_mode() {
    let t = tree();
    let p = t.seg.path().join("report.html");
    std::fs::write(&p, "old").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    t.anchor.at("report.html").write_atomic(b"new").unwrap();
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
    let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let left: Vec<_> = std::fs::read_dir(t.seg.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "no temporary file left");
}

#[test]
fn modules_open_beneath_the_root_only() {
    let t = tree();
    std::fs::create_dir(t.seg.path().join("pkg")).unwrap();
    std::fs::write(t.seg.path().join("pkg/real.py"), "x = 1\n").unwrap();
    symlink("real.py", t.seg.path().join("pkg/alias.py")).unwrap();
    symlink(
        t.seg.path().join("pkg/real.py"),
        t.seg.path().join("pkg/abs.py"),
    )
    .unwrap();
    symlink(
        t.out.path().join("secret.py"),
        t.seg.path().join("pkg/leak.py"),
    )
    .unwrap();
    symlink(t.out.path(), t.seg.path().join("out")).unwrap();
    mkfifo(&t.seg.path().join("pkg/fifo.py"));
    let a = &t.anchor;
    assert!(open_module(a, Path::new("pkg/real.py"), true).is_ok());
    assert!(open_module(a, Path::new("pkg/alias.py"), true).is_ok());
    assert!(open_module(a, Path::new("pkg/abs.py"), true).is_ok());
    assert!(matches!(
        open_module(a, Path::new("pkg/leak.py"), true),
        Err(ModuleOpen::Outside)
    ));
    assert!(matches!(
        open_module(a, Path::new("out/secret.py"), true),
        Err(ModuleOpen::Outside)
    ));
    assert!(matches!(
        open_module(a, Path::new("pkg/fifo.py"), true),
        Err(ModuleOpen::Absent(Some(Kind::Fifo)))
    ));
    assert!(matches!(
        open_module(a, Path::new("pkg/alias.py"), false),
        Err(ModuleOpen::Absent(Some(Kind::Symlink)))
    ));
    assert!(matches!(
        open_module(a, Path::new("../x.py"), true),
        Err(ModuleOpen::Outside)
    ));
}
