//! The shared second-level cache (L2) on Redis: what [`crate::cache::service::SymbolCache`]
//! consults after a local (L1) miss, and writes after an extraction.
//!
//! Split in two: [`record`] is the value format (versioned, checksummed, checked before anything
//! is served) and [`client`] the connection (lazy, bounded, circuit-broken; [`tls`] for
//! `rediss://`). [`RemoteTier`] joins
//! them under the key scheme `<prefix><extractor tag>:<content hash hex>`: no path, so two
//! checkouts anywhere share entries, and another extractor version never even reads a record
//! it cannot use.

pub mod client;
pub mod record;
pub mod tls;

use crate::cache::CacheKey;
use crate::config::{RemoteMode, RemoteSettings};
use crate::mutant::{self, Mutant};
use crate::symbols::SymbolTable;
pub use client::{FailKind, RemoteFailure};
pub use record::Damage;
use std::time::Duration;

/// What the remote holds for one key.
#[derive(Debug, Clone, PartialEq)]
pub enum RemoteGot {
    /// An intact record for exactly this key.
    Hit(SymbolTable),
    /// Nothing stored.
    Miss,
    /// A value that failed a check; never served.
    Corrupt(Damage),
}

/// The L2 tier of one process.
pub struct RemoteTier {
    client: client::RemoteClient,
    prefix: String,
    mode: RemoteMode,
    ttl: Duration,
}

impl RemoteTier {
    /// The tier for `settings`. Does not connect (see [`client`]).
    pub fn new(settings: &RemoteSettings) -> Self {
        RemoteTier {
            client: client::RemoteClient::new(settings),
            prefix: settings.prefix.clone(),
            mode: settings.mode,
            ttl: settings.ttl,
        }
    }

    /// Whether lookups still go to the server (false once the circuit opened).
    pub fn usable(&self) -> bool {
        self.client.usable()
    }

    /// Whether writes go to the server: usable and not read-only.
    pub fn writable(&self) -> bool {
        let rw = self.mode == RemoteMode::ReadWrite || mutant::active(Mutant::ReadOnlyWrites);
        rw && self.usable()
    }

    /// Whether this process ever connected.
    pub fn connected(&self) -> bool {
        self.client.connected()
    }

    /// The Redis key of `key`: `<prefix><tag>:<64 hex digits>`.
    pub fn redis_key(&self, key: &CacheKey) -> String {
        redis_key(&self.prefix, key)
    }

    /// Look every key up in one `MGET`.
    pub fn get_many(&mut self, keys: &[CacheKey]) -> Result<Vec<RemoteGot>, RemoteFailure> {
        let names: Vec<String> = keys.iter().map(|k| self.redis_key(k)).collect();
        let values = self.client.mget(&names)?;
        Ok(keys
            .iter()
            .zip(values)
            .map(|(k, v)| match v {
                None => RemoteGot::Miss,
                Some(bytes) => match record::decode(k, &bytes) {
                    Ok(t) => RemoteGot::Hit(t),
                    Err(d) => RemoteGot::Corrupt(d),
                },
            })
            .collect())
    }

    /// Write every entry in one pipeline of `SET … EX`; returns how many were sent. Entries
    /// that do not encode are skipped (they are not stored locally either).
    pub fn put_many(&mut self, items: &[(CacheKey, &SymbolTable)]) -> Result<usize, RemoteFailure> {
        let recs: Vec<(String, Vec<u8>)> = items
            .iter()
            .filter_map(|(k, t)| Some((self.redis_key(k), record::encode(k, t).ok()?)))
            .collect();
        self.client.set_many(&recs, self.ttl)?;
        Ok(recs.len())
    }
}

/// The Redis key of `key` under `prefix` (also used by the gate runner to find entries).
pub fn redis_key(prefix: &str, key: &CacheKey) -> String {
    let mut s = format!("{prefix}{}:", CacheKey::extractor_tag());
    for b in key.content_hash() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}
