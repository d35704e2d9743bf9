//! Cache keys: BLAKE3 of the file's bytes plus the extractor identity. No paths, so moving a
//! checkout keeps the cache warm and nothing personal leaks into keys.

use crate::symbols::extract::EXTRACTOR_VERSION;

/// The parsers the extractor is built on: Ruff's parser (`ruff_python_parser` 0.0.10) for valid
/// modules, tree-sitter-python 0.25 for the rest. Bump with either crate's version.
pub const GRAMMAR: &str = "rp0.0.10-tsp0.25";

/// Identity of the content being cached and the code that extracts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey {
    hash: [u8; 32],
}

impl CacheKey {
    /// Hash `content` (the raw file bytes, before any decoding or newline handling: a CRLF and
    /// an LF variant are different content and get different keys).
    pub fn of(content: &[u8]) -> Self {
        CacheKey {
            hash: *blake3::hash(content).as_bytes(),
        }
    }

    /// The key for `content`, just read from `file`: [`CacheKey::of`] the content. (With the
    /// `size-mtime-freshness` mutant, debug builds only: a hash of the file's size and mtime
    /// instead — the stat "fast path" that serves stale symbols after a rewrite that keeps both.)
    pub fn for_file(file: &std::fs::File, content: &[u8]) -> Self {
        if crate::mutant::active(crate::mutant::Mutant::SizeMtimeFreshness)
            && let Ok(m) = file.metadata()
        {
            use std::os::unix::fs::MetadataExt;
            let stat = format!("stat:{}:{}.{:09}", m.len(), m.mtime(), m.mtime_nsec());
            return CacheKey::of(stat.as_bytes());
        }
        CacheKey::of(content)
    }

    /// Rebuild a key from a stored hash.
    pub fn from_hash(hash: [u8; 32]) -> Self {
        CacheKey { hash }
    }

    /// The 32-byte content hash.
    pub fn content_hash(&self) -> &[u8; 32] {
        &self.hash
    }

    /// The extractor identity stored beside each row, e.g. `rp0.0.10-tsp0.25-x4`.
    pub fn extractor_tag() -> String {
        format!("{GRAMMAR}-x{EXTRACTOR_VERSION}")
    }
}

impl std::fmt::Display for CacheKey {
    /// `<extractor tag>:<first 16 bytes of the hash in hex>`, e.g. `rp0.0.10-tsp0.25-x4:9f86d081…`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:", Self::extractor_tag())?;
        for b in &self.hash[..16] {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_bytes_same_key_and_different_bytes_differ() {
        assert_eq!(
            CacheKey::of(b"def f(): pass\n"),
            CacheKey::of(b"def f(): pass\n")
        );
        assert_ne!(
            CacheKey::of(b"def f(): pass\n"),
            CacheKey::of(b"def f(): pass\r\n")
        );
    }

    #[test]
    fn display_has_tag_and_32_hex() {
        let s = CacheKey::of(b"").to_string();
        let (tag, hex) = s.split_once(':').unwrap();
        assert_eq!(tag, CacheKey::extractor_tag());
        assert_eq!(hex.len(), 32);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}
