//! The work budget of a tree-sitter parse.
//!
//! A segment is untrusted, and some inputs make tree-sitter's work grow faster than the input:
//! 128 KB of `\` + newline took 54 s to parse (at each line end the scanner re-reads all the
//! continuation lines ahead of it). Each module therefore gets an allowance proportional to its
//! size, and the parse is abandoned when it is spent: the worst case is a constant times the
//! parse of an ordinary module of the same size.
//!
//! The allowance is counted in work, never in time, so the same bytes always give the same
//! result whatever the machine's load (results are cached, so a load-dependent answer would be
//! frozen into the cache). Two kinds of work are counted, each with its own limit:
//! - parser operations, through the progress callback of `Parser::parse_with_options`, which
//!   tree-sitter calls once per 100 operations (a *tick*);
//! - bytes handed to the lexer, through the input callback, which serves the text in chunks of
//!   [`READ_CHUNK`] bytes: re-reading the same text again and again costs again each time.
//!
//! When either runs out, the input callback reports end of input and the progress callback
//! cancels the parse, so the parse stops within one chunk and 100 operations.

use std::cell::Cell;
use std::ops::ControlFlow;

/// Bytes served per input callback: the lexer's reads are charged in these units.
pub(super) const READ_CHUNK: usize = 1024;

/// Ticks every module gets regardless of size, so small modules never come near the limit.
const BASE_TICKS: u64 = 10_000;
/// Lexer bytes every module gets regardless of size (see [`BYTES_PER_BYTE`]).
const BASE_BYTES: u64 = 4 * 1024 * 1024;

/// Ticks per KiB of input; with [`BYTES_PER_BYTE`], the allowances per input byte. Measured on the 11,659 files of the stdlib and site-packages
/// (parsed by tree-sitter whether valid or not): at most 0.029 ticks per byte; lexer bytes at
/// most 2 per byte for files over 200 KB, and up to 54 per byte in small files with long
/// comment blocks (the scanner re-reads the comment lines ahead of each line end), which
/// [`BASE_BYTES`] covers: no file used more than a third of its byte allowance. The per-byte
/// limits are 4 and 8 times the large-file figures; `budget_headroom_on_real_code` in the
/// tests keeps an eye on it.
const TICKS_PER_KIB: u64 = 128;
/// Lexer bytes per input byte (see [`TICKS_PER_KIB`]).
const BYTES_PER_BYTE: u64 = 16;

/// What one module's parses may still spend (shared by a parse and its retry).
#[derive(Debug)]
pub(super) struct Budget {
    ticks_left: Cell<u64>,
    bytes_left: Cell<u64>,
    exhausted: Cell<bool>,
    spent_ticks: Cell<u64>,
    spent_bytes: Cell<u64>,
}

impl Budget {
    /// The allowance for a module of `len` bytes.
    pub(super) fn for_len(len: usize) -> Self {
        let len = len as u64;
        Budget::with(
            BASE_TICKS.saturating_add(len.saturating_mul(TICKS_PER_KIB) / 1024),
            BASE_BYTES.saturating_add(len.saturating_mul(BYTES_PER_BYTE)),
        )
    }

    fn with(ticks: u64, bytes: u64) -> Self {
        Budget {
            ticks_left: Cell::new(ticks),
            bytes_left: Cell::new(bytes),
            exhausted: Cell::new(false),
            spent_ticks: Cell::new(0),
            spent_bytes: Cell::new(0),
        }
    }

    /// A budget of `ticks` ticks (and unlimited bytes): for cancelling a parse in a test.
    #[cfg(test)]
    pub(super) fn ticks(ticks: u64) -> Self {
        Budget::with(ticks, u64::MAX)
    }

    /// No limit: for measuring what a parse spends.
    #[cfg(test)]
    pub(super) fn unlimited() -> Self {
        Budget::with(u64::MAX, u64::MAX)
    }

    /// Spend one tick (100 parser operations); `Break` cancels the parse once anything ran out.
    pub(super) fn tick(&self) -> ControlFlow<()> {
        self.spent_ticks.set(self.spent_ticks.get() + 1);
        if !self.take(&self.ticks_left, 1) {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    /// Spend `n` bytes of lexer input; false once anything ran out (serve end of input then).
    pub(super) fn read(&self, n: usize) -> bool {
        self.spent_bytes.set(self.spent_bytes.get() + n as u64);
        self.take(&self.bytes_left, n as u64)
    }

    fn take(&self, left: &Cell<u64>, n: u64) -> bool {
        if !self.exhausted.get() {
            match left.get().checked_sub(n) {
                Some(rest) => left.set(rest),
                None => self.exhausted.set(true),
            }
        }
        !self.exhausted.get()
    }

    /// True once a limit was reached: whatever the parse returned is incomplete.
    pub(super) fn exhausted(&self) -> bool {
        self.exhausted.get()
    }

    /// (ticks, lexer bytes) this budget started with.
    #[cfg(test)]
    pub(super) fn limits(&self) -> (u64, u64) {
        (
            self.ticks_left.get() + self.spent_ticks.get(),
            self.bytes_left.get() + self.spent_bytes.get(),
        )
    }

    /// (ticks, lexer bytes) spent so far.
    #[cfg(test)]
    pub(super) fn spent(&self) -> (u64, u64) {
        (self.spent_ticks.get(), self.spent_bytes.get())
    }
}
