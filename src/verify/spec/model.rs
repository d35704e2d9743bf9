//! The gate and scenario data model: what a `gates/*.toml` file or a `scenario.toml` may say.
//! Steps are [`Step`]s: each kind's fields and rules live in its own file under
//! `verify::steps::kinds`.

pub use crate::verify::steps::kinds::{Step, StepSpec};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub(super) fn yes() -> bool {
    true
}
pub(super) fn default_gate_timeout() -> u64 {
    600
}

/// A validated gate.
#[derive(Debug, Clone)]
pub struct Gate {
    /// Stable id (`--only` selects by it).
    pub id: String,
    /// One-line title.
    pub title: String,
    /// What the gate proves.
    pub description: String,
    /// A failing required gate fails the run (exit 1); optional ones are reported only.
    pub required: bool,
    /// Tags for `--tag`.
    pub tags: Vec<String>,
    /// Scenario folder name, if the gate works on a fixture segment.
    pub scenario: Option<String>,
    /// Whole-gate timeout.
    pub timeout_s: u64,
    /// Definition-of-Done requirements this gate is evidence for.
    pub dod: Vec<String>,
    /// Environment for every trifecta process of this gate (after the scenario's).
    pub env: BTreeMap<String, String>,
    /// Ordered steps.
    pub steps: Vec<StepSpec>,
    /// File the gate came from (for messages and reports).
    pub file: PathBuf,
}

/// `scenarios/<name>/scenario.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// What the fixture is.
    pub description: String,
    /// Sub-folder copied as the segment (default `segment`).
    #[serde(default = "default_segment")]
    pub segment: String,
    /// Environment for every trifecta process of gates using this scenario.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Sub-folder copied *beside* the segment (never inside it) for each gate run; `{outside}`
    /// names the copy. Hostile links point there, and `tree-snapshot` proves it is untouched.
    /// It may name the segment folder itself: the gate then gets a second, separate copy of
    /// the same sources at another path (a second "machine", gate `p6-shared-tier`).
    pub outside: Option<String>,
    /// Take `segment` and `outside` from this sibling scenario's folder instead of this one's
    /// (the same sources under another environment, without a second copy in the repository).
    pub from: Option<String>,
    /// Set when loading: the folder `segment` and `outside` are read from.
    #[serde(skip)]
    pub dir: PathBuf,
}

fn default_segment() -> String {
    "segment".to_string()
}
