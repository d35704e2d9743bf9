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
mod model;

pub use model::*;

use model::{default_gate_timeout, yes};
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
    if let Some(o) = &sc.outside
        && (!plain_relative(o) || !dir.join(o).is_dir() || *o == sc.segment)
    {
        return Err(SpecError {
            message: format!(
                "{}:1: outside folder `{o}` must be an existing sub-folder other than the segment",
                path.display()
            ),
        });
    }
    Ok(sc)
}

/// A non-empty relative path of plain components (no `..`, `.`, root or prefix).
fn plain_relative(p: &str) -> bool {
    !p.is_empty()
        && Path::new(p)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
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
    // `{outside}` only exists when the scenario provides an outside folder; an unexpanded
    // placeholder would otherwise become a literal path at run time.
    let has_outside = scenario
        .as_ref()
        .and_then(|n| scenarios.get(n))
        .is_some_and(|sc| sc.outside.is_some());
    if !has_outside && let Some(pos) = text.find("{outside}") {
        errors.push(at(
            line_of(&text, pos),
            "`{outside}` needs a scenario with an `outside` folder".into(),
        ));
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
            Step::Worktree(_) | Step::Cargo(_) | Step::Signal(_) | Step::Age(_) | Step::Redis(_)
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
            if let Some(e) = &s.edit {
                if !s.uris.contains(&e.uri) {
                    err("uri", format!("edit uri `{}` is not one of `uris`", e.uri));
                }
                let rel = std::path::Path::new(&e.file);
                let inside = rel
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)));
                if e.file.is_empty() || !inside {
                    err(
                        "file",
                        "edit file must be a relative path inside the segment".into(),
                    );
                }
            }
        }
        Step::Kill(k) => {
            if k.times == 0 {
                err("times", "need times ≥ 1".into());
            }
            if k.min_landed > k.times {
                err(
                    "min_landed",
                    format!("min_landed {} exceeds times {}", k.min_landed, k.times),
                );
            }
            if let Some(g) = &k.generate
                && (g.modules == 0 || !plain_relative(&g.dir))
            {
                err(
                    "generate",
                    "generate needs modules ≥ 1 and a plain relative dir".into(),
                );
            }
            validate_after_each(k, names, has_worktree, err);
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
            for g in &s.only_in {
                if let Err(e) = globset::Glob::new(g) {
                    err("only_in", format!("bad glob `{g}`: {e}"));
                }
            }
            if s.pattern.is_empty() {
                err("pattern", "empty pattern".into());
            }
            if s.max.is_some_and(|m| m < s.min) {
                err("max", "max < min".into());
            }
        }
        Step::Plant(p) => {
            if p.entries.is_empty() {
                err("entries", "plant needs at least one entry".into());
            }
            for (i, e) in p.entries.iter().enumerate() {
                validate_plant_entry(i + 1, e, &mut *err);
            }
        }
        Step::TreeSnapshot(t) => {
            if t.dir.trim().is_empty() {
                err("dir", "tree-snapshot needs a directory".into());
            }
        }
        Step::TreeUnchanged(t) => {
            if !known(&t.snapshot) {
                err(
                    "snapshot",
                    format!("no earlier tree-snapshot named `{}`", t.snapshot),
                );
            }
        }
        Step::Redis(r) => validate_redis(r, err),
        Step::HoldLock(_)
        | Step::Release(_)
        | Step::Sqlite(_)
        | Step::Snapshot(_)
        | Step::Integrity(_) => {}
    }
}

/// `redis` step rules: each action takes exactly the fields it uses.
fn validate_redis(r: &RedisStep, err: &mut dyn FnMut(&str, String)) {
    let is = |a: RedisAction| r.action == a;
    if r.damage.is_some() != is(RedisAction::Damage) {
        err(
            "damage",
            "`damage` goes with (and only with) action `damage`".into(),
        );
    }
    let counts = r.expect_keys.is_some() || r.min_keys.is_some();
    if counts != is(RedisAction::Keys) {
        err(
            "expect_keys",
            "action `keys` needs expect_keys or min_keys; other actions take neither".into(),
        );
    }
    let timed = r.down_after_ms > 0 || r.down_for_ms > 0;
    if timed != is(RedisAction::Outage) || (is(RedisAction::Outage) && r.down_for_ms == 0) {
        err(
            "down_for_ms",
            "action `outage` needs down_for_ms > 0 (and optionally down_after_ms)".into(),
        );
    }
}

/// The checks run after each landed kill: only kinds that look at the database or run the CLI
/// once (no nested kills, storms or builds), with names visible to later ones.
fn validate_after_each(
    k: &KillStep,
    names: &HashSet<String>,
    has_worktree: bool,
    err: &mut dyn FnMut(&str, String),
) {
    let mut names = names.clone();
    for (i, sub) in k.after_each.iter().enumerate() {
        let allowed = matches!(
            sub,
            Step::Run(_) | Step::Jq(_) | Step::Integrity(_) | Step::Baseline(_) | Step::Files(_)
        );
        if !allowed {
            err(
                "after_each",
                format!(
                    "after_each {}: `{}` is not allowed (run, jq, integrity, baseline, files)",
                    i + 1,
                    sub.kind()
                ),
            );
        }
        validate_step(sub, &names, has_worktree, &mut |_, msg| {
            err("after_each", format!("after_each {}: {msg}", i + 1))
        });
        if let Some(n) = sub.name() {
            names.insert(n.to_string());
        }
    }
}

/// Field rules of one `plant` entry: each type takes exactly the fields it uses, so a typo
/// (a target on a FIFO, a device on a link) is a spec error, not a silently different plant.
fn validate_plant_entry(n: usize, e: &PlantEntry, err: &mut dyn FnMut(&str, String)) {
    let t = e.kind;
    if !plain_relative(&e.path) {
        err(
            "entries",
            format!(
                "entry {n}: path `{}` must be segment-relative without `..`",
                e.path
            ),
        );
    }
    match (t, &e.target) {
        (PlantType::Symlink, None) => {
            err("entries", format!("entry {n}: a symlink needs `target`"))
        }
        (PlantType::Symlink, Some(x)) if x.is_empty() => {
            err("entries", format!("entry {n}: empty `target`"))
        }
        (PlantType::Symlink, Some(_)) | (_, None) => {}
        (_, Some(_)) => err(
            "entries",
            format!("entry {n}: `target` is only for symlinks"),
        ),
    }
    if e.text.is_some() && t != PlantType::File {
        err("entries", format!("entry {n}: `text` is only for files"));
    }
    if t != PlantType::CharDevice && (e.device.is_some() || e.if_permitted) {
        err(
            "entries",
            format!("entry {n}: `device`/`if_permitted` are only for char-device"),
        );
    }
    if let Some(d) = &e.device
        && parse_device(d).is_none()
    {
        err("entries", format!("entry {n}: device `{d}` is not MAJ:MIN"));
    }
}

/// `MAJ:MIN` of a device number.
pub fn parse_device(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once(':')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
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
    fn redis_steps_take_exactly_the_fields_of_their_action() {
        let d = tempfile::tempdir().unwrap();
        let gate = |step: &str| {
            let text = format!("id = \"g\"\ntitle = \"t\"\n[[steps]]\nkind = \"redis\"\n{step}\n");
            load_gate(
                &write(d.path(), "g.toml", &text),
                d.path(),
                &mut BTreeMap::new(),
            )
        };
        for ok in [
            "action = \"start\"",
            "action = \"damage\"\ndamage = \"flip\"",
            "action = \"keys\"\nexpect_keys = 0",
            "action = \"outage\"\ndown_after_ms = 10\ndown_for_ms = 100",
        ] {
            assert!(gate(ok).is_ok(), "{ok}: {:?}", gate(ok).err());
        }
        for bad in [
            "action = \"damage\"",
            "action = \"start\"\ndamage = \"flip\"",
            "action = \"keys\"",
            "action = \"flush\"\nmin_keys = 1",
            "action = \"outage\"",
            "action = \"kill\"\ndown_for_ms = 5",
            "action = \"damage\"\ndamage = \"melt\"",
        ] {
            assert!(gate(bad).is_err(), "{bad} was accepted");
        }
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
    fn outside_placeholder_needs_a_scenario_outside_folder() {
        let d = tempfile::tempdir().unwrap();
        let sc = d.path().join("sc");
        std::fs::create_dir_all(sc.join("segment")).unwrap();
        write(&sc, "scenario.toml", "description = \"d\"\n");
        let p = write(
            d.path(),
            "g.toml",
            "id = \"g\"\ntitle = \"t\"\nscenario = \"sc\"\n[[steps]]\nkind = \"tree-snapshot\"\nname = \"o\"\ndir = \"{outside}\"\n",
        );
        let e = load_gate(&p, d.path(), &mut BTreeMap::new()).unwrap_err();
        assert!(e[0].message.contains("g.toml:7:"), "{}", e[0].message);
        assert!(
            e[0].message.contains("`outside` folder"),
            "{}",
            e[0].message
        );
        // With an outside folder the same gate is valid.
        std::fs::create_dir_all(sc.join("out")).unwrap();
        write(
            &sc,
            "scenario.toml",
            "description = \"d\"\noutside = \"out\"\n",
        );
        assert!(load_gate(&p, d.path(), &mut BTreeMap::new()).is_ok());
    }

    #[test]
    fn kill_after_each_takes_only_checks_with_known_names() {
        let d = tempfile::tempdir().unwrap();
        let sc = d.path().join("sc");
        std::fs::create_dir_all(sc.join("segment")).unwrap();
        write(&sc, "scenario.toml", "description = \"d\"\n");
        let gate = |after: &str| {
            format!(
                "id = \"g\"\ntitle = \"t\"\nscenario = \"sc\"\n[[steps]]\nkind = \"kill\"\n\
                 times = 2\nmin_landed = 2\nargs = [\"x\"]\n{after}"
            )
        };
        let load = |text: String| {
            let p = write(d.path(), "g.toml", &text);
            load_gate(&p, d.path(), &mut BTreeMap::new())
        };
        let ok = "[[steps.after_each]]\nkind = \"run\"\nname = \"v\"\nargs = [\"y\"]\n\
                  [[steps.after_each]]\nkind = \"baseline\"\nsteps = [\"v\"]\n";
        assert!(load(gate(ok)).is_ok());
        for (after, want) in [
            (
                "[[steps.after_each]]\nkind = \"kill\"\nargs = [\"y\"]\n",
                "`kill` is not allowed",
            ),
            (
                "[[steps.after_each]]\nkind = \"baseline\"\nsteps = [\"nope\"]\n",
                "no earlier step named `nope`",
            ),
        ] {
            let e = load(gate(after)).unwrap_err();
            assert!(e.iter().any(|e| e.message.contains(want)), "{want}: {e:?}");
        }
        let too_many = gate("").replace("min_landed = 2", "min_landed = 3");
        let e = load(too_many).unwrap_err();
        assert!(
            e.iter().any(|e| e.message.contains("exceeds times")),
            "{e:?}"
        );
    }

    #[test]
    fn plant_entries_take_only_their_fields() {
        let mut errs = Vec::new();
        let e = |kind, target: Option<&str>, path: &str| PlantEntry {
            path: path.into(),
            kind,
            target: target.map(String::from),
            device: None,
            text: None,
            if_permitted: false,
        };
        for (entry, want) in [
            (e(PlantType::Symlink, None, "a"), "needs `target`"),
            (e(PlantType::Fifo, Some("/x"), "a"), "only for symlinks"),
            (e(PlantType::Fifo, None, "../a"), "without `..`"),
            (e(PlantType::Dir, None, "/abs"), "without `..`"),
        ] {
            errs.clear();
            validate_plant_entry(1, &entry, &mut |_, m| errs.push(m));
            assert!(errs.iter().any(|m| m.contains(want)), "{want}: {errs:?}");
        }
        errs.clear();
        validate_plant_entry(
            1,
            &e(PlantType::Symlink, Some("/dev/zero"), "pkg/z.py"),
            &mut |_, m| errs.push(m),
        );
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(parse_device("1:5"), Some((1, 5)));
        assert_eq!(parse_device("1"), None);
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
