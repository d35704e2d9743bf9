//! The Evidence Header's facts, each captured from the environment at run time: commit and
//! dirty flag (git2), UTC date, tool versions (trifecta, rustc, SQLite, libgit2) and the OS.

use super::report::Evidence;
use std::path::Path;
use std::process::Command;

fn capture(prog: &str, args: &[&str]) -> String {
    match Command::new(prog).args(args).output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Ok(o) => format!("unknown ({prog} exited {})", o.status),
        Err(e) => format!("unknown ({prog}: {e})"),
    }
}

/// BLAKE3 (hex) of a file's bytes, or `unknown (<why>)`.
pub fn file_blake3(path: &Path) -> String {
    let mut h = blake3::Hasher::new();
    match std::fs::File::open(path).and_then(|mut f| std::io::copy(&mut f, &mut h)) {
        Ok(_) => h.finalize().to_hex().to_string(),
        Err(e) => format!("unknown ({e})"),
    }
}

fn os_description() -> String {
    let pretty = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| std::env::consts::OS.to_string());
    format!("{pretty} ({})", capture("uname", &["-srm"]))
}

/// UTC now as `2026-11-21T04:05:06Z`.
pub fn utc_now() -> String {
    format!("{:.0}", jiff::Timestamp::now())
}

/// Collect the header. `seed_source` is `flag` or `default`.
pub fn gather(
    checkout: &Path,
    trifecta: &Path,
    command_line: &str,
    seed: u64,
    seed_source: &str,
    rev: &str,
) -> Evidence {
    let (commit, dirty, dirty_paths) = match super::workspace::repo_state(checkout) {
        Ok(s) => (s.commit, s.dirty, s.dirty_paths),
        Err(e) => (format!("unknown ({e})"), false, vec![]),
    };
    let (maj, min, rev_) = git2::Version::get().libgit2_version();
    Evidence {
        commit,
        dirty,
        dirty_paths,
        date_utc: utc_now(),
        command_line: command_line.to_string(),
        trifecta_version: capture(&trifecta.to_string_lossy(), &["--version"]),
        trifecta_path: trifecta.to_string_lossy().into_owned(),
        trifecta_blake3: file_blake3(trifecta),
        rustc: capture("rustc", &["--version"]),
        sqlite: rusqlite::version().to_string(),
        libgit2: format!("{maj}.{min}.{rev_}"),
        os: os_description(),
        seed,
        seed_source: seed_source.to_string(),
        rev: rev.to_string(),
        mutant: crate::verify::process::passed_mutant(),
    }
}
