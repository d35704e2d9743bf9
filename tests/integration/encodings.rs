//! Source encodings against this machine's Python: every decoder on every byte sequence its
//! codec defines, the codec lookup on many spellings of every codec name, and the encodings
//! corpus (modules in every codec trifecta claims, plus undecodable bytes, unknown and
//! unsupported codecs) through the real `trifecta ast index` and `ast symbols`.
//!
//! They need `python3` (or `TRIFECTA_PYTHON`). Without it they say SKIPPED and pass, except
//! under CI (`CI` set), where a missing Python fails them.

use crate::support;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use trifecta::symbols::encoding::{self, Codec};
use trifecta::symbols::extract::{decoded_source, extract};

/// The Python to compare with, or `None` (after saying so) when there is none outside CI.
fn python() -> Option<String> {
    let py = std::env::var("TRIFECTA_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    match Command::new(&py).arg("--version").output() {
        Ok(o) if o.status.success() => Some(py),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{py} is required in CI to check encodings against Python"
            );
            eprintln!("SKIPPED: {py} not found; the encodings tests compare with Python");
            None
        }
    }
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name)
}

/// Run a script of tests/corpus; returns its stdout.
fn run_script(py: &str, name: &str, args: &[&std::ffi::OsStr]) -> String {
    let out = Command::new(py)
        .arg(script(name))
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[derive(Deserialize)]
struct Answer {
    text: String,
    /// (start, end, reason, str(UnicodeDecodeError)).
    errors: Vec<(usize, usize, String, String)>,
}

/// Where two decodings first differ, with a little context.
fn first_difference(ours: &str, theirs: &str) -> String {
    let (a, b): (Vec<char>, Vec<char>) = (ours.chars().collect(), theirs.chars().collect());
    let at = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let window = |v: &[char]| -> String {
        v[at.saturating_sub(3)..(at + 3).min(v.len())]
            .iter()
            .map(|c| format!("U+{:04X} ", u32::from(*c)))
            .collect()
    };
    format!(
        "char {at} of {}/{}: ours {} python {}",
        a.len(),
        b.len(),
        window(&a),
        window(&b)
    )
}

#[test]
fn encodings_decoders_match_python_on_every_sequence() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let codecs: BTreeMap<&str, Codec> = encoding::text_codecs().collect();
    let mut args: Vec<&std::ffi::OsStr> = vec!["decode".as_ref(), dir.path().as_os_str()];
    args.extend(codecs.keys().map(|k| std::ffi::OsStr::new(*k)));
    run_script(&py, "codec_probe.py", &args);

    let mut compared = 0;
    let (mut sequences, mut bytes) = (0usize, 0usize);
    let mut failures = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .expect("read probe dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .collect();
    entries.sort();
    for bin in entries {
        let stem = bin
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        let codec = codecs[stem.split('.').next().expect("codec")];
        let input = std::fs::read(&bin).expect("read probe");
        let answer: Answer = serde_json::from_slice(
            &std::fs::read(bin.with_extension("json")).expect("read answer"),
        )
        .expect("answer JSON");
        let ours = encoding::decode(codec, &input);
        compared += 1;
        // Probe sets separate sequences with newlines, except GB18030's valid four-byte ones.
        sequences += if stem.ends_with(".four") {
            input.len() / 4
        } else {
            input.iter().filter(|&&b| b == b'\n').count()
        };
        bytes += input.len();
        if ours.text != answer.text {
            failures.push(format!(
                "{stem}: text differs at {}",
                first_difference(&ours.text, &answer.text)
            ));
        }
        let ours_errors: Vec<(usize, usize, String, String)> = ours
            .errors
            .iter()
            .map(|e| (e.start, e.end, e.reason.to_owned(), e.to_string()))
            .collect();
        if let Some((i, (o, p))) = ours_errors
            .iter()
            .zip(&answer.errors)
            .enumerate()
            .find(|(_, (o, p))| o != p)
        {
            failures.push(format!(
                "{stem}: error {i} differs: ours {o:?}, python {p:?}"
            ));
        } else if ours_errors.len() != answer.errors.len() {
            failures.push(format!(
                "{stem}: {} errors, python {}",
                ours_errors.len(),
                answer.errors.len()
            ));
        }
    }
    eprintln!(
        "encodings: {} codecs, {compared} probe sets, {sequences} sequences ({bytes} bytes) \
         compared with Python",
        codecs.len()
    );
    // Guards the test itself: every codec has at least its one-byte probe set.
    assert!(
        compared >= codecs.len() && codecs.len() >= 70,
        "too little compared"
    );
    assert!(
        failures.is_empty(),
        "{} probe sets differ from Python:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[derive(Deserialize)]
struct NameOutcome {
    name: String,
    /// The module, hex-encoded.
    source: String,
    outcome: String,
    /// The string literal's value when Python accepted the module.
    value: Option<String>,
}

/// Messages CPython gives before parsing, which we must reproduce exactly. ("(unicode error)
/// ..." is the tokenizer's, for invalid UTF-8 in a string of a module read as UTF-8: we report
/// its line without a message.)
fn is_encoding_message(m: &str) -> bool {
    !m.starts_with("(unicode error)")
        && (m.starts_with("unknown encoding: ")
            || m.starts_with("encoding problem: ")
            || m.contains("is not a text encoding")
            || m.starts_with("decoding with ")
            || m.contains("codec can't decode"))
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// The value of the probe module's `x = '...'`, read off the decoded text (None when it holds a
/// quote or backslash, whose meaning the raw text does not give).
fn literal(text: &str) -> Option<String> {
    let line = text.lines().nth(1)?;
    let inner = line.strip_prefix("x = '")?.strip_suffix('\'')?;
    (!inner.contains(['\'', '\\'])).then(|| inner.to_owned())
}

#[test]
fn encodings_lookup_matches_python_for_every_spelling() {
    let Some(py) = python() else { return };
    let lines = run_script(&py, "codec_probe.py", &["names".as_ref()]);
    let mut failures = Vec::new();
    let (mut checked, mut decoded, mut refused, mut values) = (0, 0, 0, 0);
    for line in lines.lines() {
        let NameOutcome {
            name,
            source,
            outcome,
            value,
        } = serde_json::from_str(line).expect("JSON line");
        let source = unhex(&source);
        let table = extract(&source);
        let (text, _) = decoded_source(&source);
        let ours = match table.syntax_errors.first() {
            None => "ok".to_owned(),
            Some(e) => e.message.clone().unwrap_or_else(|| "<parse error>".into()),
        };
        checked += 1;
        let fine = if ours.starts_with("unsupported encoding: ") {
            // Allowed only where Python has a text codec we do not decode: then Python either
            // decodes the module or fails while decoding, but its lookup found the codec.
            !(outcome.starts_with("unknown encoding: ")
                || outcome.starts_with("encoding problem: ")
                || outcome.contains("is not a text encoding"))
        } else if outcome == "ok" {
            decoded += 1;
            // The decoded string must be Python's: a name looked up as the wrong codec shows.
            let ours_value = literal(&text);
            values += usize::from(ours_value.is_some());
            ours == "ok" && (ours_value.is_none() || ours_value == value)
        } else if is_encoding_message(&outcome) {
            refused += 1;
            ours == outcome
        } else {
            // Decoded, then the text does not parse (an EBCDIC page, say).
            ours == "<parse error>"
        };
        if !fine {
            let ours_value = literal(&text);
            failures.push(format!(
                "{name:?}: ours {ours:?} {ours_value:?}, python {outcome:?} {value:?}"
            ));
        }
    }
    eprintln!(
        "encodings: {checked} cookie spellings x probes, {decoded} decoded ({values} values \
         compared), {refused} refused"
    );
    assert!(
        checked > 5000 && decoded > 1000 && values > 1000 && refused > 1000,
        "too few spellings"
    );
    assert!(
        failures.is_empty(),
        "{} spellings differ from Python:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[derive(Deserialize)]
struct Expected {
    file: String,
    case: String,
    python: String,
    #[serde(default)]
    symbols: Option<Value>,
    #[serde(default)]
    error_line: Option<u32>,
    #[serde(default)]
    unsupported: bool,
}

#[test]
fn corpus_encodings_match_python_ast() {
    let Some(py) = python() else { return };
    let seg = tempfile::tempdir().expect("tempdir");
    run_script(&py, "encodings_corpus.py", &[seg.path().as_os_str()]);
    let expected: Vec<Expected> = std::fs::read_to_string(seg.path().join("expected.jsonl"))
        .expect("expected.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("expected record"))
        .collect();

    let mut cmd = support::trifecta();
    cmd.args([
        "ast",
        "index",
        "--format",
        "jsonl",
        "--no-persist-cache",
        "--segment",
    ])
    .arg(seg.path());
    let out = support::run(&mut cmd);
    assert_eq!(out.code, Some(0), "ast index failed: {}", out.stderr);
    let ours: BTreeMap<String, Value> = out
        .stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("JSONL line");
            (v["file_rel"].as_str().expect("file_rel").to_owned(), v)
        })
        .collect();

    let mut failures = Vec::new();
    let (mut valid, mut non_ascii_names, mut encoding_errors, mut unsupported) = (0, 0, 0, 0);
    for e in &expected {
        let Some(got) = ours.get(&e.file) else {
            failures.push(format!("{}: not indexed", e.file));
            continue;
        };
        let errors = got["syntax_errors"].as_array().cloned().unwrap_or_default();
        let first_message = errors.first().and_then(|x| x["message"].as_str());
        let problem = if e.unsupported {
            unsupported += 1;
            // Python may or may not decode it; we must say we cannot, naming the codec.
            (!first_message.is_some_and(|m| m.starts_with("unsupported encoding: ")))
                .then(|| format!("expected an unsupported-encoding error, got {errors:?}"))
        } else if e.python == "ok" {
            valid += 1;
            let want = e.symbols.as_ref().expect("symbols with ok");
            if want.to_string().bytes().any(|b| b >= 0x80) {
                non_ascii_names += 1;
            }
            if !errors.is_empty() {
                Some(format!("Python accepts it, we report {errors:?}"))
            } else if &got["symbols"] != want {
                Some(format!(
                    "symbols differ:\n ours {}\n ast  {want}",
                    got["symbols"]
                ))
            } else {
                None
            }
        } else if let Some(line) = e.error_line {
            encoding_errors += 1;
            let want = json!({"line": line, "end_line": line, "message": e.python});
            (errors.first() != Some(&want))
                .then(|| format!("expected first syntax error {want}, got {errors:?}"))
        } else {
            // Decoded fine, then Python's parser refused it.
            errors
                .is_empty()
                .then(|| format!("Python refuses it ({}), we report no error", e.python))
        };
        if let Some(p) = problem {
            failures.push(format!("{} ({}): {p}", e.file, e.case));
        }
    }
    eprintln!(
        "encodings corpus: {} files, {valid} valid ({non_ascii_names} with non-ASCII names), \
         {encoding_errors} encoding errors, {unsupported} unsupported",
        expected.len()
    );
    // Guards the test itself against a generator that stopped generating.
    assert!(
        valid >= 100 && non_ascii_names >= 90 && encoding_errors >= 150 && unsupported >= 10,
        "the corpus is too small"
    );
    assert!(
        failures.is_empty(),
        "{} of {} files differ from Python:\n{}",
        failures.len(),
        expected.len(),
        failures.join("\n")
    );

    // The same through `ast symbols`: the message reaches the JSON a user reads.
    let o = support::symbols(seg.path(), "sym://python/mod/refused0", &[]);
    assert_eq!(
        o.json["syntax_errors"][0],
        json!({"line": 2, "end_line": 2, "message": "unknown encoding: foo"}),
        "{}",
        o.stdout
    );
    let o = support::symbols(seg.path(), "sym://python/mod/ok_gbk", &[]);
    assert_eq!(o.json["syntax_errors"], json!([]), "{}", o.stdout);
}

/// Writes encoding_rs's answers that tests/corpus/gen_codec_tables.py compares with Python to
/// generate `cjk_fixes.rs`: `TRIFECTA_WHATWG_DUMP=DIR cargo test --test integration --
/// --ignored whatwg_dump`.
#[test]
#[ignore = "a generator step, not a check; see tests/corpus/gen_codec_tables.py"]
fn whatwg_dump() {
    use std::io::Write;
    let Some(dir) = std::env::var_os("TRIFECTA_WHATWG_DUMP").map(PathBuf::from) else {
        eprintln!("SKIPPED: set TRIFECTA_WHATWG_DUMP to the directory to write to");
        return;
    };
    let answer = |enc: &'static encoding_rs::Encoding, b: &[u8]| -> String {
        match enc.decode_without_bom_handling_and_without_replacement(b) {
            Some(s) => s
                .chars()
                .map(|c| format!("{:x}", u32::from(c)))
                .collect::<Vec<_>>()
                .join(","),
            None => "-".into(),
        }
    };
    let file = |name: &str| {
        std::io::BufWriter::new(std::fs::File::create(dir.join(name)).expect("create dump"))
    };
    for label in ["gb18030", "big5", "shift_jis", "euc-jp", "euc-kr"] {
        let enc = encoding_rs::Encoding::for_label(label.as_bytes()).expect("label");
        let mut out = file(&format!("pairs-{label}.tsv"));
        for l in 0x80u8..=0xFF {
            for t in 0u8..=0xFF {
                writeln!(out, "{l:02x}{t:02x}\t{}", answer(enc, &[l, t])).expect("write");
            }
        }
    }
    let mut out = file("triples-euc-jp.tsv");
    for a in 0u8..=0xFF {
        for b in 0u8..=0xFF {
            let s = answer(encoding_rs::EUC_JP, &[0x8F, a, b]);
            writeln!(out, "8f{a:02x}{b:02x}\t{s}").expect("write");
        }
    }
    let mut out = file("gb18030-four.tsv");
    for lseq in 0u32..39420 {
        let b = [
            (lseq / 12600 + 0x81) as u8,
            (lseq / 1260 % 10 + 0x30) as u8,
            (lseq / 10 % 126 + 0x81) as u8,
            (lseq % 10 + 0x30) as u8,
        ];
        let s = answer(encoding_rs::GB18030, &b);
        writeln!(
            out,
            "{}\t{s}",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        )
        .expect("write");
    }
}
