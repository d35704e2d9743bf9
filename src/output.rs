//! JSON rendering for stdout: 2-space indent and ASCII-only output, as the original printed
//! (`json.dumps(data, indent=2)` with `ensure_ascii=True`), followed by one newline.

use serde::Serialize;
use std::io::{self, Write};

/// A `serde_json` formatter that pretty-prints and escapes every non-ASCII character as
/// `\uXXXX` (surrogate pairs above the BMP), byte-compatible with Python's `ensure_ascii`.
pub struct AsciiPretty<'a> {
    inner: serde_json::ser::PrettyFormatter<'a>,
}

impl Default for AsciiPretty<'_> {
    fn default() -> Self {
        AsciiPretty {
            inner: serde_json::ser::PrettyFormatter::with_indent(b"  "),
        }
    }
}

macro_rules! delegate {
    ($($name:ident($($arg:ident : $ty:ty),*)),* $(,)?) => {
        $(fn $name<W: ?Sized + Write>(&mut self, w: &mut W $(, $arg: $ty)*) -> io::Result<()> {
            self.inner.$name(w $(, $arg)*)
        })*
    };
}

impl serde_json::ser::Formatter for AsciiPretty<'_> {
    delegate!(
        begin_array(),
        end_array(),
        begin_array_value(first: bool),
        end_array_value(),
        begin_object(),
        end_object(),
        begin_object_key(first: bool),
        end_object_key(),
        begin_object_value(),
        end_object_value(),
    );

    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if fragment.is_ascii() {
            return w.write_all(fragment.as_bytes());
        }
        let mut buf = [0u16; 2];
        for ch in fragment.chars() {
            if ch.is_ascii() {
                w.write_all(&[ch as u8])?;
            } else {
                for unit in ch.encode_utf16(&mut buf) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

/// Serialize `value` the way the CLI prints it (indent 2, ASCII only, trailing newline).
pub fn to_cli_json<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::with_capacity(4096);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, AsciiPretty::default());
    // Serializing our own plain structs cannot fail; fall back to an honest message if it does.
    if value.serialize(&mut ser).is_err() {
        return "{\"status\":\"error\",\"error_code\":\"INTERNAL_ERROR\",\"message\":\"serialization failed\"}\n"
            .to_string();
    }
    out.push(b'\n');
    // The formatter only ever writes ASCII.
    String::from_utf8(out).unwrap_or_default()
}

/// `s` as a JSON string literal: quoted, with quotes, backslashes and control characters
/// escaped. For values echoed in messages, instead of Rust's `Debug` formatting.
pub fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| String::from("\"?\""))
}

/// Several values, each [`quoted`], comma-separated in brackets: `["a", "b"]`.
pub fn quoted_list<S: AsRef<str>>(items: &[S]) -> String {
    let parts: Vec<String> = items.iter().map(|s| quoted(s.as_ref())).collect();
    format!("[{}]", parts.join(", "))
}

/// Writing the command's output to stdout failed: the result never reached the reader.
///
/// The command must not report success then (`> /dev/full` used to exit 0 with the output
/// lost). A closed pipe is the one quiet case, as in ripgrep: the reader (`| head`) chose to stop.
#[derive(Debug, thiserror::Error)]
#[error("cannot write to standard output: {0}")]
pub struct StdoutError(#[from] pub io::Error);

impl StdoutError {
    /// The reader closed the pipe (EPIPE): not a failure of the command.
    pub fn is_broken_pipe(&self) -> bool {
        self.0.kind() == io::ErrorKind::BrokenPipe
    }
}

/// Write `bytes` to stdout and flush, reporting any failure.
pub fn write_stdout(bytes: &[u8]) -> Result<(), StdoutError> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(())
}

/// Print `value` to stdout as CLI JSON.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<(), StdoutError> {
    write_stdout(to_cli_json(value).as_bytes())
}

/// Write `text` to stderr, ignoring failure: stderr is where failures are reported, so there
/// is nowhere left to report its own (and `eprint!` would panic instead).
pub fn write_stderr(text: &str) {
    let mut err = io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_non_ascii_like_python() {
        let v = serde_json::json!({"name": "caf\u{e9}", "emoji": "\u{1F600}"});
        let s = to_cli_json(&v);
        assert!(s.contains("\"caf\\u00e9\""), "{s}");
        assert!(s.contains("\"\\ud83d\\ude00\""), "{s}");
        assert!(s.is_ascii());
        assert!(s.ends_with("}\n"));
    }

    #[test]
    fn indents_by_two_spaces() {
        let s = to_cli_json(&serde_json::json!({"a": [1]}));
        assert_eq!(s, "{\n  \"a\": [\n    1\n  ]\n}\n");
    }
}
