//! The JSON contract, byte for byte: a transcript of commands on a copy of the fixture segment
//! (`scenarios/verify-basic`), compared with `tests/golden/cli_contract.txt`.
//!
//! Every refactor of the layers between the command line and the stores must leave stdout and
//! the exit codes exactly as they were: key order, spacing, error codes and messages included.
//! Only what cannot be stable is masked: the temp segment's path (`<segment>`), and by key the
//! values that measure time or bytes on disk (`<n>`).
//!
//! After an intended change to the contract, regenerate with
//! `TRIFECTA_BLESS=1 cargo test --test integration golden` and review the diff like code.
//! `TRIFECTA_GOLDEN_BIN=<path>` runs the transcript with another build (e.g. the last release)
//! instead of this one: the golden was first written by the build before the middle-layer
//! refactor, and this build had to match it.

use crate::support::{copy_tree, trifecta};
use std::path::Path;

/// Keys whose numeric values depend on the clock or the file system, not on the contract.
const VOLATILE: &[&str] = &[
    "wall_ms",
    "mb_per_s",
    "jobs",
    "db_bytes",
    "wal_bytes",
    "db_bytes_before",
    "db_bytes_after",
    "payload_bytes",
    "oldest_access_ms",
    "newest_access_ms",
    "evicted_bytes",
    "created_ms",
    "last_maintenance_ms",
    "counters_zeroed_ms",
];

/// The transcript's commands: `ENV=value` prefixes set variables, `{seg}` is the segment.
const SCRIPT: &[&str] = &[
    "ast symbols sym://python/mod/pkg.utils --segment {seg} --persist-cache",
    "ast symbols sym://python/mod/pkg.utils --segment {seg} --persist-cache",
    "ast symbols sym://python/type/pkg.models.Point --segment {seg}",
    "ast symbols sym://python/type/pkg.models.Square#area --segment {seg}",
    "ast symbols sym://python/type/pkg.models.User#missing --segment {seg}",
    "ast symbols sym://python/mod/pkg.broken --segment {seg}",
    "ast symbols sym://python/mod/no.such.module --segment {seg}",
    "ast symbols sym://python/mod/../etc --segment {seg}",
    "ast symbols not-a-uri --segment {seg}",
    "ast symbols sym://python/mod/pkg --segment {seg}/no-such-dir",
    "TRIFECTA_AST_TTL_DAYS=soon ast symbols sym://python/mod/pkg --segment {seg}",
    "ast symbols sym://python/mod/pkg --segment {seg} --no-such-flag",
    "ast index --segment {seg} --persist-cache",
    "ast index --segment {seg} --persist-cache --format jsonl",
    "ast index --segment {seg} --jobs 0",
    "ast cache stats --segment {seg} --format json",
    "ast cache verify --segment {seg} --format json",
    "ast cache path --segment {seg} --format json",
    "ast cache path --segment {seg}",
    "ast cache prune --segment {seg}",
    "ast cache clear --segment {seg}",
    "ast cache stats --segment {seg} --format json",
    "ast cache stats --segment {seg} --zero --format json",
    "ast symbols sym://python/type/pkg.models.Square#area --segment {seg} --persist-cache",
    "ast cache stats --segment {seg} --zero --format json",
];

/// Mask `"key": <number>` for every volatile key, wherever it appears.
fn mask(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let mut l = line.to_string();
        for key in VOLATILE {
            for pattern in [format!("\"{key}\": "), format!("\"{key}\":")] {
                if let Some(i) = l.find(&pattern) {
                    let start = i + pattern.len();
                    let end = l[start..]
                        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
                        .map_or(l.len(), |n| start + n);
                    if end > start {
                        l.replace_range(start..end, "<n>");
                    }
                }
            }
        }
        out.push_str(&l);
    }
    out
}

fn transcript(seg: &Path) -> String {
    let seg_text = seg.to_str().unwrap();
    let mut out = String::new();
    for line in SCRIPT {
        let mut cmd = match std::env::var_os("TRIFECTA_GOLDEN_BIN") {
            Some(bin) => assert_cmd::Command::new(bin),
            None => trifecta(),
        };
        let mut words = line.split(' ').peekable();
        while let Some((k, v)) = words.peek().and_then(|w| w.split_once('=')) {
            cmd.env(k, v);
            words.next();
        }
        let args: Vec<String> = words.map(|w| w.replace("{seg}", seg_text)).collect();
        let o = cmd.args(&args).output().unwrap();
        let stdout = String::from_utf8_lossy(&o.stdout).replace(seg_text, "<segment>");
        out.push_str(&format!(
            "$ trifecta {line}\nexit {}\n{}\n",
            o.status.code().unwrap_or(-1),
            mask(&stdout).trim_end()
        ));
    }
    out
}

#[test]
fn json_contract_and_error_codes_are_byte_identical_on_the_fixture_segment() {
    let d = tempfile::tempdir().unwrap();
    let seg = d.path().join("segment");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    copy_tree(&repo.join("scenarios/verify-basic/segment"), &seg);
    let seg = seg.canonicalize().unwrap();
    let got = transcript(&seg);
    let golden = repo.join("tests/golden/cli_contract.txt");
    if std::env::var_os("TRIFECTA_BLESS").is_some() {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, &got).unwrap();
    }
    let want = std::fs::read_to_string(&golden)
        .unwrap_or_else(|e| panic!("{}: {e} (bless with TRIFECTA_BLESS=1)", golden.display()));
    if got != want {
        let first = got
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(got.lines().count().min(want.lines().count()));
        panic!(
            "the CLI contract changed at line {}:\n  got:  {:?}\n  want: {:?}\n(if intended, bless with TRIFECTA_BLESS=1 and review the diff)",
            first + 1,
            got.lines().nth(first),
            want.lines().nth(first)
        );
    }
}

#[test]
fn masking_touches_only_volatile_numbers() {
    assert_eq!(
        mask("{\n  \"wall_ms\": 12.5,\n  \"files\": 5\n}\n"),
        "{\n  \"wall_ms\": <n>,\n  \"files\": 5\n}\n"
    );
    assert_eq!(mask("\"jobs\":2,\"hits\":3"), "\"jobs\":<n>,\"hits\":3");
}
