//! The gate and scenario data model: what a `gates/*.toml` step or a `scenario.toml` may say.
//! Every struct denies unknown keys; steps are an internally tagged enum (`kind = "run"`).

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub(super) fn yes() -> bool {
    true
}
pub(super) fn default_gate_timeout() -> u64 {
    600
}
pub(super) fn default_run_timeout() -> u64 {
    120
}
pub(super) fn default_procs() -> usize {
    10
}
pub(super) fn default_iterations() -> usize {
    3
}
pub(super) fn default_edit_every_ms() -> u64 {
    3
}
pub(super) fn default_kill_times() -> usize {
    3
}
pub(super) fn default_min_landed() -> usize {
    1
}
pub(super) fn default_telemetry() -> StepInput {
    StepInput::One("telemetry".to_string())
}
pub(super) fn default_ok() -> String {
    "ok".to_string()
}
pub(super) fn default_build() -> Vec<String> {
    ["cargo", "build", "--release", "--locked"]
        .map(String::from)
        .to_vec()
}
pub(super) fn default_binary() -> Option<String> {
    Some("{target}/release/trifecta".to_string())
}
pub(super) fn default_signal_paths() -> Vec<String> {
    vec!["src".to_string()]
}
pub(super) fn one() -> usize {
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
    /// Plant hostile entries (links, FIFOs, devices, wrong types) in the segment copy.
    Plant(PlantStep),
    /// Record a directory tree's exact state for a later `tree-unchanged` check.
    TreeSnapshot(TreeSnapshotStep),
    /// A tree recorded by `tree-snapshot` is unchanged: nothing read, written, added or removed.
    TreeUnchanged(TreeUnchangedStep),
    /// Start, kill, restart or damage the gate's own `redis-server`, or count its keys.
    Redis(RedisStep),
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
            Step::Plant(_) => "plant",
            Step::TreeSnapshot(_) => "tree-snapshot",
            Step::TreeUnchanged(_) => "tree-unchanged",
            Step::Redis(_) => "redis",
        }
    }

    /// The step's name, when it saves something later steps refer to.
    pub fn name(&self) -> Option<&str> {
        match self {
            Step::Run(s) => s.name.as_deref(),
            Step::Stress(s) => s.name.as_deref(),
            Step::Kill(s) => s.name.as_deref(),
            Step::Snapshot(s) => Some(&s.name),
            Step::TreeSnapshot(s) => Some(&s.name),
            _ => None,
        }
    }

    /// Whether the step is a check (its failure does not stop the gate's later steps).
    pub fn is_check(&self) -> bool {
        matches!(
            self,
            Step::Jq(_)
                | Step::Integrity(_)
                | Step::Files(_)
                | Step::Baseline(_)
                | Step::Signal(_)
                | Step::TreeUnchanged(_)
                | Step::Redis(RedisStep {
                    action: RedisAction::Keys,
                    ..
                })
        )
    }
}

/// What a `redis` step does (`src/verify/steps/redis.rs`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RedisAction {
    /// Start a server on a free port of 127.0.0.1 (`{redis}` is its URL from then on).
    Start,
    /// `kill -9` it.
    Kill,
    /// Start it again on the same port (empty: no persistence).
    Restart,
    /// In the background: kill it `down_after_ms` from now, restart it `down_for_ms` later,
    /// while the next steps (a storm) run.
    Outage,
    /// Wait for the background outage to end (the server is up again).
    AwaitOutage,
    /// Damage every stored value (`damage` says how).
    Damage,
    /// Delete every key.
    Flush,
    /// A check: the number of keys is `expect_keys` (or at least `min_keys`).
    Keys,
}

/// How a `redis` `damage` step damages the stored records.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RedisDamage {
    /// Cut each value in half.
    Truncate,
    /// Flip the low bit of the first digit in each payload (still valid JSON: only the
    /// checksum can tell).
    Flip,
    /// Rewrite each record as format version 99, with a valid checksum.
    ForeignFormat,
    /// Rewrite each record as written by another extractor, with a valid checksum.
    OtherExtractor,
}

impl RedisDamage {
    /// The spec spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RedisDamage::Truncate => "truncate",
            RedisDamage::Flip => "flip",
            RedisDamage::ForeignFormat => "foreign-format",
            RedisDamage::OtherExtractor => "other-extractor",
        }
    }
}

/// `kind = "redis"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisStep {
    /// What to do.
    pub action: RedisAction,
    /// `outage`: delay before the kill.
    #[serde(default)]
    pub down_after_ms: u64,
    /// `outage`: how long the server stays down.
    #[serde(default)]
    pub down_for_ms: u64,
    /// `damage`: how.
    pub damage: Option<RedisDamage>,
    /// `keys`: exact count.
    pub expect_keys: Option<usize>,
    /// `keys`: minimum count.
    pub min_keys: Option<usize>,
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
    /// The output is JSON Lines (`ast index --format jsonl`): save it as one output per line,
    /// so a jq check sees an array of the lines' values.
    #[serde(default)]
    pub jsonl: bool,
    /// Each of these texts must appear in the process's stderr (e.g. the one line that says
    /// telemetry was dropped).
    #[serde(default)]
    pub stderr_has: Vec<String>,
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
    /// Rewrite a module while the storm runs, then check every answer for it against the edit
    /// history (freshness under concurrency).
    pub edit: Option<StressEdit>,
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

impl LockMode {
    /// `shared` or `exclusive`, as spelled in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            LockMode::Shared => "shared",
            LockMode::Exclusive => "exclusive",
        }
    }
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

/// `kind = "kill"`: crash writers in the middle of a write transaction, one at a time, and
/// check the database right after each crash (see `steps::crash`).
///
/// Each writer is stopped (SIGSTOP of its process group) at a seeded point of its write phase
/// and observed from outside; it is SIGKILLed only when it holds SQLite's WAL write lock on an
/// existing database with rows (a *landed* kill), otherwise it is resumed and stopped again a
/// little later, until a kill lands or the writer exits.
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
    /// How many writers are started (each is killed at most once).
    #[serde(default = "default_kill_times")]
    pub times: usize,
    /// At least this many kills must land inside a write transaction on a populated database;
    /// fewer fails the step (a crash test whose kills miss the writes tested nothing).
    #[serde(default = "default_min_landed")]
    pub min_landed: usize,
    /// Run once before the writers (e.g. `ast index --persist-cache`): the cache it leaves is
    /// snapshotted and restored before every writer, so each one writes to a populated DB.
    #[serde(default)]
    pub populate: Vec<String>,
    /// Generated modules that every writer finds changed (so it has entries to rewrite).
    pub generate: Option<GenerateSpec>,
    /// Checks run right after each landed kill, before the next writer (`run`, `jq`,
    /// `integrity`, `baseline`, `files`); a failing one fails the step.
    #[serde(default)]
    pub after_each: Vec<Step>,
}

/// `[steps.generate]` of a kill step: `modules` Python modules `<dir>/m0000.py…` written by the
/// harness: variant 0 before `populate`, then variant 1 (other names, so other symbols) for
/// every writer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateSpec {
    /// Segment-relative package directory (created, with an empty `__init__.py`).
    pub dir: String,
    /// Number of modules.
    pub modules: usize,
    /// Functions per module (and half as many methods): the size of each entry.
    #[serde(default = "default_defs")]
    pub defs: usize,
}

fn default_defs() -> usize {
    12
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

impl EditAction {
    /// `append`, `touch`, `replace` or `delete`, as spelled in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            EditAction::Append => "append",
            EditAction::Touch => "touch",
            EditAction::Replace => "replace",
            EditAction::Delete => "delete",
        }
    }
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
    /// When non-empty, every match must be in a file matching one of these checkout-relative
    /// globs (`src/commands/**`).
    #[serde(default)]
    pub only_in: Vec<String>,
    /// Minimum matches (default 1: an absent pattern is a failure, not a vacuous pass).
    #[serde(default = "one")]
    pub min: usize,
    /// Maximum matches.
    pub max: Option<usize>,
    /// Ignore test code (unit tests may construct what production code must not): the rest of
    /// a file from `#[cfg(test)]` + an inline `mod … {`, and files that are `#[cfg(test)] mod x;`
    /// modules (`x.rs`, `x/`). Default true.
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
    /// Pass when there is no database at all. Only for crash gates: a writer killed before
    /// the atomic rename that publishes a new database leaves none, a consistent outcome.
    #[serde(default)]
    pub missing_ok: bool,
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
    /// Run the reference on a fresh copy of the scenario's *original* segment instead of the
    /// segment's current sources. Needed once steps have planted links, FIFOs or devices in the
    /// segment: copying those would follow them out of the segment or block on a FIFO.
    #[serde(default)]
    pub clean: bool,
}

/// What a `plant` entry puts at its path.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum PlantType {
    /// A symbolic link to `target` (never resolved by the harness).
    Symlink,
    /// A named pipe (`mkfifo`): a reader that blocks on it hangs.
    Fifo,
    /// A directory (where a file belongs), with one file inside so it is not empty.
    Dir,
    /// A regular file with `text` (where a directory belongs).
    File,
    /// A character device (`mknod c MAJ:MIN`); needs CAP_MKNOD.
    CharDevice,
    /// Nothing: remove whatever is there (without following it).
    Absent,
}

/// One entry of a `plant` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlantEntry {
    /// Segment-relative path (plain components only).
    pub path: String,
    /// What to put there. Whatever is at `path` first is removed (never followed).
    #[serde(rename = "type")]
    pub kind: PlantType,
    /// Link target of a `symlink` (placeholders such as `{outside}` expand).
    pub target: Option<String>,
    /// `MAJ:MIN` of a `char-device` (default `1:5`, like `/dev/zero`).
    pub device: Option<String>,
    /// Content of a `file`.
    pub text: Option<String>,
    /// For `char-device` only: when `mknod` is refused (EPERM, not root), report the variant
    /// as NOT covered in the step output instead of failing the step.
    #[serde(default)]
    pub if_permitted: bool,
}

/// `kind = "plant"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlantStep {
    /// Entries, planted in order. Parents are created as real directories; a parent that is
    /// anything else (a link above all) fails the step, so planting never writes outside.
    pub entries: Vec<PlantEntry>,
}

/// `kind = "tree-snapshot"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeSnapshotStep {
    /// Name for `tree-unchanged`.
    pub name: String,
    /// The directory (placeholders expand; relative means segment-relative), e.g. `{outside}`.
    pub dir: String,
}

/// `kind = "tree-unchanged"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TreeUnchangedStep {
    /// Name of an earlier `tree-snapshot`.
    pub snapshot: String,
    /// Fail when this file system does not record reads (atime), since reads then cannot be
    /// detected. Default true: a gate claiming "nothing read" must be able to see a read.
    #[serde(default = "yes")]
    pub require_read_detection: bool,
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
    pub outside: Option<String>,
    /// Set when loading: the scenario folder.
    #[serde(skip)]
    pub dir: PathBuf,
}

fn default_segment() -> String {
    "segment".to_string()
}
