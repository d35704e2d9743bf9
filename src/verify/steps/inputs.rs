//! What checks read besides step outputs: the segment's telemetry (jq `on = "telemetry"`, the
//! leak check) and an uncached reference run of a URI on a fresh copy of the sources
//! (`baseline`, and `stress` with `[steps.edit]`).

use crate::verify::process::ProcSpec;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Telemetry text of the segment: rotated siblings oldest first (`events.N.jsonl` … `.1`), then
/// `events.jsonl`. Honours the contract's layout; a gate that sets `TRIFECTA_TELEMETRY_DIR` must
/// point it inside the segment at `_ctx/telemetry`.
///
/// Read with the tool's own telemetry reader ([`crate::telemetry::read::events_text`]), so the
/// checker survives a hostile tree the same way: only regular files are read, and a link where
/// `_ctx` or `_ctx/telemetry` belongs is an `InvalidData` error, never followed.
pub fn telemetry_text(segment: &Path) -> std::io::Result<String> {
    let location = crate::telemetry::Location::in_segment(segment, crate::telemetry::DEFAULT_DIR);
    Ok(crate::telemetry::read::events_text(&location)?.unwrap_or_default())
}

/// The reference run for `uri`: uncached, telemetry off, on the segment copy `fresh`.
pub fn uncached_spec(trifecta: &Path, uri: &str, fresh: &Path) -> ProcSpec {
    ProcSpec {
        program: trifecta.to_path_buf(),
        args: vec![
            "ast".into(),
            "symbols".into(),
            uri.into(),
            "--segment".into(),
            fresh.to_string_lossy().into_owned(),
            "--no-persist-cache".into(),
            "--telemetry".into(),
            "off".into(),
        ],
        env: BTreeMap::<String, String>::new().into_iter().collect(),
        cwd: Some(fresh.to_path_buf()),
        timeout: Duration::from_secs(120),
    }
}

/// Copy the segment's sources (not the cache or telemetry) to a fresh directory.
pub fn copy_sources(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let name = e.file_name();
        if name == ".trifecta" || name == "_ctx" {
            continue;
        }
        let dest = to.join(&name);
        let ty = e.file_type()?;
        // Never follow a link or open a FIFO/device: links are copied as links, the rest skipped.
        if ty.is_dir() {
            crate::verify::workspace::copy_tree(&e.path(), &dest)?;
        } else if ty.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path())?, dest)?;
        } else if ty.is_file() {
            std::fs::copy(e.path(), dest)?;
        }
    }
    Ok(())
}
