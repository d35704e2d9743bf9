//! The symbol table of one Python module: what extraction produces, what the cache stores and
//! what `ast symbols` prints. Field order is the JSON key order.

use serde::{Deserialize, Serialize};

/// What a symbol is. `async def` is a `Function` with [`Symbol::is_async`] set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SymbolKind {
    /// `def` or `async def`.
    Function,
    /// `class`.
    Class,
}

/// One definition. Mirrors Python's `ast`: `line` is `lineno` (the `def`/`class` line, not the
/// decorator's), `end_line` is `end_lineno`; both 1-based and inclusive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Symbol {
    /// `function` or `class`.
    pub kind: SymbolKind,
    /// The identifier as written (non-ASCII allowed).
    pub name: String,
    /// 1-based line of the `def`/`class` keyword (after decorators).
    pub line: u32,
    /// 1-based last line of the definition, as `ast`'s `end_lineno`.
    pub end_line: u32,
    /// `true` for `async def`; omitted from JSON when false.
    #[serde(rename = "async", default, skip_serializing_if = "std::ops::Not::not")]
    pub is_async: bool,
    /// For classes: the direct members (methods and nested classes, recursively with their own
    /// members), in source order. `None` for functions, so the key is present exactly on classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<Symbol>>,
}

/// A syntax error's line range: a region tree-sitter recovered from (an `ERROR` or `MISSING`
/// node), the location Ruff's parser reported when tree-sitter saw nothing wrong, or an encoding
/// error CPython reports before parsing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyntaxErrorLoc {
    /// 1-based line where the unparsable region starts.
    pub line: u32,
    /// 1-based line where it ends.
    pub end_line: u32,
    /// Set only when the region is not an ordinary recovered error: an encoding error
    /// (CPython's own message, e.g. `unknown encoding: foo`), or extraction gave up on the
    /// module (its work budget ran out) and this says so and what the symbols are based on.
    /// Omitted from JSON otherwise, so ordinary entries keep their two keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl SyntaxErrorLoc {
    /// An ordinary error region over lines `line..=end_line`.
    pub fn lines(line: u32, end_line: u32) -> Self {
        SyntaxErrorLoc {
            line,
            end_line,
            message: None,
        }
    }
}

/// The extraction result for one module. This whole value is what the cache stores, so the
/// syntax-error flag survives cache hits (the original cached `[]` and forgot the error).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SymbolTable {
    /// Top-level `def`, `async def` and `class` statements, in source order.
    pub symbols: Vec<Symbol>,
    /// Empty when the file parsed cleanly; otherwise the recovered regions (capped).
    #[serde(default)]
    pub syntax_errors: Vec<SyntaxErrorLoc>,
}

impl SymbolTable {
    /// True when Python's grammar rejects the module (at least one syntax error).
    pub fn has_syntax_errors(&self) -> bool {
        !self.syntax_errors.is_empty()
    }
}
