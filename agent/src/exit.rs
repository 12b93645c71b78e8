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
//! error itself or as context (`err.context(Failure::RepoUnreachable)`), or returns a typed
//! error that stands for one; `crate::outcome::code_for` (the one place that maps errors to
//! codes) finds either anywhere in the chain. 4 and 5 are kept apart on purpose: "cannot reach
//! the backups" must never look like "there are no backups". This module imports nothing of
//! the crate: the CLI definition uses its table.

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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn after_help_lists_the_table() {
        let lines: Vec<String> = TABLE
            .iter()
            .map(|(code, meaning)| format!("  {code}  {meaning}"))
            .collect();
        assert_eq!(AFTER_HELP, format!("Exit status:\n{}", lines.join("\n")));
    }
}
