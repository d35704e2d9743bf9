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
            out.push(SyntaxErrorLoc { line, end_line });
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
/// `print x` (but not `print >> f, x`, valid Python 3) and `exec code` statements, backquoted repr strings and the `<>` operator. Their
/// regions count as syntax errors, so `syntax_errors` is empty only for Python 3 code.
/// The tree is only walked when `text` contains a byte sequence one of these needs.
pub(super) fn python2_regions(root: Node<'_>, text: &[u8], cap: usize) -> Vec<SyntaxErrorLoc> {
    let mut out = Vec::new();
    let possible = text.contains(&b'`')
        || text.windows(2).any(|w| w == b"<>")
        || text.windows(5).any(|w| w == b"print" || w == b"exec ");
    if !possible || cap == 0 {
        return out;
    }
    let mut cursor = root.walk();
    loop {
        let node = cursor.node();
        let python2 = match node.kind() {
            // `print >> f, x` is also a (useless but valid) Python 3 expression statement.
            "print_statement" => node
                .named_child(0)
                .is_none_or(|first| first.kind() != "chevron"),
            "exec_statement" | "<>" => true,
            "string" => text.get(node.start_byte()) == Some(&b'`'),
            _ => false,
        };
        if python2 {
            let line = to_line(node.start_position().row);
            let end_line = point_end_line(node.end_position(), node.start_position()).max(line);
            out.push(SyntaxErrorLoc { line, end_line });
            if out.len() >= cap {
                return out;
            }
        }
        if !python2 && cursor.goto_first_child() {
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return out;
            }
        }
    }
}
