//! Property tests: what [`super::encode_line`] writes, [`super::read::parse_line`] reads back
//! field for field (after redaction), and the reader never panics on arbitrary input.

use super::read::{parse_line, scan_reader};
use super::redact::Redactor;
use super::{LineEvent, encode_line};
use proptest::prelude::*;
use serde_json::{Value, json};

const CMDS: [&str; 4] = [
    "ast.symbols",
    "ast.cache.hit",
    "ast.cache.miss",
    "ast.cache.write",
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        // Telemetry numbers are counts and milliseconds rounded to microseconds; serde_json's
        // default float parser is not bit-exact for 17-digit values, which telemetry never has.
        (-1_000_000_000_000i64..1_000_000_000_000).prop_map(|n| json!(n as f64 / 1000.0)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_/]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_obj() -> impl Strategy<Value = Value> {
    prop::collection::btree_map("[a-z_]{1,8}", arb_json(), 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

proptest! {
    #[test]
    fn jsonl_round_trip(
        cmd in 0usize..4,
        args in arb_obj(),
        result in arb_obj(),
        x in arb_obj(),
        warnings in prop::collection::vec(".{0,30}", 0..3),
        timing in (0u64..10_000_000_000).prop_map(|n| n as f64 / 1000.0),
        cache in prop::option::of(prop_oneof![Just("memory"), Just("sqlite")]),
        ms in 0i64..4_000_000_000_000,
        run in "[a-z0-9_]{1,20}",
    ) {
        let ev = LineEvent { cmd: CMDS[cmd].into(), args, result, timing_ms: timing, warnings, x, cache_type: cache };
        let redactor = Redactor::new(Some("/seg/root".into()), Some("/home/u".into()), Some("someone".into()));
        let ts = super::report::fmt_ms(ms);
        let line = encode_line(&ts, &run, "0123abcd", &ev, &redactor);
        prop_assert!(!line.contains('\n'), "one event must be one line");
        let rec = parse_line(line.as_bytes()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut want = ev.clone();
        redactor.value(&mut want.args);
        redactor.value(&mut want.result);
        redactor.value(&mut want.x);
        let want_w: Vec<String> = ev.warnings.iter().map(|w| redactor.string(w)).collect();
        prop_assert_eq!(rec.cmd.as_str(), &*ev.cmd);
        prop_assert_eq!(&rec.ts, &ts);
        prop_assert_eq!(rec.ts_ms, ms);
        prop_assert_eq!(&rec.run_id, &run);
        prop_assert_eq!(rec.segment_id.as_str(), "0123abcd");
        prop_assert_eq!(&rec.args, &want.args);
        prop_assert_eq!(&rec.result, &want.result);
        prop_assert_eq!(&rec.x, &want.x);
        prop_assert_eq!(&rec.warnings, &want_w);
        prop_assert_eq!(rec.timing_ms, Some(timing));
        prop_assert_eq!(rec.cache_type.as_deref(), cache);
    }

    #[test]
    fn path_free_strings_round_trip_unchanged(s in "[a-zA-Z0-9_.:= -]{0,60}") {
        // No slash, backslash or user name: redaction must be the identity.
        let r = Redactor::new(Some("/seg".into()), Some("/home/u".into()), Some("zzzq".into()));
        prop_assume!(!s.contains("zzzq"));
        prop_assert_eq!(r.string(&s), s);
    }

    #[test]
    fn redaction_is_idempotent_and_hides_the_root(s in ".{0,80}") {
        let r = Redactor::new(Some("/seg/root".into()), Some("/home/u".into()), Some("someone".into()));
        let once = r.string(&format!("{s} /seg/root/{s} /home/u/x"));
        prop_assert!(!once.contains("/seg/root/"), "{}", once);
        prop_assert!(!once.contains("/home/u/"), "{}", once);
        prop_assert_eq!(r.string(&once), once.clone());
    }

    #[test]
    fn redaction_never_panics(s in ".{0,120}", root in "/.{1,12}", home in "/.{1,12}", user in ".{0,6}") {
        let r = Redactor::new(Some(root), Some(home), Some(user));
        let _ = r.string(&s);
        let _ = r.string(&format!("{s}/{s} C:\\{s} \\\\{s} file:///{s}"));
    }

    #[test]
    fn reader_never_panics_on_bytes(lines in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..8)) {
        for l in &lines {
            let _ = parse_line(l);
        }
        let joined = lines.join(&b'\n');
        let mut n = 0usize;
        scan_reader(joined.as_slice(), &mut |_| n += 1).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let want = joined.iter().filter(|b| **b == b'\n').count()
            + usize::from(!joined.is_empty() && joined.last() != Some(&b'\n'));
        prop_assert_eq!(n, want, "every line, complete or not, is reported exactly once");
    }

    #[test]
    fn reader_never_panics_on_json_like_text(s in r#"\{("[a-z_]{1,6}":("[^"]{0,12}"|[0-9.eE+-]{1,8}|null|\[\]|\{\}),?){0,6}\}"#) {
        let _ = parse_line(s.as_bytes());
    }
}
