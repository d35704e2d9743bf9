//! The privacy pass every event goes through at flush: no absolute path, home directory or
//! user name leaves the process in telemetry, whatever a caller put into `args`, `result`, `x`
//! or `warnings` (error messages from SQLite or the OS routinely embed absolute paths).
//!
//! Rules, applied to every string value and every object key, in this order:
//! 1. The canonical segment root, where it starts a path, is made segment-relative:
//!    `<root>/pkg/a.py` → `pkg/a.py`, and the root alone → `.`.
//! 2. The home directory (`$HOME`), and the rest of the path it starts, → `<abs>`.
//! 3. Any other absolute path token → `<abs>`: a `/` that begins a token (start of string,
//!    after whitespace or one of `"'([{<=,;|`), `file:///…`, Windows `C:\…` / `C:/…` and UNC
//!    `\\host\…`. The token runs to the next whitespace or quote/bracket; trailing `:.,;` stay.
//!    URIs such as `sym://python/mod/x` are not paths (`//` right after a scheme `:`).
//! 4. The user name (`$USER`, else `$LOGNAME`), as a whole word (letters, digits, `_`, `-`
//!    delimit words), → `<user>`. Whole-word matching keeps a user called `al` from mangling
//!    `alias`; the cost is that a module literally named like the user is redacted too.
//! 5. Strings longer than [`MAX_STRING`] bytes are cut (with a marker): events never carry
//!    source text by construction, and this bounds the damage if an error message quotes some.

use serde_json::Value;

/// Longest string kept in an event, in bytes.
pub const MAX_STRING: usize = 512;
/// What an absolute path is replaced with.
pub const ABS: &str = "<abs>";
/// What the user name is replaced with.
pub const USER: &str = "<user>";

/// The redaction context of one process: segment root, home and user name.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    root: Option<String>,
    home: Option<String>,
    user: Option<String>,
}

impl Redactor {
    /// Context for `root` (canonical segment root, if known), `$HOME` and the user name, as
    /// resolved by `config`.
    pub fn new(root: Option<String>, home: Option<String>, user: Option<String>) -> Self {
        let path_like = |p: String| {
            let t = p.trim_end_matches('/').to_string();
            // "/" (or empty) as a root or home would make every path "relative"; skip it.
            (t.len() > 1).then_some(t)
        };
        Redactor {
            root: root.and_then(path_like),
            home: home.and_then(path_like),
            user: user.filter(|u| u.len() >= 2),
        }
    }

    /// Redact every string (and object key) inside `v`, in place.
    pub fn value(&self, v: &mut Value) {
        match v {
            Value::String(s) => *s = self.string(s),
            Value::Array(a) => a.iter_mut().for_each(|x| self.value(x)),
            Value::Object(m) => {
                let old = std::mem::take(m);
                for (k, mut x) in old {
                    self.value(&mut x);
                    m.insert(self.string(&k), x);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// Redact one string.
    pub fn string(&self, s: &str) -> String {
        let mut out = s.to_string();
        if let Some(root) = &self.root {
            out = relativize(&out, root);
        }
        if let Some(home) = &self.home {
            out = replace_prefix_tokens(&out, home);
        }
        out = replace_abs_tokens(&out);
        if let Some(user) = &self.user {
            out = replace_word(&out, user, USER);
        }
        truncate(out)
    }
}

/// Characters after which a `/` starts a new (absolute path) token.
fn starts_token(prev: Option<char>) -> bool {
    match prev {
        None => true,
        Some(c) => c.is_whitespace() || "\"'([{<=,;|".contains(c),
    }
}

/// Characters that end a path token.
fn ends_token(c: char) -> bool {
    c.is_whitespace() || "\"'`)]}>|,;".contains(c)
}

/// Length in bytes of the path token starting at `s[0]`: up to the first token end or `:`
/// at or after byte `skip` (so `C:` survives but `/x.py:12` stops before `:12`), leaving a
/// trailing `.` outside.
fn token_len(s: &str, skip: usize) -> usize {
    let skip = skip.min(s.len());
    let end = s[skip..]
        .find(|c| ends_token(c) || c == ':')
        .map_or(s.len(), |e| e + skip);
    s[..end].trim_end_matches('.').len().max(skip).max(1)
}

/// `<root>/x` → `x`, `<root>` alone → `.`; only where `root` begins a token and ends at a
/// path boundary (so `/a/bc` is not "inside" root `/a/b`).
fn relativize(s: &str, root: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(root) {
        let prev = rest[..i].chars().next_back().or(out.chars().next_back());
        let after = &rest[i + root.len()..];
        let next = after.chars().next();
        out.push_str(&rest[..i]);
        let at_token = starts_token(if i == 0 && out.is_empty() { None } else { prev });
        match next {
            Some('/') if at_token => {
                rest = &after[1..];
                // "<root>/" with nothing after it is the root itself.
                if rest.is_empty() || rest.starts_with(ends_token) {
                    out.push('.');
                }
            }
            None if at_token => {
                out.push('.');
                rest = after;
            }
            Some(c) if at_token && (ends_token(c) || c == ':' || c == '.') => {
                out.push('.');
                rest = after;
            }
            _ => {
                out.push_str(root);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every occurrence of `prefix` at a path boundary, plus the rest of its path token, → `<abs>`.
fn replace_prefix_tokens(s: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(prefix) {
        let after = &rest[i + prefix.len()..];
        let boundary = after.is_empty()
            || after.starts_with('/')
            || after.starts_with(ends_token)
            || after.starts_with([':', '.']);
        out.push_str(&rest[..i]);
        if boundary {
            out.push_str(ABS);
            let tail = if after.starts_with('/') {
                token_len(after, 1)
            } else {
                0
            };
            rest = &after[tail..];
        } else {
            out.push_str(prefix);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Absolute path tokens (Unix, `file:///`, Windows drive and UNC) → `<abs>`.
fn replace_abs_tokens(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let bytes = s.as_bytes();
    while i < s.len() {
        let rest = &s[i..];
        let prev = s[..i].chars().next_back();
        let c = bytes[i];
        // A lone "/" (as in "1 / 2") is not a path: something path-like must follow.
        // ('/' is one byte, so `rest[1..]` is on a char boundary.)
        let path_follows = c == b'/' && rest.len() > 1 && !rest[1..].starts_with(ends_token);
        let abs_len = if path_follows && starts_token(prev) {
            Some(token_len(rest, 1))
        } else if c == b'/' && prev == Some(':') && rest.starts_with("///") {
            // file:///abs/path: keep the scheme's "//", redact the path.
            out.push_str("//");
            i += 2;
            Some(token_len(&s[i..], 1))
        } else if starts_token(prev) && (is_unc(rest) || is_drive(rest)) {
            Some(token_len(rest, 2))
        } else {
            None
        };
        match abs_len {
            Some(n) => {
                out.push_str(ABS);
                i += n;
            }
            None => {
                let ch = rest.chars().next().unwrap_or(' ');
                out.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    out
}

/// `\\\\host\\share…`
fn is_unc(s: &str) -> bool {
    s.starts_with("\\\\")
}

/// `C:\\…` or `C:/…` (but not a one-letter URI scheme `x://`).
fn is_drive(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() > 2
        && b[0].is_ascii_alphabetic()
        && b[1] == b':'
        && (b[2] == b'\\' || b[2] == b'/')
        && !s[1..].starts_with("://")
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '-'
}

/// Replace `word` where it stands as a whole word.
fn replace_word(s: &str, word: &str, with: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(word) {
        let before = rest[..i].chars().next_back().or(out.chars().next_back());
        let after = rest[i + word.len()..].chars().next();
        out.push_str(&rest[..i]);
        if before.is_none_or(|c| !is_word(c)) && after.is_none_or(|c| !is_word(c)) {
            out.push_str(with);
        } else {
            out.push_str(word);
        }
        rest = &rest[i + word.len()..];
    }
    out.push_str(rest);
    out
}

fn truncate(mut s: String) -> String {
    if s.len() <= MAX_STRING {
        return s;
    }
    let mut cut = MAX_STRING;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    let dropped = s.len() - cut;
    s.truncate(cut);
    s.push_str(&format!("...[{dropped} bytes cut]"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn r() -> Redactor {
        Redactor::new(
            Some("/tmp/.tmpAbC/seg".into()),
            Some("/home/alice".into()),
            Some("alice".into()),
        )
    }

    #[test]
    fn segment_paths_become_relative() {
        let r = r();
        assert_eq!(r.string("/tmp/.tmpAbC/seg/pkg/a.py"), "pkg/a.py");
        assert_eq!(r.string("/tmp/.tmpAbC/seg"), ".");
        assert_eq!(r.string("/tmp/.tmpAbC/seg/"), ".");
        assert_eq!(
            r.string("cannot open /tmp/.tmpAbC/seg/.trifecta/cache/ast_cache.db: locked"),
            "cannot open .trifecta/cache/ast_cache.db: locked"
        );
        // A sibling that merely shares the prefix is not inside the segment.
        assert_eq!(r.string("/tmp/.tmpAbC/segment2/x"), "<abs>");
    }

    #[test]
    fn other_absolute_paths_are_replaced() {
        let r = r();
        for (i, o) in [
            ("/etc/passwd", "<abs>"),
            ("open '/var/lib/x.db' failed", "open '<abs>' failed"),
            ("path=/srv/data/x, retry", "path=<abs>, retry"),
            ("at /opt/x.py:12: boom", "at <abs>:12: boom"),
            ("file:///etc/hosts", "file://<abs>"),
            ("C:\\Users\\bob\\x.py", "<abs>"),
            ("d:/work/x", "<abs>"),
            ("\\\\server\\share\\x", "<abs>"),
            ("/home/alice/src/x.py", "<abs>"),
            ("home is /home/alice.", "home is <abs>."),
        ] {
            assert_eq!(r.string(i), o, "input {i:?}");
        }
    }

    #[test]
    fn non_paths_are_left_alone() {
        let r = r();
        for s in [
            "sym://python/mod/pkg.a",
            "cold_cache_empty",
            "v1:abc123",
            "a/b/c.py",
            "ratio 1/2",
            "1 / 2",
            "a /",
            "https://example.org/x",
            "alias",
            "malice",
            "",
        ] {
            assert_eq!(r.string(s), s);
        }
    }

    #[test]
    fn user_name_as_a_word_is_replaced() {
        let r = r();
        assert_eq!(r.string("owner alice"), "owner <user>");
        assert_eq!(r.string("alice.py"), "<user>.py");
        assert_eq!(r.string("alice_x"), "alice_x");
    }

    #[test]
    fn nested_values_and_keys_are_redacted() {
        let r = r();
        let mut v = json!({"a": ["/etc/x", {"/tmp/.tmpAbC/seg/k.py": "alice"}], "n": 3, "b": true});
        r.value(&mut v);
        assert_eq!(
            v,
            json!({"a": ["<abs>", {"k.py": "<user>"}], "n": 3, "b": true})
        );
    }

    #[test]
    fn long_strings_are_cut_on_a_char_boundary() {
        let s = "é".repeat(MAX_STRING);
        let out = Redactor::default().string(&s);
        assert!(out.len() < s.len());
        assert!(out.ends_with("bytes cut]"));
    }

    #[test]
    fn degenerate_root_and_home_are_ignored() {
        let r = Redactor::new(Some("/".into()), Some("/".into()), Some("x".into()));
        assert_eq!(r.string("a/b x"), "a/b x");
        assert_eq!(r.string("/etc"), "<abs>");
    }
}
