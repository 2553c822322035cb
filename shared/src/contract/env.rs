//! Settings read once from the environment (docs/CONTRACT.md, "Environment"), checked at start.
//!
//! Nothing else in pasarela reads environment variables: binaries call [`Settings::from_env`] and pass
//! the result down. Secrets are [`SecretString`]s so that `{:?}` of any settings value prints
//! `[REDACTED]` instead of a password.

use std::collections::HashMap;
use std::time::Duration;

use secrecy::SecretString;

use crate::contract::retry::parse_duration;

/// A setting that is present but cannot be used; names the variable and what was wrong.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub variable: String,
    /// What is wrong with its value (never the value itself: it may be a secret).
    pub problem: String,
}

impl ConfigError {
    /// `variable` cannot be used because of `problem` (which never quotes a secret value).
    pub fn new(variable: &str, problem: impl Into<String>) -> Self {
        Self {
            variable: variable.to_string(),
            problem: problem.into(),
        }
    }
}

/// A snapshot of environment variables; tests build one from a map instead of the process env.
#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
    /// The required variables read while unset, so that one error names them all.
    missing: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
}

/// The variable that chooses the demo profile, the only one in which vendor settings fall back to the
/// vendor simulator's demo values.
pub const PROFILE: &str = "PASARELA_PROFILE";

impl std::fmt::Debug for Env {
    // Any variable may hold a secret: the names are enough to see what was read.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.vars.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Env")
            .field("names", &names)
            .finish_non_exhaustive()
    }
}

impl Env {
    /// The process environment, after reading the file `PASARELA_ENV_FILE` names, when it names one
    /// (its values never override the process's own). A `.env` that happens to lie in the working
    /// directory is not read: a command must not take settings from wherever it is run.
    pub fn from_process() -> Self {
        if let Ok(path) = std::env::var("PASARELA_ENV_FILE")
            && !path.is_empty()
            && let Err(e) = dotenvy::from_path(&path)
        {
            eprintln!("PASARELA_ENV_FILE: {path}: {e}");
        }
        Self {
            vars: std::env::vars().collect(),
            missing: Default::default(),
        }
    }

    /// An environment made of the given pairs only.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            missing: Default::default(),
        }
    }

    /// Whether `PASARELA_PROFILE=demo`.
    pub fn is_demo(&self) -> bool {
        self.get(PROFILE)
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("demo"))
    }

    /// A vendor setting: its value; in the demo profile, when unset, the simulator's `demo` value;
    /// otherwise, when unset, it is recorded as missing ([`Env::require_complete`] names it) and read
    /// as empty.
    pub fn demo_or_required(&self, name: &str, demo: &str) -> String {
        match self.get(name) {
            Some(value) => value.to_string(),
            None if self.is_demo() => demo.to_string(),
            None => {
                self.missing
                    .lock()
                    .expect("missing settings")
                    .insert(name.to_string());
                String::new()
            }
        }
    }

    /// [`Env::demo_or_required`] for a secret.
    pub fn demo_or_required_secret(&self, name: &str, demo: &str) -> SecretString {
        SecretString::from(self.demo_or_required(name, demo))
    }

    /// Fails naming every required variable read while unset, so one start says all that is missing.
    pub fn require_complete(&self) -> Result<(), ConfigError> {
        let missing = self.missing.lock().expect("missing settings");
        if missing.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = missing.iter().map(String::as_str).collect();
        Err(ConfigError {
            variable: names.join(", "),
            problem: format!(
                "required, and unset ({} of them); {PROFILE}=demo uses the vendor simulator's demo values instead",
                names.len()
            ),
        })
    }

    /// The value of `name`, treating an empty value as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The value of `name` or `default`.
    pub fn string(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_string()
    }

    /// A secret value or `default`, wrapped so it never prints.
    pub fn secret(&self, name: &str, default: &str) -> SecretString {
        SecretString::from(self.string(name, default))
    }

    /// A parsed value or `default`; a value that does not parse names the variable.
    pub fn parse<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|e: T::Err| ConfigError {
                variable: name.to_string(),
                problem: format!("cannot parse {raw:?}: {e}"),
            }),
        }
    }

    /// One of a closed set of words, the first being the default; any other value names the variable
    /// and lists the words.
    pub fn choice<T: Copy>(&self, name: &str, choices: &[(&str, T)]) -> Result<T, ConfigError> {
        let Some(raw) = self.get(name) else {
            return Ok(choices[0].1);
        };
        let raw = raw.trim();
        choices
            .iter()
            .find(|(word, _)| word.eq_ignore_ascii_case(raw))
            .map(|(_, value)| *value)
            .ok_or_else(|| {
                let words: Vec<&str> = choices.iter().map(|(word, _)| *word).collect();
                ConfigError {
                    variable: name.to_string(),
                    problem: format!("must be one of {}, got {raw:?}", words.join(", ")),
                }
            })
    }

    /// A duration written like `250ms`, `5s`, `2m` or `1h`, or `default`.
    pub fn duration(&self, name: &str, default: Duration) -> Result<Duration, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => parse_duration(raw).map_err(|e| ConfigError {
                variable: name.to_string(),
                problem: e.to_string(),
            }),
        }
    }
}

/// Settings read from the environment: every settings struct of pasarela reads itself this one way.
pub trait FromEnv: Sized {
    /// Reads the settings, refusing a value that cannot be used.
    fn from_env(env: &Env) -> Result<Self, ConfigError>;
}

/// Settings made of several parts, each read its own way.
macro_rules! from_env_for_tuples {
    ($(($($part:ident),+)),+) => {$(
        impl<$($part: FromEnv),+> FromEnv for ($($part,)+) {
            fn from_env(env: &Env) -> Result<Self, ConfigError> {
                Ok(($($part::from_env(env)?,)+))
            }
        }
    )+};
}

from_env_for_tuples!((A, B), (A, B, C), (A, B, C, D));

/// A vendor's URL in `variable` (the simulator's `default` only in the demo profile); a value that is
/// not a URL names the variable. Unset outside the demo profile, it is recorded as missing and read as a
/// URL that goes nowhere, so that the settings still build and one error names every missing variable.
pub fn base_url(env: &Env, variable: &str, default: &str) -> Result<String, ConfigError> {
    let raw = env.demo_or_required(variable, default);
    if raw.is_empty() {
        return Ok("http://unset.invalid".into());
    }
    url::Url::parse(&raw).map_err(|e| ConfigError {
        variable: variable.into(),
        problem: format!("not a URL: {e}"),
    })?;
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 12, hole 9: printing the environment shows which variables are set, never a value.
    #[test]
    fn env_debug_never_prints_a_value() {
        let env = Env::from_pairs([
            ("AMQP_URL", "amqp://u:hunter2@h:5672/%2f"),
            ("GESTOPAGO_AES_KEY", "pasarela-gestopago-demo-key-32by"),
        ]);
        let printed = format!("{env:?}");
        assert!(
            printed.contains("AMQP_URL") && printed.contains("GESTOPAGO_AES_KEY"),
            "{printed}"
        );
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("demo-key"), "{printed}");
    }
}
