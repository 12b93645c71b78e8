//! What verify reports: a [`Finding`] names one object (or document) and its problem. Every
//! check of `verify` produces them; only an unreachable store is an error instead.

use serde::Serialize;

use crate::repo::RepoError;

/// One problem (or, among notes, one remark), naming the object it is about.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub object: String,
    pub problem: String,
}

pub(super) fn finding(object: impl Into<String>, problem: impl Into<String>) -> Finding {
    Finding {
        object: object.into(),
        problem: problem.into(),
    }
}

/// A repository error that is about an object (a finding), or about reaching the store (`Err`).
pub(super) fn as_finding(key: &str, e: RepoError) -> anyhow::Result<Finding> {
    match e {
        e @ RepoError::Unreachable { .. } => Err(e.into()),
        RepoError::NotFound { key } => Ok(finding(key, "missing")),
        RepoError::Corrupt { key, reason } => Ok(finding(key, reason)),
        other => Ok(finding(key, other.to_string())),
    }
}
