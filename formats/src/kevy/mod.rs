//! kevy's own files: `KEVYSNAP` snapshots (`dump-{i}.rdb`, which despite the name are not Redis
//! RDB), the `shards.meta` layout record, and the rule that routes a key to its shard.
//!
//! - [`KevySnapReader`] streams the entries of a snapshot, versions 2 (relative TTLs, anchored to
//!   the caller's `now_ms`), 3 (absolute TTLs) and 4 (absolute TTLs and stream consumer groups),
//!   as [`crate::model::Entry`] values;
//! - [`write_snapshot`] writes version 4, which kevy 1.19 loads;
//! - [`ShardsMeta`] reads `shards.meta` v1 (bare count) and v2 (count and routing), writes v2;
//! - [`shard_for_key`] reproduces kevy 1.19's key → shard rule, so a restore can tell which
//!   `dump-{i}.rdb` a key must go to.
//!
//! Byte layouts are in FORMATS.md §5.1–5.2. The formats carry no checksum, so the reader checks
//! what it can: the magic, the version, every opcode and TTL flag, and that the file does not
//! end before its `0x00` EOF record.

mod hash;
mod meta;
mod snapshot;
mod write;

pub use hash::shard_for_key;
pub use meta::{Routing, ShardsMeta};
pub use snapshot::KevySnapReader;
pub use write::write_snapshot;

/// `KEVYSNAP`, the first 8 bytes of every kevy snapshot.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"KEVYSNAP";
/// The snapshot version [`write_snapshot`] writes (kevy 1.19's).
pub const SNAPSHOT_VERSION: u8 = 4;

/// Record opcodes of a snapshot.
pub(crate) mod op {
    pub const EOF: u8 = 0;
    pub const STR: u8 = 1;
    pub const HASH: u8 = 2;
    pub const LIST: u8 = 3;
    pub const SET: u8 = 4;
    pub const ZSET: u8 = 5;
    pub const STREAM: u8 = 6;
}

/// A kevy file that cannot be read. Offsets are absolute byte offsets in the file.
#[derive(Debug, thiserror::Error)]
pub enum KevyError {
    #[error("kevy snapshot: read error at byte {offset}: {source}")]
    Io {
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    /// The input ended inside `context`.
    #[error("kevy snapshot truncated at byte {offset} (inside {context})")]
    Truncated { offset: u64, context: &'static str },
    #[error("invalid kevy file at byte {offset}: {reason}")]
    Invalid { offset: u64, reason: String },
    #[error("unsupported kevy snapshot version {version} (this reader knows 2 to 4)")]
    UnsupportedVersion { version: u8 },
}
