//! Why a tailer stops or waits: every failure is transient (retried with backoff, the lag grows
//! and is reported) or permanent (the shard stops, or recovers through a server rewrite).

use crate::repo::RepoError;

/// Why a tailer stopped.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("shard {shard}: {file} holds invalid AOF bytes at offset {offset}: {reason}; nothing past offset {shipped} was shipped. Inspect it with `aofvault inspect {file}`; the server must repair or rewrite its AOF (BGREWRITEAOF) before this shard can ship again")]
    Corrupt {
        shard: u32,
        file: String,
        offset: u64,
        reason: String,
        shipped: u64,
    },
    #[error("shard {shard}: a single command or transaction in {file} exceeds {limit} bytes at offset {offset}")]
    TooLarge {
        shard: u32,
        file: String,
        offset: u64,
        limit: usize,
    },
    #[error("shard {shard}: reading {file}: {source}")]
    Io {
        shard: u32,
        file: String,
        source: std::io::Error,
    },
    #[error("shard {shard}: {source}")]
    Repo { shard: u32, source: RepoError },
    /// Storing a new chain's base failed. Whatever the cause (the store went away in the middle
    /// of a multi-second upload, a reset connection), the chain start is owed and retried with
    /// backoff: the old chain is drained, nothing is lost by waiting, and giving up would stop
    /// the shard until a restart.
    #[error("shard {shard}: storing the base of a new chain: {source}")]
    BaseUpload { shard: u32, source: RepoError },
}

impl TailError {
    /// Worth retrying (what [`super::Tailer::run`] retries with backoff).
    pub fn is_transient(&self) -> bool {
        self.transient()
    }

    pub(super) fn transient(&self) -> bool {
        match self {
            TailError::Repo { source, .. } => source.is_transient(),
            TailError::BaseUpload { .. } => true,
            // A file that vanished, or a directory made unreadable (a permissions change, a
            // mount over it): the operator can fix it without restarting us, and the pinned
            // descriptors keep what was already open. Retry and say so; stopping the shard
            // would leave it stopped after the fix.
            // A file caught in the middle of a reset (`WouldBlock`) is looked at again.
            TailError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::WouldBlock
            ),
            _ => false,
        }
    }
}
