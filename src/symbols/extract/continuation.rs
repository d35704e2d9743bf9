//! Workaround for a tree-sitter-python scanner bug: a continuation line inside brackets that is
//! indented *less* than its statement can be turned into a `DEDENT`.
//!
//! The external scanner only knows it is "within brackets" when a closing bracket is a valid next
//! token. After `(bar.` or `(a +` it is not, so a following line such as `        baz)` at a
//! smaller indentation pops the indent stack and the rest of the file becomes one `ERROR` (seen
//! in CPython's `test/test_compile.py`). Python ignores indentation inside brackets entirely.
//!
//! So, for files that failed to parse cleanly, we re-parse a copy in which every such line gets
//! the statement's indentation prepended. Only whitespace is inserted, and only after a newline
//! that is inside brackets, so Python's meaning and every line number stay the same; columns
//! change, but we report lines only. The copy is used only if it parses without errors.

/// A copy of `text` (UTF-8, `\n` line ends) where each line that continues a bracketed expression
/// is indented at least as far as the statement it belongs to; `None` if no line needs it.
pub(super) fn pad_bracket_continuations(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() + 64);
    let mut changed = false;
    let mut depth: usize = 0;
    // The leading whitespace of the current logical line (the statement's indentation).
    let mut logical_indent: &[u8] = leading_ws(text);
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        match b {
            b'#' => {
                let end = memchr_newline(text, i);
                out.extend_from_slice(&text[i..end]);
                i = end;
            }
            b'\'' | b'"' => {
                let end = string_end(text, i);
                out.extend_from_slice(&text[i..end]);
                i = end;
            }
            b'\\' if text.get(i + 1) == Some(&b'\n') => {
                // Explicit joining: the next line continues this logical line; the scanner
                // already skips `\`+newline without looking at indentation.
                out.extend_from_slice(b"\\\n");
                i += 2;
            }
            b'\n' => {
                out.push(b'\n');
                i += 1;
                let rest = &text[i..];
                let own = leading_ws(rest);
                if depth > 0 {
                    if indent_width(own) < indent_width(logical_indent) {
                        out.extend_from_slice(logical_indent);
                        changed = true;
                    }
                } else {
                    logical_indent = own;
                }
            }
            _ => {
                match b {
                    b'(' | b'[' | b'{' => depth += 1,
                    b')' | b']' | b'}' => depth = depth.saturating_sub(1),
                    _ => {}
                }
                out.push(b);
                i += 1;
            }
        }
    }
    changed.then_some(out)
}

/// The spaces, tabs and form feeds that start `line`.
fn leading_ws(line: &[u8]) -> &[u8] {
    let n = line
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\x0c'))
        .unwrap_or(line.len());
    &line[..n]
}

/// Indentation width as tree-sitter-python's scanner measures it (tab = 8, form feed resets).
fn indent_width(ws: &[u8]) -> usize {
    ws.iter().fold(0, |w, b| match b {
        b'\t' => w + 8,
        b'\x0c' => 0,
        _ => w + 1,
    })
}

/// Index of the next `\n` at or after `from`, or the end of `text`.
pub(super) fn memchr_newline(text: &[u8], from: usize) -> usize {
    text[from..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(text.len(), |p| from + p)
}

/// Index just past the string literal whose opening quote is at `start`. Backslash always
/// escapes the next byte for the purpose of finding the end (true for raw strings as well).
/// An unterminated single-quoted string ends at the newline, as in Python's tokenizer.
pub(super) fn string_end(text: &[u8], start: usize) -> usize {
    let q = text[start];
    let triple = text.get(start + 1) == Some(&q) && text.get(start + 2) == Some(&q);
    let mut i = start + if triple { 3 } else { 1 };
    while i < text.len() {
        let b = text[i];
        if b == b'\\' {
            i += 2;
        } else if b == q {
            if !triple {
                return i + 1;
            }
            if text.get(i + 1) == Some(&q) && text.get(i + 2) == Some(&q) {
                return i + 3;
            }
            i += 1;
        } else if b == b'\n' && !triple {
            return i;
        } else {
            i += 1;
        }
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_dedented_continuation_inside_brackets() {
        let src = b"def f():\n    def g():\n        (bar.\n    baz)\n";
        let padded = pad_bracket_continuations(src).expect("needs padding");
        assert_eq!(
            padded,
            b"def f():\n    def g():\n        (bar.\n            baz)\n".to_vec()
        );
    }

    #[test]
    fn leaves_strings_comments_and_plain_code_alone() {
        assert_eq!(pad_bracket_continuations(b"x = (1,\n     2)\n"), None);
        // The bracket is inside a string / comment, so the next line is a real statement.
        assert_eq!(
            pad_bracket_continuations(b"    s = '('\nx = 1\n    # (\ny = 2\n"),
            None
        );
        assert_eq!(
            pad_bracket_continuations(b"    s = '''(\n'''\nx = 1\n"),
            None
        );
        // An escaped quote does not end the string.
        assert_eq!(pad_bracket_continuations(b"    s = '\\'('\nx = 1\n"), None);
    }

    #[test]
    fn line_count_is_preserved() {
        let src = b"class A:\n    x = [1 +\n2,\n  3]\n    def f(self): pass\n";
        let padded = pad_bracket_continuations(src).expect("needs padding");
        let lines = |t: &[u8]| t.iter().filter(|&&b| b == b'\n').count();
        assert_eq!(lines(&padded), lines(src));
    }
}
