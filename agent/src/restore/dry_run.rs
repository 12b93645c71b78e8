//! `restore --dry-run`: the plan as text — which snapshot, and per shard the chain, the base
//! parts and their sizes, the segments, the bytes and the time the agent saw them.

use aofvault_formats::json::rfc3339_ms;
use aofvault_formats::vault::ServerLayout;

use crate::repo::plan::{Plan, Selection};

/// The plan as text, for `--dry-run`.
pub fn describe(plan: &Plan, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let what = match &plan.selection {
        Selection::Latest => "the latest state".to_string(),
        Selection::Snapshot { id } => format!("snapshot {id} exactly"),
        Selection::At { ms, .. } => format!("the state at {}", rfc3339_ms(*ms)),
    };
    writeln!(out, "restore plan for instance {}: {what}", plan.instance)?;
    writeln!(
        out,
        "snapshot {} (created {})",
        plan.snapshot,
        rfc3339_ms(plan.snapshot_created_ms)
    )?;
    let kind = match &plan.layout {
        ServerLayout::Kevy { shards, .. } => format!("kevy, {shards} shard(s)"),
        ServerLayout::RedisMultiPart { aof_dir, aof_name } => {
            format!("Redis multi-part AOF ({aof_dir}/{aof_name})")
        }
        ServerLayout::RedisSingle { aof_name } => format!("Redis single-file AOF ({aof_name})"),
    };
    writeln!(
        out,
        "source: {kind}, server version {}",
        plan.server_version.as_deref().unwrap_or("unknown")
    )?;
    for s in &plan.shards {
        let base = if s.base.is_empty() {
            "no base".to_string()
        } else {
            s.base
                .iter()
                .map(|b| format!("{} ({:?}, {} B)", b.file_name, b.format, b.size))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let seen = s.seen().map_or("no segments".to_string(), |(a, b)| {
            format!("seen {} … {}", rfc3339_ms(a), rfc3339_ms(b))
        });
        let cut = s
            .segments
            .last()
            .filter(|p| p.take < p.seg.end - p.seg.start)
            .map_or(String::new(), |p| {
                format!(
                    " (the last one cut at a #TS: annotation, {} of {} B)",
                    p.take,
                    p.seg.end - p.seg.start
                )
            });
        writeln!(
            out,
            "shard {}: chain {}, base {base}; {} segment(s){cut}, {} B of AOF [{}..{}), {seen}",
            s.shard,
            s.chain,
            s.segments.len(),
            s.stream_bytes(),
            s.stream_start,
            s.end
        )?;
    }
    writeln!(
        out,
        "total: {} object(s), {} B; covers up to {}",
        plan.objects(),
        plan.total_bytes(),
        rfc3339_ms(plan.covers_until_ms())
    )
}
