//! Reading a module's bytes with a size cap, for `ast symbols` and `ast index` alike.

use std::io::Read;

/// Why a module's bytes could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// The file holds more than the cap (its size when opened, or more bytes than the cap if it
    /// grew while being read).
    TooLarge {
        /// Bytes seen.
        len: u64,
        /// The cap.
        max: u64,
    },
    /// Opening or reading failed.
    Io(std::io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::TooLarge { len, max } => {
                write!(f, "{len} bytes exceeds the {max}-byte limit")
            }
            ReadError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// Read at most `max` bytes of the open `file` (opened beneath the segment by
/// [`crate::segment_fs`]): check the size on the handle, and stop reading past the cap even if
/// the file grows meanwhile.
pub fn read_capped(file: &std::fs::File, max: u64) -> Result<Vec<u8>, ReadError> {
    let len = file.metadata().map_err(ReadError::Io)?.len();
    if len > max {
        return Err(ReadError::TooLarge { len, max });
    }
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(max.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(ReadError::Io)?;
    let read = buf.len() as u64;
    if read > max {
        return Err(ReadError::TooLarge { len: read, max });
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_within_the_cap_and_refuses_beyond_it() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.py");
        std::fs::write(&p, b"x = 1\n").unwrap();
        let open = || std::fs::File::open(&p).unwrap();
        assert_eq!(read_capped(&open(), 6).unwrap(), b"x = 1\n");
        let e = read_capped(&open(), 5).unwrap_err();
        assert!(matches!(e, ReadError::TooLarge { len: 6, max: 5 }), "{e:?}");
        assert_eq!(e.to_string(), "6 bytes exceeds the 5-byte limit");
    }
}
