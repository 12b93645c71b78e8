//! Shipping: one [`tailer::Tailer`] per shard reads its follower's stream and stores it as
//! segments of whole commands, cut at safe points; what it reports goes to [`crate::status`]; [`backoff`]
//! paces retries; [`torn`] recognises the frame a crash left half-written.

pub mod backoff;
pub mod tailer;
pub mod torn;

/// Events a tailer sends to the daemon.
#[derive(Debug, Clone)]
pub enum Event {
    /// A chain was started (its head is stored): a snapshot should name it.
    ChainStarted {
        shard: u32,
        head: Box<aofvault_formats::vault::ChainHead>,
        reason: crate::source::ChainReason,
    },
    /// The tailer stopped for good (corruption or a permanent error).
    Stopped { shard: u32, error: String },
    /// The shard cannot go on from its files as they are (invalid bytes, an AOF cut short with
    /// nothing to explain it): the server should rewrite its AOF. Withdrawn by the shard's next
    /// `ChainStarted`.
    NeedRewrite { shard: u32, reason: String },
}
