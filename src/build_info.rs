//! What this binary was built from, as baked in by `build.rs`: the git commit, whether the build
//! inputs had uncommitted changes, the build profile and the parser/SQLite versions compiled in.
//! Both binaries print it as clap's long version (`--version`), and `trifecta-verify` parses the
//! same lines back out of the binary under test ([`parse`]) to name the exact build it gated.

use std::sync::OnceLock;

/// Commit the binary was built from (`git rev-parse HEAD`), or `unknown` outside a checkout.
pub const GIT_COMMIT: &str = env!("TRIFECTA_GIT_COMMIT");
/// `clean`, `dirty` (uncommitted changes in `src/`, `build.rs`, `Cargo.toml` or `Cargo.lock`)
/// or `unknown`.
pub const GIT_TREE: &str = env!("TRIFECTA_GIT_TREE");
/// Cargo profile (`debug` or `release`): mutants ([`crate::mutant`]) exist only in debug builds.
pub const PROFILE: &str = env!("TRIFECTA_PROFILE");

/// Label of the commit line in the long version; [`parse`] looks for it.
const COMMIT_KEY: &str = "commit:";

/// Everything after the first line of `--version` (the first stays `<name> <semver>` for tools
/// that parse it). Built once per process; SQLite's version is the compiled-in library's
/// (`sqlite3_libversion`, a static string — no I/O, so start-up stays cheap).
pub fn long_version() -> &'static str {
    static LONG: OnceLock<String> = OnceLock::new();
    LONG.get_or_init(|| {
        format!(
            "{}\n{COMMIT_KEY} {GIT_COMMIT} ({GIT_TREE})\nprofile: {PROFILE}\nsqlite: {}\ntree-sitter: {}\ntree-sitter-python: {}\nruff_python_parser: {}\nrusqlite: {}",
            env!("CARGO_PKG_VERSION"),
            rusqlite::version(),
            env!("TRIFECTA_DEP_TREE_SITTER"),
            env!("TRIFECTA_DEP_TREE_SITTER_PYTHON"),
            env!("TRIFECTA_DEP_RUFF_PYTHON_PARSER"),
            env!("TRIFECTA_DEP_RUSQLITE"),
        )
    })
}

/// The build facts read back from some binary's `--version` text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Parsed {
    /// The commit named on the `commit:` line, if there is one.
    pub commit: Option<String>,
    /// `clean`/`dirty`/`unknown` as printed, if there is a commit line.
    pub tree: Option<String>,
}

/// Parse the `commit: <sha> (<tree>)` line of a `--version` text. A binary from before this
/// line existed (or a wrapper script) yields `None`s, never a guess.
pub fn parse(version_text: &str) -> Parsed {
    let Some(rest) = version_text
        .lines()
        .find_map(|l| l.trim().strip_prefix(COMMIT_KEY))
    else {
        return Parsed::default();
    };
    let mut parts = rest.split_whitespace();
    Parsed {
        commit: parts.next().map(str::to_string),
        tree: parts
            .next()
            .map(|t| t.trim_matches(|c| c == '(' || c == ')').to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_version_parses_back() {
        let text = format!("trifecta {}", long_version());
        assert!(text.starts_with(&format!("trifecta {}\n", env!("CARGO_PKG_VERSION"))));
        let p = parse(&text);
        assert_eq!(p.commit.as_deref(), Some(GIT_COMMIT));
        assert_eq!(p.tree.as_deref(), Some(GIT_TREE));
        for key in [
            "sqlite: 3.",
            "tree-sitter: ",
            "tree-sitter-python: ",
            "ruff_python_parser: ",
        ] {
            assert!(text.contains(key), "{key} in {text}");
        }
        assert!(!text.contains("unknown\ntree-sitter"), "{text}");
    }

    #[test]
    fn parse_without_commit_line_is_none() {
        assert_eq!(parse("trifecta 0.1.0"), Parsed::default());
        let p = parse("x 1\ncommit: abc123 (dirty)\n");
        assert_eq!(p.commit.as_deref(), Some("abc123"));
        assert_eq!(p.tree.as_deref(), Some("dirty"));
    }
}
