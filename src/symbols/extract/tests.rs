//! Unit tests for [`super::extract`]. Expected values were checked against CPython 3.11's `ast`
//! (the stdlib-wide comparison lives in `tests/integration/corpus.rs`).

use super::*;
use proptest::prelude::*;

/// (kind, name, line, end_line, async) of each top-level symbol.
fn flat(table: &SymbolTable) -> Vec<(SymbolKind, String, u32, u32, bool)> {
    table
        .symbols
        .iter()
        .map(|s| (s.kind, s.name.clone(), s.line, s.end_line, s.is_async))
        .collect()
}

fn func(name: &str, line: u32, end_line: u32) -> Symbol {
    Symbol {
        kind: SymbolKind::Function,
        name: name.to_owned(),
        line,
        end_line,
        is_async: false,
        members: None,
    }
}

fn class(name: &str, line: u32, end_line: u32, members: Vec<Symbol>) -> Symbol {
    Symbol {
        kind: SymbolKind::Class,
        name: name.to_owned(),
        line,
        end_line,
        is_async: false,
        members: Some(members),
    }
}

/// Every symbol, at any depth, has 1 <= line <= end_line.
fn lines_are_sane(symbols: &[Symbol]) -> bool {
    let mut stack: Vec<&Symbol> = symbols.iter().collect();
    while let Some(s) = stack.pop() {
        if s.line < 1 || s.line > s.end_line {
            return false;
        }
        stack.extend(s.members.iter().flatten());
    }
    true
}

pub(super) const BASIC: &str = "\
import os

@decorator
@other(1)
def decorated(a,
              b):
    return a


async def fetch():
    await x

class Outer(Base):
    \"\"\"Doc.\"\"\"
    attr = 1

    def method(self):
        pass

    @staticmethod
    async def amethod():
        pass

    class Inner:
        def deep(self): ...

    if True:
        def hidden(self): pass
    try:
        class AlsoHidden: pass
    except Exception:
        pass

if x:
    def not_a_symbol(): pass
else:
    class NorThis: pass

def last(): return 1
";

#[test]
fn basic_module_matches_ast() {
    let table = extract(BASIC.as_bytes());
    assert!(table.syntax_errors.is_empty(), "{:?}", table.syntax_errors);
    let mut amethod = func("amethod", 21, 22);
    amethod.is_async = true;
    let mut fetch = func("fetch", 10, 11);
    fetch.is_async = true;
    let expected = vec![
        func("decorated", 5, 7),
        fetch,
        class(
            "Outer",
            13,
            32,
            vec![
                func("method", 17, 18),
                amethod,
                class("Inner", 24, 25, vec![func("deep", 25, 25)]),
            ],
        ),
        func("last", 39, 39),
    ];
    assert_eq!(table.symbols, expected);
}

#[test]
fn json_shape_has_async_only_when_true_and_members_only_on_classes() {
    let table = extract(b"async def a(): pass\ndef b(): pass\nclass C: pass\n");
    let json = serde_json::to_string(&table.symbols).unwrap();
    assert_eq!(
        json,
        r#"[{"kind":"function","name":"a","line":1,"end_line":1,"async":true},{"kind":"function","name":"b","line":2,"end_line":2},{"kind":"class","name":"C","line":3,"end_line":3,"members":[]}]"#
    );
}

#[test]
fn end_line_ignores_trailing_comments_and_blank_lines() {
    let src = "def f():\n    x = 1\n    # trailing, indented\n\n# trailing, column 0\n\nclass C:\n    def m(self):\n        pass\n        # inside\n    # after\n";
    let table = extract(src.as_bytes());
    assert_eq!(
        table.symbols,
        vec![func("f", 1, 2), class("C", 7, 9, vec![func("m", 8, 9)])]
    );
}

#[test]
fn end_line_is_the_last_token_not_a_semicolon_or_continuation() {
    // Multi-line string and bracketed last statements end on their closing token's line.
    let src = "def f():\n    return '''a\nb\n'''\ndef g():\n    return (1,\n        2)\ndef h(): pass;\ndef i():\n    x = 1 + \\\n        2\n";
    let table = extract(src.as_bytes());
    assert_eq!(
        flat(&table),
        vec![
            (SymbolKind::Function, "f".into(), 1, 4, false),
            (SymbolKind::Function, "g".into(), 5, 7, false),
            (SymbolKind::Function, "h".into(), 8, 8, false),
            (SymbolKind::Function, "i".into(), 9, 11, false),
        ]
    );
}

#[test]
fn compound_last_statement_ends_at_its_deepest_last_statement() {
    let src = "def f():\n    if a:\n        pass\n    else:\n        try:\n            b()\n        finally:\n            c(\n            )\n# done\n";
    assert_eq!(extract(src.as_bytes()).symbols, vec![func("f", 1, 9)]);
}

#[test]
fn bom_is_ignored_and_lines_unchanged() {
    let table = extract(b"\xEF\xBB\xBF# c\ndef f():\n    pass\n");
    assert_eq!(table.symbols, vec![func("f", 2, 3)]);
    assert!(table.syntax_errors.is_empty());
}

#[test]
fn crlf_and_lone_cr_count_as_python_lines() {
    let crlf = extract(b"# c\r\ndef f():\r\n    pass\r\n\r\ndef g(): pass\r\n");
    assert_eq!(crlf.symbols, vec![func("f", 2, 3), func("g", 5, 5)]);
    // Python treats a lone CR as a line end; tree-sitter alone would see one long line.
    let cr = extract(b"# c\rdef f():\r    pass\r\rdef g(): pass\r");
    assert_eq!(cr.symbols, vec![func("f", 2, 3), func("g", 5, 5)]);
    assert!(cr.syntax_errors.is_empty());
}

#[test]
fn tab_indentation() {
    let table = extract(b"class C:\n\tdef m(self):\n\t\treturn 1\n\tdef n(self):\n\t\tpass\n");
    assert_eq!(
        table.symbols,
        vec![class("C", 1, 5, vec![func("m", 2, 3), func("n", 4, 5)])]
    );
}

#[test]
fn non_ascii_identifiers_are_nfkc_normalised_like_python() {
    let table = extract("def café(): pass\nclass Ωmega: pass\ndef ﬁle(): pass\n".as_bytes());
    let names: Vec<&str> = table.symbols.iter().map(|s| s.name.as_str()).collect();
    // U+FB01 (the "fi" ligature) is stored by Python as "fi".
    assert_eq!(names, ["café", "Ωmega", "file"]);
}

#[test]
fn invalid_utf8_never_panics_and_names_decode_lossily() {
    let table = extract(b"def ok(): pass\ndef bad\xff\xfe(): pass\nx = '\xc3'\n");
    assert_eq!(table.symbols.first().map(|s| s.name.as_str()), Some("ok"));
    assert!(lines_are_sane(&table.symbols));
    for s in &table.symbols {
        assert!(!s.name.is_empty());
    }
}

#[test]
fn latin1_and_cp1252_cookies_decode_names_like_python() {
    let latin1 = extract(b"# -*- coding: latin-1 -*-\ndef caf\xe9(): pass\n");
    assert_eq!(latin1.symbols, vec![func("café", 2, 2)]);
    assert!(latin1.syntax_errors.is_empty());
    // 0x8A in cp1252 is U+0160 (Š); in Latin-1 it would be a C1 control.
    let cp1252 = extract(b"#!/usr/bin/env python\n# coding=cp1252\nclass \x8aum: pass\n");
    assert_eq!(cp1252.symbols, vec![class("\u{160}um", 3, 3, vec![])]);
    // Without a cookie the same byte is invalid UTF-8: no panic, replacement character.
    let none = extract(b"def caf\xe9(): pass\n");
    assert!(none.symbols.iter().all(|s| s.line == 1));
}

#[test]
fn nul_bytes_do_not_panic() {
    let table = extract(b"def a(): pass\n\0\0\ndef b(): pass\nx = '\0'\n");
    assert!(lines_are_sane(&table.symbols));
    assert_eq!(table.symbols.first().map(|s| s.name.as_str()), Some("a"));
}

#[test]
fn empty_and_whitespace_only_files() {
    for src in [
        &b""[..],
        b"\n",
        b"   \n\n",
        b"# only a comment",
        b"\xEF\xBB\xBF",
    ] {
        let table = extract(src);
        assert_eq!(table, SymbolTable::default(), "{src:?}");
    }
}

#[test]
fn huge_module_is_fully_extracted() {
    let mut src = String::new();
    for i in 0..20_000 {
        src.push_str(&format!("def f{i}(x):\n    return x + {i}\n\n"));
    }
    let table = extract(src.as_bytes());
    assert_eq!(table.symbols.len(), 20_000);
    assert_eq!(table.symbols[19_999], func("f19999", 59_998, 59_999));
    assert!(table.syntax_errors.is_empty());
}

/// `depth` classes, each nested in the previous one, with `pass` innermost.
fn nested_classes(depth: usize) -> String {
    let mut src = String::new();
    for d in 0..depth {
        src.push_str(&" ".repeat(d));
        src.push_str(&format!("class C{d}:\n"));
    }
    src.push_str(&" ".repeat(depth));
    src.push_str("pass\n");
    src
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    // 400 nested classes: beyond Python's 100-level indentation limit, but tree-sitter accepts
    // it and every level must come out as a member of the previous one.
    let depth = 400;
    let table = extract(nested_classes(depth).as_bytes());
    let mut node = table.symbols.first().expect("outer class");
    let mut seen = 1;
    while let Some(inner) = node.members.as_ref().and_then(|m| m.first()) {
        node = inner;
        seen += 1;
    }
    assert_eq!(seen, depth);
    assert!(lines_are_sane(&table.symbols));
    // Past ~500 levels tree-sitter-python's scanner cannot serialise its indent stack and
    // recovers with errors; all we ask there is no panic and sane lines.
    let table = extract(nested_classes(5_000).as_bytes());
    assert!(lines_are_sane(&table.symbols));

    // Deeply nested brackets inside a function.
    let parens = 50_000;
    let src = format!(
        "def f():\n    return {}1{}\n",
        "(".repeat(parens),
        ")".repeat(parens)
    );
    let table = extract(src.as_bytes());
    assert_eq!(table.symbols, vec![func("f", 1, 2)]);
}

#[test]
fn syntax_errors_keep_recoverable_definitions() {
    let src =
        "def good():\n    pass\n\ndef broken(:\n    pass\n\nclass Fine:\n    def m(self): pass\n";
    let table = extract(src.as_bytes());
    assert!(table.has_syntax_errors());
    let names: Vec<&str> = table.symbols.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"good"), "{names:?}");
    assert!(names.contains(&"Fine"), "{names:?}");
    let first = &table.syntax_errors[0];
    assert!(first.line >= 4 && first.line <= first.end_line, "{first:?}");
    assert!(first.end_line <= 5, "{first:?}");
}

#[test]
fn syntax_errors_are_capped() {
    let src = "x = = 1\n".repeat(200);
    let table = extract(src.as_bytes());
    assert_eq!(table.syntax_errors.len(), MAX_SYNTAX_ERRORS);
    for e in &table.syntax_errors {
        assert!(
            1 <= e.line && e.line <= e.end_line && e.end_line <= 200,
            "{e:?}"
        );
    }
}

#[test]
fn missing_tokens_are_reported() {
    let table = extract(b"def f(:\n");
    assert!(table.has_syntax_errors());
    let table = extract(b"x = (1,\n");
    assert!(table.has_syntax_errors());
}

#[test]
fn dedented_continuation_inside_brackets_parses_cleanly() {
    // tree-sitter-python alone turns this into one big ERROR (see continuation.rs).
    let src = "class T:\n    def m(self):\n        def f():\n            (bar.\n        baz)\n        return f\n\ndef after(): pass\n";
    let table = extract(src.as_bytes());
    assert!(table.syntax_errors.is_empty(), "{:?}", table.syntax_errors);
    assert_eq!(
        table.symbols,
        vec![class("T", 1, 6, vec![func("m", 2, 6)]), func("after", 8, 8)]
    );
}

/// A small valid module used as the seed for mutation.
pub(super) const SEED: &str = "import os\n\n@dec\nclass A(B):\n    \"\"\"doc\"\"\"\n    def m(self, x=(1,\n  2)):\n        return f'{x}'  # c\n\n    async def n(self):\n        async with a as b:\n            pass\n\ndef g(*a, **k):\n    if a:\n        def h(): pass\n    return [i for i in a]\n";

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let table = extract(&bytes);
        prop_assert!(lines_are_sane(&table.symbols));
        prop_assert!(table.syntax_errors.len() <= MAX_SYNTAX_ERRORS);
        for e in &table.syntax_errors {
            prop_assert!(1 <= e.line && e.line <= e.end_line);
        }
    }

    #[test]
    fn never_panics_on_mutated_python(
        op in 0u8..3,
        pos in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = SEED.as_bytes().to_vec();
        let at = pos.index(bytes.len() + 1);
        match op {
            0 => bytes.truncate(at),
            1 => bytes.insert(at, byte),
            _ => { if at < bytes.len() { bytes.remove(at); } }
        }
        let table = extract(&bytes);
        prop_assert!(lines_are_sane(&table.symbols));
        let lines = u32::try_from(bytes.split(|&b| b == b'\n' || b == b'\r').count()).unwrap();
        for s in &table.symbols {
            prop_assert!(s.end_line <= lines, "{s:?} beyond {lines} lines");
        }
    }
}

#[test]
fn seed_is_valid_python_with_expected_symbols() {
    // Guards the mutation test: its seed must itself extract cleanly.
    let table = extract(SEED.as_bytes());
    assert!(table.syntax_errors.is_empty(), "{:?}", table.syntax_errors);
    let names: Vec<&str> = table.symbols.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["A", "g"]);
    assert_eq!(table.symbols[0].line, 4);
    assert_eq!(table.symbols[0].end_line, 12);
    assert_eq!(table.symbols[1].end_line, 17);
}

#[test]
fn definitions_inside_a_top_level_error_are_recovered_at_column_zero() {
    // tree-sitter wraps `def a` and the stray `else:` block in one ERROR node.
    let table = extract(b"def a(): pass\nelse:\n    pass\ndef c(): pass\n");
    assert!(table.has_syntax_errors());
    let names: Vec<&str> = table.symbols.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "c"]);
    assert_eq!(table.symbols[0], func("a", 1, 1));
}

#[test]
fn invalid_utf8_is_a_syntax_error_as_in_python() {
    let table = extract(b"def f(): pass\nx = '\xff'\n");
    assert_eq!(table.symbols, vec![func("f", 1, 1)]);
    assert_eq!(table.syntax_errors, vec![SyntaxErrorLoc::lines(2, 2)]);
    // Declared Latin-1, the same bytes are fine.
    let latin1 = extract(b"# coding: latin-1\ndef f(): pass\nx = '\xff'\n");
    assert!(latin1.syntax_errors.is_empty());
}

#[test]
fn python2_only_statements_are_syntax_errors() {
    let table = extract(b"def f():\n    print 'x'\n    exec 'y'\n    return `f`\nok = a <> b\n");
    let lines: Vec<u32> = table.syntax_errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [2, 3, 4, 5]);
    assert_eq!(table.symbols, vec![func("f", 1, 4)]);
    // Valid Python 3 that merely looks like it: a shift "chevron", calls, plain names.
    let py3 = extract(b"print >> sys.stderr, 'm'\nprint('x')\nexec(code)\nprint\nx = -print\n");
    assert!(py3.syntax_errors.is_empty(), "{:?}", py3.syntax_errors);
}

#[test]
fn compound_statements_without_a_body_are_syntax_errors() {
    // tree-sitter-python accepts an empty suite; Python says "expected an indented block".
    let table = extract(b"def f():\n\ndef g(): pass\nclass C:\n    if x:\n    # c\ny = 1\n");
    let lines: Vec<u32> = table.syntax_errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [1, 5]);
    let names: Vec<&str> = table.symbols.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["f", "g", "C"]);
    // One-line bodies, comment-only lines around a body, docstring-only bodies are fine.
    let ok = extract(b"def f(): pass\nclass C:\n    # c\n    '''doc'''\n    # d\nif x: y = 1\n");
    assert!(ok.syntax_errors.is_empty(), "{:?}", ok.syntax_errors);
}

/// The two hostile inputs of the issue. Each took tens of seconds to minutes before: not in
/// tree-sitter's parse but in tree walks that were quadratic in a node's child count, and (for
/// the brackets) in Ruff's parser, which recursed once per bracket.
pub(crate) fn hostile_inputs() -> [(&'static str, Vec<u8>); 2] {
    [
        (
            "x = [1, x 20000",
            format!("def before(): pass\nx = {}\n", "[1,".repeat(20_000)).into_bytes(),
        ),
        ("1 MB of [", vec![b'['; 1 << 20]),
    ]
}

/// Line continuations only: tree-sitter's scanner re-reads every continuation line ahead of
/// each one, so its work is quadratic in the input (54 s for 128 KB) until the budget stops it.
pub(crate) fn continuation_storm() -> Vec<u8> {
    let mut src = b"def before(): pass\nx = 1 +".to_vec();
    src.extend(b"\\\n".repeat(1 << 16));
    src
}

#[test]
fn hostile_inputs_end_with_syntax_errors() {
    for (name, src) in hostile_inputs() {
        let table = extract(&src);
        assert!(table.has_syntax_errors(), "{name}");
        assert!(table.syntax_errors.len() <= MAX_SYNTAX_ERRORS, "{name}");
        assert_eq!(extract(&src), table, "{name}: deterministic");
    }
    let [(_, lists), (_, brackets)] = hostile_inputs();
    assert_eq!(
        flat(&extract(&lists)),
        [(SymbolKind::Function, "before".into(), 1, 1, false)]
    );
    // CPython's tokenizer limit, found by the bracket pre-scan at the 201st bracket.
    assert_eq!(
        extract(&brackets).syntax_errors[0],
        SyntaxErrorLoc::lines(1, 1)
    );
}

#[test]
fn a_parse_over_budget_gives_up_with_an_honest_error() {
    let src = continuation_storm();
    let budget = budget::Budget::for_len(src.len());
    assert!(matches!(parse(&src, &budget), Err(NoTree::OverBudget)));
    let table = extract(&src);
    let [error] = table.syntax_errors.as_slice() else {
        panic!("one region expected: {:?}", table.syntax_errors);
    };
    let message = error.message.as_deref().unwrap_or_default();
    assert!(message.contains("gave up"), "{message}");
    assert!(
        message.contains("Ruff"),
        "says where the symbols come from: {message}"
    );
    assert_eq!((error.line, error.end_line), (2, line_count(&src)));
    // Ruff's recovery, linear-time, still found the definition before the damage.
    assert_eq!(
        flat(&table),
        [(SymbolKind::Function, "before".into(), 1, 1, false)]
    );
    // The budget counts work, not time: the same bytes always give the same table.
    assert_eq!(extract(&src), table);
    // The message is in the JSON, and only on this kind of entry.
    let json = serde_json::to_value(&table).unwrap();
    assert!(json["syntax_errors"][0]["message"].is_string());
    let plain = serde_json::to_value(extract(b"def f(:\n")).unwrap();
    assert!(
        plain["syntax_errors"][0].get("message").is_none(),
        "{plain}"
    );
}

#[test]
fn budget_headroom_on_real_code() {
    // Real modules, whole and broken, use a small share of their budget (calibrated on the
    // whole stdlib and site-packages; see `budget`).
    let big = include_str!("../../../scenarios/p1-basic/segment/pkg/big.py");
    let mut broken = String::new();
    for (i, line) in big.lines().enumerate() {
        broken.push_str(line);
        broken.push_str(if i % 50 == 0 { " (:\n" } else { "\n" });
    }
    for src in [big, &broken, BASIC, SEED] {
        let (limit_ticks, limit_bytes) = budget::Budget::for_len(src.len()).limits();
        let used = budget::Budget::unlimited();
        assert!(parse(src.as_bytes(), &used).is_ok());
        let (ticks, bytes) = used.spent();
        assert!(ticks * 4 < limit_ticks, "{ticks} of {limit_ticks} ticks");
        assert!(bytes * 4 < limit_bytes, "{bytes} of {limit_bytes} bytes");
    }
    let table = extract(broken.as_bytes());
    assert!(table.has_syntax_errors());
    assert!(table.syntax_errors.iter().all(|e| e.message.is_none()));
}

#[test]
fn a_cancelled_parse_does_not_leak_into_the_next_module() {
    // tree-sitter keeps a parse cancelled by the progress callback for resumption; the next
    // parse on this thread's parser must start from scratch. (Running out of lexer bytes ends
    // the input instead, so the continuation storm alone does not exercise this.)
    let big = include_str!("../../../scenarios/p1-basic/segment/pkg/big.py");
    assert!(matches!(
        parse(big.as_bytes(), &budget::Budget::ticks(5)),
        Err(NoTree::OverBudget)
    ));
    let table = extract(b"def a(:\n    pass\ndef b(): pass\n");
    let names: Vec<&str> = table.symbols.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    assert!(table.syntax_errors.iter().all(|e| e.message.is_none()));
}
