//! Every object name in a repository, as pure functions — the only place that builds or parses
//! them. A listing alone rebuilds the order of everything: chain ids sort by creation time, and a
//! segment's name carries its byte range, the time the agent saw it and its checksum.
//!
//! ```text
//! <prefix>/aofvault.json                                     format marker
//! <prefix>/instances/<instance>/lease.json                   the single writer's lease
//! <prefix>/instances/<instance>/snapshots/<id>.json          snapshot manifests
//! <prefix>/instances/<instance>/shards/<shard:04>/chains/<chain>/chain.json
//! <prefix>/instances/<instance>/shards/<shard:04>/chains/<chain>/base-<n>.<codec>
//! <prefix>/instances/<instance>/shards/<shard:04>/chains/<chain>/seg-<start:016x>-<end:016x>-<t0>-<t1>-<crc:08x>.<codec>
//! <prefix>/instances/<instance>/shards/<shard:04>/chains/<chain>/torn-<start:016x>-<end:016x>-<t0>-<t1>-<crc:08x>.<codec>
//! ```

use std::fmt;

use aofvault_formats::vault::SegmentRef;

/// How an object's payload is stored: the file extension says which. The `*Age` codecs are the
/// same payloads, then encrypted with age (`docs/SECURITY.md`): compress first, then encrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// zstd, with the frame checksum on.
    Zstd,
    /// Stored as is.
    Raw,
    /// zstd, then age-encrypted (`.zst.age`).
    ZstdAge,
    /// Age-encrypted, uncompressed (`.raw.age`).
    RawAge,
}

impl Codec {
    pub fn ext(self) -> &'static str {
        match self {
            Codec::Zstd => "zst",
            Codec::Raw => "raw",
            Codec::ZstdAge => "zst.age",
            Codec::RawAge => "raw.age",
        }
    }
    pub fn from_name(name: &str) -> Option<Codec> {
        [Codec::ZstdAge, Codec::RawAge, Codec::Zstd, Codec::Raw]
            .into_iter()
            .find(|c| {
                name.strip_suffix(c.ext())
                    .is_some_and(|stem| stem.ends_with('.'))
            })
    }
    /// Whether reading it needs an age identity.
    pub fn is_encrypted(self) -> bool {
        matches!(self, Codec::ZstdAge | Codec::RawAge)
    }
    /// The compression alone (what is left once decrypted).
    pub fn plain(self) -> Codec {
        match self {
            Codec::Zstd | Codec::ZstdAge => Codec::Zstd,
            Codec::Raw | Codec::RawAge => Codec::Raw,
        }
    }
    /// The same compression, encrypted or not.
    pub fn with_encryption(self, on: bool) -> Codec {
        match (self.plain(), on) {
            (Codec::Zstd, true) => Codec::ZstdAge,
            (Codec::Raw, true) => Codec::RawAge,
            (plain, _) => plain,
        }
    }
}

/// A shard number, as it appears in object names (`0007`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(pub u32);

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.0)
    }
}

pub const FORMAT_MARKER: &str = "aofvault.json";

pub fn instances_prefix() -> String {
    "instances/".into()
}

pub fn instance_prefix(instance: &str) -> String {
    format!("instances/{instance}/")
}

pub fn lease(instance: &str) -> String {
    format!("instances/{instance}/lease.json")
}

/// The folder of a replication group's member records (one per agent, each written only by
/// its own agent).
pub fn members_prefix(instance: &str) -> String {
    format!("instances/{instance}/members/")
}

pub fn member(instance: &str, node: &str) -> String {
    format!("instances/{instance}/members/{node}.json")
}

pub fn snapshots_prefix(instance: &str) -> String {
    format!("instances/{instance}/snapshots/")
}

pub fn snapshot(instance: &str, id: &str) -> String {
    format!("instances/{instance}/snapshots/{id}.json")
}

/// The folder of an instance's captured server configuration (ACL users, config file).
pub fn server_config_prefix(instance: &str) -> String {
    format!("instances/{instance}/server-config/")
}

/// One captured server configuration: `<captured ms, 13 digits>-<content hash>.json`, or
/// `.json.age` when encrypted. Names sort by capture time.
pub fn server_config(instance: &str, captured_ms: i64, hash: &str, encrypted: bool) -> String {
    let ext = if encrypted { "json.age" } else { "json" };
    format!("instances/{instance}/server-config/{captured_ms:013}-{hash}.{ext}")
}

/// `(captured ms, hash, encrypted)` of a [`server_config`] object name.
pub fn parse_server_config(name: &str) -> Option<(i64, String, bool)> {
    let (stem, encrypted) = match name.strip_suffix(".json.age") {
        Some(stem) => (stem, true),
        None => (name.strip_suffix(".json")?, false),
    };
    let (ms, hash) = stem.split_once('-')?;
    Some((ms.parse().ok()?, hash.to_string(), encrypted))
}

/// The folder holding every shard's chains (`verify` lists it to find chains no manifest names).
pub fn shards_prefix(instance: &str) -> String {
    format!("instances/{instance}/shards/")
}

/// Parses a shard folder's name (`0007`) back into its id.
pub fn parse_shard(name: &str) -> Option<ShardId> {
    if name.len() != 4 || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok().map(ShardId)
}

pub fn chains_prefix(instance: &str, shard: ShardId) -> String {
    format!("instances/{instance}/shards/{shard}/chains/")
}

pub fn chain_dir(instance: &str, shard: ShardId, chain: &str) -> String {
    format!("instances/{instance}/shards/{shard}/chains/{chain}/")
}

pub fn chain_head(instance: &str, shard: ShardId, chain: &str) -> String {
    object(&chain_dir(instance, shard, chain), "chain.json")
}

/// The full key of `name` in the folder `dir`: a chain folder (from [`chain_dir`]) and a name
/// relative to it (`chain.json`, [`base_object`], [`segment_object`], [`torn_object`]), or the
/// repository's prefix and a key.
pub fn object(dir: &str, name: &str) -> String {
    format!("{dir}{name}")
}

/// The full key of `name` (relative to the chain folder) in one chain's folder.
pub fn chain_object(instance: &str, shard: ShardId, chain: &str, name: &str) -> String {
    object(&chain_dir(instance, shard, chain), name)
}

/// The name a report gives the missing range `start..end` of the chain folder `dir`: the
/// segment name's offset part, for a segment that was never stored.
pub fn gap(dir: &str, start: u64, end: u64) -> String {
    format!("{dir}seg-{start:016x}-{end:016x}")
}

/// Relative name (inside the chain folder) of base part `n`.
pub fn base_object(n: usize, codec: Codec) -> String {
    format!("base-{n}.{}", codec.ext())
}

/// Parses a base part's relative name (`base-<n>.<codec>`) into its number and codec.
pub fn parse_base(name: &str) -> Option<(usize, Codec)> {
    let codec = Codec::from_name(name)?;
    let n = name
        .strip_prefix("base-")?
        .strip_suffix(codec.ext())?
        .strip_suffix('.')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((n.parse().ok()?, codec))
}

/// Relative name of a segment.
pub fn segment_object(
    start: u64,
    end: u64,
    first_ms: i64,
    last_ms: i64,
    crc: u32,
    codec: Codec,
) -> String {
    format!(
        "seg-{start:016x}-{end:016x}-{first_ms}-{last_ms}-{crc:08x}.{}",
        codec.ext()
    )
}

/// Relative name of a torn range: bytes a crash left half-written, which the server appended
/// after when it restarted. It continues the chain like a segment, holds the torn bytes (for
/// inspection) and is never replayed.
pub fn torn_object(
    start: u64,
    end: u64,
    first_ms: i64,
    last_ms: i64,
    crc: u32,
    codec: Codec,
) -> String {
    format!(
        "{TORN}{}",
        segment_object(start, end, first_ms, last_ms, crc, codec)
            .strip_prefix(SEGMENT)
            .unwrap_or_default()
    )
}

const SEGMENT: &str = "seg-";
const TORN: &str = "torn-";

/// True for a torn range ([`torn_object`]): it takes its place in the chain's byte ranges, and
/// readers skip its bytes.
pub fn is_torn(seg: &SegmentRef) -> bool {
    seg.object.starts_with(TORN)
}

/// Parses a segment's (or a torn range's) relative name back into its reference.
pub fn parse_segment(name: &str) -> Option<SegmentRef> {
    let codec = Codec::from_name(name)?;
    let stem = name
        .strip_prefix(SEGMENT)
        .or_else(|| name.strip_prefix(TORN))?
        .strip_suffix(codec.ext())?
        .strip_suffix('.')?;
    let mut parts = stem.split('-');
    let start = u64::from_str_radix(parts.next()?, 16).ok()?;
    let end = u64::from_str_radix(parts.next()?, 16).ok()?;
    let first_seen_ms = parts.next()?.parse().ok()?;
    let last_seen_ms = parts.next()?.parse().ok()?;
    let crc32c = u32::from_str_radix(parts.next()?, 16).ok()?;
    if parts.next().is_some() || end <= start {
        return None;
    }
    Some(SegmentRef {
        start,
        end,
        object: name.to_string(),
        crc32c,
        first_seen_ms,
        last_seen_ms,
    })
}

/// A new chain id: creation time (ms, zero-padded so ids sort by time) and 32 random bits.
pub fn new_chain_id(now_ms: i64) -> String {
    format!("{now_ms:013}-{:08x}", rand::random::<u32>())
}

/// The creation time a chain id carries (`None` for a name [`new_chain_id`] did not build).
pub fn chain_created_ms(id: &str) -> Option<i64> {
    let (ms, rest) = id.split_once('-')?;
    let plain = ms.len() == 13 && ms.bytes().all(|b| b.is_ascii_digit());
    let random = rest.len() == 8 && rest.bytes().all(|b| b.is_ascii_hexdigit());
    (plain && random).then(|| ms.parse().ok()).flatten()
}

/// A new snapshot id: UTC time to the millisecond, then 16 random bits (`20261126T231500123Z-ab12`).
pub fn new_snapshot_id(now: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "{}-{:04x}",
        now.format("%Y%m%dT%H%M%S%3fZ"),
        rand::random::<u16>()
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip_and_sort() {
        let a = segment_object(
            9,
            4096,
            1_700_000_000_000,
            1_700_000_000_900,
            0xdeadbeef,
            Codec::Zstd,
        );
        let b = segment_object(
            4096,
            70000,
            1_700_000_001_000,
            1_700_000_001_000,
            1,
            Codec::Raw,
        );
        assert!(a < b, "names sort by offset");
        let r = parse_segment(&a).unwrap();
        assert_eq!(
            (r.start, r.end, r.crc32c, r.first_seen_ms),
            (9, 4096, 0xdeadbeef, 1_700_000_000_000)
        );
        assert_eq!(parse_segment(&b).unwrap().end, 70000);
        assert!(parse_segment("seg-zz.zst").is_none());
        let t = torn_object(9, 20, 1, 2, 0xabc, Codec::Zstd);
        assert!(t.starts_with("torn-"), "{t}");
        let torn = parse_segment(&t).unwrap();
        assert!(is_torn(&torn) && (torn.start, torn.end) == (9, 20));
        assert!(!is_torn(&parse_segment(&a).unwrap()));
        assert!(parse_segment("chain.json").is_none());
        let c = segment_object(9, 20, 1, 2, 0xabc, Codec::ZstdAge);
        assert!(c.ends_with(".zst.age"), "{c}");
        assert_eq!(parse_segment(&c).unwrap().crc32c, 0xabc);
        assert_eq!(Codec::from_name(&c), Some(Codec::ZstdAge));
        assert_eq!(Codec::from_name("base-0.raw.age"), Some(Codec::RawAge));
        assert_eq!(Codec::from_name("base-0.age"), None);
        assert_eq!(
            parse_base(&base_object(3, Codec::ZstdAge)),
            Some((3, Codec::ZstdAge))
        );
        assert_eq!(parse_base("base-.zst"), None);
        assert_eq!(parse_base("chain.json"), None);
        assert_eq!(parse_shard(&ShardId(7).to_string()), Some(ShardId(7)));
        assert_eq!(parse_shard("07"), None);
    }

    #[test]
    fn ids_are_plain_names() {
        let id = new_snapshot_id(chrono::Utc::now());
        aofvault_formats::vault::check_name("id", &id).unwrap();
        aofvault_formats::vault::check_name("chain", &new_chain_id(1)).unwrap();
        assert_eq!(
            chain_created_ms(&new_chain_id(1_800_000_000_123)),
            Some(1_800_000_000_123)
        );
        assert_eq!(chain_created_ms("1800000000123"), None);
        assert_eq!(chain_created_ms("x800000000123-aaaaaaaa"), None);
    }
}
