//! Gate and scenario specifications: the TOML data model and its validation.
//!
//! Everything is checked before anything runs (`load_all`): every gate file parses with
//! `deny_unknown_fields`, ids are unique, scenarios exist, jq filters compile, corruption modes
//! are in the catalog and step references point at earlier named steps. Every problem is
//! reported as `file:line: message`, using the `toml` crate's spans.
//!
//! Steps are an internally tagged enum (`kind = "run"`). serde's internally tagged enums buffer
//! their content, which loses `toml` spans inside a step, so each step is first read as a
//! spanned table (that gives its line) and then converted to [`Step`].

use crate::cache::faults::CorruptionMode;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use toml::Spanned;

/// One validation problem, already located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// `path:line: message`.
    pub message: String,
}

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A gate as written in `gates/<file>.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGate {
    id: Spanned<String>,
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default = "yes")]
    required: bool,
    #[serde(default)]
    tags: Vec<String>,
    scenario: Option<Spanned<String>>,
    #[serde(default = "default_gate_timeout")]
    timeout_s: u64,
    #[serde(default)]
    dod: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    steps: Vec<Spanned<toml::Table>>,
}

fn yes() -> bool {
    true
}
fn default_gate_timeout() -> u64 {
    600
}
fn default_run_timeout() -> u64 {
    120
}
fn default_procs() -> usize {
    10
}
fn default_iterations() -> usize {
    3
}
fn default_kill_times() -> usize {
    3
}
fn default_kill_max_ms() -> u64 {
    60
}
fn default_telemetry() -> StepInput {
    StepInput::One("telemetry".to_string())
}
fn default_ok() -> String {
    "ok".to_string()
}
fn default_build() -> Vec<String> {
    ["cargo", "build", "--release", "--locked"]
        .map(String::from)
        .to_vec()
}
fn default_binary() -> Option<String> {
    Some("{target}/release/trifecta".to_string())
}
fn default_signal_paths() -> Vec<String> {
    vec!["src".to_string()]
}
fn one() -> usize {
    1
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

/// A step and where it was written.
#[derive(Debug, Clone)]
pub struct StepSpec {
    /// The step.
    pub step: Step,
    /// 1-based line of the step in its file.
    pub line: usize,
}

/// Every step kind. Actions change the world; checks (jq, integrity, files, baseline) only look.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Step {
    /// Clean git worktree of a revision + build there; later steps use its binary.
    Worktree(WorktreeStep),
    /// Run cargo in the checkout or the worktree.
    Cargo(CargoStep),
    /// Run the trifecta CLI once.
    Run(RunStep),
    /// N concurrent CLI processes × iterations.
    Stress(StressStep),
    /// Damage the cache DB with a catalog mode.
    Corrupt(CorruptStep),
    /// Another process holds the cache lock for a while.
    HoldLock(HoldLockStep),
    /// Stop every lock holder started by earlier `hold-lock` steps.
    Release(ReleaseStep),
    /// kill -9 a writer at seeded points.
    Kill(KillStep),
    /// Modify, touch or delete a source file of the segment.
    Edit(EditStep),
    /// Advance the test clock for later steps.
    Age(AgeStep),
    /// Code search in the checkout (single-factory style signals).
    Signal(SignalStep),
    /// Execute SQL on the segment's cache DB (fixture setup).
    Sqlite(SqliteStep),
    /// Record a file's digest for a later `files` `unchanged` check.
    Snapshot(SnapshotStep),
    /// jq filter (`jq -e` semantics) over telemetry or step outputs.
    Jq(JqStep),
    /// SQLite `PRAGMA integrity_check` on the cache DB.
    Integrity(IntegrityStep),
    /// Glob existence/absence/count checks.
    Files(FilesStep),
    /// Outputs equal an uncached run (symbols, file_rel, syntax_errors).
    Baseline(BaselineStep),
}

impl Step {
    /// The `kind` spelling.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Worktree(_) => "worktree",
            Step::Cargo(_) => "cargo",
            Step::Run(_) => "run",
            Step::Stress(_) => "stress",
            Step::Corrupt(_) => "corrupt",
            Step::HoldLock(_) => "hold-lock",
            Step::Release(_) => "release",
            Step::Kill(_) => "kill",
            Step::Edit(_) => "edit",
            Step::Age(_) => "age",
            Step::Signal(_) => "signal",
            Step::Sqlite(_) => "sqlite",
            Step::Snapshot(_) => "snapshot",
            Step::Jq(_) => "jq",
            Step::Integrity(_) => "integrity",
            Step::Files(_) => "files",
            Step::Baseline(_) => "baseline",
        }
    }

    /// The step's name, when it saves something later steps refer to.
    pub fn name(&self) -> Option<&str> {
        match self {
            Step::Run(s) => s.name.as_deref(),
            Step::Stress(s) => s.name.as_deref(),
            Step::Kill(s) => s.name.as_deref(),
            Step::Snapshot(s) => Some(&s.name),
            _ => None,
        }
    }

    /// Whether the step is a check (its failure does not stop the gate's later steps).
    pub fn is_check(&self) -> bool {
        matches!(
            self,
            Step::Jq(_) | Step::Integrity(_) | Step::Files(_) | Step::Baseline(_) | Step::Signal(_)
        )
    }
}

/// `kind = "worktree"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorktreeStep {
    /// Revision to check out (default: `--rev`, itself defaulting to HEAD).
    pub rev: Option<String>,
    /// Build command run in the worktree with `CARGO_TARGET_DIR={target}` (inside the temp dir).
    #[serde(default = "default_build")]
    pub build: Vec<String>,
    /// Binary that later steps use (`{target}`, `{worktree}` expand); `""` keeps the current one.
    #[serde(default = "default_binary")]
    pub binary: Option<String>,
    /// Build timeout.
    #[serde(default = "default_worktree_timeout")]
    pub timeout_s: u64,
}

fn default_worktree_timeout() -> u64 {
    3600
}

/// Where a cargo step runs.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CargoDir {
    /// The repository the verifier was started in (`--repo`).
    Checkout,
    /// The worktree made by an earlier `worktree` step (same target dir as its build).
    Worktree,
}

/// `kind = "cargo"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CargoStep {
    /// Arguments after `cargo`.
    pub args: Vec<String>,
    /// Where to run.
    #[serde(default = "default_cargo_dir")]
    pub dir: CargoDir,
    /// At least this many tests must pass (summed over `test result:` lines), so a filter that
    /// matches nothing cannot pass vacuously. 0 disables the check (e.g. for builds).
    #[serde(default)]
    pub min_tests: usize,
    /// Timeout.
    #[serde(default = "default_worktree_timeout")]
    pub timeout_s: u64,
}

fn default_cargo_dir() -> CargoDir {
    CargoDir::Checkout
}

/// `kind = "run"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunStep {
    /// Name under which the output is saved.
    pub name: Option<String>,
    /// Arguments after the trifecta binary (`{segment}`, `{db}`, … expand).
    pub args: Vec<String>,
    /// Extra environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Expected exit code.
    #[serde(default)]
    pub expect_exit: i32,
    /// Timeout.
    #[serde(default = "default_run_timeout")]
    pub timeout_s: u64,
}

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
    #[serde(default = "default_run_timeout")]
    pub timeout_s: u64,
}

/// `kind = "corrupt"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorruptStep {
    /// Catalog mode name (`crate::cache::faults`).
    pub mode: String,
}

/// Lock mode for `hold-lock`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    /// `flock(LOCK_SH)`.
    Shared,
    /// `flock(LOCK_EX)`.
    Exclusive,
}

/// `kind = "hold-lock"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldLockStep {
    /// Shared or exclusive.
    pub mode: LockMode,
    /// How long the holder keeps it (it is started and continues in the background).
    pub ms: u64,
}

/// `kind = "release"` (no fields).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseStep {}

/// `kind = "kill"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillStep {
    /// Name (unused by checks; for the report).
    pub name: Option<String>,
    /// Arguments of the writer.
    pub args: Vec<String>,
    /// Extra environment.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// How many writers are killed.
    #[serde(default = "default_kill_times")]
    pub times: usize,
    /// Earliest kill point after spawn.
    #[serde(default)]
    pub min_ms: u64,
    /// Latest kill point after spawn.
    #[serde(default = "default_kill_max_ms")]
    pub max_ms: u64,
}

/// What `edit` does.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EditAction {
    /// Append `text`.
    Append,
    /// Rewrite the same bytes (new mtime, same content).
    Touch,
    /// Replace the whole file with `text`.
    Replace,
    /// Remove the file.
    Delete,
}

/// `kind = "edit"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditStep {
    /// Segment-relative file.
    pub file: String,
    /// What to do.
    pub action: EditAction,
    /// Text for append/replace.
    #[serde(default)]
    pub text: String,
}

/// `kind = "age"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgeStep {
    /// Days to add to the test clock (`TRIFECTA_TEST_NOW_MS`) for later steps.
    pub days: f64,
}

/// `kind = "signal"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalStep {
    /// Literal text searched for.
    pub pattern: String,
    /// Checkout-relative directories or files searched.
    #[serde(default = "default_signal_paths")]
    pub paths: Vec<String>,
    /// When non-empty, every match must be in one of these checkout-relative files.
    #[serde(default)]
    pub only_in: Vec<String>,
    /// Minimum matches (default 1: an absent pattern is a failure, not a vacuous pass).
    #[serde(default = "one")]
    pub min: usize,
    /// Maximum matches.
    pub max: Option<usize>,
    /// Ignore everything from a `#[cfg(test)]` line to the end of the file (unit tests may
    /// construct what production code must not).
    #[serde(default = "yes")]
    pub skip_tests: bool,
}

/// `kind = "sqlite"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteStep {
    /// SQL batch run against `{db}` (the DB and its directory are created if missing).
    pub sql: String,
}

/// `kind = "snapshot"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotStep {
    /// Name for `files.unchanged`.
    pub name: String,
    /// Segment-relative file.
    pub file: String,
}

/// Input of a jq check.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum StepInput {
    /// `"telemetry"` (all events, slurped) or one step's name.
    One(String),
    /// Several step names: input is the array of their outputs.
    Many(Vec<String>),
}

/// `kind = "jq"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JqStep {
    /// What the check means, for the report.
    pub label: Option<String>,
    /// `"telemetry"` (array of every events line), a step name, or a list of step names.
    #[serde(default = "default_telemetry")]
    pub on: StepInput,
    /// The filter; passes when its last output is neither false nor null (no output fails).
    pub filter: String,
}

/// `kind = "integrity"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrityStep {
    /// Expected result of `PRAGMA integrity_check`.
    #[serde(default = "default_ok")]
    pub expect: String,
}

/// Where `files` globs are rooted.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FilesRoot {
    /// The gate's segment copy.
    #[default]
    Segment,
    /// The worktree of an earlier `worktree` step.
    Worktree,
    /// The repository checkout.
    Checkout,
}

/// `kind = "files"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesStep {
    /// Root of the globs.
    #[serde(default)]
    pub root: FilesRoot,
    /// Each glob must match at least one path.
    #[serde(default)]
    pub exist: Vec<String>,
    /// Each glob must match nothing.
    #[serde(default)]
    pub absent: Vec<String>,
    /// Glob whose matches are counted against `min`/`max`.
    pub count: Option<String>,
    /// Minimum matches of `count`.
    pub min: Option<usize>,
    /// Maximum matches of `count`.
    pub max: Option<usize>,
    /// Snapshot names whose files must be byte-for-byte unchanged.
    #[serde(default)]
    pub unchanged: Vec<String>,
}

/// `kind = "baseline"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineStep {
    /// Names of run/stress steps whose outputs must equal an uncached run of the same URI.
    pub steps: Vec<String>,
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
    /// Set when loading: the scenario folder.
    #[serde(skip)]
    pub dir: PathBuf,
}

fn default_segment() -> String {
    "segment".to_string()
}

/// 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Line of `key = ` in the table whose header starts at `start` (toml spans of an
/// array-of-tables entry cover only its `[[steps]]` header, so scan to the next header),
/// falling back to the header's line.
fn key_line(text: &str, start: usize, key: &str) -> usize {
    let body = &text[start.min(text.len())..];
    let mut off = 0;
    for (i, l) in body.split_inclusive('\n').enumerate() {
        let t = l.trim_start();
        if i > 0 && t.starts_with('[') {
            break;
        }
        if t.starts_with(key) && t[key.len()..].trim_start().starts_with('=') {
            return line_of(text, start + off);
        }
        off += l.len();
    }
    line_of(text, start)
}

fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> SpecError {
    let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(1);
    let msg = e.message().trim().replace('\n', " ");
    SpecError {
        message: format!("{}:{line}: {msg}", path.display()),
    }
}

/// Load and validate one scenario folder.
pub fn load_scenario(dir: &Path) -> Result<Scenario, SpecError> {
    let path = dir.join("scenario.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| SpecError {
        message: format!("{}:1: cannot read scenario: {e}", path.display()),
    })?;
    let mut sc: Scenario = toml::from_str(&text).map_err(|e| toml_error(&path, &text, &e))?;
    sc.dir = dir.to_path_buf();
    if !dir.join(&sc.segment).is_dir() {
        return Err(SpecError {
            message: format!(
                "{}:1: segment folder `{}` does not exist",
                path.display(),
                sc.segment
            ),
        });
    }
    Ok(sc)
}

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct Specs {
    /// Gates in file-name order.
    pub gates: Vec<Gate>,
    /// Scenarios referenced by the gates, by name.
    pub scenarios: BTreeMap<String, Scenario>,
}

/// Load every `*.toml` in `gates_dir` and the scenarios they name (from `scenarios_dir`).
/// Returns every problem found, not just the first.
pub fn load_all(gates_dir: &Path, scenarios_dir: &Path) -> Result<Specs, Vec<SpecError>> {
    let mut errors = Vec::new();
    let mut files: Vec<PathBuf> = match std::fs::read_dir(gates_dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect(),
        Err(e) => {
            return Err(vec![SpecError {
                message: format!("{}: cannot read gates dir: {e}", gates_dir.display()),
            }]);
        }
    };
    files.sort();
    if files.is_empty() {
        return Err(vec![SpecError {
            message: format!("{}: no gate files (*.toml)", gates_dir.display()),
        }]);
    }
    let mut gates = Vec::new();
    let mut scenarios = BTreeMap::new();
    let mut seen_ids: BTreeMap<String, PathBuf> = BTreeMap::new();
    for path in files {
        match load_gate(&path, scenarios_dir, &mut scenarios) {
            Ok(g) => {
                if let Some(prev) = seen_ids.insert(g.id.clone(), path.clone()) {
                    errors.push(SpecError {
                        message: format!(
                            "{}:1: duplicate gate id `{}` (also in {})",
                            path.display(),
                            g.id,
                            prev.display()
                        ),
                    });
                }
                gates.push(g);
            }
            Err(mut es) => errors.append(&mut es),
        }
    }
    if errors.is_empty() {
        Ok(Specs { gates, scenarios })
    } else {
        Err(errors)
    }
}

/// Load and validate one gate file; scenarios it names are loaded into `scenarios`.
pub fn load_gate(
    path: &Path,
    scenarios_dir: &Path,
    scenarios: &mut BTreeMap<String, Scenario>,
) -> Result<Gate, Vec<SpecError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![SpecError {
            message: format!("{}:1: cannot read: {e}", path.display()),
        }]
    })?;
    let raw: RawGate = toml::from_str(&text).map_err(|e| vec![toml_error(path, &text, &e)])?;
    let mut errors = Vec::new();
    let at = |line: usize, msg: String| SpecError {
        message: format!("{}:{line}: {msg}", path.display()),
    };
    let id_line = line_of(&text, raw.id.span().start);
    let id = raw.id.into_inner();
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        errors.push(at(
            id_line,
            format!("gate id `{id}` must be non-empty [A-Za-z0-9._-]"),
        ));
    }
    let scenario = match raw.scenario {
        Some(s) => {
            let line = line_of(&text, s.span().start);
            let name = s.into_inner();
            if !scenarios.contains_key(&name) {
                let dir = scenarios_dir.join(&name);
                if !dir.join("scenario.toml").is_file() {
                    errors.push(at(
                        line,
                        format!(
                            "scenario `{name}` not found ({} missing)",
                            dir.join("scenario.toml").display()
                        ),
                    ));
                } else {
                    match load_scenario(&dir) {
                        Ok(sc) => {
                            scenarios.insert(name.clone(), sc);
                        }
                        Err(e) => errors.push(e),
                    }
                }
            }
            Some(name)
        }
        None => None,
    };
    if raw.steps.is_empty() {
        errors.push(at(1, "a gate needs at least one step".into()));
    }
    let mut steps = Vec::new();
    let mut names: HashSet<String> = HashSet::new();
    let mut has_worktree = false;
    for (i, st) in raw.steps.into_iter().enumerate() {
        let span = st.span();
        let line = line_of(&text, span.start);
        let table = st.into_inner();
        let step: Step = match toml::Value::Table(table).try_into() {
            Ok(s) => s,
            Err(e) => {
                let e: toml::de::Error = e;
                let msg = e.message().trim().replace('\n', " ");
                // Point at the offending key when serde names it (`unknown field `x``).
                let key_at = msg
                    .strip_prefix("unknown field `")
                    .and_then(|r| r.split('`').next())
                    .map(|k| key_line(&text, span.start, k))
                    .unwrap_or(line);
                errors.push(at(key_at, format!("step {}: {msg}", i + 1)));
                continue;
            }
        };
        let here = |key: &str| key_line(&text, span.start, key);
        let needs_segment = !matches!(
            step,
            Step::Worktree(_) | Step::Cargo(_) | Step::Signal(_) | Step::Age(_)
        ) && !matches!(&step, Step::Files(f) if f.root != FilesRoot::Segment);
        if needs_segment && scenario.is_none() {
            errors.push(at(
                line,
                format!(
                    "step {} ({}) needs a segment: set `scenario`",
                    i + 1,
                    step.kind()
                ),
            ));
        }
        validate_step(&step, &names, has_worktree, &mut |key, msg| {
            errors.push(at(
                here(key),
                format!("step {} ({}): {msg}", i + 1, step.kind()),
            ))
        });
        if let Step::Worktree(_) = step {
            has_worktree = true;
        }
        if let Some(n) = step.name()
            && !names.insert(n.to_string())
        {
            errors.push(at(
                here("name"),
                format!("step {}: duplicate step name `{n}`", i + 1),
            ));
        }
        steps.push(StepSpec { step, line });
    }
    if errors.is_empty() {
        Ok(Gate {
            id,
            title: raw.title,
            description: raw.description,
            required: raw.required,
            tags: raw.tags,
            scenario,
            timeout_s: raw.timeout_s,
            dod: raw.dod,
            env: raw.env,
            steps,
            file: path.to_path_buf(),
        })
    } else {
        Err(errors)
    }
}

/// Semantic checks of one step. `err(key, message)` records a problem at `key`'s line.
fn validate_step(
    step: &Step,
    names: &HashSet<String>,
    has_worktree: bool,
    err: &mut dyn FnMut(&str, String),
) {
    let known = |n: &String| names.contains(n);
    match step {
        Step::Corrupt(c) => {
            if CorruptionMode::parse(&c.mode).is_none() {
                let all: Vec<&str> = CorruptionMode::ALL.iter().map(|m| m.as_str()).collect();
                err(
                    "mode",
                    format!(
                        "unknown corruption mode `{}` (catalog: {})",
                        c.mode,
                        all.join(", ")
                    ),
                );
            }
        }
        Step::Jq(j) => {
            if let Err(e) = super::jq::compile_check(&j.filter) {
                err("filter", format!("jq filter does not compile: {e}"));
            }
            match &j.on {
                StepInput::One(s) if s == "telemetry" => {}
                StepInput::One(s) if !known(s) => err(
                    "on",
                    format!("`on = \"{s}\"`: no earlier step has that name"),
                ),
                StepInput::Many(v) => {
                    for s in v.iter().filter(|s| !known(s)) {
                        err("on", format!("`on`: no earlier step named `{s}`"));
                    }
                }
                _ => {}
            }
        }
        Step::Baseline(b) => {
            if b.steps.is_empty() {
                err("steps", "baseline needs at least one step name".into());
            }
            for s in b.steps.iter().filter(|s| !known(s)) {
                err("steps", format!("no earlier step named `{s}`"));
            }
        }
        Step::Files(f) => {
            for g in f.exist.iter().chain(&f.absent).chain(f.count.iter()) {
                if let Err(e) = globset::Glob::new(g) {
                    err("exist", format!("bad glob `{g}`: {e}"));
                }
            }
            if f.count.is_none() && (f.min.is_some() || f.max.is_some()) {
                err("min", "`min`/`max` need `count`".into());
            }
            if f.exist.is_empty()
                && f.absent.is_empty()
                && f.count.is_none()
                && f.unchanged.is_empty()
            {
                err("kind", "files check with nothing to check".into());
            }
            for s in f.unchanged.iter().filter(|s| !known(s)) {
                err("unchanged", format!("no earlier snapshot named `{s}`"));
            }
            if f.root == FilesRoot::Worktree && !has_worktree {
                err(
                    "root",
                    "root = \"worktree\" needs an earlier worktree step".into(),
                );
            }
        }
        Step::Cargo(c) => {
            if c.dir == CargoDir::Worktree && !has_worktree {
                err(
                    "dir",
                    "dir = \"worktree\" needs an earlier worktree step".into(),
                );
            }
            if c.args.is_empty() {
                err("args", "cargo needs arguments".into());
            }
        }
        Step::Worktree(w) => {
            if w.build.is_empty() {
                err("build", "build command is empty".into());
            }
        }
        Step::Run(r) => {
            if r.args.is_empty() {
                err("args", "run needs arguments".into());
            }
        }
        Step::Stress(s) => {
            if s.procs == 0 || s.iterations == 0 {
                err("procs", "procs and iterations must be ≥ 1".into());
            }
            let uses_uri = s.args.iter().any(|a| a.contains("{uri}"));
            if uses_uri && s.uris.is_empty() {
                err("uris", "args use {uri} but `uris` is empty".into());
            }
        }
        Step::Kill(k) => {
            if k.max_ms < k.min_ms || k.times == 0 {
                err("max_ms", "need times ≥ 1 and min_ms ≤ max_ms".into());
            }
        }
        Step::Age(a) => {
            if !a.days.is_finite() || a.days < 0.0 {
                err("days", "days must be a finite number ≥ 0".into());
            }
        }
        Step::Edit(e) => {
            if e.file.contains("..") || Path::new(&e.file).is_absolute() {
                err("file", "file must be segment-relative without `..`".into());
            }
        }
        Step::Signal(s) => {
            if s.pattern.is_empty() {
                err("pattern", "empty pattern".into());
            }
            if s.max.is_some_and(|m| m < s.min) {
                err("max", "max < min".into());
            }
        }
        Step::HoldLock(_)
        | Step::Release(_)
        | Step::Sqlite(_)
        | Step::Snapshot(_)
        | Step::Integrity(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn line_of_counts_newlines() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 4), 3);
    }

    #[test]
    fn unknown_key_in_step_reports_its_line() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "g.toml",
            "id = \"g\"\ntitle = \"t\"\n\n[[steps]]\nkind = \"signal\"\npattern = \"x\"\nbogus = 1\n",
        );
        let e = load_gate(&p, d.path(), &mut BTreeMap::new()).unwrap_err();
        assert!(e[0].message.contains("g.toml:7:"), "{}", e[0].message);
        assert!(e[0].message.contains("bogus"), "{}", e[0].message);
    }

    #[test]
    fn bad_jq_points_at_filter_line() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "g.toml",
            "id = \"g\"\ntitle = \"t\"\n[[steps]]\nkind = \"signal\"\npattern = \"x\"\n[[steps]]\nkind = \"jq\"\non = \"telemetry\"\nfilter = \"map(\"\n",
        );
        let e = load_gate(&p, d.path(), &mut BTreeMap::new()).unwrap_err();
        assert!(e.iter().any(|e| e.message.contains("g.toml:9:")), "{e:?}");
    }

    #[test]
    fn valid_minimal_gate_loads() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "g.toml",
            "id = \"g\"\ntitle = \"t\"\ntags=[\"p1\"]\n[[steps]]\nkind = \"signal\"\npattern = \"x\"\n",
        );
        let g = load_gate(&p, d.path(), &mut BTreeMap::new()).unwrap();
        assert_eq!(g.steps.len(), 1);
        assert_eq!(g.steps[0].line, 4);
        assert!(g.required);
    }
}
