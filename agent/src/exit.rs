//! Exit codes: what `aofvault` returns, so scripts and systemd can tell failures apart.
//!
//! | code | constant | meaning |
//! |---|---|---|
//! | 0 | [`OK`] | success |
//! | 1 | [`ERROR`] | any other error (the message says what) |
//! | 2 | [`USAGE`] | bad command line or configuration; nothing was done |
//! | 3 | [`PROBLEMS`] | `verify` found problems, or a drift check found the server and the repository differ |
//! | 4 | [`REPO_UNREACHABLE`] | the repository could not be reached (network, credentials, permissions) |
//! | 5 | [`REPO_EMPTY`] | the repository is reachable but holds nothing to restore for this instance |
//! | 6 | [`LEASE_HELD`] | another agent holds this instance's lease |
//! | 7 | [`TARGET_NOT_EMPTY`] | restore refused: the target directory or server is not empty (see `--force`) |
//!
//! Code that fails in one of these ways tags its error with a [`Failure`], either as the
//! error itself or as context (`err.context(Failure::RepoUnreachable)`); [`code_for`] finds
//! the tag anywhere in the chain. 4 and 5 are kept apart on purpose: "cannot reach the
//! backups" must never look like "there are no backups".

use aofvault_config::ConfigErrors;

use crate::repo::lease::LeaseError;
use crate::repo::{NoSnapshot, RepoError};
use crate::settings::SettingsError;

pub const OK: u8 = 0;
pub const ERROR: u8 = 1;
pub const USAGE: u8 = 2;
pub const PROBLEMS: u8 = 3;
pub const REPO_UNREACHABLE: u8 = 4;
pub const REPO_EMPTY: u8 = 5;
pub const LEASE_HELD: u8 = 6;
pub const TARGET_NOT_EMPTY: u8 = 7;

/// Every code with its one-line meaning, in order: the source of the man page's EXIT STATUS
/// section and of [`AFTER_HELP`]'s table (a test keeps them equal).
pub const TABLE: [(u8, &str); 8] = [
    (OK, "success"),
    (ERROR, "error"),
    (USAGE, "usage or configuration error"),
    (PROBLEMS, "verify found problems, or drift was detected"),
    (REPO_UNREACHABLE, "repository unreachable"),
    (REPO_EMPTY, "repository empty: nothing to restore"),
    (LEASE_HELD, "lease held by another agent"),
    (TARGET_NOT_EMPTY, "restore target not empty (see --force)"),
];

/// The exit-code table as printed at the end of `aofvault --help`.
pub const AFTER_HELP: &str = "\
Exit status:
  0  success
  1  error
  2  usage or configuration error
  3  verify found problems, or drift was detected
  4  repository unreachable
  5  repository empty: nothing to restore
  6  lease held by another agent
  7  restore target not empty (see --force)";

/// A failure with its own exit code. Attach it to an error as context or return it as the
/// error; its `Display` is the table's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("usage or configuration error")]
    Usage,
    #[error("problems found")]
    Problems,
    #[error("repository unreachable")]
    RepoUnreachable,
    #[error("repository empty: nothing to restore")]
    RepoEmpty,
    #[error("lease held by another agent")]
    LeaseHeld,
    #[error("restore target not empty (use --force to move its contents aside)")]
    TargetNotEmpty,
}

impl Failure {
    pub fn code(self) -> u8 {
        match self {
            Failure::Usage => USAGE,
            Failure::Problems => PROBLEMS,
            Failure::RepoUnreachable => REPO_UNREACHABLE,
            Failure::RepoEmpty => REPO_EMPTY,
            Failure::LeaseHeld => LEASE_HELD,
            Failure::TargetNotEmpty => TARGET_NOT_EMPTY,
        }
    }
}

/// The exit code for an error: the first [`Failure`] tag found (as context or anywhere in
/// the source chain), [`USAGE`] for configuration and command-line errors, else [`ERROR`].
pub fn code_for(err: &anyhow::Error) -> u8 {
    // An explicit tag wins, wherever it is: as a context (anyhow finds those through every
    // layer) or as a cause in the chain.
    if let Some(failure) = err
        .downcast_ref::<Failure>()
        .or_else(|| err.chain().find_map(|c| c.downcast_ref::<Failure>()))
    {
        return failure.code();
    }
    // Then the first typed cause that has a code of its own, outermost first.
    err.chain().find_map(typed_code).unwrap_or(ERROR)
}

/// The exit code a typed error stands for, if any.
fn typed_code(cause: &(dyn std::error::Error + 'static)) -> Option<u8> {
    if cause.is::<ConfigErrors>() || cause.is::<SettingsError>() || cause.is::<clap::Error>() {
        return Some(USAGE);
    }
    if cause.is::<NoSnapshot>() {
        return Some(REPO_EMPTY);
    }
    let repo = match cause.downcast_ref::<LeaseError>() {
        Some(LeaseError::Held { .. }) => return Some(LEASE_HELD),
        Some(LeaseError::Repo(r)) => Some(r),
        _ => cause.downcast_ref::<RepoError>(),
    };
    match repo {
        Some(RepoError::Unreachable { .. }) => Some(REPO_UNREACHABLE),
        Some(RepoError::Empty { .. }) => Some(REPO_EMPTY),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use anyhow::Context;

    use super::*;

    #[test]
    fn after_help_lists_the_table() {
        let lines: Vec<String> = TABLE
            .iter()
            .map(|(code, meaning)| format!("  {code}  {meaning}"))
            .collect();
        assert_eq!(AFTER_HELP, format!("Exit status:\n{}", lines.join("\n")));
    }

    #[test]
    fn failure_tags_are_found_as_error_or_context() {
        let direct = anyhow::Error::new(Failure::RepoEmpty);
        assert_eq!(code_for(&direct), REPO_EMPTY);
        let as_context = anyhow::anyhow!("connection refused").context(Failure::RepoUnreachable);
        assert_eq!(code_for(&as_context), REPO_UNREACHABLE);
        let deeper = Err::<(), _>(Failure::LeaseHeld)
            .context("starting the daemon")
            .unwrap_err();
        assert_eq!(code_for(&deeper), LEASE_HELD);
    }

    #[test]
    fn typed_errors_carry_their_code_without_a_tag() {
        let none = anyhow::Error::new(NoSnapshot {
            instance: "db1".into(),
            url: "file:///r".into(),
        })
        .context("planning a restore of the latest state");
        assert_eq!(code_for(&none), REPO_EMPTY);
        let empty = anyhow::Error::new(RepoError::Empty {
            url: "s3://b".into(),
            hint: String::new(),
        });
        assert_eq!(code_for(&empty), REPO_EMPTY);
        let other = anyhow::Error::new(RepoError::NotFound { key: "k".into() });
        assert_eq!(code_for(&other), ERROR);
        let tagged = anyhow::Error::new(RepoError::Empty {
            url: "s3://b".into(),
            hint: String::new(),
        })
        .context(Failure::Problems);
        assert_eq!(code_for(&tagged), PROBLEMS, "an explicit tag wins");
    }

    #[test]
    fn config_errors_are_usage_errors_and_the_rest_plain_errors() {
        let config = anyhow::Error::new(ConfigErrors(vec![])).context("in /etc/x.toml");
        assert_eq!(code_for(&config), USAGE);
        assert_eq!(code_for(&anyhow::anyhow!("disk full")), ERROR);
    }
}
