//! Gate and scenario specifications: the TOML data model and its validation.
//!
//! Everything is checked before anything runs (`load_all`): every gate file parses with
//! `deny_unknown_fields`, ids are unique, scenarios exist, jq filters compile, corruption modes
//! are in the catalog and step references point at earlier named steps. Every problem is
//! reported as `file:line: message`, using the `toml` crate's spans.
//!
//! Each step is first read as a spanned table (that gives its line) and then converted to a
//! [`Step`] through the kind registry (`verify::steps::kinds`), whose kinds validate themselves.

mod model;

pub use model::*;

use crate::verify::steps::kinds::{ValidateCx, plain_relative};
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
    if let Some(from) = &sc.from {
        let sibling = dir.parent().map(|p| p.join(from));
        match sibling {
            Some(d) if plain_relative(from) && !from.contains('/') && d.is_dir() => sc.dir = d,
            _ => {
                return Err(SpecError {
                    message: format!(
                        "{}:1: `from = \"{from}\"` must name a sibling scenario folder",
                        path.display()
                    ),
                });
            }
        }
    }
    let dir = sc.dir.clone();
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
        && (!plain_relative(o) || !dir.join(o).is_dir())
    {
        return Err(SpecError {
            message: format!(
                "{}:1: outside folder `{o}` must be an existing sub-folder",
                path.display()
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
    let src = Source { path, text: &text };
    let mut errors = Vec::new();
    let id_line = line_of(&text, raw.id.span().start);
    let id = raw.id.into_inner();
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        errors.push(src.at(
            id_line,
            format!("gate id `{id}` must be non-empty [A-Za-z0-9._-]"),
        ));
    }
    let scenario = raw.scenario.map(|s| {
        let line = line_of(&text, s.span().start);
        let name = s.into_inner();
        load_named_scenario(&src, line, &name, scenarios_dir, scenarios, &mut errors);
        name
    });
    if raw.steps.is_empty() {
        errors.push(src.at(1, "a gate needs at least one step".into()));
    }
    // `{outside}` only exists when the scenario provides an outside folder; an unexpanded
    // placeholder would otherwise become a literal path at run time.
    let has_outside = scenario
        .as_ref()
        .and_then(|n| scenarios.get(n))
        .is_some_and(|sc| sc.outside.is_some());
    if !has_outside && let Some(pos) = text.find("{outside}") {
        errors.push(src.at(
            line_of(&text, pos),
            "`{outside}` needs a scenario with an `outside` folder".into(),
        ));
    }
    let steps = load_steps(&src, raw.steps, scenario.is_some(), &mut errors);
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

/// A gate file being loaded: where problems are reported.
struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    /// A problem at `line` of this file.
    fn at(&self, line: usize, msg: String) -> SpecError {
        SpecError {
            message: format!("{}:{line}: {msg}", self.path.display()),
        }
    }
}

/// Load scenario `name` (named at `line`) into `scenarios` unless it is already there.
fn load_named_scenario(
    src: &Source,
    line: usize,
    name: &str,
    scenarios_dir: &Path,
    scenarios: &mut BTreeMap<String, Scenario>,
    errors: &mut Vec<SpecError>,
) {
    if scenarios.contains_key(name) {
        return;
    }
    let dir = scenarios_dir.join(name);
    if !dir.join("scenario.toml").is_file() {
        errors.push(src.at(
            line,
            format!(
                "scenario `{name}` not found ({} missing)",
                dir.join("scenario.toml").display()
            ),
        ));
        return;
    }
    match load_scenario(&dir) {
        Ok(sc) => {
            scenarios.insert(name.to_string(), sc);
        }
        Err(e) => errors.push(e),
    }
}

/// Parse every step through the kind registry and validate it against the steps before it
/// (names, worktree) and the gate (`has_scenario`).
fn load_steps(
    src: &Source,
    raw: Vec<Spanned<toml::Table>>,
    has_scenario: bool,
    errors: &mut Vec<SpecError>,
) -> Vec<StepSpec> {
    let text = src.text;
    let mut steps = Vec::new();
    let mut names: HashSet<String> = HashSet::new();
    let mut has_worktree = false;
    for (i, st) in raw.into_iter().enumerate() {
        let span = st.span();
        let line = line_of(text, span.start);
        let step = match Step::from_table(st.into_inner()) {
            Ok(s) => s,
            Err(e) => {
                let msg = e.message().trim().replace('\n', " ");
                // Point at the offending key when serde names it (`unknown field `x``).
                let key_at = msg
                    .strip_prefix("unknown field `")
                    .and_then(|r| r.split('`').next())
                    .map(|k| key_line(text, span.start, k))
                    .unwrap_or(line);
                errors.push(src.at(key_at, format!("step {}: {msg}", i + 1)));
                continue;
            }
        };
        let here = |key: &str| key_line(text, span.start, key);
        if step.needs_segment() && !has_scenario {
            errors.push(src.at(
                line,
                format!(
                    "step {} ({}) needs a segment: set `scenario`",
                    i + 1,
                    step.kind()
                ),
            ));
        }
        let cx = ValidateCx {
            names: &names,
            has_worktree,
        };
        step.validate(&cx, &mut |key, msg| {
            errors.push(src.at(
                here(key),
                format!("step {} ({}): {msg}", i + 1, step.kind()),
            ))
        });
        has_worktree |= step.makes_worktree();
        for n in step.names() {
            if !names.insert(n.to_string()) {
                errors.push(src.at(
                    here("name"),
                    format!("step {}: duplicate step name `{n}`", i + 1),
                ));
            }
        }
        steps.push(StepSpec { step, line });
    }
    steps
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
    fn a_scenario_may_take_its_folders_from_a_sibling_but_only_a_sibling() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("base/segment")).unwrap();
        let sc = |name: &str, toml: &str| {
            let dir = d.path().join(name);
            std::fs::create_dir_all(&dir).unwrap();
            write(&dir, "scenario.toml", toml);
            load_scenario(&dir)
        };
        let two = "description = \"d\"\nfrom = \"base\"\noutside = \"segment\"\n";
        let ok = sc("twice", two).unwrap();
        assert_eq!(ok.dir, d.path().join("base"));
        assert!(ok.dir.join(&ok.segment).is_dir());
        for bad in ["missing", "../base", "base/segment", ""] {
            let toml = format!("description = \"d\"\nfrom = \"{bad}\"\n");
            let e = sc("bad", &toml).expect_err(bad);
            assert!(
                e.message.contains("sibling scenario"),
                "{bad}: {}",
                e.message
            );
        }
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
