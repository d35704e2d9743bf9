//! Every gate step kind, one file each, behind one trait ([`StepKind`]) and one registry
//! ([`KINDS`]).
//!
//! A kind's file holds everything about it: the TOML fields (a `deny_unknown_fields` struct),
//! its validation rules, its report label, whether it needs a segment or is a check, and how it
//! executes, and its smallest valid table (`EXAMPLE`, which the registry's test parses). Adding
//! a kind is that one new file plus its registration here: a `pub mod` line and a line in the
//! `registry!` list below (two lines, kept apart only so `cargo fmt` sees the module); nothing
//! else in the harness matches on kinds. State a kind keeps between its steps lives in
//! [`GateCtx::state`] (dropped with the gate) and placeholders it defines in
//! `GateCtx::extra_vars` (`kinds/redis.rs` does both).
//!
//! A gate file's steps are tables tagged with `kind = "…"`. [`Step`]'s `Deserialize` looks the
//! tag up in [`KINDS`] and hands the rest of the table to the kind's struct, with the messages
//! serde's internally tagged enums gave before the trait existed (`missing field `kind``,
//! `unknown variant `x`, expected one of …`), so spec errors are unchanged.

use super::{GateCtx, StepResult};
use serde::de::DeserializeOwned;
use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// What a step's execution returns: boxed, because kinds are trait objects and `kill` runs
/// other steps (its `after_each` checks) from inside its own execution.
pub type StepFuture<'a> = Pin<Box<dyn Future<Output = StepResult> + Send + 'a>>;

/// What validation of one step may look at: the gate's steps written before it.
pub struct ValidateCx<'a> {
    /// Names of earlier steps (run/stress/kill names, snapshots, tree snapshots).
    pub names: &'a HashSet<String>,
    /// Whether an earlier step made a worktree.
    pub has_worktree: bool,
}

/// One step kind: how it is validated, labelled and executed.
pub trait StepKind: fmt::Debug + Send + Sync {
    /// The `kind` spelling (the module's `KIND`).
    fn kind(&self) -> &'static str;

    /// The step's name, when it saves something later steps refer to.
    fn name(&self) -> Option<&str> {
        None
    }

    /// Every name this step saves output under: its own and any of its parts' (a stress
    /// step's `[[steps.during]]` commands). Later steps may refer to each.
    fn names(&self) -> Vec<&str> {
        self.name().into_iter().collect()
    }

    /// A check only looks: its failure does not stop the gate's later steps. An action's
    /// failure does (later steps would test a state that was never reached).
    fn is_check(&self) -> bool {
        false
    }

    /// Whether the gate must have a scenario segment for this step.
    fn needs_segment(&self) -> bool {
        true
    }

    /// Whether later steps can use a worktree this step made (`dir`/`root = "worktree"`).
    fn makes_worktree(&self) -> bool {
        false
    }

    /// Whether `kill` may run it in `after_each`, right after a crash: only kinds that look at
    /// the database or run the CLI once (no nested kills, storms or builds).
    fn runs_after_kill(&self) -> bool {
        false
    }

    /// Short label for reports.
    fn label(&self) -> String;

    /// Semantic checks beyond the TOML shape; `err(key, message)` records a problem at `key`'s
    /// line.
    fn validate(&self, _cx: &ValidateCx, _err: &mut dyn FnMut(&str, String)) {}

    /// Execute the step; `index` (1-based) names its log files.
    fn exec<'a>(&'a self, ctx: &'a mut GateCtx, _index: usize) -> StepFuture<'a>;
}

/// A parsed step of any kind (cheap to clone: gates are cloned into their tasks).
#[derive(Clone)]
pub struct Step(Arc<dyn StepKind>);

impl std::ops::Deref for Step {
    type Target = dyn StepKind;
    fn deref(&self) -> &Self::Target {
        &*self.0
    }
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> serde::Deserialize<'de> for Step {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let table = toml::Table::deserialize(d)?;
        Step::from_table(table).map_err(|e| serde::de::Error::custom(e.message()))
    }
}

impl Step {
    /// Parse one step table (`kind = "…"` plus the kind's fields).
    pub fn from_table(mut table: toml::Table) -> Result<Step, toml::de::Error> {
        use serde::de::Error;
        let kind = match table.remove("kind") {
            None => return Err(toml::de::Error::missing_field("kind")),
            Some(toml::Value::String(s)) => s,
            Some(other) => {
                use serde::de::Unexpected;
                let found = match &other {
                    toml::Value::Integer(i) => Unexpected::Signed(*i),
                    toml::Value::Float(f) => Unexpected::Float(*f),
                    toml::Value::Boolean(b) => Unexpected::Bool(*b),
                    toml::Value::Array(_) => Unexpected::Seq,
                    toml::Value::Table(_) => Unexpected::Map,
                    _ => Unexpected::Other(other.type_str()),
                };
                return Err(toml::de::Error::invalid_type(found, &"variant identifier"));
            }
        };
        match KINDS.iter().find(|k| k.name == kind) {
            Some(k) => (k.parse)(table),
            None => Err(toml::de::Error::unknown_variant(&kind, KIND_NAMES)),
        }
    }
}

/// A step and where it was written.
#[derive(Debug, Clone)]
pub struct StepSpec {
    /// The step.
    pub step: Step,
    /// 1-based line of the step in its file.
    pub line: usize,
}

/// One registry entry: the `kind` spelling and how to read its table.
pub struct Kind {
    /// The `kind` spelling.
    pub name: &'static str,
    /// Read the step's table (without `kind`).
    pub parse: fn(toml::Table) -> Result<Step, toml::de::Error>,
    /// The kind's smallest valid table (its `EXAMPLE`), for tests and error messages.
    pub example: &'static str,
}

fn parse<S: StepKind + DeserializeOwned + 'static>(
    table: toml::Table,
) -> Result<Step, toml::de::Error> {
    let s: S = toml::Value::Table(table).try_into()?;
    Ok(Step(Arc::new(s)))
}

/// The registry, from one `module::Type` line per kind.
macro_rules! registry {
    ($($module:ident :: $ty:ident),* $(,)?) => {
        /// Every step kind, in the order `unknown variant` errors list them.
        pub const KINDS: &[Kind] = &[$(Kind {
            name: $module::KIND,
            parse: parse::<$module::$ty>,
            example: $module::EXAMPLE,
        }),*];
        /// The `kind` spellings, in registry order.
        const KIND_NAMES: &[&str] = &[$($module::KIND),*];
    };
}

// Each kind's module, declared here rather than inside `registry!` so that `cargo fmt` sees
// them (it cannot look into a macro).
pub mod age;
pub mod baseline;
pub mod cargo;
pub mod corrupt;
pub mod daemon;
pub mod edit;
pub mod files;
pub mod hold_lock;
pub mod integrity;
pub mod jq;
pub mod kill;
pub mod plant;
pub mod redis;
pub mod release;
pub mod run;
pub mod signal;
pub mod snapshot;
pub mod sqlite;
pub mod stress;
pub mod tree_snapshot;
pub mod tree_unchanged;
pub mod worktree;

registry! {
    worktree::WorktreeStep,
    cargo::CargoStep,
    run::RunStep,
    stress::StressStep,
    corrupt::CorruptStep,
    hold_lock::HoldLockStep,
    release::ReleaseStep,
    kill::KillStep,
    edit::EditStep,
    age::AgeStep,
    signal::SignalStep,
    sqlite::SqliteStep,
    snapshot::SnapshotStep,
    jq::JqStep,
    integrity::IntegrityStep,
    files::FilesStep,
    baseline::BaselineStep,
    plant::PlantStep,
    tree_snapshot::TreeSnapshotStep,
    tree_unchanged::TreeUnchangedStep,
    redis::RedisStep,
    daemon::DaemonStep,
}

/// serde default: `true`.
pub fn yes() -> bool {
    true
}

/// serde default of process timeouts (`run`, `stress`).
pub fn default_run_timeout() -> u64 {
    120
}

/// serde default of build timeouts (`worktree`, `cargo`).
pub fn default_worktree_timeout() -> u64 {
    3600
}

/// A label clipped to one line of 90 characters.
pub fn clip(s: &str) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() > 90 {
        format!("{}…", s.chars().take(90).collect::<String>())
    } else {
        s
    }
}

/// A non-empty relative path of plain components (no `..`, `.`, root or prefix).
pub fn plain_relative(p: &str) -> bool {
    !p.is_empty()
        && std::path::Path::new(p)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_toml(text: &str) -> Result<Step, toml::de::Error> {
        Step::from_table(text.parse::<toml::Table>().unwrap())
    }

    #[test]
    fn every_registered_kind_parses_and_names_itself() {
        // Each kind's smallest valid table, declared in the kind's own file.
        let minimal: Vec<(&str, &str)> = KINDS.iter().map(|k| (k.name, k.example)).collect();
        assert!(minimal.len() >= 21, "every kind is registered");
        for (kind, fields) in minimal {
            let step = parse_toml(&format!("kind = \"{kind}\"\n{fields}"))
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert_eq!(step.kind(), kind);
        }
    }

    #[test]
    fn bad_tags_get_serde_enum_messages() {
        let e = parse_toml("kind = \"nope\"").unwrap_err().to_string();
        assert!(
            e.contains("unknown variant `nope`, expected one of `worktree`, `cargo`"),
            "{e}"
        );
        let e = parse_toml("pattern = \"x\"").unwrap_err().to_string();
        assert!(e.contains("missing field `kind`"), "{e}");
        let e = parse_toml("kind = 3").unwrap_err().to_string();
        assert!(
            e.contains("invalid type: integer `3`, expected variant identifier"),
            "{e}"
        );
        let e = parse_toml("kind = \"signal\"\npattern = \"x\"\nbogus = 1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `bogus`"), "{e}");
    }
}
