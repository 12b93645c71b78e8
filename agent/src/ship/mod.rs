//! Shipping: one [`tailer::Tailer`] per shard reads its follower's stream and stores it as
//! segments of whole commands, cut at safe points; [`status`] is what it reports; [`backoff`]
//! paces retries.

pub mod backoff;
pub mod status;
pub mod tailer;

/// Events a tailer sends to the daemon.
#[derive(Debug, Clone)]
pub enum Event {
    /// A chain was started (its head is stored): a snapshot should name it.
    ChainStarted {
        shard: u32,
        head: Box<aofvault_formats::vault::ChainHead>,
        reason: String,
    },
    /// The tailer stopped for good (corruption or a permanent error).
    Stopped { shard: u32, error: String },
}
