//! The per-segment daemon: a long-lived process that answers `ast symbols` (and `ast index`,
//! `cache stats`) over a Unix socket from the same code path the CLI runs, with a small
//! in-memory tier in front of the shared SQLite cache.
//!
//! Map: [`runtime_dir`] (the private socket directory and its checks), [`protocol`]
//! (newline-delimited JSON-RPC 2.0), [`server`] (accept loop, peer check, idle exit, draining on
//! SIGTERM), [`client`] (one request with a bounded wait), [`signals`] (SIGTERM/SIGINT → a
//! flag), [`watch`] (re-extraction of edited modules in the background). The daemon is one more
//! client of the cache's lock protocol: it opens the database per request that misses its tier
//! and releases it before it waits for the next one.

pub mod client;
pub mod protocol;
pub mod runtime_dir;
pub mod server;
pub mod signals;
pub mod watch;
