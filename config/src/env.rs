//! [`Env`]: the environment variables validation may read, captured once.
//!
//! Validation takes a snapshot instead of calling `std::env::var` so that it is a pure
//! function of (file, flags, snapshot): tests pass their own snapshot and never touch the
//! process environment.

use std::collections::BTreeMap;
use std::fmt;

/// Variable-name prefixes and names that [`Env::from_process`] captures.
const PREFIXES: [&str; 5] = ["AOFVAULT_", "AWS_", "AZURE_", "AZURITE_", "GOOGLE_"];
const NAMES: [&str; 3] = ["STATE_DIRECTORY", "XDG_STATE_HOME", "HOME"];

/// A snapshot of the relevant environment variables.
///
/// Read during validation: `AWS_ENDPOINT_URL` / `AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` / `AWS_DEFAULT_REGION`,
/// `AWS_ALLOW_HTTP`, `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`, `AOFVAULT_SOURCE_PASSWORD`,
/// `AOFVAULT_ENCRYPTION_IDENTITY`, the `AZURE_STORAGE_*` and `GOOGLE_*` variables of
/// `[repository.azure]` / `[repository.gcs]` (see `validate::cloud`),
/// `STATE_DIRECTORY` (set by systemd's `StateDirectory=`), `XDG_STATE_HOME`, `HOME`.
/// `HOSTNAME` is not captured from the process (the host name comes from the system), but a
/// snapshot built by hand may set it to pin the default instance name.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Env(pub BTreeMap<String, String>);

impl Env {
    /// An empty snapshot: no variable set.
    pub fn empty() -> Self {
        Env::default()
    }

    /// Captures the variables aofvault reads from the current process.
    pub fn from_process() -> Self {
        let vars = std::env::vars()
            .filter(|(name, _)| {
                NAMES.contains(&name.as_str()) || PREFIXES.iter().any(|p| name.starts_with(p))
            })
            .collect();
        Env(vars)
    }

    /// Adds or replaces one variable (builder style, for tests and callers that compose).
    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.0.insert(name.to_string(), value.to_string());
        self
    }

    /// The value of `name`, treating an empty value as unset (as most tools do).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|value| !value.is_empty())
    }

    /// The first of `names` that is set, with its name (for error messages).
    pub fn first<'a>(&'a self, names: &[&'a str]) -> Option<(&'a str, &'a str)> {
        names
            .iter()
            .find_map(|name| self.get(name).map(|value| (*name, value)))
    }
}

/// Whether a variable's value must not be printed.
fn is_secret(name: &str) -> bool {
    ["SECRET", "TOKEN", "PASSWORD", "KEY", "IDENTITY"]
        .iter()
        .any(|word| name.contains(word))
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in &self.0 {
            if is_secret(name) {
                map.entry(name, &crate::secret::REDACTED);
            } else {
                map.entry(name, value);
            }
        }
        map.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_values_count_as_unset() {
        let env = Env::empty()
            .with("AWS_REGION", "")
            .with("AWS_DEFAULT_REGION", "eu-west-3");
        assert_eq!(env.get("AWS_REGION"), None);
        assert_eq!(
            env.first(&["AWS_REGION", "AWS_DEFAULT_REGION"]),
            Some(("AWS_DEFAULT_REGION", "eu-west-3"))
        );
    }

    #[test]
    fn debug_redacts_secret_variables() {
        let env = Env::empty()
            .with("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI")
            .with("AWS_REGION", "eu-west-3");
        let shown = format!("{env:?}");
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
        assert!(shown.contains("eu-west-3"), "{shown}");
    }
}
