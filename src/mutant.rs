//! Deliberate, named bugs ("mutants") that prove each release gate can fail.
//!
//! A gate that cannot fail is not a gate. Every required gate has a negative test
//! (`tests/integration/gate_mutants.rs`, and `gates_fail.rs` for the seeded crash and freshness
//! gates) that runs it with `trifecta-verify gates --mutant NAME` against a `trifecta` carrying
//! one realistic bug from this catalog and checks that it fails for the intended reason.
//!
//! Adding a bug: a variant here (with its name in [`Mutant::ALL`] and [`Mutant::name`]), an
//! `active(Mutant::X)` at the bug site, and a row in `gate_mutants.rs` naming the check that
//! must catch it.
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
    /// `ast cache verify` runs `integrity_check` but not the rows' checksums, so it calls a
    /// database with a damaged entry healthy (caught by `p2-corruption`).
    VerifySkipsChecksums,
    /// A lookup trusts a row without comparing its checksum, so a flipped payload bit is served
    /// as symbols (caught by `p2-corruption`).
    NoChecksumCheck,
    /// The cache lock wait ignores its timeout and blocks until the holder lets go (caught by
    /// `p2-locks`).
    BlockingLock,
    /// The size-warning threshold, configured in bytes, is compared as KiB, so the warning
    /// never fires at the configured size (caught by `p2-size`).
    SizeThresholdKib,
    /// SQLite's busy timeout is left at 0, so a process that meets another's write lock gives up
    /// on the cache instead of waiting (caught by `p2-stress-edits`, whose writers contend for
    /// the whole storm; `p2-stress` writes only in its first round and catches it only sometimes).
    BusyTimeoutZero,
    /// Telemetry's flush copies its buffer instead of draining it, so the flush on drop writes
    /// every event again (caught by `p2-stress`'s exact event counts).
    DoubleFlush,
    /// Hits are folded into a counter named `hit` instead of `hits`, so `ast cache stats`
    /// reports no hits (caught by `p2-success-metrics`).
    HitCounterTypo,
    /// `ast.cache.write` is emitted at level `full` instead of `lite`, so it is dropped at the
    /// default telemetry level (caught by `p2-telemetry`).
    WriteEventFullOnly,
    /// Event timestamps are written in local time with a `Z` suffix (caught by `p2-telemetry`,
    /// which runs in a zone far from UTC).
    LocalTimestamps,
    /// The segment id mixes in the process id, so one segment looks like many in the
    /// telemetry (caught by `p2-telemetry`).
    SegmentIdPerRun,
    /// The entry TTL, a duration in milliseconds, is converted as microseconds: 7 days become
    /// 19 years and nothing ever expires (caught by `p2-ttl`).
    TtlOff,
    /// The entry TTL is converted to seconds where milliseconds are meant: 7 days become about
    /// 10 minutes and entries expire almost at once (caught by `p2-ttl`).
    TtlSeconds,
    /// A hit never refreshes its entry's access time, so entries in daily use expire as if
    /// unused (caught by `p2-ttl`).
    AccessNotRefreshed,
    /// `ast index` never consults the cache: every module is re-extracted on every run (caught
    /// by `p5-index`).
    IndexIgnoresCache,
    /// Module files are opened with a plain path open, which follows symlinks out of the
    /// segment (caught by `p7-hostile-segment`).
    PlainModuleOpen,
    /// The segment path is used as spelled instead of canonicalised, so one segment spelled two
    /// ways reports two DB paths (caught by `g3-evidence-signals`).
    SegmentAsSpelled,
    /// Freshness is keyed on the file's (size, mtime) instead of its content, so a rewrite that
    /// keeps both is served the replaced version's symbols (caught by `p2-stress-edits`).
    SizeMtimeFreshness,
    /// A record read from the shared Redis cache is served without comparing its checksum, so
    /// a flipped bit in Redis becomes wrong symbols (caught by `p6-shared-tier`).
    RemoteNoChecksum,
    /// Read-only remote mode still writes to Redis, so a pull-request build can poison the
    /// shared cache (caught by `p6-shared-tier`).
    ReadOnlyWrites,
    /// The daemon's in-memory tier serves the entry it holds for a module without comparing its
    /// content key with the file's current content, so a rewritten module is answered with the
    /// replaced version's symbols (caught by `p2-daemon-cli`).
    HotTierNoKeyCheck,
    /// The daemon keeps the cache it opened for its start-up maintenance open for the rest of
    /// its life (and with it the shared cache lock), so `ast cache clear`, corruption recovery
    /// and maintenance in CLI processes can never take the exclusive lock (caught by
    /// `p2-daemon-cli`'s mid-storm clear).
    DaemonKeepsDbOpen,
    /// The database header probe reads through a descriptor of its own and closes it, which
    /// drops every POSIX lock this process holds on the database, including those of
    /// connections other daemon threads have open (caught by
    /// `tests/integration/daemon_db_locks.rs`, which watches the daemon's lock from another
    /// process; `p2-daemon-cli` catches it only on some seeds).
    ProbeClosesDb,
}

impl Mutant {
    /// Every mutant, in catalog order.
    pub const ALL: &'static [Mutant] = &[
        Mutant::SplitChecksum,
        Mutant::VerifySkipsChecksums,
        Mutant::NoChecksumCheck,
        Mutant::BlockingLock,
        Mutant::SizeThresholdKib,
        Mutant::BusyTimeoutZero,
        Mutant::DoubleFlush,
        Mutant::HitCounterTypo,
        Mutant::WriteEventFullOnly,
        Mutant::LocalTimestamps,
        Mutant::SegmentIdPerRun,
        Mutant::TtlOff,
        Mutant::TtlSeconds,
        Mutant::AccessNotRefreshed,
        Mutant::IndexIgnoresCache,
        Mutant::PlainModuleOpen,
        Mutant::SegmentAsSpelled,
        Mutant::SizeMtimeFreshness,
        Mutant::RemoteNoChecksum,
        Mutant::ReadOnlyWrites,
        Mutant::HotTierNoKeyCheck,
        Mutant::DaemonKeepsDbOpen,
        Mutant::ProbeClosesDb,
    ];

    /// The stable name used in `TRIFECTA_MUTANT`.
    pub fn name(self) -> &'static str {
        match self {
            Mutant::SplitChecksum => "split-checksum",
            Mutant::VerifySkipsChecksums => "verify-skips-checksums",
            Mutant::NoChecksumCheck => "no-checksum-check",
            Mutant::BlockingLock => "blocking-lock",
            Mutant::SizeThresholdKib => "size-threshold-kib",
            Mutant::BusyTimeoutZero => "busy-timeout-zero",
            Mutant::DoubleFlush => "double-flush",
            Mutant::HitCounterTypo => "hit-counter-typo",
            Mutant::WriteEventFullOnly => "write-event-full-only",
            Mutant::LocalTimestamps => "local-timestamps",
            Mutant::SegmentIdPerRun => "segment-id-per-run",
            Mutant::TtlOff => "ttl-off",
            Mutant::TtlSeconds => "ttl-seconds",
            Mutant::AccessNotRefreshed => "access-not-refreshed",
            Mutant::IndexIgnoresCache => "index-ignores-cache",
            Mutant::PlainModuleOpen => "plain-module-open",
            Mutant::SegmentAsSpelled => "segment-as-spelled",
            Mutant::SizeMtimeFreshness => "size-mtime-freshness",
            Mutant::RemoteNoChecksum => "remote-no-checksum",
            Mutant::ReadOnlyWrites => "read-only-writes",
            Mutant::HotTierNoKeyCheck => "hot-tier-no-key-check",
            Mutant::DaemonKeepsDbOpen => "daemon-keeps-db-open",
            Mutant::ProbeClosesDb => "probe-closes-db",
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

static ENABLED: OnceLock<Vec<Mutant>> = OnceLock::new();

/// Switch on `mutants` for this process (from `config::Config::install`, which has validated
/// them); the first call wins. Without it, none is on.
pub fn install(mutants: &[Mutant]) {
    let _ = ENABLED.set(mutants.to_vec());
}

fn enabled() -> &'static [Mutant] {
    ENABLED.get().map_or(&[], Vec::as_slice)
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
