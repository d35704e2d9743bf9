//! Python symbols: the sym:// URI grammar ([`uri`]), module → file resolution that never leaves
//! the segment ([`resolve`]), tree-sitter extraction ([`extract`]) and the data model ([`model`]).

pub mod extract;
pub mod model;
pub mod resolve;
pub mod uri;

pub use model::{Symbol, SymbolKind, SymbolTable, SyntaxErrorLoc};
