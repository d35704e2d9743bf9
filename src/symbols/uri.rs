//! The sym:// URI grammar.
//!
//! ```text
//! uri    = "sym://python/" kind "/" dotted [ "#" member ]
//! kind   = "mod" | "type"
//! dotted = ident *( ("." | "/") ident )        ; "/" accepted for compatibility, "." canonical
//! member = ident
//! ```
//!
//! `mod` selects a module (no fragment allowed, not even an empty one). `type` selects a class:
//! at least two components, the module being the longest prefix that resolves to a file and the
//! rest a (possibly nested) class path; `#member` then selects a method or nested class.
//! Every component must be a Python identifier (Unicode XID rules), at most 255 bytes, so a URI
//! can never carry `..`, an absolute path, a NUL byte or an empty component. Whole URIs are
//! limited to [`MAX_URI_BYTES`].

use crate::error::{CliError, ErrorCode};

/// The only accepted prefix (case-sensitive).
pub const PREFIX: &str = "sym://python/";
/// Longest URI accepted, in bytes.
pub const MAX_URI_BYTES: usize = 4096;
/// Longest component accepted, in bytes (a file-name limit).
pub const MAX_COMPONENT_BYTES: usize = 255;

/// What a URI selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UriKind {
    /// A module: `sym://python/mod/…`.
    Mod,
    /// A class (and optional member): `sym://python/type/…`.
    Type,
}

impl UriKind {
    /// `mod` or `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            UriKind::Mod => "mod",
            UriKind::Type => "type",
        }
    }
}

/// A parsed, validated sym:// URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SymUri {
    kind: UriKind,
    path: Vec<String>,
    member: Option<String>,
}

fn bad(message: impl Into<String>) -> CliError {
    CliError::new(ErrorCode::InvalidUri, message)
}

/// True when `s` is a Python identifier by the XID rules (keywords are not excluded: a file
/// may well be called `match.py`).
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c == '_' || unicode_ident::is_xid_start(c) => {}
        _ => return false,
    }
    chars.all(unicode_ident::is_xid_continue)
}

fn check_ident<'a>(s: &'a str, what: &str) -> Result<&'a str, CliError> {
    if s.is_empty() {
        return Err(bad(format!("empty {what} component")));
    }
    if s.len() > MAX_COMPONENT_BYTES {
        return Err(bad(format!(
            "{what} component longer than {MAX_COMPONENT_BYTES} bytes"
        )));
    }
    if !is_identifier(s) {
        return Err(bad(format!(
            "{what} component {} is not a Python identifier",
            crate::output::quoted(s)
        )));
    }
    Ok(s)
}

impl SymUri {
    /// Parse and validate a URI.
    pub fn parse(uri: &str) -> Result<SymUri, CliError> {
        if uri.len() > MAX_URI_BYTES {
            return Err(bad(format!("URI longer than {MAX_URI_BYTES} bytes")));
        }
        if uri.contains('\0') {
            return Err(bad("URI contains a NUL byte"));
        }
        let Some(rest) = uri.strip_prefix(PREFIX) else {
            return Err(bad("URI must start with sym://python/"));
        };
        let Some((kind, path_member)) = rest.split_once('/') else {
            return Err(bad("URI must contain kind and path"));
        };
        let kind = match kind {
            "mod" => UriKind::Mod,
            "type" => UriKind::Type,
            _ => return Err(bad("Kind must be mod or type")),
        };
        let (path_part, member) = match path_member.split_once('#') {
            Some((p, m)) => (p, Some(m)),
            None => (path_member, None),
        };
        if kind == UriKind::Mod && member.is_some() {
            return Err(bad("Kind 'mod' should not have fragment"));
        }
        if path_part.is_empty() {
            return Err(bad("URI must contain kind and path"));
        }
        let path = path_part
            .split(['.', '/'])
            .map(|c| check_ident(c, "path").map(str::to_string))
            .collect::<Result<Vec<_>, _>>()?;
        if kind == UriKind::Type && path.len() < 2 {
            return Err(bad("Kind 'type' needs <module>.<Class>"));
        }
        let member = member
            .map(|m| check_ident(m, "member").map(str::to_string))
            .transpose()?;
        Ok(SymUri { kind, path, member })
    }

    /// Build a URI from validated parts (used by tests and generators).
    pub fn new(
        kind: UriKind,
        path: Vec<String>,
        member: Option<String>,
    ) -> Result<SymUri, CliError> {
        SymUri::parse(&SymUri { kind, path, member }.to_string())
    }

    /// `mod` or `type`.
    pub fn kind(&self) -> UriKind {
        self.kind
    }

    /// The dotted components (module, then class path for `type`).
    pub fn path(&self) -> &[String] {
        &self.path
    }

    /// The `#member`, if any.
    pub fn member(&self) -> Option<&str> {
        self.member.as_deref()
    }
}

impl std::fmt::Display for SymUri {
    /// The canonical form: dots between components.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{PREFIX}{}/{}", self.kind.as_str(), self.path.join("."))?;
        if let Some(m) = &self.member {
            write!(f, "#{m}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(uri: &str) -> Option<ErrorCode> {
        SymUri::parse(uri).err().map(|e| e.code)
    }

    #[test]
    fn accepts_the_documented_forms() {
        let m = SymUri::parse("sym://python/mod/pkg.utils").unwrap();
        assert_eq!(
            (m.kind(), m.path(), m.member()),
            (UriKind::Mod, &["pkg".into(), "utils".into()][..], None)
        );
        let t = SymUri::parse("sym://python/type/pkg.utils.Helper#run").unwrap();
        assert_eq!(t.member(), Some("run"));
        assert_eq!(
            SymUri::parse("sym://python/mod/pkg/utils").unwrap(),
            m,
            "slash is an alias of dot"
        );
        assert!(
            SymUri::parse("sym://python/mod/caf\u{e9}").is_ok(),
            "non-ASCII identifiers"
        );
    }

    #[test]
    fn rejects_everything_else_with_invalid_uri() {
        for uri in [
            "http://python/mod/x",
            "sym://js/mod/x",
            "sym://python/mod",
            "sym://python/func/x",
            "sym://python/mod/x#",
            "sym://python/mod/x#y",
            "sym://python/mod/",
            "sym://python/mod//etc/passwd",
            "sym://python/mod/../x",
            "sym://python/mod/a..b",
            "sym://python/mod/a\0b",
            "sym://python/mod/1abc",
            "sym://python/mod/a-b",
            "sym://python/type/OnlyOne",
            "sym://python/type/m.C#",
            "sym://python/type/m.C#1x",
        ] {
            assert_eq!(code(uri), Some(ErrorCode::InvalidUri), "{uri:?}");
        }
        assert_eq!(
            code(&format!("sym://python/mod/{}", "a".repeat(MAX_URI_BYTES))),
            Some(ErrorCode::InvalidUri)
        );
        assert_eq!(
            code(&format!("sym://python/mod/{}", "a".repeat(256))),
            Some(ErrorCode::InvalidUri)
        );
    }

    #[test]
    fn display_is_canonical() {
        assert_eq!(
            SymUri::parse("sym://python/type/a/b.C#m")
                .unwrap()
                .to_string(),
            "sym://python/type/a.b.C#m"
        );
    }
}
