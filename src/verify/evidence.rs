//! The Evidence Header's facts, each captured from the environment at run time: commit and
//! dirty flag (git2), UTC date, tool versions (trifecta, rustc, SQLite, libgit2) and the OS —
//! and which build was gated: the binary's digest and the commit it names in its own
//! `--version`, compared with the checkout so a report never silently vouches for another build.

use super::event::Evidence;
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
    mutant: Option<&str>,
) -> Evidence {
    let (commit, dirty, dirty_paths) = match super::workspace::repo_state(checkout) {
        Ok(s) => (s.commit, s.dirty, s.dirty_paths),
        Err(e) => (format!("unknown ({e})"), false, vec![]),
    };
    let (maj, min, rev_) = git2::Version::get().libgit2_version();
    let trifecta_version = capture(&trifecta.to_string_lossy(), &["--version"]);
    let built = crate::build_info::parse(&trifecta_version);
    let mutant = mutant.map(str::to_string);
    let warnings = warnings(&commit, dirty, &built, mutant.as_deref());
    Evidence {
        commit,
        dirty,
        dirty_paths,
        date_utc: utc_now(),
        command_line: command_line.to_string(),
        trifecta_version,
        trifecta_path: trifecta.to_string_lossy().into_owned(),
        trifecta_blake3: file_blake3(trifecta),
        trifecta_commit: built.commit,
        trifecta_tree: built.tree,
        mutant,
        verifier_commit: format!(
            "{} ({})",
            crate::build_info::GIT_COMMIT,
            crate::build_info::GIT_TREE
        ),
        warnings,
        rustc: capture("rustc", &["--version"]),
        sqlite: rusqlite::version().to_string(),
        libgit2: format!("{maj}.{min}.{rev_}"),
        os: os_description(),
        seed,
        seed_source: seed_source.to_string(),
        rev: rev.to_string(),
    }
}

/// What weakens the claim "this checkout's commit passed": the binary under test was built from
/// another commit, from uncommitted changes, does not name its commit, or runs a mutant.
pub fn warnings(
    checkout_commit: &str,
    checkout_dirty: bool,
    built: &crate::build_info::Parsed,
    mutant: Option<&str>,
) -> Vec<String> {
    let mut w = Vec::new();
    match built.commit.as_deref() {
        None => w.push(
            "the binary under test does not name its build commit (`--version` has no `commit:` line): the commit gated is unknown".to_string(),
        ),
        Some("unknown") => w.push(
            "the binary under test was built outside a git checkout: the commit gated is unknown"
                .to_string(),
        ),
        Some(c) if c != checkout_commit => w.push(format!(
            "COMMIT MISMATCH: the binary under test was built from {c}, but the checkout is at {checkout_commit}; this run vouches for {c}, not for the checkout"
        )),
        Some(_) => {}
    }
    if built.tree.as_deref() == Some("dirty") {
        w.push(
            "the binary under test was built with uncommitted changes in its sources: no commit fully describes it"
                .to_string(),
        );
    } else if checkout_dirty && built.commit.is_some() {
        w.push(
            "the checkout has uncommitted changes (the binary's own sources were clean when built)"
                .to_string(),
        );
    }
    if let Some(m) = mutant {
        w.push(format!(
            "TRIFECTA_MUTANT={m}: this run tested a deliberately broken build; it is not a release verdict"
        ));
    }
    w
}

#[cfg(test)]
mod tests {
    use super::warnings;
    use crate::build_info::Parsed;

    fn built(c: &str, tree: &str) -> Parsed {
        Parsed {
            commit: Some(c.into()),
            tree: Some(tree.into()),
        }
    }

    #[test]
    fn matching_clean_build_has_no_warning() {
        assert!(warnings("abc", false, &built("abc", "clean"), None).is_empty());
    }

    #[test]
    fn mismatch_dirty_unknown_and_mutant_are_named() {
        let w = warnings("abc", false, &built("def", "clean"), None);
        assert!(
            w[0].starts_with("COMMIT MISMATCH") && w[0].contains("def"),
            "{w:?}"
        );
        let w = warnings("abc", true, &built("abc", "dirty"), None);
        assert!(w.len() == 1 && w[0].contains("uncommitted"), "{w:?}");
        let w = warnings("abc", false, &Parsed::default(), Some("split-checksum"));
        assert!(w[0].contains("does not name"), "{w:?}");
        assert!(w[1].contains("TRIFECTA_MUTANT=split-checksum"), "{w:?}");
    }
}
