//! `kind = "stress"`: the step's fields and rules; the storm is in [`storm`], the freshness
//! check of `[steps.edit]` in [`freshness`], the actions of `[[steps.during]]` in [`during`].

pub mod during;
pub mod freshness;
pub mod storm;

use super::{StepFuture, StepKind, ValidateCx, plain_relative};
use crate::verify::steps::GateCtx;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The `kind` spelling.
pub const KIND: &str = "stress";

/// The smallest valid table of this kind (besides `kind`): the registry's test parses it.
pub const EXAMPLE: &str = "args = [\"x\"]";

/// `kind = "stress"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StressStep {
    /// Name under which all outputs are saved (as an array).
    pub name: Option<String>,
    /// Concurrent processes.
    #[serde(default = "default_procs")]
    pub procs: usize,
    /// Rounds per process.
    #[serde(default = "default_iterations")]
    pub iterations: usize,
    /// Arguments; `{uri}` expands to `uris[(proc + iteration) % len]`.
    pub args: Vec<String>,
    /// URIs cycled through `{uri}`.
    #[serde(default)]
    pub uris: Vec<String>,
    /// Extra environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Per-process timeout; the process group is killed on expiry.
    #[serde(default = "super::default_run_timeout")]
    pub timeout_s: u64,
    /// Rewrite a module while the storm runs, then check every answer for it against the edit
    /// history (freshness under concurrency).
    pub edit: Option<StressEdit>,
    /// Arguments of the odd-numbered processes (default: `args`), for a storm of two kinds of
    /// client (e.g. half through the daemon, half direct).
    #[serde(default)]
    pub odd_args: Option<Vec<String>>,
    /// Actions while the storm runs (a fault injected, `ast cache clear`…), see [`during`].
    #[serde(default)]
    pub during: Vec<during::During>,
}

/// `[steps.edit]` of a stress step: one module rewritten atomically, over and over, during the
/// storm. Version `k` (k = 0, 1, 2, … never reused, so each is on disk only briefly) is the
/// original text plus `def _stress_edit_<k, 6 digits>(): pass` (all versions the same size). Each answer for `uri` must be the uncached
/// answer for a version that was on disk at some moment between the invocation's start and end.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StressEdit {
    /// Segment-relative path of the module to rewrite.
    pub file: String,
    /// The URI (one of the step's `uris`) that reads `file`.
    pub uri: String,
    /// Pause between rewrites.
    #[serde(default = "default_edit_every_ms")]
    pub every_ms: u64,
    /// After each rewrite that gets a new mtime, this many rewrites restore the mtime of the
    /// version they replace (every version has the same size), so a cache that trusts
    /// (size, mtime) serves stale answers. With `keep_stat > 0`, at least one invocation must
    /// begin while such a version is on disk, or the check is vacuous.
    #[serde(default)]
    pub keep_stat: usize,
}

fn default_procs() -> usize {
    10
}

fn default_iterations() -> usize {
    3
}

fn default_edit_every_ms() -> u64 {
    3
}

impl StepKind for StressStep {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    fn names(&self) -> Vec<&str> {
        let during = self.during.iter().filter_map(|d| d.name.as_deref());
        self.name.as_deref().into_iter().chain(during).collect()
    }

    fn label(&self) -> String {
        format!(
            "{} ({} procs × {})",
            self.name.as_deref().unwrap_or("stress"),
            self.procs,
            self.iterations
        )
    }

    fn validate(&self, _cx: &ValidateCx, err: &mut dyn FnMut(&str, String)) {
        if self.procs == 0 || self.iterations == 0 {
            err("procs", "procs and iterations must be ≥ 1".into());
        }
        let uses_uri = self
            .args
            .iter()
            .chain(self.odd_args.iter().flatten())
            .any(|a| a.contains("{uri}"));
        if uses_uri && self.uris.is_empty() {
            err("uris", "args use {uri} but `uris` is empty".into());
        }
        for (field, message) in self.during.iter().flat_map(during::During::problems) {
            err(field, message);
        }
        if let Some(e) = &self.edit {
            if !self.uris.contains(&e.uri) {
                err("uri", format!("edit uri `{}` is not one of `uris`", e.uri));
            }
            if !plain_relative(&e.file) {
                err(
                    "file",
                    "edit file must be a relative path inside the segment".into(),
                );
            }
        }
    }
    fn exec<'a>(&'a self, ctx: &'a mut GateCtx, index: usize) -> StepFuture<'a> {
        Box::pin(async move { storm::stress(ctx, self, index).await })
    }
}
