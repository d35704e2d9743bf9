//! Segment-relative file names as strings, without loss: the cache key of every file and the
//! `file_rel` that `ast index` prints.
//!
//! Unix file names are bytes, not text, and two names can differ only in bytes that are not
//! UTF-8 (`a\xff.py`, `a\xfe.py`). A lossy conversion turns both into `a\u{FFFD}.py`, so they
//! would share one cache row and one output name. Instead:
//! - components are joined with `/`;
//! - every byte that is not part of valid UTF-8 is written `\xNN` (two lower-case hex digits);
//! - a literal backslash is written `\\`, so `\xNN` can never come from the name's own text;
//! - everything else is the name's own UTF-8.
//!
//! So distinct names give distinct strings, and [`decode`] gives the bytes back. A name that
//! is valid UTF-8 and holds no backslash (every module a `sym://` URI can name) is unchanged.
//! This is Python's `backslashreplace` error handler, with the backslash itself escaped.

use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

/// The `/`-separated, escaped string for segment-relative path `rel`.
pub fn encode(rel: &Path) -> String {
    let mut out = String::new();
    for (i, component) in rel.components().enumerate() {
        if i > 0 {
            out.push('/');
        }
        let bytes = match component {
            Component::Normal(name) => name.as_bytes(),
            other => other.as_os_str().as_bytes(),
        };
        for chunk in bytes.utf8_chunks() {
            for c in chunk.valid().chars() {
                if c == '\\' {
                    out.push_str("\\\\");
                } else {
                    out.push(c);
                }
            }
            for b in chunk.invalid() {
                out.push_str(&format!("\\x{b:02x}"));
            }
        }
    }
    out
}

/// The relative path an [`encode`]d string stands for; `None` for a string [`encode`] never
/// produces (a backslash that starts neither `\\` nor `\xNN`).
pub fn decode(file_rel: &str) -> Option<PathBuf> {
    let bytes = file_rel.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            Some(b'x') => {
                let hex = std::str::from_utf8(bytes.get(i + 2..i + 4)?).ok()?;
                if !hex.bytes().all(|h| matches!(h, b'0'..=b'9' | b'a'..=b'f')) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 4;
            }
            _ => return None,
        }
    }
    Some(PathBuf::from(std::ffi::OsString::from_vec(out)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    fn path(bytes: &[u8]) -> PathBuf {
        PathBuf::from(OsStr::from_bytes(bytes))
    }

    #[test]
    fn utf8_names_without_backslashes_are_unchanged() {
        assert_eq!(encode(Path::new("pkg/mod.py")), "pkg/mod.py");
        assert_eq!(encode(Path::new("paquete/módulo.py")), "paquete/módulo.py");
    }

    #[test]
    fn non_utf8_bytes_and_backslashes_are_escaped_distinctly() {
        let names: [&[u8]; 6] = [
            b"a\xff.py",
            b"a\xfe.py",
            b"a\\xff.py",
            b"a\\\\xff.py",
            b"a\xef\xbf\xbd.py",
            b"d\xc3/\xe9\x80.py",
        ];
        let encoded: Vec<String> = names.iter().map(|n| encode(&path(n))).collect();
        assert_eq!(
            encoded,
            [
                r"a\xff.py",
                r"a\xfe.py",
                r"a\\xff.py",
                r"a\\\\xff.py",
                "a\u{FFFD}.py",
                r"d\xc3/\xe9\x80.py"
            ]
        );
        for (name, e) in names.iter().zip(&encoded) {
            assert_eq!(decode(e), Some(path(name)), "{e}");
        }
    }

    #[test]
    fn strings_encode_never_makes_do_not_decode() {
        for bad in [r"a\b.py", r"a\x", r"a\xf", r"a\xFF", r"a\xg0", "a\\"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
