//! `aofvault list`: the instances of a repository, each one's snapshots (id, time, reason,
//! shards, bytes) and its restorable window (earliest … latest second).
//!
//! Also the instance choice every reading command shares ([`pick_instance`]): the configured
//! instance when the repository has it; when the name is only the default one (`<host>-<port>`)
//! and the repository holds exactly one instance, that one; otherwise an error that lists what
//! the repository holds.

use std::io::Write;

use anyhow::Context;
use aofvault_config::Config;
use aofvault_formats::json::rfc3339_ms;
use aofvault_formats::vault::{ServerLayout, SnapshotManifest};
use serde_json::json;

use crate::cli::ListArgs;
use crate::exit::{self, Failure};
use crate::repo::Repo;
use crate::restore::plan;

/// Whether `name` looks like the default instance name (`<host>-<port>` or `<host>-local`),
/// i.e. the user did not choose it.
fn looks_default(name: &str) -> bool {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            hostname::get()
                .ok()
                .map(|h| h.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let host = host.trim_start_matches('.');
    let host = if host.is_empty() { "localhost" } else { host };
    name.strip_prefix(host)
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|suffix| {
            suffix == "local" || (!suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// The instance a reading command works on (see the module doc).
pub async fn pick_instance(cfg: &Config, repo: &Repo) -> anyhow::Result<String> {
    let configured = &cfg.repository.instance;
    let instances = repo.instances().await?;
    if instances.contains(configured) {
        return Ok(configured.clone());
    }
    let listed = instances.join(", ");
    match instances.as_slice() {
        [] => Err(
            anyhow::anyhow!("repository {} holds no instance yet", repo.url())
                .context(Failure::RepoEmpty),
        ),
        [only] if looks_default(configured) => {
            tracing::info!(instance = %only, "using the repository's only instance");
            Ok(only.clone())
        }
        _ if looks_default(configured) => Err(anyhow::anyhow!(
            "repository {} holds several instances ({listed}): choose one with --instance",
            repo.url()
        )
        .context(Failure::Usage)),
        _ => Err(anyhow::anyhow!(
            "instance {configured} is not in repository {} (it holds: {listed})",
            repo.url()
        )
        .context(Failure::RepoEmpty)),
    }
}

fn kind(layout: &ServerLayout) -> String {
    match layout {
        ServerLayout::Kevy { shards, .. } => format!("kevy/{shards}"),
        ServerLayout::RedisMultiPart { .. } => "redis".into(),
        ServerLayout::RedisSingle { .. } => "redis-single".into(),
    }
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
    let repo = crate::commands::open_for_reading(cfg).await?;
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
        docs.push(json!({"instance": instance, "snapshots": snaps, "window": window}));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_recognised() {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| {
                hostname::get()
                    .ok()
                    .map(|h| h.to_string_lossy().into_owned())
            })
            .unwrap_or_default();
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return;
        }
        assert!(looks_default(&format!("{host}-6379")));
        assert!(looks_default(&format!("{host}-local")));
        assert!(!looks_default("db1"));
        assert!(!looks_default(&format!("{host}-prod")));
    }
}
