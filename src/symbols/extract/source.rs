//! Turning raw module bytes into the text CPython's tokenizer would see, so that tree-sitter's
//! rows and identifiers agree with `ast`.
//!
//! CPython (for `ast.parse(bytes)`) strips a UTF-8 BOM, honours a PEP 263 coding cookie on the
//! first or second line, and translates every `\r\n` and lone `\r` to `\n` before tokenizing.
//! tree-sitter-python counts rows on `\n` only and treats a lone `\r` as blank space, and it
//! reads bytes as UTF-8. So we do the same three steps here, producing UTF-8 with `\n` line ends
//! whose line numbers are exactly Python's. Every step preserves the line structure.

use std::borrow::Cow;

/// The source encodings we can transcode. Anything else (or no cookie) is read as UTF-8, with
/// invalid sequences replaced when names are decoded, which is all Python's default can accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    /// UTF-8 (the default), ASCII, or an encoding we do not know.
    Utf8,
    /// ISO-8859-1: every byte is the code point of the same value.
    Latin1,
    /// Windows-1252: Latin-1 except for 0x80..=0x9F.
    Cp1252,
}

/// The parser's view of a module, plus what CPython would reject before parsing.
pub(super) struct Prepared<'a> {
    /// UTF-8 (or lossily UTF-8) text with `\n` line ends and no BOM.
    pub text: Cow<'a, [u8]>,
    /// 1-based line of an encoding error CPython reports as a `SyntaxError`: a BOM with a
    /// cookie other than `utf-8`, or invalid UTF-8 in a file that declares no other encoding.
    pub encoding_error: Option<u32>,
}

/// Prepare `source` for tree-sitter: strip the BOM, transcode a Latin-1/cp1252 cookie's bytes to
/// UTF-8, and normalise line ends to `\n`. Borrows when nothing needs to change (the common case).
pub(super) fn prepare(source: &[u8]) -> Prepared<'_> {
    let body = source.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(source);
    let has_bom = body.len() != source.len();
    let cookie = find_cookie(body);
    let encoding = cookie.map_or(Encoding::Utf8, |(_, name)| encoding_named(name));
    let mut encoding_error = None;
    if has_bom {
        // CPython then only accepts a cookie that normalises to exactly "utf-8" (so not even
        // "utf8"); anything else is "encoding problem: <name> with BOM".
        if let Some((line, name)) = cookie
            && !is_cpython_normal_utf8(name)
        {
            encoding_error = Some(line);
        }
    }
    let text: Cow<'_, [u8]> = match encoding {
        // With a BOM the bytes are UTF-8 whatever the cookie claims (CPython rejects the file).
        _ if has_bom => Cow::Borrowed(body),
        Encoding::Utf8 => Cow::Borrowed(body),
        Encoding::Latin1 | Encoding::Cp1252 if body.is_ascii() => Cow::Borrowed(body),
        Encoding::Latin1 | Encoding::Cp1252 => Cow::Owned(transcode(body, encoding)),
    };
    let declared_other = cookie.is_some_and(|(_, name)| !is_utf8_name(name));
    if encoding_error.is_none()
        && (has_bom || !declared_other)
        && let Err(e) = std::str::from_utf8(&text)
    {
        // Lines are counted like Python's (before newline translation, CR counts too).
        encoding_error = Some(python_line_at(&text, e.valid_up_to()));
    }
    let text = if text.contains(&b'\r') {
        Cow::Owned(normalize_newlines(&text))
    } else {
        text
    };
    Prepared {
        text,
        encoding_error,
    }
}

/// 1-based Python line (`\n`, `\r\n` or lone `\r` end a line) of byte offset `at`.
fn python_line_at(text: &[u8], at: usize) -> u32 {
    let before = &text[..at.min(text.len())];
    let breaks = before
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && before.get(i + 1) != Some(&b'\n')))
        .count();
    u32::try_from(breaks).map_or(u32::MAX, |n| n.saturating_add(1))
}

/// `\r\n` → `\n`, lone `\r` → `\n`, as CPython's `translate_newlines` does.
fn normalize_newlines(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if b == b'\r' {
            out.push(b'\n');
            if text.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
        } else {
            out.push(b);
        }
        i += 1;
    }
    out
}

/// Decode Latin-1 or cp1252 bytes to UTF-8. Bytes cp1252 leaves undefined become U+FFFD (CPython
/// would reject the file; we only promise not to fail).
fn transcode(bytes: &[u8], encoding: Encoding) -> Vec<u8> {
    let mut out = String::with_capacity(bytes.len() + bytes.len() / 8);
    for &b in bytes {
        let c = match (encoding, b) {
            (Encoding::Cp1252, 0x80..=0x9F) => CP1252_HIGH[usize::from(b - 0x80)],
            _ => char::from(b),
        };
        out.push(c);
    }
    out.into_bytes()
}

/// cp1252 code points for bytes 0x80..=0x9F (from Python's `cp1252` codec table); the five
/// undefined bytes map to U+FFFD.
const CP1252_HIGH: [char; 32] = [
    '\u{20AC}', '\u{FFFD}', '\u{201A}', '\u{0192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{02C6}', '\u{2030}', '\u{0160}', '\u{2039}', '\u{0152}', '\u{FFFD}', '\u{017D}', '\u{FFFD}',
    '\u{FFFD}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{02DC}', '\u{2122}', '\u{0161}', '\u{203A}', '\u{0153}', '\u{FFFD}', '\u{017E}', '\u{0178}',
];

/// The encoding the PEP 263 cookie of `source` (no BOM) names; UTF-8 when there is none.
#[cfg(test)]
pub(super) fn coding_cookie(source: &[u8]) -> Encoding {
    find_cookie(source).map_or(Encoding::Utf8, |(_, name)| encoding_named(name))
}

/// The PEP 263 cookie of `source` (no BOM) and its 1-based line, following CPython's
/// tokenizer: line 1 is checked, and line 2 only if line 1 holds nothing but blanks or a comment.
fn find_cookie(source: &[u8]) -> Option<(u32, &[u8])> {
    let mut lines = source.split(|&b| b == b'\n');
    for line_no in 1..=2 {
        let line = lines.next()?;
        if let Some(name) = cookie_name(line) {
            return Some((line_no, name));
        }
        let code_first = line
            .iter()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\x0c'))
            .is_some_and(|b| !matches!(b, b'#' | b'\r'));
        if code_first {
            return None;
        }
    }
    None
}

/// CPython's `get_normal_name` folding, then: is it "utf-8" (the only cookie a BOM allows)?
fn is_cpython_normal_utf8(name: &[u8]) -> bool {
    let norm: Vec<u8> = name
        .iter()
        .take(12)
        .map(|&b| {
            if b == b'_' {
                b'-'
            } else {
                b.to_ascii_lowercase()
            }
        })
        .collect();
    norm == b"utf-8" || norm.starts_with(b"utf-8-")
}

/// Any spelling of UTF-8 (or its ASCII subset) that Python's codec lookup accepts.
fn is_utf8_name(name: &[u8]) -> bool {
    let norm: String = name
        .iter()
        .map(|&b| {
            if b == b'_' {
                '-'
            } else {
                char::from(b.to_ascii_lowercase())
            }
        })
        .collect();
    matches!(
        norm.as_str(),
        "utf-8" | "utf8" | "u8" | "utf" | "cp65001" | "ascii" | "us-ascii" | "646"
    ) || norm.starts_with("utf-8-")
}

/// The encoding name in a `# ... coding[:=] name` comment line, as CPython's `get_coding_spec`.
fn cookie_name(line: &[u8]) -> Option<&[u8]> {
    let start = line
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\x0c'))?;
    if line[start] != b'#' {
        return None;
    }
    let comment = &line[start..];
    let mut from = 0;
    while let Some(pos) = find(&comment[from..], b"coding") {
        let after = from + pos + b"coding".len();
        from = from + pos + 1;
        if !matches!(comment.get(after), Some(b':' | b'=')) {
            continue;
        }
        let rest = &comment[after + 1..];
        let rest = &rest[rest
            .iter()
            .position(|b| !matches!(b, b' ' | b'\t'))
            .unwrap_or(rest.len())..];
        let len = rest
            .iter()
            .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
            .unwrap_or(rest.len());
        if len > 0 {
            return Some(&rest[..len]);
        }
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Map a cookie name to an [`Encoding`], accepting the spellings Python's codec registry does
/// for the encodings we transcode (case-insensitive, `_`/`-` interchangeable).
fn encoding_named(name: &[u8]) -> Encoding {
    let norm: String = name
        .iter()
        .map(|&b| match b {
            b'_' => '-',
            _ => char::from(b.to_ascii_lowercase()),
        })
        .collect();
    // CPython's get_normal_name also folds "latin-1-*" and "iso-8859-1-*" to Latin-1.
    let latin1_prefixed = ["latin-1-", "iso-8859-1-", "iso-latin-1-"]
        .iter()
        .any(|p| norm.starts_with(p));
    match norm.as_str() {
        "latin-1" | "latin1" | "latin" | "l1" | "iso-8859-1" | "iso8859-1" | "iso-latin-1"
        | "8859" | "cp819" | "ibm819" => Encoding::Latin1,
        "cp1252" | "windows-1252" => Encoding::Cp1252,
        _ if latin1_prefixed => Encoding::Latin1,
        _ => Encoding::Utf8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newlines_are_translated_like_cpython() {
        assert_eq!(normalize_newlines(b"a\r\nb\rc\n\r\r\n"), b"a\nb\nc\n\n\n");
        assert_eq!(&*prepare(b"x\r\ny").text, b"x\ny");
        assert!(matches!(prepare(b"x\ny").text, Cow::Borrowed(_)));
    }

    #[test]
    fn encoding_errors_cpython_rejects_are_located() {
        // Invalid UTF-8 without a cookie: the line of the first bad byte (CR counts as a break).
        assert_eq!(prepare(b"a = 1\rb = '\xff'\n").encoding_error, Some(2));
        assert_eq!(
            prepare(b"# coding: utf8\n\nx = '\xe9'\n").encoding_error,
            Some(3)
        );
        // Latin-1 declared: every byte is valid.
        assert_eq!(
            prepare(b"# coding: latin-1\nx = '\xe9'\n").encoding_error,
            None
        );
        // An encoding we cannot decode (koi8-r) is not an error we can claim.
        assert_eq!(
            prepare(b"# coding: koi8-r\nx = '\xe9'\n").encoding_error,
            None
        );
        // BOM plus a cookie CPython does not normalise to "utf-8".
        assert_eq!(
            prepare(b"\xEF\xBB\xBF#coding: utf8\n").encoding_error,
            Some(1)
        );
        assert_eq!(
            prepare(b"\xEF\xBB\xBF#\n# coding: latin-1\n").encoding_error,
            Some(2)
        );
        assert_eq!(
            prepare(b"\xEF\xBB\xBF# coding: UTF_8\n").encoding_error,
            None
        );
        assert_eq!(prepare(b"\xEF\xBB\xBFx = 1\n").encoding_error, None);
        assert_eq!(prepare("x = 'é'\n".as_bytes()).encoding_error, None);
    }

    #[test]
    fn bom_is_stripped() {
        assert_eq!(
            &*prepare(b"\xEF\xBB\xBFdef f(): pass\n").text,
            b"def f(): pass\n"
        );
    }

    #[test]
    fn cookie_detection_follows_pep263() {
        assert_eq!(
            coding_cookie(b"# -*- coding: latin-1 -*-\n"),
            Encoding::Latin1
        );
        assert_eq!(
            coding_cookie(b"#!/usr/bin/python\n# vim: set fileencoding=cp1252 :\n"),
            Encoding::Cp1252
        );
        assert_eq!(coding_cookie(b"  # coding=ISO_8859_1\n"), Encoding::Latin1);
        assert_eq!(coding_cookie(b"#coding:latin-1-unix\n"), Encoding::Latin1);
        // Code on line 1 stops the search: line 2's cookie is ignored.
        assert_eq!(coding_cookie(b"x = 1\n# coding: latin-1\n"), Encoding::Utf8);
        // A third-line cookie is ignored.
        assert_eq!(coding_cookie(b"#\n#\n# coding: latin-1\n"), Encoding::Utf8);
        // Not in a comment.
        assert_eq!(coding_cookie(b"s = '# coding: latin-1'\n"), Encoding::Utf8);
        assert_eq!(coding_cookie(b"# coding: koi8-r\n"), Encoding::Utf8);
        assert_eq!(
            coding_cookie(b"# codingx: latin-1 coding: cp1252\n"),
            Encoding::Cp1252
        );
    }

    #[test]
    fn latin1_and_cp1252_transcode() {
        assert_eq!(transcode(b"caf\xe9", Encoding::Latin1), "café".as_bytes());
        assert_eq!(
            transcode(b"\x80\x81", Encoding::Cp1252),
            "€\u{FFFD}".as_bytes()
        );
        assert_eq!(transcode(b"\x80", Encoding::Latin1), "\u{80}".as_bytes());
    }
}
