//! The value stored in Redis for one cache entry: a versioned, self-describing, checksummed
//! record, so a remote value gets the same scrutiny as a local row before it is served.
//!
//! Layout (all integers little-endian):
//!
//! ```text
//! "TFYR" | format version (u8) | tag length (u8) | extractor tag | content hash (32 bytes)
//!        | payload length (u32) | payload (the table's JSON) | BLAKE3 of everything before
//! ```
//!
//! The key already names the content hash and extractor tag; the record repeats both so a value
//! copied under the wrong key (by hand, by a buggy client, by an attacker without the BLAKE3
//! preimage skills) is caught as a mismatch instead of serving another file's symbols. The
//! checksum is not keyed: it catches damage, not forgery. Whoever can write to the server can
//! choose the symbols served (README, "Shared cache on Redis").

use crate::cache::CacheKey;
use crate::cache::sqlite::{decode_payload, encode_payload};
use crate::mutant::{self, Mutant};
use crate::symbols::SymbolTable;

/// First bytes of every record.
pub const MAGIC: &[u8; 4] = b"TFYR";
/// The record format this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
const CHECKSUM_LEN: usize = 32;
const HASH_LEN: usize = 32;

/// Why a remote value was not served. Spelled in `ast.cache.remote_corrupt` events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    /// Shorter than its header or its declared payload.
    Truncated,
    /// Longer than its declared payload (something appended).
    TrailingBytes,
    /// Not a trifecta record, or a record format this build does not read.
    ForeignFormat,
    /// The BLAKE3 over the record does not match (a flipped bit, a torn write).
    ChecksumMismatch,
    /// Intact, but written by another extractor version.
    OtherExtractor,
    /// Intact, but for other content than the key names.
    KeyMismatch,
    /// Intact, but the payload does not decode as a symbol table.
    Undecodable,
}

impl Damage {
    /// The wire spelling, e.g. `checksum_mismatch`.
    pub fn as_str(self) -> &'static str {
        match self {
            Damage::Truncated => "truncated",
            Damage::TrailingBytes => "trailing_bytes",
            Damage::ForeignFormat => "foreign_format",
            Damage::ChecksumMismatch => "checksum_mismatch",
            Damage::OtherExtractor => "other_extractor",
            Damage::KeyMismatch => "key_mismatch",
            Damage::Undecodable => "undecodable",
        }
    }
}

/// The record for `table` under `key`, as this build writes it.
pub fn encode(key: &CacheKey, table: &SymbolTable) -> serde_json::Result<Vec<u8>> {
    let payload = encode_payload(table)?;
    Ok(encode_raw(
        FORMAT_VERSION,
        &CacheKey::extractor_tag(),
        key.content_hash(),
        &payload,
    ))
}

/// A record from its parts, checksum included. Public so the gate runner can forge the records
/// a real fleet meets (another format version, another extractor) with valid checksums.
pub fn encode_raw(version: u8, tag: &str, hash: &[u8; 32], payload: &[u8]) -> Vec<u8> {
    let tag = &tag.as_bytes()[..tag.len().min(255)];
    let mut out = Vec::with_capacity(4 + 2 + tag.len() + HASH_LEN + 4 + payload.len() + 32);
    out.extend_from_slice(MAGIC);
    out.push(version);
    out.push(tag.len() as u8);
    out.extend_from_slice(tag);
    out.extend_from_slice(hash);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

/// Where the parts of a well-framed record are.
struct Frame<'a> {
    tag: &'a [u8],
    hash: &'a [u8],
    payload: &'a [u8],
    body: &'a [u8],
    checksum: &'a [u8],
}

fn frame(bytes: &[u8]) -> Result<Frame<'_>, Damage> {
    if bytes.len() < MAGIC.len() {
        return Err(if MAGIC.starts_with(bytes) {
            Damage::Truncated
        } else {
            Damage::ForeignFormat
        });
    }
    if &bytes[..4] != MAGIC {
        return Err(Damage::ForeignFormat);
    }
    let version = *bytes.get(4).ok_or(Damage::Truncated)?;
    if version != FORMAT_VERSION {
        return Err(Damage::ForeignFormat);
    }
    let tag_len = *bytes.get(5).ok_or(Damage::Truncated)? as usize;
    let tag_end = 6 + tag_len;
    let hash_end = tag_end + HASH_LEN;
    let len_end = hash_end + 4;
    let len_bytes = bytes.get(hash_end..len_end).ok_or(Damage::Truncated)?;
    let payload_len = u32::from_le_bytes(len_bytes.try_into().map_err(|_| Damage::Truncated)?);
    let payload_end = len_end + payload_len as usize;
    let total = payload_end + CHECKSUM_LEN;
    if bytes.len() < total {
        return Err(Damage::Truncated);
    }
    if bytes.len() > total {
        return Err(Damage::TrailingBytes);
    }
    Ok(Frame {
        tag: &bytes[6..tag_end],
        hash: &bytes[tag_end..hash_end],
        payload: &bytes[len_end..payload_end],
        body: &bytes[..payload_end],
        checksum: &bytes[payload_end..],
    })
}

/// The table in `bytes` if it is an intact record for exactly `key`, else what is wrong.
/// Checked in order: framing, format, checksum, extractor, key, payload.
pub fn decode(key: &CacheKey, bytes: &[u8]) -> Result<SymbolTable, Damage> {
    let f = frame(bytes)?;
    if !mutant::active(Mutant::RemoteNoChecksum) && blake3::hash(f.body).as_bytes() != f.checksum {
        return Err(Damage::ChecksumMismatch);
    }
    if f.tag != CacheKey::extractor_tag().as_bytes() {
        return Err(Damage::OtherExtractor);
    }
    if f.hash != key.content_hash() {
        return Err(Damage::KeyMismatch);
    }
    decode_payload(f.payload).map_err(|_| Damage::Undecodable)
}

/// Where the payload starts in a well-framed record (the gate's damage modes aim inside it).
pub fn payload_range(bytes: &[u8]) -> Option<std::ops::Range<usize>> {
    let f = frame(bytes).ok()?;
    let start = f.payload.as_ptr() as usize - bytes.as_ptr() as usize;
    Some(start..start + f.payload.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::extract;

    fn sample() -> (CacheKey, SymbolTable, Vec<u8>) {
        let src = b"def f():\n    pass\n\nclass C:\n    def m(self): pass\n";
        let key = CacheKey::of(src);
        let table = extract::extract(src);
        let rec = encode(&key, &table).unwrap();
        (key, table, rec)
    }

    #[test]
    fn a_record_round_trips() {
        let (key, table, rec) = sample();
        assert_eq!(decode(&key, &rec), Ok(table));
    }

    #[test]
    fn every_kind_of_damage_is_named_and_never_served() {
        let (key, _, rec) = sample();
        for cut in [0, 3, 5, 20, rec.len() - 1] {
            assert_eq!(
                decode(&key, &rec[..cut]),
                Err(Damage::Truncated),
                "cut {cut}"
            );
        }
        let mut longer = rec.clone();
        longer.push(0);
        assert_eq!(decode(&key, &longer), Err(Damage::TrailingBytes));
        let payload = payload_range(&rec).unwrap();
        for i in [6, payload.start, payload.end - 1, rec.len() - 1] {
            let mut flipped = rec.clone();
            flipped[i] ^= 0x01;
            assert_eq!(decode(&key, &flipped), Err(Damage::ChecksumMismatch), "{i}");
        }
        assert_eq!(
            decode(&key, b"{\"symbols\":[]}"),
            Err(Damage::ForeignFormat)
        );
        let p = &rec[payload.clone()];
        let tag = CacheKey::extractor_tag();
        let v2 = encode_raw(2, &tag, key.content_hash(), p);
        assert_eq!(decode(&key, &v2), Err(Damage::ForeignFormat));
        let other = encode_raw(1, "rp0.0.9-tsp0.24-x1", key.content_hash(), p);
        assert_eq!(decode(&key, &other), Err(Damage::OtherExtractor));
        let moved = encode_raw(1, &tag, CacheKey::of(b"x").content_hash(), p);
        assert_eq!(decode(&key, &moved), Err(Damage::KeyMismatch));
        let junk = encode_raw(1, &tag, key.content_hash(), b"not json");
        assert_eq!(decode(&key, &junk), Err(Damage::Undecodable));
    }
}
