//! Property tests of the sym:// grammar and of containment: parse/display round-trips, and no
//! URI, however built, resolves to a file outside the segment.

use proptest::prelude::*;
use trifecta::symbols::resolve::{resolve_module, resolve_type, segment_root};
use trifecta::symbols::uri::{SymUri, UriKind};

fn ident() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z_][A-Za-z0-9_]{0,8}",
        "[a-z]{1,3}[\u{e9}\u{3b1}\u{4e2d}][a-z0-9]{0,3}"
    ]
}

fn hostile_component() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("..".to_string()),
        Just(".".to_string()),
        Just(String::new()),
        Just("/".to_string()),
        Just("pkg".to_string()),
        Just("leak".to_string()),
        Just("away".to_string()),
        Just("secret".to_string()),
        Just("etc".to_string()),
        Just("passwd".to_string()),
        Just("\0".to_string()),
        Just("~".to_string()),
        Just("%2e%2e".to_string()),
        Just("__init__".to_string()),
        ident(),
    ]
}

proptest! {
    /// display(parse(display(x))) is stable and parse(display(x)) == x.
    #[test]
    fn parse_display_round_trip(
        kind in prop_oneof![Just(UriKind::Mod), Just(UriKind::Type)],
        path in prop::collection::vec(ident(), 1..5),
        member in prop::option::of(ident()),
    ) {
        let member = if kind == UriKind::Mod { None } else { member };
        let path = if kind == UriKind::Type && path.len() < 2 { vec![path[0].clone(), "C".into()] } else { path };
        let uri = SymUri::new(kind, path.clone(), member.clone()).expect("valid parts");
        let shown = uri.to_string();
        let back = SymUri::parse(&shown).expect("canonical form parses");
        prop_assert_eq!(&back, &uri);
        prop_assert_eq!(back.to_string(), shown);
        prop_assert_eq!(back.path(), &path[..]);
        prop_assert_eq!(back.member(), member.as_deref());
    }

    /// Arbitrary strings never panic the parser, and anything accepted is canonicalizable.
    #[test]
    fn parser_total_on_arbitrary_input(s in any::<String>()) {
        for candidate in [s.clone(), format!("sym://python/mod/{s}"), format!("sym://python/type/{s}")] {
            if let Ok(u) = SymUri::parse(&candidate) {
                prop_assert_eq!(SymUri::parse(&u.to_string()).expect("reparse"), u);
            }
        }
    }

    /// Whatever the URI, resolution never yields a file outside the segment root.
    #[test]
    fn never_resolves_outside_the_segment(
        kind in prop_oneof![Just("mod"), Just("type")],
        parts in prop::collection::vec(hostile_component(), 1..5),
        seps in prop::collection::vec(prop_oneof![Just("."), Just("/"), Just("//"), Just("/../")], 4),
    ) {
        let fixture = fixture();
        let mut body = String::new();
        for (i, p) in parts.iter().enumerate() {
            if i > 0 { body.push_str(seps[i % seps.len()]); }
            body.push_str(p);
        }
        let Ok(uri) = SymUri::parse(&format!("sym://python/{kind}/{body}")) else { return Ok(()) };
        let resolved = match uri.kind() {
            UriKind::Mod => resolve_module(&fixture.root, uri.path()).map(|f| f.abs),
            UriKind::Type => resolve_type(&fixture.root, uri.path()).map(|(f, _)| f.abs),
        };
        if let Ok(abs) = resolved {
            prop_assert!(abs.starts_with(&fixture.root), "{} escaped to {}", uri, abs.display());
        }
    }
}

struct Fixture {
    _outside: tempfile::TempDir,
    _seg: tempfile::TempDir,
    root: trifecta::symbols::resolve::Segment,
}

/// A segment with a real package, and symlinks (file and directory) that point outside it.
fn fixture() -> Fixture {
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("secret.py"), "def secret(): pass\n").expect("write");
    std::fs::create_dir_all(outside.path().join("etc")).expect("mkdir");
    std::fs::write(outside.path().join("etc/passwd.py"), "").expect("write");
    let seg = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(seg.path().join("pkg")).expect("mkdir");
    std::fs::write(seg.path().join("pkg/__init__.py"), "").expect("write");
    std::os::unix::fs::symlink(outside.path().join("secret.py"), seg.path().join("leak.py"))
        .expect("symlink");
    std::os::unix::fs::symlink(outside.path(), seg.path().join("away")).expect("symlink");
    std::os::unix::fs::symlink(outside.path().join("etc"), seg.path().join("etc"))
        .expect("symlink");
    let root = segment_root(seg.path()).expect("root");
    Fixture {
        _outside: outside,
        _seg: seg,
        root,
    }
}
