//! The process exit code of a command's outcome: the one place where typed errors become the
//! documented codes of [`crate::exit`]. An explicit [`Failure`] tag wins; otherwise the first
//! typed cause with a code of its own (configuration and usage errors, an empty or unreachable
//! repository, no snapshot yet, a lease held elsewhere); anything else is a plain error.

use aofvault_config::ConfigErrors;

use crate::exit::{Failure, ERROR, LEASE_HELD, REPO_EMPTY, REPO_UNREACHABLE, USAGE};
use crate::repo::lease::LeaseError;
use crate::repo::{NoSnapshot, RepoError};
use crate::settings::SettingsError;

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
    use crate::exit::PROBLEMS;

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
