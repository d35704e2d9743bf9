//! The gate runner behind `trifecta-verify`. PLACEHOLDER: being implemented.

/// Run `trifecta-verify` with `args` (including the program name); returns the exit code.
pub fn main_with_args(_args: Vec<std::ffi::OsString>) -> i32 {
    eprintln!("usage: trifecta-verify gates|list|check (not yet available)");
    2
}
