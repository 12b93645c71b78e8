//! Configuration errors: one [`ConfigError`] per mistake, all of them gathered in
//! [`ConfigErrors`] so that an operator fixes a file in one round instead of one error per run.

use std::fmt;

use serde::Serialize;

/// What kind of mistake a [`ConfigError`] reports; lets callers and tests tell them apart
/// without matching on message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The file is not valid TOML; nothing after this point could be checked.
    Syntax,
    /// A key or section the schema does not know (often a typo).
    UnknownKey,
    /// A value of the wrong TOML type (a number where a string was expected, ...).
    InvalidType,
    /// A value of the right type that does not parse or is not allowed.
    InvalidValue,
    /// A number or duration outside the allowed range.
    OutOfRange,
    /// A required setting is missing.
    Missing,
    /// Two settings contradict each other.
    Conflict,
    /// A file the configuration names (password, certificate) could not be read.
    Io,
}

/// One mistake in the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct ConfigError {
    /// Dotted field path, e.g. `ship.interval` or `repository.s3.region`. For syntax errors,
    /// the file and position instead (`/etc/aofvault/aofvault.toml:3:7`).
    pub path: String,
    /// The offending value as written (secrets replaced by `***`), when there is one.
    pub value: Option<String>,
    /// What is wrong, and when it helps, what would be right.
    pub message: String,
    pub kind: ErrorKind,
}

impl ConfigError {
    pub fn new(
        kind: ErrorKind,
        path: impl Into<String>,
        value: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError {
            path: path.into(),
            value,
            message: message.into(),
            kind,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)?;
        if let Some(value) = &self.value {
            write!(f, " (got {value})")?;
        }
        Ok(())
    }
}

/// Every mistake found in one pass over a configuration: keys the parser rejected first,
/// then what validation found, section by section.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// A single error, for callers that find one mistake outside the normal validation pass.
    pub fn one(error: ConfigError) -> Self {
        ConfigErrors(vec![error])
    }

    /// The field paths of all errors, in order (handy in tests and summaries).
    pub fn paths(&self) -> Vec<&str> {
        self.0.iter().map(|e| e.path.as_str()).collect()
    }
}

fn render(errors: &[ConfigError]) -> String {
    match errors {
        [] => "invalid configuration".to_string(),
        [one] => format!("invalid configuration: {one}"),
        many => {
            let mut text = format!("invalid configuration ({} errors):", many.len());
            for error in many {
                text.push_str("\n  ");
                text.push_str(&error.to_string());
            }
            text
        }
    }
}

/// Collects errors during a validation pass. Checks push into it and carry on with a
/// default, so the pass always reaches the end and reports everything.
#[derive(Debug, Default)]
pub(crate) struct Report {
    errors: Vec<ConfigError>,
}

impl Report {
    pub(crate) fn push(
        &mut self,
        kind: ErrorKind,
        path: &str,
        value: Option<String>,
        message: impl Into<String>,
    ) {
        self.errors
            .push(ConfigError::new(kind, path, value, message));
    }

    pub(crate) fn push_error(&mut self, error: ConfigError) {
        self.errors.push(error);
    }

    pub(crate) fn into_errors(self) -> Vec<ConfigError> {
        self.errors
    }

    /// `Ok(value)` when nothing was reported, else every error.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(ConfigErrors(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_path_message_and_value() {
        let error = ConfigError::new(
            ErrorKind::InvalidValue,
            "ship.interval",
            Some("\"soon\"".into()),
            "not a duration",
        );
        assert_eq!(
            error.to_string(),
            "ship.interval: not a duration (got \"soon\")"
        );
    }

    #[test]
    fn many_errors_render_one_per_line() {
        let errors = ConfigErrors(vec![
            ConfigError::new(ErrorKind::UnknownKey, "a.b", None, "unknown"),
            ConfigError::new(ErrorKind::OutOfRange, "c.d", Some("0".into()), "too small"),
        ]);
        let text = errors.to_string();
        assert!(
            text.starts_with("invalid configuration (2 errors):"),
            "{text}"
        );
        assert!(
            text.contains("\n  a.b: unknown\n  c.d: too small (got 0)"),
            "{text}"
        );
        assert_eq!(errors.paths(), vec!["a.b", "c.d"]);
    }
}
