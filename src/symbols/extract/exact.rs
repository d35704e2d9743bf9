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
use ruff_python_ast::{Stmt, StmtClassDef, StmtFunctionDef};
use ruff_text_size::{Ranged, TextSize};

/// Stack reserved per source byte: twice the measured worst case (64 bytes per nesting level of
/// one-byte levels, `-` chains, when Ruff's AST is dropped).
const STACK_PER_BYTE: usize = 128;

/// Stack headroom for everything that does not scale with the input.
const STACK_BASE: usize = 256 * 1024;

/// Larger inputs skip this path (tree-sitter handles them): Ruff's lexer asserts offsets fit in
/// `u32`, and the reserved stack would be too large to be sensible.
pub(super) const MAX_LEN: usize = 32 * 1024 * 1024;

/// What Ruff made of a module.
pub(super) enum Outcome {
    /// The module is valid Python: its top-level definitions, exactly as `ast` would list them.
    Valid(Vec<Symbol>),
    /// Ruff found a syntax error; the location of the first one.
    Invalid(SyntaxErrorLoc),
    /// Ruff could not be used (input too large, or Ruff panicked): ask tree-sitter.
    Unavailable,
}

/// Parse `text` (UTF-8 with `\n` line ends, as `source::prepare` makes it) with Ruff.
pub(super) fn parse(text: &str) -> Outcome {
    if text.len() > MAX_LEN {
        return Outcome::Unavailable;
    }
    let needed = STACK_BASE + text.len().saturating_mul(STACK_PER_BYTE);
    // A Ruff bug must not take down a whole `ast index`: treat a panic as "no answer" and let
    // tree-sitter extract the module. The process-wide panic hook is silent (commands::run).
    let guarded = std::panic::catch_unwind(|| stacker::maybe_grow(needed, needed, || run(text)));
    guarded.unwrap_or(Outcome::Unavailable)
}

/// Parse, convert, and drop the AST (all on the caller's, large enough, stack).
fn run(text: &str) -> Outcome {
    let lines = LineStarts::new(text);
    match ruff_python_parser::parse_module(text) {
        Ok(parsed) => {
            let body = &parsed.syntax().body;
            Outcome::Valid(
                body.iter()
                    .filter_map(|stmt| symbol(stmt, text, &lines))
                    .collect(),
            )
        }
        Err(error) => {
            let range = error.location;
            let line = lines.line_of(range.start());
            Outcome::Invalid(SyntaxErrorLoc {
                line,
                end_line: lines.line_of(range.end()).max(line),
            })
        }
    }
}

/// The symbol for a `def`/`async def`/`class` statement (with its members), else `None`.
///
/// Recursion follows class nesting only, which costs at least a line per level, well inside the
/// stack reserved by [`parse`].
fn symbol(stmt: &Stmt, text: &str, lines: &LineStarts) -> Option<Symbol> {
    match stmt {
        Stmt::FunctionDef(def) => Some(function(def, text, lines)),
        Stmt::ClassDef(class) => Some(class_symbol(class, text, lines)),
        _ => None,
    }
}

fn function(def: &StmtFunctionDef, text: &str, lines: &LineStarts) -> Symbol {
    let keyword = keyword_offset(def.range.start(), def.decorator_list.last(), text);
    let line = lines.line_of(keyword);
    Symbol {
        kind: SymbolKind::Function,
        name: identifier(def.name.id.as_bytes()),
        line,
        end_line: lines.line_of(def.range.end()).max(line),
        is_async: def.is_async,
        members: None,
    }
}

fn class_symbol(class: &StmtClassDef, text: &str, lines: &LineStarts) -> Symbol {
    let keyword = keyword_offset(class.range.start(), class.decorator_list.last(), text);
    let line = lines.line_of(keyword);
    Symbol {
        kind: SymbolKind::Class,
        name: identifier(class.name.id.as_bytes()),
        line,
        end_line: lines.line_of(class.range.end()).max(line),
        is_async: false,
        members: Some(
            class
                .body
                .iter()
                .filter_map(|stmt| symbol(stmt, text, lines))
                .collect(),
        ),
    }
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
