//! Snapshot manifests: for every shard, its current chain and the segments stored up to now,
//! published last with a create-only put; the server's ACL users and config file are captured
//! just before (`server_config`).
//!
//! The manifest is built from a listing of the repository, not from memory: it can only name
//! objects that exist, and a segment still in flight is simply not part of it.

use aofvault_formats::vault::{
    ChainHead, ServerLayout, ShardCut, SnapshotManifest, FORMAT_VERSION,
};

use crate::repo::{keys, Repo, RepoError, ShardId};

/// The cut of one shard's chain at the longest contiguous run of stored segments.
pub async fn cut(repo: &Repo, instance: &str, head: &ChainHead) -> Result<ShardCut, RepoError> {
    let listed: Vec<_> = repo
        .segments(instance, ShardId(head.shard), &head.chain)
        .await?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let run = crate::repo::run::longest_run(head.stream_start, &listed);
    let (segments, end) = (run.segments, run.end);
    Ok(ShardCut {
        shard: head.shard,
        chain: head.chain.clone(),
        base: head.base.clone(),
        stream_start: head.stream_start,
        segments,
        end,
    })
}

/// Builds and publishes a manifest over `heads` (one per shard, in shard order).
pub async fn publish(
    repo: &Repo,
    instance: &str,
    layout: &ServerLayout,
    server_version: Option<String>,
    heads: &[ChainHead],
    reason: &str,
) -> Result<SnapshotManifest, RepoError> {
    // Captured first, so that the capture a restore of this snapshot picks (the newest at or
    // before it) is this one.
    crate::server_config::capture_for_snapshot(repo, instance).await;
    let mut shards = Vec::with_capacity(heads.len());
    for head in heads {
        shards.push(cut(repo, instance, head).await?);
    }
    let now = chrono::Utc::now();
    let manifest = SnapshotManifest {
        format_version: FORMAT_VERSION,
        id: keys::new_snapshot_id(now),
        instance: instance.to_string(),
        created_ms: now.timestamp_millis(),
        layout: layout.clone(),
        server_version,
        reason: reason.to_string(),
        shards,
    };
    repo.put_snapshot(&manifest).await?;
    tracing::info!(snapshot = %manifest.id, reason, "snapshot published");
    Ok(manifest)
}
