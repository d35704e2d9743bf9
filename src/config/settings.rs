//! The setting mechanism behind [`crate::config`]: each setting is declared once as a
//! [`Setting`] (name, environment variable, flag, default, parser with its range check), and a
//! [`Resolver`] turns the declarations into values, recording for each the effective value and
//! its [`Origin`]. `trifecta config` prints that record, so a setting resolved through the
//! resolver is listed without any further code.

use super::{Env, invalid, redact_url_password};
use crate::error::CliError;
use serde::Serialize;
use serde_json::Value;

/// Where an effective value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Nothing set it: the built-in default (for `ast index`, its own default).
    Default,
    /// The setting's environment variable.
    Environment,
    /// A command-line flag.
    Flag,
    /// The command itself (the cache commands always work on the persistent cache).
    Command,
}

impl Origin {
    /// `default`, `environment`, `flag` or `command`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Default => "default",
            Origin::Environment => "environment",
            Origin::Flag => "flag",
            Origin::Command => "command",
        }
    }
}

/// One setting, declared once. `T` is the parsed value.
pub struct Setting<T: 'static> {
    /// Dotted name shown by `trifecta config`, e.g. `cache.lock_timeout_ms`.
    pub name: &'static str,
    /// Its environment variable.
    pub env: &'static str,
    /// The flag that overrides it, if any (for the listing; flags are parsed by clap).
    pub flag: Option<&'static str>,
    /// One line: what it changes.
    pub about: &'static str,
    /// The value when nothing sets it.
    pub default: fn() -> T,
    /// Parse and range-check a non-blank value; `Err` says what is expected ("a whole number
    /// from 0 to 3600000"), and becomes `NAME=value is not valid: expected …`.
    pub parse: fn(&str) -> Result<T, String>,
    /// The value as JSON, for the listing.
    pub show: fn(&T) -> Value,
}

/// One line of `trifecta config`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Effective {
    /// The setting's dotted name.
    pub name: &'static str,
    /// The value in force.
    pub value: Value,
    /// Where it came from.
    pub origin: Origin,
    /// Its environment variable.
    pub env: &'static str,
    /// The flag that overrides it, if any.
    pub flag: Option<&'static str>,
    /// The default it would have had.
    pub default: Value,
    /// What it changes.
    pub about: &'static str,
}

/// Resolves declared settings against one environment snapshot, flag > environment > default,
/// and records what it resolved.
pub struct Resolver<'e> {
    env: &'e Env,
    /// Every setting resolved so far, in resolution order.
    pub effective: Vec<Effective>,
}

impl<'e> Resolver<'e> {
    /// A resolver over `env`.
    pub fn new(env: &'e Env) -> Self {
        Resolver {
            env,
            effective: Vec::new(),
        }
    }

    /// Resolve `s`. `over` is a value from a flag or the command, with its origin; the
    /// environment variable is checked even then, so a typo is never hidden by a flag.
    pub fn get<T>(&mut self, s: &Setting<T>, over: Option<(T, Origin)>) -> Result<T, CliError> {
        self.get_or(s, over, (s.default)())
    }

    /// [`Resolver::get`] with a command's own default instead of the declared one.
    pub fn get_or<T>(
        &mut self,
        s: &Setting<T>,
        over: Option<(T, Origin)>,
        default: T,
    ) -> Result<T, CliError> {
        let from_env = match self.env.str(s.env)? {
            // The value is echoed with any URL password hidden (`TRIFECTA_AST_REMOTE`).
            Some(v) => Some(
                (s.parse)(v.trim())
                    .map_err(|expected| invalid(s.env, &redact_url_password(&v), &expected))?,
            ),
            None => None,
        };
        let shown_default = (s.show)(&default);
        let (value, origin) = match (over, from_env) {
            (Some((v, o)), _) => (v, o),
            (None, Some(v)) => (v, Origin::Environment),
            (None, None) => (default, Origin::Default),
        };
        self.effective.push(Effective {
            name: s.name,
            value: (s.show)(&value),
            origin,
            env: s.env,
            flag: s.flag,
            default: shown_default,
            about: s.about,
        });
        Ok(value)
    }

    /// Parse a flag's raw text with the setting's own parser (errors name the flag).
    pub fn flag<T>(s: &Setting<T>, raw: Option<&str>) -> Result<Option<(T, Origin)>, CliError> {
        let Some(raw) = raw else { return Ok(None) };
        let flag = s.flag.unwrap_or(s.name);
        (s.parse)(raw.trim())
            .map(|v| Some((v, Origin::Flag)))
            .map_err(|expected| invalid(flag, raw, &expected))
    }
}

/// `1|true|yes|on` or `0|false|no|off`.
pub fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err("1/true/yes/on or 0/false/no/off".into()),
    }
}

/// A whole number in `0..=max`.
pub fn parse_u64(v: &str, max: u64) -> Result<u64, String> {
    match v.parse::<u64>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!("a whole number from 0 to {max}")),
    }
}

/// A finite number in `0..=max` (decimals allowed).
pub fn parse_f64(v: &str, max: f64) -> Result<f64, String> {
    match v.parse::<f64>() {
        // `!(x < 0.0)` would let NaN through; spell out the finite range instead.
        Ok(x) if x.is_finite() && (0.0..=max).contains(&x) => Ok(x),
        _ => Err(format!("a number from 0 to {max}")),
    }
}

/// A number as JSON: whole numbers without a fraction (`500`, not `500.0`).
pub fn show_f64(x: &f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9e15 {
        Value::from(*x as i64)
    } else {
        Value::from(*x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static DEMO: Setting<u64> = Setting {
        name: "demo.n",
        env: "TRIFECTA_DEMO_N",
        flag: Some("--n"),
        about: "a demo",
        default: || 7,
        parse: |v| parse_u64(v, 10),
        show: |n| Value::from(*n),
    };

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().map(|(k, v)| (*k, *v)))
    }

    #[test]
    fn each_origin_is_recorded_with_its_value() {
        let e = env(&[("TRIFECTA_DEMO_N", "3")]);
        let mut r = Resolver::new(&e);
        assert_eq!(r.get(&DEMO, None).unwrap(), 3);
        assert_eq!(r.get(&DEMO, Some((9, Origin::Flag))).unwrap(), 9);
        let empty = Env::default();
        let mut d = Resolver::new(&empty);
        assert_eq!(d.get(&DEMO, None).unwrap(), 7);
        let origins: Vec<_> = r
            .effective
            .iter()
            .chain(&d.effective)
            .map(|e| (e.origin, e.value.clone()))
            .collect();
        assert_eq!(
            origins,
            [
                (Origin::Environment, Value::from(3)),
                (Origin::Flag, Value::from(9)),
                (Origin::Default, Value::from(7))
            ]
        );
        assert!(r.effective.iter().all(|e| e.default == 7));
    }

    #[test]
    fn a_bad_value_names_the_variable_even_under_a_flag() {
        let e = env(&[("TRIFECTA_DEMO_N", "11")]);
        let err = Resolver::new(&e)
            .get(&DEMO, Some((1, Origin::Flag)))
            .unwrap_err();
        assert_eq!(
            err.message,
            "TRIFECTA_DEMO_N=\"11\" is not valid: expected a whole number from 0 to 10"
        );
        let err = Resolver::flag(&DEMO, Some("x")).err().unwrap();
        assert!(err.message.starts_with("--n=\"x\""), "{}", err.message);
    }
}
