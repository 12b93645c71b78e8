//! `aofvault list --cluster NAME`: every group (shard) of the cluster, its nodes as last
//! recorded, its instance's restorable window, and the *common* window — the times every group
//! can be restored to, which is what a restore of the whole cluster `--at T` needs.

use std::io::Write;

use anyhow::Context;
use aofvault_config::Config;
use aofvault_formats::json::rfc3339_ms;
use serde_json::json;

use super::doc;
use super::history::SlotOwners;
use super::nodes::Role;
use crate::cli::ListArgs;
use crate::exit::{self, Failure};
use crate::repo::plan;

pub async fn run(
    cfg: &Config,
    name: &str,
    args: &ListArgs,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let repo = crate::context::open_for_reading(cfg).await?;
    let docs = doc::load(&repo, name).await?;
    if docs.is_empty() {
        return Err(anyhow::anyhow!(
            "repository {} holds no topology of cluster {name}",
            repo.url()
        )
        .context(Failure::RepoEmpty));
    }
    let owners = SlotOwners::from_docs(&docs);
    let mut groups = Vec::new();
    // The common window: the latest earliest and the earliest latest.
    let mut common: Option<(i64, i64)> = None;
    let mut complete = true;
    for (group, info) in &owners.groups {
        let ids = repo.snapshot_ids(&info.instance).await?;
        let window = plan::window(&repo, &info.instance, &ids)
            .await
            .with_context(|| format!("group {group}: the window of instance {}", info.instance))?;
        match window {
            Some(w) => {
                let (e, l) = common.unwrap_or((i64::MIN, i64::MAX));
                common = Some((e.max(w.earliest_ms), l.min(w.latest_ms)));
            }
            None if info.slots > 0 => complete = false,
            None => {}
        }
        let nodes: Vec<_> = info
            .nodes
            .iter()
            .map(|(id, (addr, role))| {
                json!({"id": id, "addr": addr, "role": match role { Role::Master => "master", Role::Replica => "replica" }})
            })
            .collect();
        groups.push(json!({
            "group": group, "instance": info.instance, "slots": info.slots, "nodes": nodes,
            "window": window.map(|w| json!({"earliest_ms": w.earliest_ms, "latest_ms": w.latest_ms,
                "earliest": rfc3339_ms(w.earliest_ms), "latest": rfc3339_ms(w.latest_ms)})),
        }));
    }
    let window = match common {
        Some((e, l)) if complete && e <= l => json!({"earliest_ms": e, "latest_ms": l,
            "earliest": rfc3339_ms(e), "latest": rfc3339_ms(l)}),
        _ => serde_json::Value::Null,
    };
    if args.json {
        serde_json::to_writer_pretty(
            &mut *out,
            &json!({"repository": repo.url(), "cluster": name, "groups": groups, "window": window,
                    "documents": docs.len()}),
        )?;
        writeln!(out)?;
        return Ok(exit::OK);
    }
    writeln!(out, "cluster {name}: {} group(s)", groups.len())?;
    match &window {
        serde_json::Value::Null => writeln!(
            out,
            "  common restorable window: none (a group has no snapshot yet, or the windows do not meet)"
        )?,
        w => writeln!(
            out,
            "  common restorable window: {} … {}",
            w["earliest"].as_str().unwrap_or_default(),
            w["latest"].as_str().unwrap_or_default()
        )?,
    }
    for g in &groups {
        writeln!(
            out,
            "  group {} (instance {}, {} slots): window {}",
            g["group"].as_str().unwrap_or_default(),
            g["instance"].as_str().unwrap_or_default(),
            g["slots"],
            match &g["window"] {
                serde_json::Value::Null => "none".to_string(),
                w => format!(
                    "{} … {}",
                    w["earliest"].as_str().unwrap_or_default(),
                    w["latest"].as_str().unwrap_or_default()
                ),
            }
        )?;
        for n in g["nodes"].as_array().into_iter().flatten() {
            writeln!(
                out,
                "    {} {} {}",
                n["id"].as_str().unwrap_or_default(),
                n["addr"].as_str().unwrap_or_default(),
                n["role"].as_str().unwrap_or_default()
            )?;
        }
    }
    Ok(exit::OK)
}
