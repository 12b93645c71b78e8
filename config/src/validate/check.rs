//! [`Check`]: the validation pass's reader of raw values.
//!
//! Each method turns one optional raw value into its domain value, or records an error with
//! the field path and the value as written and returns the default, so that one pass reports
//! every mistake.

use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use crate::env::Env;
use crate::error::{ConfigError, ConfigErrors, ErrorKind, Report};
use crate::raw::RawSize;
use crate::schedule::Schedule;
use crate::units::{format_duration, format_size, parse_duration, parse_size};

pub(crate) struct Check<'a> {
    report: Report,
    env: &'a Env,
}

impl<'a> Check<'a> {
    pub(crate) fn new(env: &'a Env) -> Self {
        Check {
            report: Report::default(),
            env,
        }
    }

    pub(crate) fn env(&self) -> &'a Env {
        self.env
    }

    pub(crate) fn push(
        &mut self,
        kind: ErrorKind,
        path: &str,
        value: Option<String>,
        message: impl Into<String>,
    ) {
        self.report.push(kind, path, value, message);
    }

    pub(crate) fn push_error(&mut self, error: ConfigError) {
        self.report.push_error(error);
    }

    pub(crate) fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        self.report.finish(value)
    }

    /// A duration within `range`, or `default` when unset.
    pub(crate) fn duration(
        &mut self,
        path: &str,
        raw: Option<&str>,
        default: Duration,
        range: RangeInclusive<Duration>,
    ) -> Duration {
        self.opt_duration(path, raw, range).unwrap_or(default)
    }

    /// A duration within `range`, or `None` when unset (or wrong, after reporting it).
    pub(crate) fn opt_duration(
        &mut self,
        path: &str,
        raw: Option<&str>,
        range: RangeInclusive<Duration>,
    ) -> Option<Duration> {
        let text = raw?;
        match parse_duration(text) {
            Ok(d) if range.contains(&d) => Some(d),
            Ok(_) => {
                let message = format!(
                    "must be between {} and {}",
                    format_duration(*range.start()),
                    format_duration(*range.end())
                );
                self.push(
                    ErrorKind::OutOfRange,
                    path,
                    Some(format!("{text:?}")),
                    message,
                );
                None
            }
            Err(message) => {
                self.push(
                    ErrorKind::InvalidValue,
                    path,
                    Some(format!("{text:?}")),
                    message,
                );
                None
            }
        }
    }

    /// A byte size within `range`, or `default` when unset.
    pub(crate) fn size(
        &mut self,
        path: &str,
        raw: Option<&RawSize>,
        default: u64,
        range: RangeInclusive<u64>,
    ) -> u64 {
        let Some(raw) = raw else { return default };
        let parsed = match raw {
            RawSize::Bytes(n) => {
                u64::try_from(*n).map_err(|_| "a size cannot be negative".to_string())
            }
            RawSize::Text(text) => parse_size(text),
        };
        match parsed {
            Ok(n) if range.contains(&n) => n,
            Ok(_) => {
                let message = format!(
                    "must be between {} and {}",
                    format_size(*range.start()),
                    format_size(*range.end())
                );
                self.push(ErrorKind::OutOfRange, path, Some(raw.to_string()), message);
                default
            }
            Err(message) => {
                self.push(
                    ErrorKind::InvalidValue,
                    path,
                    Some(raw.to_string()),
                    message,
                );
                default
            }
        }
    }

    /// An integer within `range`, or `default` when unset.
    pub(crate) fn int(
        &mut self,
        path: &str,
        raw: Option<i64>,
        default: i64,
        range: RangeInclusive<i64>,
    ) -> i64 {
        self.opt_int(path, raw, range).unwrap_or(default)
    }

    /// An integer within `range`, or `None` when unset.
    pub(crate) fn opt_int(
        &mut self,
        path: &str,
        raw: Option<i64>,
        range: RangeInclusive<i64>,
    ) -> Option<i64> {
        let n = raw?;
        if range.contains(&n) {
            return Some(n);
        }
        let message = format!("must be between {} and {}", range.start(), range.end());
        self.push(ErrorKind::OutOfRange, path, Some(n.to_string()), message);
        None
    }

    /// One of the named `options` (case-insensitive), or `default` when unset.
    pub(crate) fn choice<T: Copy>(
        &mut self,
        path: &str,
        raw: Option<&str>,
        default: T,
        options: &[(&str, T)],
    ) -> T {
        let Some(text) = raw else { return default };
        let wanted = text.trim().to_ascii_lowercase();
        if let Some((_, value)) = options.iter().find(|(name, _)| *name == wanted) {
            return *value;
        }
        let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
        let message = format!("must be one of: {}", names.join(", "));
        self.push(
            ErrorKind::InvalidValue,
            path,
            Some(format!("{text:?}")),
            message,
        );
        default
    }

    /// A schedule; `"off"` (or `""`) disables it, unset means `default`.
    pub(crate) fn schedule(
        &mut self,
        path: &str,
        raw: Option<&str>,
        default: Option<&str>,
    ) -> Option<Schedule> {
        let text = raw.or(default)?;
        if matches!(text.trim(), "" | "off" | "never") {
            return None;
        }
        match Schedule::parse(text) {
            Ok(schedule) => Some(schedule),
            Err(message) => {
                self.push(
                    ErrorKind::InvalidValue,
                    path,
                    Some(format!("{text:?}")),
                    message,
                );
                None
            }
        }
    }

    /// An absolute path, or `None` when unset (or relative, after reporting it).
    pub(crate) fn absolute(&mut self, path: &str, raw: Option<PathBuf>) -> Option<PathBuf> {
        let dir = raw?;
        if dir.is_absolute() {
            return Some(dir);
        }
        self.push(
            ErrorKind::InvalidValue,
            path,
            Some(format!("{:?}", dir.display().to_string())),
            "must be an absolute path",
        );
        None
    }
}
