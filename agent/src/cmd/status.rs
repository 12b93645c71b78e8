//! `aofvault status`: what the running agent (or the last one) wrote in its status file.

use std::io::Write;

use anyhow::Context;
use aofvault_config::Config;

use crate::cli::StatusArgs;
use crate::exit;

/// `aofvault status`: what the running daemon last wrote to its status file. `instance_named`
/// says whether the configuration named the instance; if it only derived one, the agent that
/// writes to this state directory is shown (see [`crate::status::file::choose`]).
pub fn status(
    cfg: &Config,
    instance_named: bool,
    args: &StatusArgs,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    use crate::status::file::{choose, Choice};
    let instance = &cfg.repository.instance;
    let dir = &cfg.state.dir;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let doc = match choose(dir, instance, instance_named, now_ms)
        .with_context(|| format!("reading the status in {}", dir.display()))?
    {
        Choice::Found(doc) => doc,
        Choice::Missing if instance_named => anyhow::bail!(
            "no status for instance {instance} in {} (is `aofvault run` running with this state directory?)",
            crate::status::file::path(dir, instance).display()
        ),
        Choice::Missing => anyhow::bail!(
            "no agent status in {} (is `aofvault run` running with this state directory?)",
            dir.display()
        ),
        Choice::Ambiguous(names) => {
            return Err(anyhow::anyhow!(
                "several agents write their status to {}: {}; say which with --instance NAME",
                dir.display(),
                names.join(", ")
            )
            .context(exit::Failure::Usage))
        }
    };
    let age_s = doc.age_s(now_ms);
    let running = doc.is_live(now_ms);
    if args.json {
        let mut v = serde_json::to_value(&doc)?;
        v["running"] = serde_json::Value::Bool(running);
        v["age_seconds"] = serde_json::json!(age_s);
        serde_json::to_writer_pretty(&mut *out, &v)?;
        writeln!(out)?;
    } else {
        let state = if running {
            "running".to_string()
        } else {
            format!("NOT RUNNING (last status {age_s:.0}s old)")
        };
        writeln!(
            out,
            "instance {} → {}: {state}",
            doc.instance, doc.repository
        )?;
        if let Some(g) = &doc.group {
            let what = match g.state.as_str() {
                "shipping" => "ships for the group (holds the lease)".to_string(),
                "standby" => format!(
                    "stands by; {} ships",
                    g.lease_holder.as_deref().unwrap_or("nobody")
                ),
                other => other.to_string(),
            };
            let primary = match (&g.primary, g.role.as_str()) {
                (Some(p), _) => format!(
                    "a replica of {p} (link {})",
                    if g.primary_reachable { "up" } else { "DOWN" }
                ),
                (None, "master") => "the primary".to_string(),
                _ => "not answering".to_string(),
            };
            writeln!(out, "node {}: {what}; its server is {primary}", g.node)?;
            if let Some(split) = &g.split_brain {
                writeln!(out, "SPLIT BRAIN: {split}")?;
            }
        }
        writeln!(
            out,
            "{:>5}  {:<10} {:<24} {:>14} {:>14} {:>12} {:>8}  last error",
            "shard", "state", "chain", "shipped", "on disk", "lag bytes", "lag s"
        )?;
        for s in &doc.shards {
            writeln!(
                out,
                "{:>5}  {:<10} {:<24} {:>14} {:>14} {:>12} {:>8.1}  {}",
                s.shard,
                s.state,
                s.chain.as_deref().unwrap_or("-"),
                s.shipped_offset,
                s.stream_len,
                s.lag_bytes,
                s.lag_seconds,
                s.last_error.as_deref().unwrap_or("")
            )?;
        }
        for r in &doc.schedules {
            writeln!(
                out,
                "schedule {:<12} {:<16} next {}",
                r.job,
                r.schedule,
                r.next.as_deref().unwrap_or("-")
            )?;
        }
    }
    Ok(if running { exit::OK } else { exit::ERROR })
}
