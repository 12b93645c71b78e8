//! The repository: a prefix in an object store holding, per server instance, chains of base and
//! segment objects and snapshot manifests (see `docs/REPOSITORY-FORMAT.md`).
//!
//! - [`keys`]: every object name, as pure functions.
//! - [`store`]: opening `file://`, `s3://` and `memory://` stores.
//! - [`codec`]: zstd/raw payloads and their CRC-32C.
//! - [`crypt`]: optional age encryption of bases and segments (recipients write, identities read).
//! - [`lease`]: one writer per instance.
//! - [`run`]: which stored segments a reader follows (the longest contiguous run).
//! - [`plan`]: what a restore of a moment needs — which snapshot, which objects, where it cuts
//!   (used by restore, list, verify and the drift check).
//! - [`Repo`] (here): typed, checked reads and create-only writes on top of those; its
//!   streaming uploads and downloads are in `transfer`.
//!
//! Objects are written once: segments and manifests with a create-only put; bases under a fresh
//! chain id, made visible by the chain head that is written after them.
//!
//! With encryption keys ([`Repo::with_keys`]), new bases and segments are compressed, then
//! encrypted (`.zst.age` / `.raw.age`); `download` decrypts as the object streams in and checks
//! the CRC-32C of the plain bytes as for any object. Documents (marker, lease, chain heads,
//! manifests) stay plain: they hold no server data, and the agent reads them back with only
//! the public key.

pub mod codec;
pub mod crypt;
pub mod keys;
pub mod lease;
pub mod plan;
pub mod run;
pub mod store;
mod transfer;

#[cfg(test)]
mod lost_reply_tests;

use std::sync::Arc;

use aofvault_formats::vault::{
    ChainHead, FormatMarker, SegmentRef, SnapshotManifest, VaultError, FORMAT_VERSION,
};
use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

pub use crypt::Keys;
pub use keys::{Codec, ShardId};
pub use store::{RepoSpec, S3Spec};

/// What can go wrong talking to a repository. `Unreachable` and `Empty` are different on purpose:
/// the first means "we do not know", the second "we know there is nothing".
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("repository {url} is unreachable: {source}")]
    Unreachable {
        url: String,
        source: Box<object_store::Error>,
    },
    #[error("object {key} is missing from the repository")]
    NotFound { key: String },
    #[error("object {key} already exists (objects are written once)")]
    AlreadyExists { key: String },
    #[error("object {key} already exists with other content (another agent writing this instance, or a reused chain id); nothing was overwritten")]
    Conflict { key: String },
    #[error("object {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("repository {url} holds no aofvault data{hint}")]
    Empty { url: String, hint: String },
    #[error("repository {url}: {source}")]
    Format { url: String, source: VaultError },
    #[error("repository {url}: {reason}")]
    Other { url: String, reason: String },
    #[error("object {key} is encrypted: set [repository] encryption_identity_file (or AOFVAULT_ENCRYPTION_IDENTITY) to the age identity that reads it")]
    Encrypted { key: String },
    #[error("cannot decrypt {key}: wrong key (no configured identity opens it; objects written before a key rotation need the old identity too)")]
    WrongKey { key: String },
}

/// The instance has no snapshot yet: there is nothing to restore (exit 5, as an empty
/// repository).
#[derive(Debug, thiserror::Error)]
#[error("instance {instance} has no snapshot in {url} yet (an agent publishes one when it starts shipping)")]
pub struct NoSnapshot {
    pub instance: String,
    pub url: String,
}

impl RepoError {
    /// Worth retrying: the store may answer later.
    pub fn is_transient(&self) -> bool {
        matches!(self, RepoError::Unreachable { .. })
    }
}

pub type Result<T, E = RepoError> = std::result::Result<T, E>;

/// A listed object.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Key relative to the repository prefix.
    pub key: String,
    pub size: u64,
    pub last_modified_ms: i64,
}

/// An open repository.
#[derive(Clone)]
pub struct Repo {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
    pub level: i32,
    keys: Arc<Keys>,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repo({})", self.url)
    }
}

impl Repo {
    pub fn open(spec: &RepoSpec, compression_level: i32) -> anyhow::Result<Repo> {
        let (store, prefix) = spec.open()?;
        Ok(Repo {
            store,
            prefix,
            url: spec.display_url(),
            level: compression_level,
            keys: Arc::default(),
        })
    }

    /// A repository over a store built elsewhere (the follower simulation's faulty store).
    pub fn from_store(store: Arc<dyn ObjectStore>, url: &str, compression_level: i32) -> Repo {
        Repo {
            store,
            prefix: String::new(),
            url: url.to_string(),
            level: compression_level,
            keys: Arc::default(),
        }
    }

    /// Encrypts new bases and segments to `keys`' recipients (if any) and reads encrypted
    /// objects with its identities (if any).
    pub fn with_keys(mut self, keys: Keys) -> Repo {
        self.keys = Arc::new(keys);
        self
    }

    /// The encryption keys (empty: objects are written plain, encrypted ones cannot be read).
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The codec new objects are written with.
    pub fn codec(&self) -> Codec {
        let plain = if self.level == 0 {
            Codec::Raw
        } else {
            Codec::Zstd
        };
        plain.with_encryption(self.keys.encrypts())
    }

    fn path(&self, key: &str) -> Path {
        Path::from(format!("{}{}", self.prefix, key))
    }

    fn map_err(&self, key: &str, e: object_store::Error) -> RepoError {
        match e {
            object_store::Error::NotFound { .. } => RepoError::NotFound {
                key: key.to_string(),
            },
            object_store::Error::AlreadyExists { .. } => RepoError::AlreadyExists {
                key: key.to_string(),
            },
            e => RepoError::Unreachable {
                url: self.url.clone(),
                source: Box::new(e),
            },
        }
    }

    /// Create-only put: fails with `AlreadyExists` if anything is there.
    pub async fn put_new(&self, key: &str, data: Bytes) -> Result<()> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.store
            .put_opts(&self.path(key), PutPayload::from(data), opts)
            .await
            .map_err(|e| self.map_err(key, e))?;
        Ok(())
    }

    /// Overwriting put: only the lease uses it.
    pub async fn put_overwrite(&self, key: &str, data: Bytes) -> Result<()> {
        self.store
            .put(&self.path(key), PutPayload::from(data))
            .await
            .map_err(|e| self.map_err(key, e))?;
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Bytes> {
        let r = self
            .store
            .get(&self.path(key))
            .await
            .map_err(|e| self.map_err(key, e))?;
        r.bytes().await.map_err(|e| self.map_err(key, e))
    }

    pub async fn get_opt(&self, key: &str) -> Result<Option<Bytes>> {
        match self.get(key).await {
            Ok(b) => Ok(Some(b)),
            Err(RepoError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.map_err(key, e)),
        }
    }

    /// Every object under `prefix` (relative keys), sorted by key. Pages through any number of
    /// objects: nothing here assumes the bucket is small, but callers keep prefixes narrow.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>> {
        let full = self.path(prefix);
        let mut stream = self.store.list(Some(&full));
        let mut out = Vec::new();
        let strip = self.prefix.len();
        while let Some(item) = stream.next().await {
            let meta = item.map_err(|e| self.map_err(prefix, e))?;
            let key = meta
                .location
                .as_ref()
                .get(strip..)
                .unwrap_or_default()
                .to_string();
            out.push(Listed {
                key,
                size: meta.size,
                last_modified_ms: meta.last_modified.timestamp_millis(),
            });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// The immediate "sub-directories" under `prefix` (names only).
    pub async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        let full = self.path(prefix);
        let r = self
            .store
            .list_with_delimiter(Some(&full))
            .await
            .map_err(|e| self.map_err(prefix, e))?;
        let mut names: Vec<String> = r
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }

    /// Writes the format marker if absent; refuses a repository of a newer format.
    pub async fn ensure_format(&self, now_ms: i64) -> Result<()> {
        match self.check_format().await {
            Err(RepoError::Empty { .. }) => {
                let marker =
                    serde_json::to_vec_pretty(&FormatMarker::new(now_ms)).unwrap_or_default();
                match self.put_new(keys::FORMAT_MARKER, Bytes::from(marker)).await {
                    Ok(()) | Err(RepoError::AlreadyExists { .. }) => self.check_format().await,
                    Err(e) => Err(e),
                }
            }
            other => other,
        }
    }

    /// Readers call this first: `Empty` if there is no marker, an error for a newer format.
    pub async fn check_format(&self) -> Result<()> {
        let bytes = self
            .get_opt(keys::FORMAT_MARKER)
            .await?
            .ok_or_else(|| RepoError::Empty {
                url: self.url.clone(),
                hint: format!(
                    " (no {} marker: is the URL right, and has an agent shipped yet?)",
                    keys::FORMAT_MARKER
                ),
            })?;
        let marker: FormatMarker =
            serde_json::from_slice(&bytes).map_err(|e| RepoError::Corrupt {
                key: keys::FORMAT_MARKER.to_string(),
                reason: e.to_string(),
            })?;
        if marker.format != "aofvault" {
            return Err(RepoError::Other {
                url: self.url.clone(),
                reason: format!("format {:?} is not aofvault", marker.format),
            });
        }
        if marker.version > FORMAT_VERSION {
            return Err(RepoError::Format {
                url: self.url.clone(),
                source: VaultError::NewerFormat {
                    found: marker.version,
                },
            });
        }
        Ok(())
    }

    /// Instances present in the repository.
    pub async fn instances(&self) -> Result<Vec<String>> {
        self.list_dirs(&keys::instances_prefix()).await
    }

    /// Chain ids of one shard, oldest first (only those whose head exists are real chains;
    /// callers read the head).
    pub async fn chain_ids(&self, instance: &str, shard: ShardId) -> Result<Vec<String>> {
        self.list_dirs(&keys::chains_prefix(instance, shard)).await
    }

    /// The shards that hold chains, as listed (no manifest needed: `verify` walks them all).
    pub async fn shard_ids(&self, instance: &str) -> Result<Vec<ShardId>> {
        Ok(self
            .list_dirs(&keys::shards_prefix(instance))
            .await?
            .iter()
            .filter_map(|name| keys::parse_shard(name))
            .collect())
    }

    /// Every object in a chain's folder, named relative to it (`chain.json`, `base-0.zst`,
    /// `seg-…`), sorted by name.
    pub async fn chain_objects(
        &self,
        instance: &str,
        shard: ShardId,
        chain: &str,
    ) -> Result<Vec<Listed>> {
        let dir = keys::chain_dir(instance, shard, chain);
        Ok(self
            .list(&dir)
            .await?
            .into_iter()
            .filter_map(|l| {
                let name = l.key.strip_prefix(&dir)?.to_string();
                Some(Listed { key: name, ..l })
            })
            .collect())
    }

    pub async fn chain_head(
        &self,
        instance: &str,
        shard: ShardId,
        chain: &str,
    ) -> Result<Option<ChainHead>> {
        let key = keys::chain_head(instance, shard, chain);
        let Some(bytes) = self.get_opt(&key).await? else {
            return Ok(None);
        };
        ChainHead::from_json(&bytes)
            .map(Some)
            .map_err(|e| RepoError::Corrupt {
                key,
                reason: e.to_string(),
            })
    }

    /// Stores a chain head, create-only. A head already there with the same content is our own
    /// earlier write whose reply was lost (the store's client retried the put, or the caller
    /// did): success. One with other content is a [`RepoError::Conflict`] naming the key.
    pub async fn put_chain_head(&self, head: &ChainHead) -> Result<()> {
        let key = keys::chain_head(&head.instance, ShardId(head.shard), &head.chain);
        let json = serde_json::to_vec_pretty(head).unwrap_or_default();
        match self.put_new(&key, Bytes::from(json)).await {
            Err(RepoError::AlreadyExists { .. }) => {}
            other => return other,
        }
        // Compared as documents, not bytes: the same head is the same head however it was
        // serialized.
        let stored = self.get(&key).await?;
        match ChainHead::from_json(&stored) {
            Ok(there) if there == *head => Ok(()),
            _ => Err(RepoError::Conflict { key }),
        }
    }

    /// The segments of a chain, sorted by start offset, as a listing shows them (sizes are the
    /// stored sizes, which restore uses for progress). They may overlap (a retry after a lost
    /// reply); readers follow [`run::longest_run`].
    pub async fn segments(
        &self,
        instance: &str,
        shard: ShardId,
        chain: &str,
    ) -> Result<Vec<(SegmentRef, u64)>> {
        let dir = keys::chain_dir(instance, shard, chain);
        let mut segs: Vec<(SegmentRef, u64)> = self
            .list(&dir)
            .await?
            .into_iter()
            .filter_map(|l| {
                let name = l.key.strip_prefix(&dir)?;
                keys::parse_segment(name).map(|s| (s, l.size))
            })
            .collect();
        segs.sort_by_key(|(s, _)| (s.start, s.end));
        Ok(segs)
    }

    /// Stores one segment (create-only) and returns its reference.
    pub async fn put_segment(
        &self,
        instance: &str,
        shard: ShardId,
        chain: &str,
        start: u64,
        payload: &[u8],
        seen: (i64, i64),
    ) -> Result<SegmentRef> {
        self.put_range(instance, shard, chain, start, payload, seen, false)
            .await
    }

    /// Stores a torn range ([`keys::torn_object`]): bytes a crash left half-written, kept for
    /// inspection, that readers step over.
    pub async fn put_torn(
        &self,
        instance: &str,
        shard: ShardId,
        chain: &str,
        start: u64,
        payload: &[u8],
        seen: (i64, i64),
    ) -> Result<SegmentRef> {
        self.put_range(instance, shard, chain, start, payload, seen, true)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn put_range(
        &self,
        instance: &str,
        shard: ShardId,
        chain: &str,
        start: u64,
        payload: &[u8],
        seen: (i64, i64),
        torn: bool,
    ) -> Result<SegmentRef> {
        let crc = crc32c::crc32c(payload);
        let codec = self.codec();
        let end = start + payload.len() as u64;
        let name = if torn {
            keys::torn_object
        } else {
            keys::segment_object
        };
        let object = name(start, end, seen.0, seen.1, crc, codec);
        let key = format!("{}{}", keys::chain_dir(instance, shard, chain), object);
        let data = codec::encode(payload, codec, self.level, Some(&self.keys)).map_err(|e| {
            RepoError::Other {
                url: self.url.clone(),
                reason: format!("encoding {key}: {e}"),
            }
        })?;
        match self.put_new(&key, Bytes::from(data)).await {
            // A retry after a lost reply: the same name means the same bytes (the crc is in it).
            Ok(()) | Err(RepoError::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
        Ok(SegmentRef {
            start,
            end,
            object,
            crc32c: crc,
            first_seen_ms: seen.0,
            last_seen_ms: seen.1,
        })
    }

    /// Snapshot ids of an instance, oldest first.
    pub async fn snapshot_ids(&self, instance: &str) -> Result<Vec<String>> {
        let prefix = keys::snapshots_prefix(instance);
        Ok(self
            .list(&prefix)
            .await?
            .into_iter()
            .filter_map(|l| {
                l.key
                    .strip_prefix(&prefix)?
                    .strip_suffix(".json")
                    .map(str::to_string)
            })
            .collect())
    }

    pub async fn snapshot(&self, instance: &str, id: &str) -> Result<SnapshotManifest> {
        let key = keys::snapshot(instance, id);
        let bytes = self.get(&key).await?;
        SnapshotManifest::from_json(&bytes).map_err(|e| RepoError::Corrupt {
            key,
            reason: e.to_string(),
        })
    }

    /// Publishes a manifest, create-only, after checking it.
    pub async fn put_snapshot(&self, m: &SnapshotManifest) -> Result<()> {
        m.validate().map_err(|e| RepoError::Format {
            url: self.url.clone(),
            source: e,
        })?;
        let key = keys::snapshot(&m.instance, &m.id);
        self.put_new(
            &key,
            Bytes::from(serde_json::to_vec_pretty(m).unwrap_or_default()),
        )
        .await
    }
}
