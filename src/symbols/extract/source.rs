//! Turning raw module bytes into the text CPython's tokenizer would see, so that both parsers'
//! lines and identifiers agree with `ast`.
//!
//! What CPython does for `ast.parse(bytes)` (`decode_str` in `Parser/tokenizer.c`), in order:
//! 1. translate every `\r\n` and lone `\r` to `\n`, in the raw bytes before any decoding, and
//!    add a final `\n` if there is none;
//! 2. strip a UTF-8 BOM;
//! 3. read a PEP 263 coding cookie on line 1, or on line 2 if line 1 is blank or a comment, and
//!    fold its name with `get_normal_name` (any `utf-8` spelling it recognises becomes `utf-8`,
//!    the `latin-1` family `iso-8859-1`);
//! 4. unless that name is `utf-8`, decode the whole buffer with the codec (`PyUnicode_Decode`).
//!    An unknown codec, a codec that is not a text encoding, or bytes the codec cannot decode make
//!    the module a `SyntaxError` before any token is read, with CPython's message.
//!
//! We do the same (the codecs are [`crate::symbols::encoding`]), producing UTF-8 with `\n` line
//! ends whose line numbers are exactly Python's. CPython gives those early errors line 0 (no
//! location); we report the cookie's line, or for undecodable bytes the line holding the first
//! one (the byte CPython's message names by position), so `syntax_errors` stays 1-based.

use crate::symbols::encoding::{self, Codec, Lookup};
use std::borrow::Cow;

/// An encoding problem CPython reports as a `SyntaxError` before parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct EncodingError {
    /// 1-based line it is reported on.
    pub line: u32,
    /// CPython's exact message for every cookie-related failure (ours, naming the codec, for one
    /// we cannot decode); `None` for invalid UTF-8 read without a codec, where CPython's message
    /// depends on the token it is in.
    pub message: Option<String>,
}

/// The parser's view of a module, plus what CPython would reject before parsing.
pub(super) struct Prepared<'a> {
    /// UTF-8 (or lossily UTF-8) text with `\n` line ends and no BOM.
    pub text: Cow<'a, [u8]>,
    /// What CPython rejects before parsing: a BOM with a cookie other than `utf-8`, a codec that
    /// is unknown, not a text encoding or unsupported, undecodable bytes, or invalid UTF-8.
    pub encoding_error: Option<EncodingError>,
}

/// Prepare `source` as CPython's tokenizer would see it. Borrows when nothing needs to change
/// (the common case: UTF-8 with `\n` line ends).
pub(super) fn prepare(source: &[u8]) -> Prepared<'_> {
    let translated = if memchr::memchr(b'\r', source).is_some() {
        Cow::Owned(normalize_newlines(source))
    } else {
        Cow::Borrowed(source)
    };
    let (text, has_bom) = strip_bom(translated);
    let cookie = find_cookie(&text).map(|(line, name)| (line, normal_name(name)));
    match cookie {
        // With a BOM the bytes are UTF-8 whatever the cookie claims, and CPython only accepts a
        // cookie that folds to "utf-8" (so not even "utf8").
        Some((line, name)) if has_bom && name != "utf-8" => {
            let message = format!("encoding problem: {name} with BOM");
            utf8_checked(text, Some(EncodingError::at(line, message)))
        }
        Some((line, name)) if name != "utf-8" => decode_declared(&text, line, &name),
        _ => utf8_checked(text, None),
    }
}

impl EncodingError {
    fn at(line: u32, message: String) -> Self {
        EncodingError {
            line,
            message: Some(message),
        }
    }
}

/// Strip a UTF-8 BOM; says whether there was one.
fn strip_bom(text: Cow<'_, [u8]>) -> (Cow<'_, [u8]>, bool) {
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    if !text.starts_with(BOM) {
        return (text, false);
    }
    let text = match text {
        Cow::Borrowed(b) => Cow::Borrowed(&b[BOM.len()..]),
        Cow::Owned(mut v) => {
            v.drain(..BOM.len());
            Cow::Owned(v)
        }
    };
    (text, true)
}

/// UTF-8 text as the tokenizer reads it without a codec: invalid bytes are an error on their
/// line (unless an earlier error is already reported).
fn utf8_checked(text: Cow<'_, [u8]>, error: Option<EncodingError>) -> Prepared<'_> {
    let encoding_error = error.or_else(|| {
        let e = std::str::from_utf8(&text).err()?;
        Some(EncodingError {
            line: line_at(&text, e.valid_up_to()),
            message: None,
        })
    });
    Prepared {
        text,
        encoding_error,
    }
}

/// Decode with the codec the cookie on `line` names (`name` as `get_normal_name` left it), or
/// report why CPython cannot.
fn decode_declared<'a>(text: &[u8], line: u32, name: &str) -> Prepared<'a> {
    let message = match encoding::lookup(name) {
        Lookup::Codec(codec) => return decode_with(codec, text),
        Lookup::Unknown => format!("unknown encoding: {name}"),
        Lookup::NotText => format!(
            "'{name}' is not a text encoding; use codecs.decode() to handle arbitrary codecs"
        ),
        Lookup::Undefined => {
            format!("decoding with '{name}' codec failed (UnicodeError: undefined encoding)")
        }
        // Ours, not CPython's: Python would decode the module, we cannot, and we say so rather
        // than guess names.
        Lookup::Unsupported => {
            format!("unsupported encoding: {name} (Python can decode it, trifecta cannot)")
        }
    };
    Prepared {
        text: Cow::Owned(ascii_only(text)),
        encoding_error: Some(EncodingError::at(line, message)),
    }
}

/// Decode the whole (newline-translated, BOM-free) buffer as CPython does, including the final
/// `\n` its newline translation adds, so error positions and messages are CPython's.
fn decode_with<'a>(codec: Codec, text: &[u8]) -> Prepared<'a> {
    let decoded = if text.last() == Some(&b'\n') {
        encoding::decode(codec, text)
    } else {
        let mut buffer = Vec::with_capacity(text.len() + 1);
        buffer.extend_from_slice(text);
        buffer.push(b'\n');
        encoding::decode(codec, &buffer)
    };
    let encoding_error = decoded.errors.first().map(|e| {
        // The line holding the first undecodable byte, counted in the decoded text: for
        // ASCII-compatible codecs that is the byte's line in the file.
        let line = line_at(decoded.text.as_bytes(), e.text_offset);
        EncodingError::at(line, e.to_string())
    });
    Prepared {
        text: Cow::Owned(decoded.text.into_bytes()),
        encoding_error,
    }
}

/// Text for error recovery when the codec is unknown: ASCII kept, every other byte U+FFFD, so
/// no identifier is ever decoded with a guessed encoding.
fn ascii_only(text: &[u8]) -> Vec<u8> {
    let mut out = String::with_capacity(text.len());
    for &b in text {
        out.push(if b.is_ascii() {
            char::from(b)
        } else {
            char::REPLACEMENT_CHARACTER
        });
    }
    out.into_bytes()
}

/// 1-based line of byte offset `at` in `\n`-separated text.
fn line_at(text: &[u8], at: usize) -> u32 {
    let breaks = memchr::memchr_iter(b'\n', &text[..at.min(text.len())]).count();
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

/// CPython's `get_normal_name`: the first 12 characters lower-cased with `_` as `-`; `utf-8` and
/// `utf-8-*` become `utf-8`, the `latin-1` / `iso-8859-1` / `iso-latin-1` family (also with a
/// `-*` suffix) becomes `iso-8859-1`; any other name is returned as written.
fn normal_name(name: &[u8]) -> String {
    let folded: Vec<u8> = name
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
    let is = |exact: &[u8]| folded == exact;
    let prefixed = |prefix: &[u8]| folded.starts_with(prefix);
    if is(b"utf-8") || prefixed(b"utf-8-") {
        "utf-8".to_owned()
    } else if is(b"latin-1")
        || is(b"iso-8859-1")
        || is(b"iso-latin-1")
        || prefixed(b"latin-1-")
        || prefixed(b"iso-8859-1-")
        || prefixed(b"iso-latin-1-")
    {
        "iso-8859-1".to_owned()
    } else {
        // Cookie names are ASCII letters, digits, `-`, `_` and `.` (see `cookie_name`).
        String::from_utf8_lossy(name).into_owned()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The encoding error of `src`: (line, message).
    fn error(src: &[u8]) -> Option<(u32, Option<String>)> {
        prepare(src).encoding_error.map(|e| (e.line, e.message))
    }

    fn text(src: &[u8]) -> String {
        String::from_utf8(prepare(src).text.into_owned()).expect("utf-8")
    }

    #[test]
    fn newlines_are_translated_like_cpython() {
        assert_eq!(normalize_newlines(b"a\r\nb\rc\n\r\r\n"), b"a\nb\nc\n\n\n");
        assert_eq!(&*prepare(b"x\r\ny").text, b"x\ny");
        assert!(matches!(prepare(b"x\ny").text, Cow::Borrowed(_)));
        assert!(matches!(prepare(b"\xEF\xBB\xBFx\n").text, Cow::Borrowed(_)));
    }

    #[test]
    fn invalid_utf8_without_a_codec_is_located() {
        // The line of the first bad byte (a lone CR ends a line too).
        assert_eq!(error(b"a = 1\rb = '\xff'\n"), Some((2, None)));
        assert_eq!(error(b"# coding: utf-8\n\nx = '\xe9'\n"), Some((3, None)));
        assert_eq!(error("x = 'é'\n".as_bytes()), None);
    }

    #[test]
    fn bom_rules_are_cpythons() {
        // Expected messages are CPython 3.11's.
        let problem = |name: &str| format!("encoding problem: {name} with BOM");
        assert_eq!(
            error(b"\xEF\xBB\xBF#coding: utf8\n"),
            Some((1, Some(problem("utf8"))))
        );
        assert_eq!(
            error(b"\xEF\xBB\xBF#\n# coding: latin-1\n"),
            Some((2, Some(problem("iso-8859-1"))))
        );
        assert_eq!(error(b"\xEF\xBB\xBF# coding: UTF_8\n"), None);
        assert_eq!(error(b"\xEF\xBB\xBFx = 1\n"), None);
        assert_eq!(
            &*prepare(b"\xEF\xBB\xBFdef f(): pass\n").text,
            b"def f(): pass\n"
        );
    }

    #[test]
    fn declared_codecs_decode_like_python() {
        assert_eq!(
            text(b"# coding: latin-1\nx = '\xe9'"),
            "# coding: latin-1\nx = 'é'\n"
        );
        assert_eq!(
            text(b"# coding: cp1252\nx = '\x80'\n"),
            "# coding: cp1252\nx = '€'\n"
        );
        assert_eq!(
            text(b"# coding: koi8-r\n\xc4\xcf\xcd = 1\n"),
            "# coding: koi8-r\nдом = 1\n"
        );
        assert_eq!(error(b"# coding: latin-1\nx = '\xe9'\n"), None);
        // A spelling get_normal_name does not fold decodes the whole buffer with the codec.
        assert_eq!(
            error(b"# coding: utf8\nx = 1\n# \xe9\n"),
            Some((
                3,
                Some(
                    "'utf-8' codec can't decode byte 0xe9 in position 23: \
                          invalid continuation byte"
                        .to_owned()
                )
            ))
        );
        assert_eq!(
            error(b"# coding: gbk\nx = 1\r\ny = 2\nz = '\x80'\n"),
            Some((
                4,
                Some(
                    "'gbk' codec can't decode byte 0x80 in position 31: \
                          illegal multibyte sequence"
                        .to_owned()
                )
            ))
        );
        assert_eq!(
            error(b"# coding: cp1252\nx = '\x81'"),
            Some((
                2,
                Some(
                    "'charmap' codec can't decode byte 0x81 in position 22: \
                          character maps to <undefined>"
                        .to_owned()
                )
            ))
        );
    }

    #[test]
    fn codecs_python_refuses_are_reported_with_its_message() {
        let msg = |src: &[u8]| error(src).and_then(|(_, m)| m);
        assert_eq!(
            error(b"#!/usr/bin/python\n# coding: Foo\nx = 1\n"),
            Some((2, Some("unknown encoding: Foo".to_owned())))
        );
        assert_eq!(
            msg(b"# coding: hex\n").as_deref(),
            Some("'hex' is not a text encoding; use codecs.decode() to handle arbitrary codecs")
        );
        assert_eq!(
            msg(b"# coding: Undefined\n").as_deref(),
            Some("decoding with 'Undefined' codec failed (UnicodeError: undefined encoding)")
        );
        assert_eq!(
            msg(b"# coding: mbcs\n").as_deref(),
            Some("unknown encoding: mbcs")
        );
        // Ours: Python decodes UTF-16, we do not, and no name is guessed.
        let unsupported = prepare(b"# coding: utf-16\ndef caf\xc3\xa9(): pass\n");
        assert!(
            unsupported
                .encoding_error
                .unwrap()
                .message
                .unwrap()
                .contains("utf-16")
        );
        assert_eq!(
            String::from_utf8(unsupported.text.into_owned()).unwrap(),
            "# coding: utf-16\ndef caf\u{FFFD}\u{FFFD}(): pass\n"
        );
    }

    #[test]
    fn cookie_detection_follows_pep263() {
        let name = |src: &[u8]| find_cookie(src).map(|(line, n)| (line, normal_name(n)));
        let some = |line, n: &str| Some((line, n.to_owned()));
        assert_eq!(name(b"# -*- coding: latin-1 -*-\n"), some(1, "iso-8859-1"));
        assert_eq!(
            name(b"#!/usr/bin/python\n# vim: set fileencoding=cp1252 :\n"),
            some(2, "cp1252")
        );
        assert_eq!(name(b"  # coding=ISO_8859_1\n"), some(1, "iso-8859-1"));
        assert_eq!(name(b"#coding:latin-1-unix\n"), some(1, "iso-8859-1"));
        assert_eq!(name(b"#coding:UTF-8-dos\n"), some(1, "utf-8"));
        assert_eq!(name(b"#coding:Shift_JIS\n"), some(1, "Shift_JIS"));
        // Code on line 1 stops the search: line 2's cookie is ignored.
        assert_eq!(name(b"x = 1\n# coding: latin-1\n"), None);
        // A third-line cookie is ignored.
        assert_eq!(name(b"#\n#\n# coding: latin-1\n"), None);
        // Not in a comment.
        assert_eq!(name(b"s = '# coding: latin-1'\n"), None);
        assert_eq!(
            name(b"# codingx: latin-1 coding: cp1252\n"),
            some(1, "cp1252")
        );
    }
}
