//! Extraction of a module's symbols, with Python's `ast` as the specification.
//!
//! Two parsers, one contract:
//! - Modules Python accepts go through Ruff's parser ([`exact`]): its grammar is CPython's and its
//!   AST ranges are `ast`'s, at about eight times tree-sitter's speed. Ruff's verdict also decides
//!   whether a module has a syntax error at all.
//! - Modules Ruff rejects (or cannot take: undecodable bytes, oversized input) go through
//!   tree-sitter-python, whose error recovery still yields the definitions around the damage.
//!
//! What `ast` would say, and how we get there:
//! - `symbols` are the `def` / `async def` / `class` statements of `tree.body`, decorated or not,
//!   in source order; a class's `members` are the definitions directly in its body (recursively).
//!   Definitions nested in `if`/`try`/... are neither symbols nor members.
//! - `line` is `lineno` (the `def`/`class`/`async` line, never the decorator's); `end_line` is
//!   `end_lineno`, the line of the last token of the last statement of the body. tree-sitter's
//!   node ends can include trailing comments, so [`span::end_line`] walks down to that token.
//! - Lines, encodings and BOMs are made to match CPython's tokenizer before parsing
//!   ([`source::prepare`], with Python's codecs from [`crate::symbols::encoding`]); identifiers
//!   are NFKC-normalised as CPython does (PEP 3131).
//! - Unlike `ast`, a file with syntax errors still yields whatever tree-sitter recovered (including
//!   column-0 definitions inside a top-level `ERROR`), and the `ERROR`/`MISSING` regions are
//!   reported in `syntax_errors`, together with what tree-sitter accepts but Python does not:
//!   Python 2-only statements, compound statements with an empty body, encoding errors. When
//!   tree-sitter finds nothing wrong in a module Ruff rejected, Ruff's error location is reported.
//!
//! Hostile nesting cannot overflow the stack: the tree-sitter path never recurses on the input's
//! depth, and the Ruff path runs on a stack sized to the input ([`exact`]).
//! The corpus test (`tests/integration/corpus.rs`) checks agreement with `ast` on the whole stdlib.

mod budget;
mod continuation;
mod exact;
mod source;
mod span;
#[cfg(test)]
mod tests;

use super::model::{Symbol, SymbolKind, SymbolTable, SyntaxErrorLoc};
use std::cell::RefCell;
use tree_sitter::{Node, ParseOptions, Parser, Tree};
use unicode_normalization::UnicodeNormalization;

/// Version of the extraction rules. Bump whenever the output of [`extract`] can change for the
/// same input bytes; it is part of every cache key.
///
/// 3: coding cookies are decoded with Python's own codecs (`crate::symbols::encoding`), and an
/// encoding error carries CPython's `message`.
/// 4: tree-sitter's error recovery runs on a work budget ([`budget`]); a module that exhausts it
/// gets a `syntax_errors` entry with a `message`.
pub const EXTRACTOR_VERSION: u32 = 4;

/// At most this many syntax-error regions are reported; the rest add nothing a reader can use.
pub const MAX_SYNTAX_ERRORS: usize = 20;

thread_local! {
    /// One parser per thread: creating a parser and loading the language costs more than parsing
    /// a small module, and `Parser` is not `Sync`.
    static PARSER: RefCell<Option<Parser>> = const { RefCell::new(None) };
}

/// Extract the symbol table of a Python module from its raw bytes.
///
/// Never panics, whatever the bytes, and its work is bounded by the input's size: tree-sitter's
/// error recovery runs on a [`budget::Budget`] (it can be quadratic on hostile input), and a
/// module that exhausts it is reported with a `syntax_errors` entry whose `message` says so. If
/// tree-sitter itself cannot be used (a grammar/runtime ABI mismatch, which would be a build
/// defect), the table is empty and `syntax_errors` covers the whole file, so a caller can never
/// mistake the failure for a clean module without symbols.
pub fn extract(source: &[u8]) -> SymbolTable {
    let prepared = source::prepare(source);
    let outcome = match (
        &prepared.encoding_error,
        std::str::from_utf8(&prepared.text),
    ) {
        (None, Ok(text)) => exact::parse(text),
        // CPython rejects the bytes, or they are in an encoding we do not transcode.
        _ => exact::Outcome::Unavailable,
    };
    match outcome {
        exact::Outcome::Valid(symbols) => SymbolTable {
            symbols,
            syntax_errors: Vec::new(),
        },
        exact::Outcome::Invalid(error, ruff_symbols) => {
            let mut table = recover(prepared, Some((&error, ruff_symbols)));
            if table.syntax_errors.is_empty() {
                // Python rejects what tree-sitter's grammar accepts (`f(**a, *b)`, say).
                table.syntax_errors.push(error);
            }
            table
        }
        exact::Outcome::Unavailable => recover(prepared, None),
    }
}

/// The text both parsers see for `source` (BOM stripped, coding cookie decoded with Python's
/// codec, `\n` line ends; lossy where undecodable), and the encoding error CPython reports
/// before parsing, if any. For inspection and tests; [`extract`] does this itself.
pub fn decoded_source(source: &[u8]) -> (String, Option<SyntaxErrorLoc>) {
    let prepared = source::prepare(source);
    let error = prepared.encoding_error.map(|e| SyntaxErrorLoc {
        line: e.line,
        end_line: e.line,
        message: e.message,
    });
    (String::from_utf8_lossy(&prepared.text).into_owned(), error)
}

/// The error-tolerant path, for modules Python would reject: whatever definitions tree-sitter
/// recovers, and the regions it could not parse. `ruff` is Ruff's verdict when Ruff could parse
/// the text: its first error and the definitions its own recovery kept, which are the answer
/// if tree-sitter's recovery runs out of budget.
fn recover(
    prepared: source::Prepared<'_>,
    ruff: Option<(&SyntaxErrorLoc, Vec<Symbol>)>,
) -> SymbolTable {
    let source::Prepared {
        text,
        encoding_error,
    } = prepared;
    // One budget for the parse and its retry, so the retry cannot double the worst case.
    let budget = budget::Budget::for_len(text.len());
    let mut table = match parse(&text, &budget) {
        Ok(tree) if tree.root_node().has_error() => {
            // Maybe (partly) the scanner's bracket bug: retry on a copy with the same lines and
            // keep whichever parse leaves fewer lines inside error regions. A retry that runs out
            // of budget is simply not better.
            let retry = continuation::pad_bracket_continuations(&text)
                .and_then(|padded| parse(&padded, &budget).ok().map(|t| (t, padded)))
                .filter(|(t, _)| {
                    span::error_lines(t.root_node()) < span::error_lines(tree.root_node())
                });
            match retry {
                Some((better, padded)) => table_of(&better, &padded),
                None => table_of(&tree, &text),
            }
        }
        Ok(tree) => table_of(&tree, &text),
        Err(NoTree::OverBudget) => gave_up(&text, ruff),
        Err(NoTree::Unusable) => SymbolTable {
            symbols: Vec::new(),
            syntax_errors: vec![SyntaxErrorLoc::lines(1, line_count(&text))],
        },
    };
    if let Some(source::EncodingError { line, message }) = encoding_error {
        // CPython stops at the decoding error; report it first.
        table.syntax_errors.insert(
            0,
            SyntaxErrorLoc {
                line,
                end_line: line,
                message,
            },
        );
        table.syntax_errors.truncate(MAX_SYNTAX_ERRORS);
    }
    table
}

/// The table of a module whose tree-sitter recovery ran out of budget: one error region from
/// Ruff's first error (or line 1) to the end of the file, saying what happened, and the
/// definitions Ruff's linear-time recovery kept, if Ruff could read the text at all.
fn gave_up(text: &[u8], ruff: Option<(&SyntaxErrorLoc, Vec<Symbol>)>) -> SymbolTable {
    let last = line_count(text);
    let (line, symbols, basis) = match ruff {
        Some((error, symbols)) => (
            error.line.min(last),
            symbols,
            "symbols are those Ruff's parser recovered, which may miss or misplace definitions \
             after the first error",
        ),
        None => (1, Vec::new(), "no symbols could be recovered"),
    };
    SymbolTable {
        symbols,
        syntax_errors: vec![SyntaxErrorLoc {
            line,
            end_line: last,
            message: Some(format!(
                "syntax error recovery gave up: the module exceeded its parsing budget; {basis}"
            )),
        }],
    }
}

/// Why [`parse`] produced no tree.
enum NoTree {
    /// The parse used up its [`budget::Budget`] and was cancelled.
    OverBudget,
    /// tree-sitter could not be used at all (no language: a build defect).
    Unusable,
}

/// Parse with this thread's parser, creating it on first use, charging `budget`.
fn parse(text: &[u8], budget: &budget::Budget) -> Result<Tree, NoTree> {
    PARSER.with(|cell| {
        let mut slot = cell.try_borrow_mut().map_err(|_| NoTree::Unusable)?;
        if slot.is_none() {
            let mut parser = Parser::new();
            parser
                .set_language(&tree_sitter_python::LANGUAGE.into())
                .map_err(|_| NoTree::Unusable)?;
            *slot = Some(parser);
        }
        let parser = slot.as_mut().ok_or(NoTree::Unusable)?;
        // The text in chunks, each charged to the budget; end of input once it is spent.
        let mut input = |i: usize, _| {
            let rest = text.get(i..).unwrap_or_default();
            let chunk = &rest[..rest.len().min(budget::READ_CHUNK)];
            if budget.read(chunk.len()) { chunk } else { &[] }
        };
        let mut tick = |_: &tree_sitter::ParseState| budget.tick();
        let tree = parser.parse_with_options(
            &mut input,
            None,
            Some(ParseOptions::new().progress_callback(&mut tick)),
        );
        if tree.is_none() {
            // A cancelled parse is kept for resumption; the next module must start afresh.
            parser.reset();
        }
        match tree {
            // A parse that ran out may still have finished, on a truncated text: not an answer.
            _ if budget.exhausted() => Err(NoTree::OverBudget),
            Some(tree) => Ok(tree),
            None => Err(NoTree::Unusable),
        }
    })
}

/// Number of lines in `text` as Python counts them (at least 1).
fn line_count(text: &[u8]) -> u32 {
    let newlines = text.iter().filter(|&&b| b == b'\n').count();
    to_line(newlines).max(1)
}

/// A 0-based row to a 1-based line, saturating (a 4-billion-line file is not a real case).
fn to_line(row: usize) -> u32 {
    u32::try_from(row.saturating_add(1)).unwrap_or(u32::MAX)
}

/// Symbols and syntax errors of a parsed module (`text` is what was parsed).
fn table_of(tree: &Tree, text: &[u8]) -> SymbolTable {
    let root = tree.root_node();
    let symbols = top_level_statements(root)
        .into_iter()
        .filter_map(|stmt| symbol_tree(stmt, text))
        .collect();
    let mut syntax_errors = if root.has_error() {
        span::error_regions(root, MAX_SYNTAX_ERRORS)
    } else {
        Vec::new()
    };
    let mut python3_only = span::python2_regions(root, text, MAX_SYNTAX_ERRORS);
    python3_only.extend(span::empty_blocks(root, MAX_SYNTAX_ERRORS));
    if !python3_only.is_empty() {
        syntax_errors.extend(python3_only);
        syntax_errors.sort_by_key(|e| (e.line, e.end_line));
        syntax_errors.dedup();
        syntax_errors.truncate(MAX_SYNTAX_ERRORS);
    }
    SymbolTable {
        symbols,
        syntax_errors,
    }
}

/// The module's statements in source order. When tree-sitter wrapped part of the module in
/// an `ERROR` node (or the root itself is one), the definitions it still recognised inside
/// that node at column 0 are top-level statements too: recovering them is the point of using
/// an error-tolerant parser. Indented ones are left out, as they belong to some broken block.
fn top_level_statements(root: Node<'_>) -> Vec<Node<'_>> {
    let mut out = Vec::new();
    // Reversed work list so pops come in document order; ERROR nodes are expanded in place.
    let mut work: Vec<(Node<'_>, bool)> = vec![(root, false)];
    while let Some((node, inside_error)) = work.pop() {
        if node.id() == root.id() || node.is_error() {
            let mut cursor = node.walk();
            let children: Vec<Node<'_>> = node.named_children(&mut cursor).collect();
            let nested = inside_error || node.is_error();
            work.extend(children.into_iter().rev().map(|c| (c, nested)));
        } else if !inside_error || node.start_position().column == 0 {
            out.push(node);
        }
    }
    out
}

/// The `function_definition` / `class_definition` a statement defines, unwrapping decorators.
fn definition(node: Node<'_>) -> Option<Node<'_>> {
    let def = match node.kind() {
        "decorated_definition" => node.child_by_field_name("definition")?,
        _ => node,
    };
    matches!(def.kind(), "function_definition" | "class_definition").then_some(def)
}

/// The symbol for one definition, without members; `None` when tree-sitter recovered a
/// definition with no name (only possible in a file with syntax errors).
fn symbol_head(def: Node<'_>, text: &[u8]) -> Option<Symbol> {
    let name_node = def.child_by_field_name("name")?;
    let name = identifier(text.get(name_node.byte_range())?);
    if name.is_empty() {
        return None;
    }
    let is_class = def.kind() == "class_definition";
    let line = to_line(def.start_position().row);
    Some(Symbol {
        kind: if is_class {
            SymbolKind::Class
        } else {
            SymbolKind::Function
        },
        name,
        line,
        end_line: span::end_line(def).max(line),
        is_async: !is_class && def.child(0).is_some_and(|c| c.kind() == "async"),
        members: is_class.then(Vec::new),
    })
}

/// An identifier as Python stores it: decoded (lossily, for invalid UTF-8) and NFKC-normalised.
fn identifier(bytes: &[u8]) -> String {
    let raw = String::from_utf8_lossy(bytes);
    if raw.is_ascii() {
        raw.into_owned()
    } else {
        raw.nfkc().collect()
    }
}

/// The direct member definitions in a class body, in source order.
fn member_defs<'t>(class: Node<'t>) -> Vec<Node<'t>> {
    let Some(body) = class.child_by_field_name("body") else {
        return Vec::new();
    };
    let mut cursor = body.walk();
    body.named_children(&mut cursor)
        .filter_map(definition)
        .collect()
}

/// A top-level statement's symbol with all its members, built with an explicit stack so that
/// deeply nested classes (which tree-sitter accepts even beyond Python's indentation limit)
/// cannot overflow the call stack.
fn symbol_tree(stmt: Node<'_>, text: &[u8]) -> Option<Symbol> {
    let def = definition(stmt)?;
    let head = symbol_head(def, text)?;
    if head.members.is_none() {
        return Some(head);
    }
    // Each frame: the class being built and its remaining member nodes (reversed, pop = next).
    let mut stack: Vec<(Symbol, Vec<Node<'_>>)> = Vec::new();
    let mut pending = member_defs(def);
    pending.reverse();
    stack.push((head, pending));
    loop {
        let (_, pending) = stack.last_mut()?;
        match pending.pop() {
            Some(member) => {
                let Some(sym) = symbol_head(member, text) else {
                    continue;
                };
                if sym.members.is_some() {
                    let mut nested = member_defs(member);
                    nested.reverse();
                    stack.push((sym, nested));
                } else if let Some((parent, _)) = stack.last_mut() {
                    parent.members.get_or_insert_with(Vec::new).push(sym);
                }
            }
            None => {
                let (done, _) = stack.pop()?;
                match stack.last_mut() {
                    Some((parent, _)) => parent.members.get_or_insert_with(Vec::new).push(done),
                    None => return Some(done),
                }
            }
        }
    }
}
