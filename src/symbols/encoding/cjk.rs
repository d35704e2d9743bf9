//! Python's stateless East Asian codecs (`Modules/cjkcodecs`): which bytes form one character,
//! and where decoding fails, follow CPython's decoder loops; the characters come from
//! encoding_rs's WHATWG tables, corrected where Python's tables differ (`cjk_fixes.rs`).
//!
//! CPython's decoders share one shape: bytes below 0x80 are ASCII; a few codecs have one-byte
//! characters above it (half-width katakana, Windows compatibility bytes); anything else needs a
//! second byte (a fourth for GB18030's four-byte form, a third for EUC-JP's JIS X 0212, eight
//! for EUC-KR's make-up sequences). A unit that does not decode is an "illegal multibyte
//! sequence" one byte long, and decoding resumes at the next byte; a unit cut short by the end of
//! the input is an "incomplete multibyte sequence" covering the rest.

use super::cjk_fixes as fixes;
use super::fix::{Fix, REJECT};
use super::{Decoded, push_error};
use encoding_rs::{DecoderResult, Encoding};

/// A multi-byte codec of Python's that trifecta decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cjk {
    /// `gb2312` (EUC-CN).
    Gb2312,
    /// `gbk`.
    Gbk,
    /// `gb18030` (the 2005 mapping, as Python has it).
    Gb18030,
    /// `big5`.
    Big5,
    /// `cp950` (Microsoft's Big5).
    Cp950,
    /// `shift_jis` (JIS X 0208 only).
    ShiftJis,
    /// `cp932` (Microsoft's Shift_JIS).
    Cp932,
    /// `euc_jp` (JIS X 0208 and JIS X 0212).
    EucJp,
    /// `euc_kr` (KS X 1001, with KS X 1001:1998 Annex 3 make-up sequences).
    EucKr,
    /// `cp949` (Unified Hangul Code).
    Cp949,
}

/// Python's answer for `key` where it differs from encoding_rs's: `Some(None)` rejected,
/// `Some(Some(c))` decodes to `c`, `None` when the two agree.
fn fixed(table: &[Fix], key: u32) -> Option<Option<char>> {
    let i = table.partition_point(|f| f.to < key);
    let f = table.get(i).filter(|f| f.from <= key)?;
    Some(match f.first {
        REJECT => None,
        first => char::from_u32(first + (key - f.from)),
    })
}

/// One step of a decoder loop.
enum Step {
    /// A character, and how many bytes it took.
    Char(char, usize),
    /// The first byte cannot start a character here.
    Illegal,
    /// The input ends inside a character.
    Incomplete,
}

/// encoding_rs's decoding of `unit` when it is exactly one character.
fn whatwg(encoding: &'static Encoding, unit: &[u8]) -> Option<char> {
    let mut decoder = encoding.new_decoder_without_bom_handling();
    let mut buf = [0u8; 16];
    let (result, read, written) = decoder.decode_to_utf8_without_replacement(unit, &mut buf, true);
    if result != DecoderResult::InputEmpty || read != unit.len() {
        return None;
    }
    let mut chars = std::str::from_utf8(&buf[..written]).ok()?.chars();
    let c = chars.next()?;
    chars.next().is_none().then_some(c)
}

/// Python's answer for one unit: its fix if there is one, else encoding_rs's character.
fn lookup(table: &[Fix], key: u32, encoding: &'static Encoding, unit: &[u8]) -> Option<char> {
    fixed(table, key).unwrap_or_else(|| whatwg(encoding, unit))
}

/// EUC-KR make-up sequences (`_codecs_kr.c`): the initial-consonant and final-consonant index of
/// each KS X 1001 jamo byte 0xA1..=0xBE, 127 for none.
const CHOSEONG: [u8; 30] = [
    0, 1, 127, 2, 127, 127, 3, 4, 5, 127, 127, 127, 127, 127, 127, 127, 6, 7, 8, 127, 9, 10, 11,
    12, 13, 14, 15, 16, 17, 18,
];
const JONGSEONG: [u8; 30] = [
    1, 2, 3, 4, 5, 6, 7, 127, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 127, 18, 19, 20, 21, 22, 127,
    23, 24, 25, 26, 27,
];

impl Cjk {
    /// The codec's name in Python's error messages.
    fn python_name(self) -> &'static str {
        match self {
            Cjk::Gb2312 => "gb2312",
            Cjk::Gbk => "gbk",
            Cjk::Gb18030 => "gb18030",
            Cjk::Big5 => "big5",
            Cjk::Cp950 => "cp950",
            Cjk::ShiftJis => "shift_jis",
            Cjk::Cp932 => "cp932",
            Cjk::EucJp => "euc_jp",
            Cjk::EucKr => "euc_kr",
            Cjk::Cp949 => "cp949",
        }
    }

    /// The WHATWG decoder whose tables are closest, and the fixes that make them Python's.
    fn tables(self) -> (&'static Encoding, &'static [Fix]) {
        match self {
            Cjk::Gb2312 => (encoding_rs::GB18030, fixes::GB2312_PAIRS),
            Cjk::Gbk => (encoding_rs::GB18030, fixes::GBK_PAIRS),
            Cjk::Gb18030 => (encoding_rs::GB18030, fixes::GB18030_PAIRS),
            Cjk::Big5 => (encoding_rs::BIG5, fixes::BIG5_PAIRS),
            Cjk::Cp950 => (encoding_rs::BIG5, fixes::CP950_PAIRS),
            Cjk::ShiftJis => (encoding_rs::SHIFT_JIS, fixes::SHIFTJIS_PAIRS),
            Cjk::Cp932 => (encoding_rs::SHIFT_JIS, fixes::CP932_PAIRS),
            Cjk::EucJp => (encoding_rs::EUC_JP, fixes::EUCJP_PAIRS),
            Cjk::EucKr => (encoding_rs::EUC_KR, fixes::EUCKR_PAIRS),
            Cjk::Cp949 => (encoding_rs::EUC_KR, fixes::CP949_PAIRS),
        }
    }

    /// A one-byte character at or above 0x80, where the codec has them.
    fn single(self, b: u8) -> Option<char> {
        let code = match (self, b) {
            (Cjk::ShiftJis | Cjk::Cp932, 0xA1..=0xDF) => 0xFEC0 + u32::from(b),
            (Cjk::Cp932, 0x80) => 0x80,
            (Cjk::Cp932, 0xA0) => 0xF8F0,
            (Cjk::Cp932, 0xFD..=0xFF) => 0xF8F1 + u32::from(b - 0xFD),
            _ => return None,
        };
        char::from_u32(code)
    }

    /// Decode the unit at the start of `input` (whose first byte is at least 0x80).
    fn step(self, input: &[u8]) -> Step {
        let c = input[0];
        if let Some(ch) = self.single(c) {
            return Step::Char(ch, 1);
        }
        let Some(&c2) = input.get(1) else {
            return Step::Incomplete;
        };
        match self {
            Cjk::Gb18030 if (0x30..=0x39).contains(&c2) => return gb18030_four(input),
            Cjk::EucJp if c == 0x8F => {
                let Some(unit) = input.get(..3) else {
                    return Step::Incomplete;
                };
                let key = u32::from(unit[1]) << 8 | u32::from(unit[2]);
                return match lookup(fixes::EUCJP_0212, key, encoding_rs::EUC_JP, unit) {
                    Some(ch) => Step::Char(ch, 3),
                    None => Step::Illegal,
                };
            }
            Cjk::EucKr if c == 0xA4 && c2 == 0xD4 => return euc_kr_makeup(input),
            _ => {}
        }
        let (encoding, table) = self.tables();
        let key = u32::from(c) << 8 | u32::from(c2);
        match lookup(table, key, encoding, &input[..2]) {
            Some(ch) => Step::Char(ch, 2),
            None => Step::Illegal,
        }
    }

    /// Decode all of `bytes` into `out`, with Python's `errors="replace"`.
    pub(super) fn decode(self, bytes: &[u8], out: &mut Decoded) {
        let mut at = 0;
        while at < bytes.len() {
            let b = bytes[at];
            if b < 0x80 {
                out.text.push(char::from(b));
                at += 1;
                continue;
            }
            match self.step(&bytes[at..]) {
                Step::Char(ch, len) => {
                    out.text.push(ch);
                    at += len;
                }
                Step::Illegal => {
                    let span = (at, at + 1);
                    push_error(
                        out,
                        bytes,
                        self.python_name(),
                        span,
                        "illegal multibyte sequence",
                    );
                    at += 1;
                }
                Step::Incomplete => {
                    let span = (at, bytes.len());
                    let reason = "incomplete multibyte sequence";
                    push_error(out, bytes, self.python_name(), span, reason);
                    at = bytes.len();
                }
            }
        }
    }
}

/// GB18030's four-byte form (`DECODER(gb18030)`): BMP characters through the range table, which
/// encoding_rs has, indexed by the linear position; supplementary planes by arithmetic.
fn gb18030_four(input: &[u8]) -> Step {
    let Some(&[c, c2, c3, c4, ..]) = input.get(..4) else {
        return Step::Incomplete;
    };
    if c < 0x81 || !(0x81..=0xFE).contains(&c3) || !(0x30..=0x39).contains(&c4) {
        return Step::Illegal;
    }
    let (c, c2, c3, c4) = (
        u32::from(c - 0x81),
        u32::from(c2 - 0x30),
        u32::from(c3 - 0x81),
        u32::from(c4 - 0x30),
    );
    if c < 4 {
        let lseq = (c * 10 + c2) * 1260 + c3 * 10 + c4;
        if lseq < 39420 {
            // Ask encoding_rs with the canonical bytes of that index.
            let canonical = [
                (lseq / 12600 + 0x81) as u8,
                (lseq / 1260 % 10 + 0x30) as u8,
                (lseq / 10 % 126 + 0x81) as u8,
                (lseq % 10 + 0x30) as u8,
            ];
            return match lookup(fixes::GB18030_FOUR, lseq, encoding_rs::GB18030, &canonical) {
                Some(ch) => Step::Char(ch, 4),
                None => Step::Illegal,
            };
        }
    } else if c >= 15 {
        let code = 0x10000 + ((c - 15) * 10 + c2) * 1260 + c3 * 10 + c4;
        if code <= 0x10FFFF
            && let Some(ch) = char::from_u32(code)
        {
            return Step::Char(ch, 4);
        }
    }
    Step::Illegal
}

/// EUC-KR's KS X 1001:1998 Annex 3 make-up sequence: 0xA4D4 then three jamo (0xA4 0xNN each),
/// composed into one Hangul syllable.
fn euc_kr_makeup(input: &[u8]) -> Step {
    let Some(seq) = input.get(..8) else {
        return Step::Incomplete;
    };
    if seq[2] != 0xA4 || seq[4] != 0xA4 || seq[6] != 0xA4 {
        return Step::Illegal;
    }
    let jamo = |table: &[u8; 30], b: u8| match b {
        0xA1..=0xBE => Some(table[usize::from(b - 0xA1)]).filter(|&i| i != 127),
        _ => None,
    };
    let cho = jamo(&CHOSEONG, seq[3]);
    let jung = (0xBF..=0xD3).contains(&seq[5]).then(|| seq[5] - 0xBF);
    let jong = if seq[7] == 0xD4 {
        Some(0)
    } else {
        jamo(&JONGSEONG, seq[7])
    };
    match (cho, jung, jong) {
        (Some(cho), Some(jung), Some(jong)) => {
            let code = 0xAC00 + u32::from(cho) * 588 + u32::from(jung) * 28 + u32::from(jong);
            char::from_u32(code).map_or(Step::Illegal, |ch| Step::Char(ch, 8))
        }
        _ => Step::Illegal,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Codec, decode};
    use super::*;

    fn dec(cjk: Cjk, bytes: &[u8]) -> (String, Vec<String>) {
        let d = decode(Codec::Cjk(cjk), bytes);
        (d.text, d.errors.iter().map(|e| e.to_string()).collect())
    }

    #[test]
    fn python_answers_where_whatwg_differs() {
        // Each expected value is what CPython 3.11 returns for these bytes.
        assert_eq!(dec(Cjk::Gb2312, b"\xa1\xa4").0, "\u{30FB}");
        assert_eq!(dec(Cjk::Gbk, b"\xa1\xa4").0, "\u{00B7}");
        assert_eq!(dec(Cjk::ShiftJis, b"\x81\x60").0, "\u{301C}");
        assert_eq!(dec(Cjk::Cp932, b"\x81\x60").0, "\u{FF5E}");
        assert_eq!(dec(Cjk::Cp932, b"\xa0\xfd").0, "\u{F8F0}\u{F8F1}");
        assert_eq!(
            dec(Cjk::Gbk, b"\x80\n").1,
            ["'gbk' codec can't decode byte 0x80 in position 0: illegal multibyte sequence"]
        );
        assert_eq!(
            dec(Cjk::Gb18030, b"x\x81\x30\n").1,
            ["'gb18030' codec can't decode bytes in position 1-3: incomplete multibyte sequence"]
        );
        assert_eq!(dec(Cjk::Gb18030, b"\x81\x30\x81\x30").0, "\u{0080}");
        assert_eq!(dec(Cjk::Gb18030, b"\x90\x30\x81\x30").0, "\u{10000}");
        assert_eq!(
            dec(Cjk::EucKr, b"\xa4\xd4\xa4\xa1\xa4\xbf\xa4\xa1").0,
            "\u{AC01}"
        );
        assert_eq!(dec(Cjk::Cp949, b"\xa4\xd4").0, "\u{3164}");
        assert_eq!(dec(Cjk::EucJp, b"\x8f\xb0\xa1").0, "\u{4E02}");
    }
}
