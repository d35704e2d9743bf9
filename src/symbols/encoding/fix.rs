//! One correction range of the multi-byte codec tables (`cjk_fixes`, generated) and the
//! marker for "Python rejects these": shared by the generated tables and the decoder (`cjk`)
//! without either importing the other.

/// A range of unit keys whose Python decoding differs from encoding_rs's: key `from + i`
/// decodes to `first + i`, or every key is rejected when `first` is [`REJECT`].
pub(super) struct Fix {
    pub(super) from: u32,
    pub(super) to: u32,
    pub(super) first: u32,
}

impl Fix {
    pub(super) const fn new(from: u32, to: u32, first: u32) -> Self {
        Fix { from, to, first }
    }
}

/// [`Fix::first`] for "Python rejects these".
pub(super) const REJECT: u32 = u32::MAX;
