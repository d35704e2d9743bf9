//! Python symbols: the sym:// URI grammar ([`uri`]), module → file resolution that never leaves
//! the segment ([`resolve`]), capped reading ([`read`]), extraction ([`extract`]: Ruff's parser,
//! tree-sitter for broken modules) and the data model ([`model`]).

pub mod extract;
pub mod model;
pub mod read;
pub mod resolve;
pub mod uri;

pub use model::{Symbol, SymbolKind, SymbolTable, SyntaxErrorLoc};
