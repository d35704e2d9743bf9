//! Reading `events.jsonl` and its rotated siblings, tolerantly and read-only.
//!
//! Files are visited oldest first (`events.N.jsonl` … `events.1.jsonl`, then `events.jsonl`)
//! and streamed line by line, so memory stays flat however big the log is. A line that is not
//! an event (blank, invalid UTF-8, not JSON, not an object, no string `cmd`, no parseable UTC
//! `ts`, or a last line without its newline) is *counted* and its location remembered (the
//! first [`MAX_MALFORMED_SHOWN`]), never silently skipped. Files are opened read-only: the
//! reader never rewrites, normalizes or truncates anything (the original tool's
//! `_normalize_events_file` did, and lost concurrent appends).
//!
//! A rotation that happens while a report is reading can make it miss or re-read one file's
//! worth of events; reports are statistics, and the next report is exact again.

use super::Location;
use crate::segment_fs::{Access, Anchored, FsError, Kind};
use serde_json::Value;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::writer::EVENTS_FILE;

/// Malformed lines whose location is reported individually.
pub const MAX_MALFORMED_SHOWN: usize = 10;

/// One parsed event line.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The `ts` field as written.
    pub ts: String,
    /// `ts` as Unix milliseconds.
    pub ts_ms: i64,
    /// `run_id` (empty when absent).
    pub run_id: String,
    /// `segment_id` (empty when absent).
    pub segment_id: String,
    /// Dotted command name.
    pub cmd: String,
    /// `args` (`{}` when absent).
    pub args: Value,
    /// `result` (`{}` when absent).
    pub result: Value,
    /// `timing_ms`, when it is a number.
    pub timing_ms: Option<f64>,
    /// `warnings` (string entries only).
    pub warnings: Vec<String>,
    /// `x` (`{}` when absent).
    pub x: Value,
    /// `cache_type`, when present.
    pub cache_type: Option<String>,
}

impl Record {
    /// `result.<key>` as a string, if it is one.
    pub fn result_str(&self, key: &str) -> Option<&str> {
        self.result.get(key).and_then(Value::as_str)
    }

    /// `result.<key>` as a non-negative number, if it is one.
    pub fn result_num(&self, key: &str) -> Option<f64> {
        self.result
            .get(key)
            .and_then(Value::as_f64)
            .filter(|v| v.is_finite())
    }
}

/// Why a line is not an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// Empty or whitespace only.
    Blank,
    /// Not valid UTF-8.
    InvalidUtf8,
    /// Not JSON (with serde's message).
    NotJson(String),
    /// JSON, but not an object.
    NotObject,
    /// No string field of this name.
    MissingField(&'static str),
    /// `ts` is not an RFC 3339 timestamp.
    BadTimestamp,
    /// The file's last line has no newline: a write in progress or a torn tail.
    Incomplete,
}

impl std::fmt::Display for LineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineError::Blank => f.write_str("blank line"),
            LineError::InvalidUtf8 => f.write_str("invalid UTF-8"),
            LineError::NotJson(e) => write!(f, "not JSON: {e}"),
            LineError::NotObject => f.write_str("not a JSON object"),
            LineError::MissingField(k) => write!(f, "missing string field `{k}`"),
            LineError::BadTimestamp => f.write_str("`ts` is not an RFC 3339 timestamp"),
            LineError::Incomplete => f.write_str("last line has no newline (incomplete write)"),
        }
    }
}

/// Parse one line (without its newline). Never panics, whatever the bytes.
pub fn parse_line(bytes: &[u8]) -> Result<Record, LineError> {
    let text = std::str::from_utf8(bytes).map_err(|_| LineError::InvalidUtf8)?;
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(LineError::Blank);
    }
    let v: Value = serde_json::from_str(text).map_err(|e| LineError::NotJson(e.to_string()))?;
    let Value::Object(mut m) = v else {
        return Err(LineError::NotObject);
    };
    let mut take_str = |k: &str| match m.remove(k) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let cmd = take_str("cmd").ok_or(LineError::MissingField("cmd"))?;
    let ts = take_str("ts").ok_or(LineError::MissingField("ts"))?;
    let run_id = take_str("run_id").unwrap_or_default();
    let segment_id = take_str("segment_id").unwrap_or_default();
    let cache_type = take_str("cache_type");
    let ts_ms = ts
        .parse::<jiff::Timestamp>()
        .map_err(|_| LineError::BadTimestamp)?
        .as_millisecond();
    let obj = |v: Option<Value>| v.unwrap_or_else(|| Value::Object(Default::default()));
    let warnings = match m.remove("warnings") {
        Some(Value::Array(a)) => a
            .into_iter()
            .filter_map(|w| match w {
                Value::String(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(Record {
        ts,
        ts_ms,
        run_id,
        segment_id,
        cmd,
        args: obj(m.remove("args")),
        result: obj(m.remove("result")),
        timing_ms: m.get("timing_ms").and_then(Value::as_f64),
        warnings,
        x: obj(m.remove("x")),
        cache_type,
    })
}

/// Where a malformed line is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Malformed {
    /// File name inside the telemetry directory.
    pub file: String,
    /// 1-based line number.
    pub line: u64,
    /// Why it is not an event.
    pub reason: String,
}

/// One file that was read.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileInfo {
    /// File name inside the telemetry directory.
    pub name: String,
    /// Size in bytes when read.
    pub bytes: u64,
    /// Lines read (events plus malformed).
    pub lines: u64,
}

/// What a scan saw besides the events themselves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanSummary {
    /// Whether the telemetry directory exists.
    pub dir_exists: bool,
    /// Files read, oldest first.
    pub files: Vec<FileInfo>,
    /// Malformed lines in total.
    pub malformed: u64,
    /// The first few malformed lines.
    pub malformed_first: Vec<Malformed>,
}

/// The event file names in `dir`, oldest first: regular files only (a planted link or FIFO
/// named like an event file is skipped, never followed or opened).
fn event_names(dir: &Anchored) -> io::Result<Vec<String>> {
    let mut rotated: Vec<(u64, String)> = Vec::new();
    let mut live = None;
    for (name, kind) in dir.entries()? {
        let Some(name) = name.to_str() else { continue };
        if kind != Kind::File {
            continue;
        }
        if name == EVENTS_FILE {
            live = Some(name.to_string());
        } else if let Some(n) = name
            .strip_prefix("events.")
            .and_then(|r| r.strip_suffix(".jsonl"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            rotated.push((n, name.to_string()));
        }
    }
    // Highest number = oldest.
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut out: Vec<String> = rotated.into_iter().map(|(_, p)| p).collect();
    out.extend(live);
    Ok(out)
}

/// The event files in the directory `dir` (named by the caller), oldest first. A missing
/// directory has none; a path that exists but is not a directory is an error.
pub fn event_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let Some(d) = Location::user(dir).for_read()? else {
        return Ok(Vec::new());
    };
    Ok(event_names(&d)?.into_iter().map(|n| dir.join(n)).collect())
}

/// The raw text of every event file in `location`, oldest first (`None` when the directory
/// does not exist). Only regular files are read; a link, FIFO or file where the directory
/// belongs is an `InvalidData` error, never followed.
pub fn events_text(location: &Location) -> io::Result<Option<String>> {
    let Some(dir) = location.for_read()? else {
        return Ok(None);
    };
    let mut text = String::new();
    for name in event_names(&dir)? {
        match dir.join(&name).open(Access::Read) {
            Ok(f) => {
                io::Read::read_to_string(&mut BufReader::new(f), &mut text)?;
            }
            Err(e) if e.is_not_found() => {}
            Err(FsError::Foreign { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Some(text))
}

/// Stream every event in `location` (oldest file first) to `on_event`.
pub fn scan_dir(location: &Location, mut on_event: impl FnMut(Record)) -> io::Result<ScanSummary> {
    let dir = location.for_read()?;
    let mut summary = ScanSummary {
        dir_exists: dir.is_some(),
        ..ScanSummary::default()
    };
    let Some(dir) = dir else {
        return Ok(summary);
    };
    for name in event_names(&dir)? {
        let file = match dir.join(&name).open(Access::Read) {
            Ok(f) => f,
            // Rotated away between listing and opening: nothing to read there any more.
            Err(e) if e.is_not_found() => continue,
            // Swapped for a link or FIFO since the listing: not ours to read.
            Err(FsError::Foreign { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut info = FileInfo {
            name: name.clone(),
            bytes,
            lines: 0,
        };
        scan_reader(BufReader::new(file), &mut |res| {
            info.lines += 1;
            match res {
                Ok(rec) => on_event(rec),
                Err(e) => {
                    summary.malformed += 1;
                    if summary.malformed_first.len() < MAX_MALFORMED_SHOWN {
                        summary.malformed_first.push(Malformed {
                            file: name.clone(),
                            line: info.lines,
                            reason: e.to_string(),
                        });
                    }
                }
            }
        })?;
        summary.files.push(info);
    }
    Ok(summary)
}

/// Split `r` into lines and parse each; the outcome of every line goes to `each`, in order.
pub fn scan_reader<R: BufRead>(
    mut r: R,
    each: &mut dyn FnMut(Result<Record, LineError>),
) -> io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        buf.clear();
        let n = r.read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            each(parse_line(&buf));
        } else {
            each(Err(LineError::Incomplete));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"ts":"2026-11-21T03:34:43.123Z","run_id":"r1","segment_id":"abcd1234","cmd":"ast.cache.hit","args":{},"result":{"status":"hit"},"timing_ms":1.5,"warnings":["w"],"x":{},"cache_type":"sqlite"}"#;

    #[test]
    fn parses_a_good_line() {
        let r = parse_line(GOOD.as_bytes()).unwrap();
        assert_eq!(r.cmd, "ast.cache.hit");
        assert_eq!(r.ts_ms, 1_795_232_083_123);
        assert_eq!(r.timing_ms, Some(1.5));
        assert_eq!(r.cache_type.as_deref(), Some("sqlite"));
        assert_eq!(r.warnings, ["w"]);
        assert_eq!(r.result_str("status"), Some("hit"));
    }

    #[test]
    fn rejects_each_kind_of_bad_line() {
        let cases: [(&[u8], LineError); 6] = [
            (b"", LineError::Blank),
            (b"\xff\xfe", LineError::InvalidUtf8),
            (b"[1,2]", LineError::NotObject),
            (
                br#"{"ts":"2026-11-21T03:34:43Z"}"#,
                LineError::MissingField("cmd"),
            ),
            (br#"{"cmd":"a"}"#, LineError::MissingField("ts")),
            (br#"{"cmd":"a","ts":"yesterday"}"#, LineError::BadTimestamp),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line).unwrap_err(), want);
        }
        assert!(matches!(parse_line(b"{nope"), Err(LineError::NotJson(_))));
    }

    #[test]
    fn counts_malformed_and_incomplete_lines_with_locations() {
        let data = format!("{GOOD}\nnot json\n\n{GOOD}\n{{\"cmd\":\"x\"");
        let mut ok = 0;
        let mut bad = Vec::new();
        scan_reader(data.as_bytes(), &mut |r| match r {
            Ok(_) => ok += 1,
            Err(e) => bad.push(e),
        })
        .unwrap();
        assert_eq!(ok, 2);
        assert_eq!(bad.len(), 3);
        assert_eq!(bad[1], LineError::Blank);
        assert_eq!(bad[2], LineError::Incomplete);
    }

    #[test]
    fn files_are_ordered_oldest_first() {
        let d = tempfile::tempdir().unwrap();
        for n in [
            "events.jsonl",
            "events.1.jsonl",
            "events.10.jsonl",
            "events.2.jsonl",
            "x.jsonl",
        ] {
            std::fs::write(d.path().join(n), b"").unwrap();
        }
        let names: Vec<String> = event_files(d.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "events.10.jsonl",
                "events.2.jsonl",
                "events.1.jsonl",
                "events.jsonl"
            ]
        );
    }

    #[test]
    fn missing_dir_is_empty_and_a_file_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let s = scan_dir(&Location::user(d.path().join("nope")), |_| {}).unwrap();
        assert!(!s.dir_exists);
        assert!(s.files.is_empty());
        let f = d.path().join("file");
        std::fs::write(&f, b"x").unwrap();
        assert!(scan_dir(&Location::user(&f), |_| {}).is_err());
    }
}
