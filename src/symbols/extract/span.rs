//! Line spans from tree-sitter nodes: `ast`'s `end_lineno` for a definition, and the syntax-error
//! regions. Both walk iteratively.

use super::to_line;
use crate::symbols::model::SyntaxErrorLoc;
use tree_sitter::{Node, Point};

/// `ast`'s `end_lineno` of a definition: the line where its last significant token ends.
///
/// tree-sitter attaches "extras" (comments, `\` line continuations) inside blocks, so a node's
/// own end can lie on a trailing comment line. We walk down the last child at each level,
/// skipping extras, `;` separators (`ast` ends a statement before a trailing `;`) and zero-width
/// (`MISSING`) nodes, down to the last token.
pub(super) fn end_line(def: Node<'_>) -> u32 {
    let mut node = def;
    while let Some(last) = last_significant_child(node) {
        node = last;
    }
    point_end_line(node.end_position(), node.start_position())
}

fn last_significant_child(node: Node<'_>) -> Option<Node<'_>> {
    let count = node.child_count();
    (0..count).rev().filter_map(|i| node.child(i)).find(|c| {
        !c.is_extra() && c.kind() != ";" && c.start_byte() < c.end_byte() && !c.is_missing()
    })
}

/// The 1-based last line of a range ending at `end`. A range that ends at column 0 of a later
/// row ended with its newline, so its last line is the previous one.
fn point_end_line(end: Point, start: Point) -> u32 {
    if end.column == 0 && end.row > start.row {
        to_line(end.row - 1)
    } else {
        to_line(end.row)
    }
}

/// How many lines the outermost error regions cover in total (0 for a clean tree); used to
/// pick the better of two parses of the same lines.
pub(super) fn error_lines(root: Node<'_>) -> u64 {
    if !root.has_error() {
        return 0;
    }
    error_regions(root, usize::MAX)
        .iter()
        .map(|e| u64::from(e.end_line.saturating_sub(e.line)) + 1)
        .sum()
}

/// The outermost `ERROR` and `MISSING` nodes under `root`, in document order, at most `cap`.
/// Only subtrees that contain an error are entered.
pub(super) fn error_regions(root: Node<'_>, cap: usize) -> Vec<SyntaxErrorLoc> {
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        if out.len() >= cap {
            break;
        }
        if node.is_error() || node.is_missing() {
            let line = to_line(node.start_position().row);
            let end_line = point_end_line(node.end_position(), node.start_position()).max(line);
            out.push(SyntaxErrorLoc::lines(line, end_line));
            continue;
        }
        // Push in reverse so children are visited in document order.
        let count = node.child_count();
        for i in (0..count).rev() {
            if let Some(child) = node.child(i)
                && (child.has_error() || child.is_missing())
            {
                stack.push(child);
            }
        }
    }
    out
}

/// Python 2 constructs tree-sitter-python parses without complaint but Python 3 rejects:
/// `print x` (but not `print >> f, x`, valid Python 3) and `exec code` statements, backquoted
/// repr strings and the `<>` operator. Their regions count as syntax errors, so
/// `syntax_errors` is empty only for Python 3 code.
///
/// Rather than walking the whole tree (as costly as a second parse), we look up the node at
/// each textual occurrence of `print`, `exec`, a backquote or `<>`; these are rare enough.
pub(super) fn python2_regions(root: Node<'_>, text: &[u8], cap: usize) -> Vec<SyntaxErrorLoc> {
    let mut out = Vec::new();
    for needle in [&b"print"[..], b"exec", b"`", b"<>"] {
        let mut from = 0;
        while let Some(pos) = find_from(text, needle, from) {
            from = pos + 1;
            if out.len() >= cap {
                return out;
            }
            let Some(node) = root.descendant_for_byte_range(pos, pos + needle.len()) else {
                continue;
            };
            if let Some(region) = python2_construct(node, pos, text) {
                let line = to_line(region.start_position().row);
                let end_line =
                    point_end_line(region.end_position(), region.start_position()).max(line);
                out.push(SyntaxErrorLoc::lines(line, end_line));
            }
        }
    }
    out
}

/// The Python 2-only construct `node` (the smallest node at a needle found at byte `pos`)
/// belongs to, if any.
fn python2_construct<'t>(node: Node<'t>, pos: usize, text: &[u8]) -> Option<Node<'t>> {
    match node.kind() {
        "<>" => Some(node),
        "print" | "exec" => {
            let stmt = node.parent()?;
            let is_python2 = match stmt.kind() {
                "print_statement" => stmt
                    .named_child(0)
                    .is_none_or(|first| first.kind() != "chevron"),
                "exec_statement" => true,
                _ => false,
            };
            (is_python2 && stmt.start_byte() == pos).then_some(stmt)
        }
        _ if text.get(pos) == Some(&b'`') => {
            // The backquote is a string's opening delimiter (`string_start` or the string).
            let string = if node.kind() == "string" {
                node
            } else {
                node.parent()?
            };
            (string.kind() == "string" && string.start_byte() == pos).then_some(string)
        }
        _ => None,
    }
}

/// Position of the first `needle` in `text` at or after `from`.
fn find_from(text: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    text.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// Node kinds that can hold a `block` (directly or via a clause) and so must be walked to find
/// empty ones. Expressions are never entered, which keeps this walk far cheaper than a full one.
const STATEMENT_CONTAINERS: &[&str] = &[
    "module",
    "block",
    "if_statement",
    "elif_clause",
    "else_clause",
    "for_statement",
    "while_statement",
    "try_statement",
    "except_clause",
    "except_group_clause",
    "finally_clause",
    "with_statement",
    "function_definition",
    "class_definition",
    "decorated_definition",
    "match_statement",
    "case_clause",
];

/// Compound statements without a body (`def f():` followed by nothing indented). The grammar
/// lets a suite be a bare newline, so tree-sitter reports no error, while Python says
/// "expected an indented block". The region is the header's line.
pub(super) fn empty_blocks(root: Node<'_>, cap: usize) -> Vec<SyntaxErrorLoc> {
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        let count = node.child_count();
        for i in (0..count).rev() {
            let Some(child) = node.child(i) else { continue };
            if child.kind() == "block" && is_empty_block(child) {
                let line = to_line(node.start_position().row);
                out.push(SyntaxErrorLoc::lines(line, line));
                if out.len() >= cap {
                    return out;
                }
            } else if STATEMENT_CONTAINERS.contains(&child.kind()) {
                stack.push(child);
            }
        }
    }
    // Children were examined last-to-first; report in document order.
    out.sort_by_key(|e| e.line);
    out
}

/// A block with no statement in it (comments and line continuations do not count).
fn is_empty_block(block: Node<'_>) -> bool {
    let mut cursor = block.walk();
    block.named_children(&mut cursor).all(|c| c.is_extra())
}
