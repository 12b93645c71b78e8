//! aofvault's own repository documents: the format marker, the chain head and the snapshot
//! manifest, as serde types with validation.
//!
//! Readers check [`FormatMarker`] first and refuse a repository of a newer format. Every document
//! is validated after parsing ([`ChainHead::validate`], [`SnapshotManifest::validate`]): object
//! names must be plain relative names (no `..`, no `/` at the start, no control characters),
//! segments must be contiguous, sizes plausible — a hostile or damaged repository is refused
//! before a single byte reaches a restore target.

use serde::{Deserialize, Serialize};

/// The repository format this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// `<prefix>/aofvault.json`: written once when a repository is first used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatMarker {
    pub format: String,
    pub version: u32,
    pub created_ms: i64,
}

impl FormatMarker {
    pub fn new(created_ms: i64) -> Self {
        Self {
            format: "aofvault".into(),
            version: FORMAT_VERSION,
            created_ms,
        }
    }
}

/// What kind of server wrote the files, and how its shards are laid out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ServerLayout {
    /// kevy: one AOF per shard, `aof-{i}.aof`, `dump-{i}.rdb`, `shards.meta`.
    Kevy {
        shards: u32,
        shards_meta: Option<String>,
    },
    /// Redis/Valkey ≥ 7: multi-part AOF in `appendonlydir`.
    RedisMultiPart { aof_name: String, aof_dir: String },
    /// Redis ≤ 6: one `appendonly.aof`.
    RedisSingle { aof_name: String },
}

impl ServerLayout {
    pub fn shards(&self) -> u32 {
        match self {
            ServerLayout::Kevy { shards, .. } => *shards,
            _ => 1,
        }
    }
    pub fn is_kevy(&self) -> bool {
        matches!(self, ServerLayout::Kevy { .. })
    }
}

/// The format of a base part's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaseFormat {
    /// A kevy `KEVYSNAP` snapshot (`dump-{i}.rdb`).
    KevySnap,
    /// A Redis RDB file (a `.base.rdb`, or an AOF's RDB preamble).
    Rdb,
    /// RESP commands (a `.base.aof`).
    Resp,
}

/// One stored object holding a base file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BasePart {
    pub format: BaseFormat,
    /// Object name relative to the chain's folder.
    pub object: String,
    /// The file's name on the server (`dump-0.rdb`, `appendonly.aof.3.base.rdb`).
    pub file_name: String,
    /// Uncompressed size.
    pub size: u64,
    /// CRC-32C of the uncompressed bytes.
    pub crc32c: u32,
}

/// `chains/<chain>/chain.json`: written after the chain's base is stored, before its first
/// segment. A chain without a head does not exist for readers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub format_version: u32,
    pub instance: String,
    pub shard: u32,
    pub chain: String,
    pub created_ms: i64,
    pub layout: ServerLayout,
    pub server_version: Option<String>,
    /// Zero, one or more base parts (a kevy chain after a rewrite has none: its AOF is a full image).
    pub base: Vec<BasePart>,
    /// Logical offset where the first segment starts (the kevy AOF header is not part of the stream).
    pub stream_start: u64,
    /// Why this chain began (`start`, `rewrite`, `save`, `truncated`, `layout`...), for operators.
    pub reason: String,
    /// Identity of the followed file(s), used on restart to prove continuity.
    pub source_identity: String,
    /// The group member (`[repository] node`) whose agent wrote the chain: a chain that follows
    /// one of another member is a failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// A contiguous byte range of a shard's AOF stream, stored as one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRef {
    pub start: u64,
    pub end: u64,
    /// Object name relative to the chain's folder.
    pub object: String,
    pub crc32c: u32,
    /// Wall-clock range (unix ms) in which the agent saw these bytes.
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

/// One shard's part of a snapshot: its chain and the segments up to the cut.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardCut {
    pub shard: u32,
    pub chain: String,
    pub base: Vec<BasePart>,
    pub stream_start: u64,
    pub segments: Vec<SegmentRef>,
    /// The cut: the logical offset after the last segment (== stream_start when none).
    pub end: u64,
}

/// `snapshots/<id>.json`: published last, create-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotManifest {
    pub format_version: u32,
    pub id: String,
    pub instance: String,
    pub created_ms: i64,
    pub layout: ServerLayout,
    pub server_version: Option<String>,
    pub reason: String,
    pub shards: Vec<ShardCut>,
}

/// A document that failed validation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("repository format version {found} is newer than this aofvault understands ({FORMAT_VERSION}); upgrade aofvault")]
    NewerFormat { found: u32 },
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> VaultError {
    VaultError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Largest object (or base) size a document may claim: 1 TiB.
const MAX_SIZE: u64 = 1 << 40;

/// An object or id name: non-empty, at most 200 bytes, `[A-Za-z0-9._-]` only, not `.`/`..`.
pub fn check_name(field: &str, name: &str) -> Result<(), VaultError> {
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if name.is_empty()
        || name.len() > 200
        || !ok_chars
        || name == "."
        || name == ".."
        || name.contains("..")
    {
        return Err(invalid(
            field,
            format!("{name:?} is not a plain object name"),
        ));
    }
    Ok(())
}

fn check_version(found: u32) -> Result<(), VaultError> {
    if found > FORMAT_VERSION {
        return Err(VaultError::NewerFormat { found });
    }
    Ok(())
}

fn check_base(field: &str, base: &[BasePart]) -> Result<(), VaultError> {
    for (i, part) in base.iter().enumerate() {
        check_name(&format!("{field}[{i}].object"), &part.object)?;
        check_name(&format!("{field}[{i}].file_name"), &part.file_name)?;
        if part.size > MAX_SIZE {
            return Err(invalid(
                format!("{field}[{i}].size"),
                format!("{} is implausible", part.size),
            ));
        }
    }
    Ok(())
}

impl ChainHead {
    pub fn from_json(bytes: &[u8]) -> Result<Self, VaultError> {
        let head: Self =
            serde_json::from_slice(bytes).map_err(|e| VaultError::Json(e.to_string()))?;
        head.validate()?;
        Ok(head)
    }
    pub fn validate(&self) -> Result<(), VaultError> {
        check_version(self.format_version)?;
        check_name("chain", &self.chain)?;
        check_name("instance", &self.instance)?;
        check_base("base", &self.base)
    }
}

impl SnapshotManifest {
    pub fn from_json(bytes: &[u8]) -> Result<Self, VaultError> {
        let m: Self = serde_json::from_slice(bytes).map_err(|e| VaultError::Json(e.to_string()))?;
        m.validate()?;
        Ok(m)
    }

    /// Names are plain, every shard appears once, segments are contiguous from `stream_start`
    /// to `end`.
    pub fn validate(&self) -> Result<(), VaultError> {
        check_version(self.format_version)?;
        check_name("id", &self.id)?;
        check_name("instance", &self.instance)?;
        let shards = self.layout.shards();
        if self.shards.len() != shards as usize {
            return Err(invalid(
                "shards",
                format!(
                    "{} entries for a layout of {shards} shards",
                    self.shards.len()
                ),
            ));
        }
        for (i, cut) in self.shards.iter().enumerate() {
            let f = format!("shards[{i}]");
            if cut.shard != i as u32 {
                return Err(invalid(
                    format!("{f}.shard"),
                    format!("{} where {i} was expected", cut.shard),
                ));
            }
            check_name(&format!("{f}.chain"), &cut.chain)?;
            check_base(&format!("{f}.base"), &cut.base)?;
            let mut at = cut.stream_start;
            for (j, seg) in cut.segments.iter().enumerate() {
                check_name(&format!("{f}.segments[{j}].object"), &seg.object)?;
                if seg.start != at || seg.end <= seg.start || seg.end - seg.start > MAX_SIZE {
                    return Err(invalid(
                        format!("{f}.segments[{j}]"),
                        format!("range {}..{} does not continue at {at}", seg.start, seg.end),
                    ));
                }
                at = seg.end;
            }
            if cut.end != at {
                return Err(invalid(
                    format!("{f}.end"),
                    format!("{} but the segments end at {at}", cut.end),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn manifest() -> SnapshotManifest {
        SnapshotManifest {
            format_version: FORMAT_VERSION,
            id: "20261126T230000Z-1a2b".into(),
            instance: "host-6379".into(),
            created_ms: 1,
            layout: ServerLayout::RedisMultiPart {
                aof_name: "appendonly.aof".into(),
                aof_dir: "appendonlydir".into(),
            },
            server_version: None,
            reason: "test".into(),
            shards: vec![ShardCut {
                shard: 0,
                chain: "0000000000001-abcd".into(),
                base: vec![],
                stream_start: 0,
                segments: vec![SegmentRef {
                    start: 0,
                    end: 10,
                    object: "seg-a.zst".into(),
                    crc32c: 0,
                    first_seen_ms: 0,
                    last_seen_ms: 0,
                }],
                end: 10,
            }],
        }
    }

    #[test]
    fn valid_manifest_round_trips() {
        let m = manifest();
        let json = serde_json::to_vec(&m).unwrap();
        assert_eq!(SnapshotManifest::from_json(&json).unwrap(), m);
    }

    #[test]
    fn hostile_names_and_gaps_are_refused() {
        let mut m = manifest();
        m.shards[0].segments[0].object = "../../etc/passwd".into();
        assert!(matches!(m.validate(), Err(VaultError::Invalid { .. })));
        let mut m = manifest();
        m.shards[0].segments[0].object = "/abs".into();
        assert!(m.validate().is_err());
        let mut m = manifest();
        m.shards[0].segments[0].start = 3;
        assert!(m.validate().is_err());
        let mut m = manifest();
        m.shards[0].end = 11;
        assert!(m.validate().is_err());
        let mut m = manifest();
        m.format_version = FORMAT_VERSION + 1;
        assert!(matches!(m.validate(), Err(VaultError::NewerFormat { .. })));
    }
}
