//! `aofvault list`: the instances of a repository, each one's snapshots (id, time, reason,
//! shards, bytes) and its restorable window (earliest … latest second).

use std::io::Write;

use anyhow::Context;
use aofvault_config::Config;
use aofvault_formats::json::rfc3339_ms;
use aofvault_formats::vault::{ServerLayout, SnapshotManifest};
use serde_json::json;

use crate::cli::ListArgs;
use crate::exit;
use crate::repo::plan;

fn kind(layout: &ServerLayout) -> String {
    match layout {
        ServerLayout::Kevy { shards, .. } => format!("kevy/{shards}"),
        ServerLayout::RedisMultiPart { .. } => "redis".into(),
        ServerLayout::RedisSingle { .. } => "redis-single".into(),
    }
}

/// The instance's failovers, from its first shard's chain heads: each chain a member started
/// when it took over (reason `failover`), with the member whose chain it follows.
async fn failovers(
    repo: &crate::repo::Repo,
    instance: &str,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let shard = crate::repo::ShardId(0);
    let mut out = Vec::new();
    let mut previous: Option<String> = None;
    for id in repo.chain_ids(instance, shard).await? {
        let Some(head) = repo.chain_head(instance, shard, &id).await? else {
            continue;
        };
        if head.reason == crate::source::ChainReason::Failover.as_str() {
            out.push(json!({
                "at_ms": head.created_ms, "at": rfc3339_ms(head.created_ms),
                "from": previous, "to": head.node, "chain": head.chain,
            }));
        }
        previous = head.node.clone().or(previous);
    }
    Ok(out)
}

fn total_bytes(m: &SnapshotManifest) -> u64 {
    m.shards
        .iter()
        .map(|s| s.base.iter().map(|b| b.size).sum::<u64>() + (s.end - s.stream_start))
        .sum()
}

pub async fn run(cfg: &Config, args: &ListArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    list(cfg, args, out).await
}

async fn list(cfg: &Config, args: &ListArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    let repo = crate::context::open_for_reading(cfg).await?;
    let instances = repo.instances().await?;
    let mut docs = Vec::new();
    for instance in &instances {
        let ids = repo.snapshot_ids(instance).await?;
        let mut snaps = Vec::new();
        for id in &ids {
            snaps.push(match repo.snapshot(instance, id).await {
                Ok(m) => json!({
                    "id": m.id, "created_ms": m.created_ms, "created": rfc3339_ms(m.created_ms), "reason": m.reason,
                    "kind": kind(&m.layout), "shards": m.shards.len(), "server_version": m.server_version,
                    "bytes": total_bytes(&m),
                    "segments": m.shards.iter().map(|s| s.segments.len()).sum::<usize>(),
                }),
                Err(e) => json!({"id": id, "error": e.to_string()}),
            });
        }
        let window = plan::window(&repo, instance, &ids)
            .await
            .with_context(|| format!("instance {instance}: computing its window"));
        let window = match window {
            Ok(Some(w)) => json!({"earliest_ms": w.earliest_ms, "latest_ms": w.latest_ms,
                                  "earliest": rfc3339_ms(w.earliest_ms), "latest": rfc3339_ms(w.latest_ms)}),
            Ok(None) => serde_json::Value::Null,
            Err(e) => json!({"error": format!("{e:#}")}),
        };
        let failovers = failovers(&repo, instance)
            .await
            .unwrap_or_else(|e| vec![json!({"error": e.to_string()})]);
        docs.push(json!({"instance": instance, "snapshots": snaps, "window": window, "failovers": failovers}));
    }
    if args.json {
        serde_json::to_writer_pretty(
            &mut *out,
            &json!({"repository": repo.url(), "instances": docs}),
        )?;
        writeln!(out)?;
        return Ok(exit::OK);
    }
    if docs.is_empty() {
        writeln!(out, "repository {} holds no instance yet", repo.url())?;
    }
    for doc in &docs {
        writeln!(
            out,
            "instance {}",
            doc["instance"].as_str().unwrap_or_default()
        )?;
        match &doc["window"] {
            serde_json::Value::Null => writeln!(out, "  no snapshot yet: nothing to restore")?,
            w if w.get("error").is_some() => {
                writeln!(out, "  restorable window: unknown ({})", w["error"])?
            }
            w => writeln!(
                out,
                "  restorable window: {} … {}",
                w["earliest"].as_str().unwrap_or_default(),
                w["latest"].as_str().unwrap_or_default()
            )?,
        }
        for f in doc["failovers"].as_array().cloned().unwrap_or_default() {
            match f.get("error") {
                Some(e) => writeln!(out, "  failovers: unknown ({e})")?,
                None => writeln!(
                    out,
                    "  failover at {}: {} → {} (chain {})",
                    f["at"].as_str().unwrap_or_default(),
                    f["from"].as_str().unwrap_or("?"),
                    f["to"].as_str().unwrap_or("?"),
                    f["chain"].as_str().unwrap_or_default()
                )?,
            }
        }
        let snaps = doc["snapshots"].as_array().cloned().unwrap_or_default();
        if !snaps.is_empty() {
            writeln!(
                out,
                "  {:<26} {:<24} {:<12} {:<10} {:>6} {:>14}",
                "snapshot", "created", "reason", "kind", "shards", "bytes"
            )?;
        }
        for s in snaps {
            if let Some(e) = s.get("error") {
                writeln!(
                    out,
                    "  {:<26} UNREADABLE: {}",
                    s["id"].as_str().unwrap_or_default(),
                    e.as_str().unwrap_or_default()
                )?;
                continue;
            }
            writeln!(
                out,
                "  {:<26} {:<24} {:<12} {:<10} {:>6} {:>14}",
                s["id"].as_str().unwrap_or_default(),
                s["created"].as_str().unwrap_or_default(),
                s["reason"].as_str().unwrap_or_default(),
                s["kind"].as_str().unwrap_or_default(),
                s["shards"],
                s["bytes"]
            )?;
        }
    }
    Ok(exit::OK)
}
