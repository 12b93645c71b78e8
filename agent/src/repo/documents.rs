//! The repository's typed documents and objects on top of [`Repo`]'s raw calls: the format
//! marker, chain folders and heads, segments (and torn ranges), snapshot manifests — each read
//! checked, each write create-only.

use aofvault_formats::vault::{
    ChainHead, FormatMarker, SegmentRef, SnapshotManifest, VaultError, FORMAT_VERSION,
};
use bytes::Bytes;

use super::{codec, keys, Listed, Repo, RepoError, Result, ShardId};

impl Repo {
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
        let key = keys::chain_object(instance, shard, chain, &object);
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
