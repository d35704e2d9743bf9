//! Python symbols: the sym:// URI grammar ([`uri`]), module → file resolution that never leaves
//! the segment ([`resolve`]), capped reading ([`read`]), Python's source codecs ([`encoding`]),
//! extraction ([`extract`]: Ruff's parser, tree-sitter for broken modules) and the data model
//! ([`model`]).

pub mod encoding;
pub mod extract;
pub mod model;
pub mod read;
pub mod resolve;
pub mod uri;

pub use model::{Symbol, SymbolKind, SymbolTable, SyntaxErrorLoc};
