//! The fast, exact path: Ruff's hand-written Python parser (`ruff_python_parser`), whose AST
//! mirrors CPython's `ast` node for node, including `lineno`/`end_lineno` ranges.
//!
//! Why a second parser: a full tree-sitter parse runs at about 15 MB/s per core here, Ruff's at
//! about 120 MB/s (measured on the 128 MB Python library, see the README), and the cold
//! `ast index` target (no slower than ctags) is out of reach at tree-sitter's speed. Ruff's
//! grammar is also CPython's, so "it parsed" means what `ast.parse` means. What Ruff does not
//! give us is tree-sitter's tuned error recovery, so any module Ruff rejects goes back to the
//! tree-sitter path in the parent module, which owns the `syntax_errors` contract.
//!
//! Stack use: Ruff's parser grows its own stack, but dropping a deeply nested AST recurses about
//! 64 bytes of stack per level, and a level can cost as little as one source byte (`-----x`).
//! [`parse`] therefore runs on a stack of at least [`STACK_PER_BYTE`] bytes per source byte
//! (allocated only when the current one is too small), so no input can overflow it.

use super::identifier;
use crate::symbols::model::{Symbol, SymbolKind, SyntaxErrorLoc};
use ruff_python_ast::token::{Token, TokenKind};
use ruff_python_ast::{PySourceType, Stmt};
use ruff_text_size::{Ranged, TextRange, TextSize};

/// Stack reserved per source byte: twice the measured worst case (64 bytes per nesting level of
/// one-byte levels, `-` chains, when Ruff's AST is dropped).
const STACK_PER_BYTE: usize = 128;

/// Stack headroom for everything that does not scale with the input.
const STACK_BASE: usize = 256 * 1024;

/// Larger inputs skip this path (tree-sitter handles them): Ruff's lexer asserts offsets fit in
/// `u32`, and the reserved stack would be too large to be sensible.
pub(super) const MAX_LEN: usize = 16 * 1024 * 1024;

/// CPython's tokenizer refuses a bracket nested deeper than this ("too many nested
/// parentheses", `MAXLEVEL` in `Parser/tokenizer.h`); Ruff's grammar has no such limit.
const MAX_BRACKET_DEPTH: usize = 200;

/// CPython's tokenizer refuses a 100th indentation level ("too many levels of indentation",
/// `MAXINDENT`); Ruff's grammar has no such limit.
const MAX_INDENT_LEVELS: usize = 99;

/// What Ruff made of a module.
pub(super) enum Outcome {
    /// The module is valid Python: its top-level definitions, exactly as `ast` would list them.
    Valid(Vec<Symbol>),
    /// Ruff found a syntax error: the location of the first one, and the definitions Ruff's own
    /// error recovery kept (the last-resort answer when tree-sitter's recovery gives up).
    Invalid(SyntaxErrorLoc, Vec<Symbol>),
    /// Ruff could not be used (input too large, or Ruff panicked): ask tree-sitter.
    Unavailable,
}

/// Parse `text` (UTF-8 with `\n` line ends, as `source::prepare` makes it) with Ruff.
pub(super) fn parse(text: &str) -> Outcome {
    if text.len() > MAX_LEN {
        return Outcome::Unavailable;
    }
    if unary_operators(text.as_bytes()) > MAX_UNARY_RUN
        && longest_unary_run(text.as_bytes()) > MAX_UNARY_RUN
    {
        // Ruff recurses (and allocates) once per prefix operator: 1 MB of `-` took 1.4 s and
        // 1 GB. tree-sitter parses the same module in linear time on the heap, under its
        // budget, and the two agree on modules Python accepts.
        return Outcome::Unavailable;
    }
    if let Some(at) = first_bracket_too_deep(text.as_bytes()) {
        // CPython's tokenizer rejects this module whatever else it holds, and Ruff, which has
        // no such limit, would recurse once per bracket: 1 MB of `[` took seconds and gigabytes
        // of stack. Report the tokenizer's error without running Ruff.
        let lines = LineStarts::new(text);
        let line = lines.line_of(TextSize::try_from(at).unwrap_or_default());
        return Outcome::Invalid(SyntaxErrorLoc::lines(line, line), Vec::new());
    }
    let needed = STACK_BASE + text.len().saturating_mul(STACK_PER_BYTE);
    // A Ruff bug must not take down a whole `ast index`: treat a panic as "no answer" and let
    // tree-sitter extract the module. The process-wide panic hook is silent (commands::run).
    let guarded = std::panic::catch_unwind(|| stacker::maybe_grow(needed, needed, || run(text)));
    guarded.unwrap_or(Outcome::Unavailable)
}

/// Parse, convert, and drop the AST (all on the caller's, large enough, stack).
///
/// Ruff's parser recovers from errors in linear time, so its AST is converted whether or not the
/// module is valid: the symbols of an invalid module are only used if tree-sitter gives up.
fn run(text: &str) -> Outcome {
    let lines = LineStarts::new(text);
    let error_at = |range: TextRange| {
        let line = lines.line_of(range.start());
        SyntaxErrorLoc::lines(line, lines.line_of(range.end()).max(line))
    };
    let parsed = ruff_python_parser::parse_unchecked_source(text, PySourceType::Python);
    let symbols: Vec<Symbol> = parsed
        .syntax()
        .body
        .iter()
        .filter_map(|stmt| symbol(stmt, text, &lines))
        .collect();
    let error = match parsed.errors().first() {
        Some(error) => Some(error.location),
        None => beyond_tokenizer_limits(parsed.tokens()),
    };
    match error {
        Some(range) => Outcome::Invalid(error_at(range), symbols),
        None => Outcome::Valid(symbols),
    }
}

/// Longest run of prefix operators (`-`, `+`, `~`, `not`) Ruff is given. Real code has a few
/// in a row; CPython's own parser gives up (`MemoryError`) a few thousand levels deep.
const MAX_UNARY_RUN: usize = 1_000;

/// All prefix-operator spellings in `text` (SIMD counts): a bound on [`longest_unary_run`] that
/// spares almost every module the byte-by-byte scan.
fn unary_operators(text: &[u8]) -> usize {
    count_any(text, [b'-', b'+', b'~']) + memchr::memmem::find_iter(text, b"not").count()
}

/// The longest run of consecutive prefix operators (`-`, `+`, `~`, `not`, blanks and line
/// continuations between them allowed), skipping comments and strings: each one is a level of
/// recursion in Ruff's parser. Over-counting (a binary `-` before a unary one) is harmless: it
/// only routes a module to tree-sitter.
fn longest_unary_run(text: &[u8]) -> usize {
    use super::continuation::{memchr_newline, string_end};
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80;
    let (mut run, mut longest, mut i) = (0usize, 0usize, 0usize);
    while let Some(&b) = text.get(i) {
        match b {
            b'-' | b'+' | b'~' => {
                run += 1;
                longest = longest.max(run);
                i += 1;
            }
            b' ' | b'\t' | b'\x0c' | b'\r' | b'\n' | b'\\' => i += 1,
            b'n' if text[i..].starts_with(b"not")
                && !text.get(i + 3).is_some_and(|&c| is_ident(c)) =>
            {
                run += 1;
                longest = longest.max(run);
                i += 3;
            }
            _ => {
                run = 0;
                i = match b {
                    b'#' => memchr_newline(text, i),
                    b'\'' | b'"' => string_end(text, i),
                    // A whole identifier, so `knot` is not `not`.
                    _ if is_ident(b) => i + text[i..].iter().take_while(|&&c| is_ident(c)).count(),
                    _ => i + 1,
                };
            }
        }
    }
    longest
}

/// Modules with at most this many opening brackets go to Ruff without the bracket scan: even
/// nested all the way, that is a recursion Ruff's parser handles in milliseconds.
const RUFF_SAFE_OPENERS: usize = 10_000;

/// The byte offset of the first bracket nested deeper than [`MAX_BRACKET_DEPTH`], found by a
/// linear scan that, like CPython 3.11's tokenizer, skips comments and string literals
/// (f-strings included: in 3.11 they are single tokens).
fn first_bracket_too_deep(text: &[u8]) -> Option<usize> {
    use super::continuation::{memchr_newline, string_end};
    // Cheap bound first: with at most RUFF_SAFE_OPENERS openers, Ruff's recursion stays small
    // (milliseconds), and CPython's limit is then found over Ruff's tokens after the parse
    // ([`beyond_tokenizer_limits`]); only modules with more need this scan to keep Ruff away.
    if openers(text) <= RUFF_SAFE_OPENERS {
        return None;
    }
    // Code runs between comments and string literals (found with SIMD); within a run, opener
    // and closer counts (SIMD too) settle the depth unless the run could reach the limit, and
    // only then is it walked byte by byte.
    let (mut depth, mut i) = (0usize, 0usize);
    while i < text.len() {
        let end = memchr::memchr3(b'#', b'\'', b'"', &text[i..]).map_or(text.len(), |k| i + k);
        let code = &text[i..end];
        let opens = openers(code);
        if depth + opens > MAX_BRACKET_DEPTH {
            for (k, &b) in code.iter().enumerate() {
                match b {
                    b'(' | b'[' | b'{' => {
                        depth += 1;
                        if depth > MAX_BRACKET_DEPTH {
                            return Some(i + k);
                        }
                    }
                    b')' | b']' | b'}' => depth = depth.saturating_sub(1),
                    _ => {}
                }
            }
        } else {
            depth = settle(code, depth);
        }
        i = match text.get(end) {
            None => end,
            Some(b'#') => memchr_newline(text, end),
            Some(_) => string_end(text, end),
        };
    }
    None
}

/// Opening brackets in `bytes`. Written as a branch-free sum so the compiler vectorises it
/// (`memchr3_iter` stops at every match, and brackets are frequent).
fn openers(bytes: &[u8]) -> usize {
    count_any(bytes, [b'(', b'[', b'{'])
}

/// How many bytes of `bytes` are one of `set` (a vectorised sum, in chunks so the per-chunk
/// count fits a byte lane).
fn count_any(bytes: &[u8], set: [u8; 3]) -> usize {
    bytes
        .chunks(255)
        .map(|chunk| {
            chunk
                .iter()
                .map(|&b| u8::from((b == set[0]) | (b == set[1]) | (b == set[2])))
                .sum::<u8>() as usize
        })
        .sum()
}

/// The depth after `code`, starting at `depth`, with closers never taking it below zero, as
/// the byte walk in [`first_bracket_too_deep`] counts it. Only called when `code` cannot reach
/// the limit, so no position is needed.
fn settle(code: &[u8], mut depth: usize) -> usize {
    let mut start = 0;
    while let Some(k) = memchr::memchr3(b')', b']', b'}', &code[start..]) {
        depth = (depth + openers(&code[start..start + k])).saturating_sub(1);
        start += k + 1;
    }
    depth + openers(&code[start..])
}

/// The first token past one of CPython's tokenizer limits, which make `ast.parse` fail on
/// modules Ruff's grammar accepts.
fn beyond_tokenizer_limits(tokens: &[Token]) -> Option<TextRange> {
    let (mut brackets, mut indents) = (0usize, 0usize);
    for token in tokens {
        match token.kind() {
            TokenKind::Lpar | TokenKind::Lsqb | TokenKind::Lbrace => {
                brackets += 1;
                if brackets > MAX_BRACKET_DEPTH {
                    return Some(token.range());
                }
            }
            TokenKind::Rpar | TokenKind::Rsqb | TokenKind::Rbrace => {
                brackets = brackets.saturating_sub(1);
            }
            TokenKind::Indent => {
                indents += 1;
                if indents > MAX_INDENT_LEVELS {
                    return Some(token.range());
                }
            }
            TokenKind::Dedent => indents = indents.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// The symbol for a `def`/`async def`/`class` statement (with its members), else `None`.
///
/// Recursion follows class nesting only, which costs at least a line per level, well inside the
/// stack reserved by [`parse`].
fn symbol(stmt: &Stmt, text: &str, lines: &LineStarts) -> Option<Symbol> {
    let (kind, range, decorators, name, is_async, body) = match stmt {
        Stmt::FunctionDef(f) => (
            SymbolKind::Function,
            f.range,
            &f.decorator_list,
            &f.name,
            f.is_async,
            None,
        ),
        Stmt::ClassDef(c) => (
            SymbolKind::Class,
            c.range,
            &c.decorator_list,
            &c.name,
            false,
            Some(&c.body),
        ),
        _ => return None,
    };
    let line = lines.line_of(keyword_offset(range.start(), decorators.last(), text));
    Some(Symbol {
        kind,
        name: identifier(name.id.as_bytes()),
        line,
        end_line: lines.line_of(range.end()).max(line),
        is_async,
        // Only classes have members: the definitions directly in their body.
        members: body.map(|b| {
            b.iter()
                .filter_map(|stmt| symbol(stmt, text, lines))
                .collect()
        }),
    })
}

/// Where the `def`/`async`/`class` keyword starts. Ruff's statement range begins at the first
/// decorator; `ast`'s `lineno` is the keyword's line, which is the first token after the last
/// decorator (only blank space, line ends, comments and backslash continuations can sit between).
fn keyword_offset(
    start: TextSize,
    last_decorator: Option<&ruff_python_ast::Decorator>,
    text: &str,
) -> TextSize {
    let Some(decorator) = last_decorator else {
        return start;
    };
    let bytes = text.as_bytes();
    let mut at = decorator.end().to_usize();
    while let Some(&b) = bytes.get(at) {
        match b {
            b' ' | b'\t' | b'\x0c' | b'\n' | b'\r' | b'\\' => at += 1,
            b'#' => {
                at = memchr::memchr(b'\n', &bytes[at..]).map_or(bytes.len(), |i| at + i);
            }
            _ => break,
        }
    }
    TextSize::try_from(at).unwrap_or(start)
}

/// Byte offsets where each line starts, to turn Ruff's offsets into `ast`'s 1-based lines.
struct LineStarts(Vec<u32>);

impl LineStarts {
    fn new(text: &str) -> Self {
        let mut starts = Vec::with_capacity(text.len() / 32 + 1);
        starts.push(0);
        // `parse` refused texts longer than MAX_LEN, so every offset fits in u32.
        starts.extend(memchr::memchr_iter(b'\n', text.as_bytes()).map(|i| i as u32 + 1));
        Self(starts)
    }

    /// The 1-based line holding `offset`.
    fn line_of(&self, offset: TextSize) -> u32 {
        let line = self.0.partition_point(|&start| start <= u32::from(offset));
        u32::try_from(line).unwrap_or(u32::MAX).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{extract, recover, source};
    use super::*;
    use crate::symbols::model::SymbolTable;

    /// The tree-sitter path alone, as if Ruff were unavailable.
    fn tree_sitter(src: &str) -> SymbolTable {
        recover(source::prepare(src.as_bytes()), None)
    }

    fn valid(src: &str) -> Vec<Symbol> {
        match parse(src) {
            Outcome::Valid(symbols) => symbols,
            Outcome::Invalid(e, _) => panic!("Ruff rejected valid Python at {e:?}"),
            Outcome::Unavailable => panic!("Ruff unavailable"),
        }
    }

    /// (kind, name, line, end_line, async, depth) of every symbol, members after their class.
    fn rows(symbols: &[Symbol], depth: usize, out: &mut Vec<(String, u32, u32, bool, usize)>) {
        for s in symbols {
            out.push((s.name.clone(), s.line, s.end_line, s.is_async, depth));
            rows(s.members.as_deref().unwrap_or_default(), depth + 1, out);
        }
    }

    fn flat(symbols: &[Symbol]) -> Vec<(String, u32, u32, bool, usize)> {
        let mut out = Vec::new();
        rows(symbols, 0, &mut out);
        out
    }

    #[test]
    fn decorator_lines_are_skipped_to_the_keyword_as_ast_does() {
        // Expected values printed by CPython 3.11's ast for this exact text.
        let src = "@a\n# between\n@b(1,\n   2)  # trailing\n\n# more\nasync def f(): pass\n\n\
                   @c\nclass K:\n    @property\n\n    def p(self): return 1\n    @staticmethod\n    \
                   # c\n    async def q(): ...\n@d\n\\\ndef g(\n    x,\n): return (1 +\n  2)\n";
        let got = flat(&valid(src));
        let want = [
            ("f", 7, 7, true, 0),
            ("K", 10, 16, false, 0),
            ("p", 13, 13, false, 1),
            ("q", 16, 16, true, 1),
            ("g", 19, 22, false, 0),
        ];
        let want: Vec<_> = want
            .iter()
            .map(|&(n, l, e, a, d)| (n.to_owned(), l, e, a, d))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn ruff_and_tree_sitter_agree_on_valid_modules() {
        // The tree-sitter path is tuned to match ast on valid modules too (the corpus test
        // checked it on the whole stdlib before Ruff took over), so the two are a cross-check.
        let typing = include_str!("../../../scenarios/p1-basic/segment/pkg/big.py");
        let utils = include_str!("../../../scenarios/p1-basic/segment/pkg/utils.py");
        for src in [
            typing,
            utils,
            super::super::tests::BASIC,
            super::super::tests::SEED,
        ] {
            let ruff = valid(src);
            assert!(ruff.len() > 1, "fixture too small to compare");
            let ts = tree_sitter(src);
            assert!(ts.syntax_errors.is_empty(), "{:?}", ts.syntax_errors);
            assert_eq!(flat(&ruff), flat(&ts.symbols));
        }
    }

    #[test]
    fn python_errors_tree_sitter_accepts_are_still_reported() {
        // Each is a SyntaxError in CPython 3.11's ast.parse; tree-sitter's grammar accepts some
        // of them, so without Ruff's verdict these modules would pass as clean.
        let cases = [
            "f(**a, *b)\n",
            "def f(a=1, b): pass\n",
            "del f()\n",
            "x = 1 = 2\n",
            "f(x for x in y, 1)\n",
            "def f(*, **k): pass\n",
        ];
        let mut accepted_by_tree_sitter = 0;
        for body in cases {
            let src = format!("def before(): pass\n{body}def after(): pass\n");
            accepted_by_tree_sitter += usize::from(tree_sitter(&src).syntax_errors.is_empty());
            let table = extract(src.as_bytes());
            assert!(table.has_syntax_errors(), "{body:?} passed as valid");
            assert!(
                table
                    .syntax_errors
                    .iter()
                    .any(|e| e.line <= 2 && e.end_line >= 2),
                "{body:?}: error not on line 2: {:?}",
                table.syntax_errors
            );
            // The recovered definitions around the error are still there.
            let names: Vec<&str> = table.symbols.iter().map(|s| s.name.as_str()).collect();
            assert!(names.contains(&"before"), "{body:?}: {names:?}");
        }
        // Guards the test itself: at least some cases must need Ruff's verdict.
        assert!(
            accepted_by_tree_sitter > 0,
            "tree-sitter rejects every case"
        );
    }

    #[test]
    fn hostile_expression_nesting_does_not_overflow_a_worker_stack() {
        // Each of these parses, but dropping its AST recursed past 2 MiB before the stack was
        // sized to the input. Run on a 2 MiB thread, the size of rayon's `ast index` workers.
        let n = 1_000_000;
        let cases = [
            format!("x = {}1\n", "-".repeat(n)),
            format!("x = {}1\n", "1+".repeat(n / 2)),
            format!("x = {}{}\n", "[".repeat(n / 2), "]".repeat(n / 2)),
            format!("x = a{}\n", "()".repeat(n / 2)),
            format!("x = {}1\n", "not ".repeat(n / 4)),
        ];
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                for body in cases {
                    let src = format!("def f():\n    pass\n{body}class C: pass\n");
                    let table = extract(src.as_bytes());
                    let names: Vec<&str> = table.symbols.iter().map(|s| s.name.as_str()).collect();
                    assert_eq!(names, ["f", "C"]);
                    assert_eq!(table.symbols[1].line, 4);
                }
            })
            .expect("spawn")
            .join()
            .expect("no stack overflow, no panic");
    }

    #[test]
    fn cpython_tokenizer_limits_are_syntax_errors() {
        // Limits checked against CPython 3.11's ast.parse: 200 nested brackets parse, 201 do not;
        // 99 indentation levels parse, 100 do not.
        let parens = |n: usize| format!("x = {}1{}\n", "(".repeat(n), ")".repeat(n));
        let ifs = |n: usize| {
            let mut src: String = (0..n)
                .map(|i| format!("{}if x:\n", " ".repeat(i)))
                .collect();
            src.push_str(&format!("{}pass\n", " ".repeat(n)));
            src
        };
        assert!(matches!(parse(&parens(200)), Outcome::Valid(_)));
        assert!(matches!(parse(&parens(201)), Outcome::Invalid(e, _) if e.line == 1));
        assert!(matches!(parse(&ifs(99)), Outcome::Valid(_)));
        assert!(matches!(parse(&ifs(100)), Outcome::Invalid(e, _) if e.line == 101));
        // Through `extract`, tree-sitter (which has no such limits) recovers the module and
        // Ruff's location is what reports the error.
        let table = extract(format!("def f(): pass\n{}", parens(300)).as_bytes());
        assert_eq!(table.symbols.len(), 1);
        assert_eq!(table.syntax_errors, [SyntaxErrorLoc::lines(2, 2)]);
    }

    #[test]
    fn long_prefix_operator_runs_skip_ruff() {
        assert_eq!(longest_unary_run(b"x = - - +~ not  -\\\n 1 # ------\n"), 6);
        assert_eq!(longest_unary_run(b"s = '-----' ; knot = a - b"), 1);
        let deep = format!("def f(): pass\nx = {}1\n", "-".repeat(MAX_UNARY_RUN + 1));
        assert!(matches!(parse(&deep), Outcome::Unavailable));
        let fine = format!("def f(): pass\nx = {}1\n", "-".repeat(MAX_UNARY_RUN));
        assert!(matches!(parse(&fine), Outcome::Valid(_)));
    }

    #[test]
    fn line_starts_map_offsets_to_python_lines() {
        let lines = LineStarts::new("a\nbb\n\nc");
        let at = |o: u32| lines.line_of(TextSize::from(o));
        assert_eq!(
            [at(0), at(1), at(2), at(4), at(5), at(6), at(7)],
            [1, 1, 2, 2, 3, 4, 4]
        );
    }
}
