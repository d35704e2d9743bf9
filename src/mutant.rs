//! Deliberate, named bugs ("mutants") that prove each release gate can fail.
//!
//! A gate that cannot fail is not a gate. Every required gate has a negative test
//! (`tests/integration/gates_fail.rs`) that runs it against a `trifecta` carrying one realistic
//! bug from this catalog and checks that it fails for the intended reason.
//!
//! Mutants exist only in debug builds (`cfg(debug_assertions)`: `cargo build`, `cargo test`).
//! In a release build [`active`] is the constant `false`, the bug code is removed by the
//! optimiser, and setting `TRIFECTA_MUTANT` is an `INVALID_ARGUMENT` error rather than a silent
//! no-op, so a negative test can never pass by accident against a build without mutants. An
//! unknown name is the same error in every build: a typo must not quietly test the real code.

use std::sync::OnceLock;

/// `TRIFECTA_MUTANT=<name>[,<name>…]` switches on the named bugs (debug builds only).
pub const ENV_MUTANT: &str = "TRIFECTA_MUTANT";

/// One deliberate bug. Names are stable: tests and notes refer to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mutant {
    /// A row is written in one transaction and its checksum in a second one, so a crash between
    /// the two leaves a row whose checksum does not match (caught by `p2-crash`).
    SplitChecksum,
    /// Freshness is keyed on the file's (size, mtime) instead of its content, so a rewrite that
    /// keeps both is served the replaced version's symbols (caught by `p2-stress-edits`).
    SizeMtimeFreshness,
}

impl Mutant {
    /// Every mutant, in catalog order.
    pub const ALL: &'static [Mutant] = &[Mutant::SplitChecksum, Mutant::SizeMtimeFreshness];

    /// The stable name used in `TRIFECTA_MUTANT`.
    pub fn name(self) -> &'static str {
        match self {
            Mutant::SplitChecksum => "split-checksum",
            Mutant::SizeMtimeFreshness => "size-mtime-freshness",
        }
    }

    /// Look a mutant up by its stable name.
    pub fn parse(name: &str) -> Option<Mutant> {
        Self::ALL.iter().copied().find(|m| m.name() == name)
    }
}

/// Whether this build can carry mutants at all (debug builds only).
pub const COMPILED_IN: bool = cfg!(debug_assertions);

/// Parse a `TRIFECTA_MUTANT` value: a comma-separated list of known names (blank = none).
/// The error says what was expected, for `config::invalid`.
pub fn parse_list(value: &str) -> Result<Vec<Mutant>, String> {
    let mut out = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match Mutant::parse(name) {
            Some(m) => out.push(m),
            None => {
                let known: Vec<_> = Mutant::ALL.iter().map(|m| m.name()).collect();
                return Err(format!(
                    "mutant names from: {} ({name:?} is unknown)",
                    known.join(", ")
                ));
            }
        }
    }
    if !out.is_empty() && !COMPILED_IN {
        return Err("no mutants: this is a release build, it carries none".to_string());
    }
    Ok(out)
}

/// The mutants switched on for this process. Read once; an invalid value switches none on
/// (`config::check_environment` has already refused it before any command runs).
fn enabled() -> &'static [Mutant] {
    static ENABLED: OnceLock<Vec<Mutant>> = OnceLock::new();
    ENABLED.get_or_init(|| {
        crate::config::env_str(ENV_MUTANT)
            .ok()
            .flatten()
            .and_then(|v| parse_list(&v).ok())
            .unwrap_or_default()
    })
}

/// Whether the bug `m` is switched on. Always `false` in a release build.
#[inline]
pub fn active(m: Mutant) -> bool {
    COMPILED_IN && enabled().contains(&m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for &m in Mutant::ALL {
            assert_eq!(Mutant::parse(m.name()), Some(m));
        }
        assert!(
            parse_list("no-such-bug")
                .unwrap_err()
                .contains("no-such-bug")
        );
        assert_eq!(parse_list(" , ").unwrap(), vec![]);
        if COMPILED_IN {
            assert_eq!(
                parse_list("split-checksum").unwrap(),
                vec![Mutant::SplitChecksum]
            );
        } else {
            assert!(parse_list("split-checksum").is_err());
        }
    }
}
