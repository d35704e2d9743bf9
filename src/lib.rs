//! trifecta: Python module symbols (Ruff's parser, tree-sitter for broken modules; checked
//! against Python's own `ast`) served from a persistent cache shared by many processes, and
//! `trifecta-verify`, the gate runner that proves the cache trustworthy before a release.
//!
//! Map: [`cli`] → [`config`] → [`commands`]; [`symbols`] (URI, resolution, source encodings,
//! extraction); [`cache`] (store trait, backends, the one factory; rows keyed by [`file_rel`]);
//! [`telemetry`] (JSONL events, reports); [`verify`] (the gate runner); [`build_info`] (what
//! `--version` names: commit, dirty flag, compiled-in parser versions); [`daemon`] (the
//! per-segment daemon: socket directory, JSON-RPC protocol, server, client).

pub mod build_info;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod error;
pub mod file_rel;
pub mod index;
pub mod mutant;
pub mod output;
pub mod segment_fs;
pub mod symbols;
pub mod telemetry;
pub mod verify;
