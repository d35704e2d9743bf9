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
    children(node).into_iter().rev().find(|c| {
        !c.is_extra() && c.kind() != ";" && c.start_byte() < c.end_byte() && !c.is_missing()
    })
}

/// The children of `node`, in order, in time linear in their number. `Node::child(i)` walks
/// the siblings from the first one on every call, so a loop over `child(i)` is quadratic:
/// 20,000 `[1,` (60,000 children under one node) took 10 s in one such loop.
pub(super) fn children(node: Node<'_>) -> Vec<Node<'_>> {
    let mut cursor = node.walk();
    node.children(&mut cursor).collect()
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
        for child in children(node).into_iter().rev() {
            if child.has_error() || child.is_missing() {
                stack.push(child);
            }
        }
    }
    out
}

/// Python 2 constructs tree-sitter-python parses without complaint but Python 3 rejects:
/// `print x` (but not `print >> f, x`, valid Python 3) and `exec code` statements, backquoted
/// repr strings and the `<>` operator. Their regions count as syntax errors, so
/// `syntax_errors` is empty only for Python 3 code. At most `cap`, in document order.
///
/// One cursor walk over the tree, and only when the text contains one of the four spellings at
/// all. (This used to look up the node at each textual occurrence instead, but a lookup walks
/// the siblings of every level from the first one: 128 KB of `print >>` took 6 s.)
pub(super) fn python2_regions(root: Node<'_>, text: &[u8], cap: usize) -> Vec<SyntaxErrorLoc> {
    let mut out = Vec::new();
    let spelled = [&b"print"[..], b"exec", b"`", b"<>"]
        .iter()
        .any(|needle| memchr::memmem::find(text, needle).is_some());
    if !spelled || cap == 0 {
        return out;
    }
    let mut cursor = root.walk();
    loop {
        let node = cursor.node();
        if let Some(region) = python2_construct(node, text) {
            let line = to_line(region.start_position().row);
            let end_line = point_end_line(region.end_position(), region.start_position()).max(line);
            out.push(SyntaxErrorLoc::lines(line, end_line));
            if out.len() >= cap {
                return out;
            }
        }
        // Depth-first, in document order, without recursion.
        if cursor.goto_first_child() {
            continue;
        }
        while !cursor.goto_next_sibling() {
            if !cursor.goto_parent() {
                return out;
            }
        }
    }
}

/// `node` itself if it is a Python 2-only construct.
fn python2_construct<'t>(node: Node<'t>, text: &[u8]) -> Option<Node<'t>> {
    let starts_with = |kind: &str| {
        let mut cursor = node.walk();
        cursor.goto_first_child()
            && cursor.node().kind() == kind
            && cursor.node().start_byte() == node.start_byte()
    };
    match node.kind() {
        "<>" => Some(node),
        "print_statement" => (starts_with("print")
            && node
                .named_child(0)
                .is_none_or(|first| first.kind() != "chevron"))
        .then_some(node),
        "exec_statement" => starts_with("exec").then_some(node),
        "string" => (text.get(node.start_byte()) == Some(&b'`')).then_some(node),
        _ => None,
    }
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
        for child in children(node).into_iter().rev() {
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
