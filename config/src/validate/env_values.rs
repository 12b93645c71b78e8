//! What every store's options share: a secret read from a file or an environment variable, and
//! a boolean taken from the environment.

use std::path::Path;

use super::source::read_secret;
use super::Check;
use crate::error::ErrorKind;
use crate::secret::Secret;

/// A secret from `file` if set, else from the environment variable `var`.
pub(super) fn secret(
    file: Option<&Path>,
    key: &str,
    var: &str,
    check: &mut Check,
) -> Option<Secret> {
    match file {
        Some(path) => read_secret(key, path, check),
        None => check.env().get(var).map(Secret::new),
    }
}

pub(super) fn env_bool(path: &str, var: &str, text: &str, check: &mut Check) -> bool {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => true,
        "0" | "false" | "no" | "off" => false,
        _ => {
            check.push(
                ErrorKind::InvalidValue,
                path,
                Some(format!("{text:?}")),
                format!("from {var}: must be true or false"),
            );
            false
        }
    }
}
