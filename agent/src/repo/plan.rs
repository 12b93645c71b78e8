//! Choosing what a restore reads: one snapshot's chains, and how far along each chain.
//!
//! - *latest*: the newest snapshot, plus every later stored segment of the same chains (the
//!   longest contiguous run after the snapshot's cut, as `snapshot::cut` would take it);
//! - `--snapshot ID`: exactly that manifest's cut;
//! - `--at T`: the newest snapshot created at or before T, then the segments of its chains the
//!   agent had seen by T. A segment seen partly after T is cut inside, at the last `#TS:`
//!   annotation not after T, when it has annotations (Redis `aof-timestamp-enabled`), and left
//!   out otherwise: a cut only ever falls on a safe point.
//!
//! A plan never mixes chains: every shard's objects come from the one chain the snapshot names.
//! The restorable window of an instance is [`Window`]: from its oldest snapshot to the last
//! second the latest plan covers.

use anyhow::{bail, Context};
use aofvault_formats::vault::{BasePart, SegmentRef, ServerLayout, ShardCut, SnapshotManifest};
use serde::Serialize;

use crate::repo::{keys, NoSnapshot, Repo, ShardId};

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Selection {
    Latest,
    Snapshot {
        id: String,
    },
    /// Up to and including `ms` (unix ms); `#TS:` cuts keep annotations `<= secs`.
    At {
        ms: i64,
        secs: i64,
    },
}

/// Parses `--at`: unix seconds (`1795720592`, `1795720592.5`) or RFC 3339. A time given to the
/// second includes that whole second.
pub fn parse_time(text: &str) -> anyhow::Result<Selection> {
    let t = text.trim();
    let ms = if let Ok(secs) = t.parse::<i64>() {
        secs.checked_mul(1000)
            .and_then(|m| m.checked_add(999))
            .context("time out of range")?
    } else if let Ok(f) = t.parse::<f64>() {
        if !f.is_finite() {
            bail!("--at {text:?} is not a time");
        }
        (f * 1000.0).floor() as i64
    } else {
        let dt = chrono::DateTime::parse_from_rfc3339(t).with_context(|| {
            format!("--at {text:?} is neither unix seconds nor an RFC 3339 time")
        })?;
        let ms = dt.timestamp_millis();
        if dt.timestamp_subsec_nanos() == 0 {
            ms + 999
        } else {
            ms
        }
    };
    Ok(Selection::At {
        ms,
        secs: ms.div_euclid(1000),
    })
}

/// One segment of a plan, with how much of it is used (less than all when cut at a `#TS:`).
#[derive(Debug, Clone, Serialize)]
pub struct PlannedSegment {
    #[serde(flatten)]
    pub seg: SegmentRef,
    pub take: u64,
}

/// One shard's part of a plan.
#[derive(Debug, Clone, Serialize)]
pub struct ShardPlan {
    pub shard: u32,
    pub chain: String,
    pub base: Vec<BasePart>,
    pub stream_start: u64,
    pub segments: Vec<PlannedSegment>,
    /// The logical end of the restored stream.
    pub end: u64,
}

impl ShardPlan {
    /// Key of an object of this shard's chain.
    pub fn key(&self, instance: &str, object: &str) -> String {
        format!(
            "{}{object}",
            keys::chain_dir(instance, ShardId(self.shard), &self.chain)
        )
    }

    pub fn base_bytes(&self) -> u64 {
        self.base.iter().map(|b| b.size).sum()
    }

    pub fn stream_bytes(&self) -> u64 {
        self.end - self.stream_start
    }

    /// (first seen, last seen) of the segments used.
    pub fn seen(&self) -> Option<(i64, i64)> {
        let first = self.segments.iter().map(|s| s.seg.first_seen_ms).min()?;
        let last = self.segments.iter().map(|s| s.seg.last_seen_ms).max()?;
        Some((first, last))
    }
}

/// Everything a restore will read.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub instance: String,
    pub snapshot: String,
    pub snapshot_created_ms: i64,
    pub selection: Selection,
    pub layout: ServerLayout,
    pub server_version: Option<String>,
    pub shards: Vec<ShardPlan>,
}

impl Plan {
    pub fn total_bytes(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.base_bytes() + s.stream_bytes())
            .sum()
    }

    pub fn objects(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.base.len() + s.segments.len())
            .sum()
    }

    /// The last moment this plan covers: the snapshot's time or the last segment's, whichever
    /// is later (for `--at`, never after T).
    pub fn covers_until_ms(&self) -> i64 {
        let seen = self
            .shards
            .iter()
            .filter_map(ShardPlan::seen)
            .map(|(_, l)| l)
            .max();
        let until = seen.map_or(self.snapshot_created_ms, |l| {
            l.max(self.snapshot_created_ms)
        });
        match self.selection {
            Selection::At { ms, .. } => until.min(ms),
            _ => until,
        }
    }
}

/// The restorable window of an instance (unix ms).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Window {
    pub earliest_ms: i64,
    pub latest_ms: i64,
}

impl Window {
    pub fn describe(&self) -> String {
        format!(
            "{} … {}",
            aofvault_formats::json::rfc3339_ms(self.earliest_ms),
            aofvault_formats::json::rfc3339_ms(self.latest_ms)
        )
    }
}

/// The segments of the chain of `cut` a latest restore uses: the manifest's own, then every
/// stored segment that continues them without a gap.
pub async fn extended_segments(
    repo: &Repo,
    instance: &str,
    cut: &ShardCut,
) -> anyhow::Result<Vec<SegmentRef>> {
    let listed: Vec<SegmentRef> = repo
        .segments(instance, ShardId(cut.shard), &cut.chain)
        .await?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let run = crate::repo::run::longest_run(cut.end, &listed);
    if let Some(gap) = run.gap {
        tracing::warn!(
            shard = cut.shard,
            chain = %cut.chain,
            "stored segments stop at offset {} and go on at {}: a restore stops at the gap (`aofvault verify` reports it)",
            gap.start, gap.end
        );
    }
    let mut segments = cut.segments.clone();
    segments.extend(run.segments);
    Ok(segments)
}

/// The window of an instance whose snapshot ids are `ids` (oldest first); `None` without any.
pub async fn window(repo: &Repo, instance: &str, ids: &[String]) -> anyhow::Result<Option<Window>> {
    let (Some(first), Some(last)) = (ids.first(), ids.last()) else {
        return Ok(None);
    };
    let oldest = repo.snapshot(instance, first).await?;
    let newest = if first == last {
        oldest.clone()
    } else {
        repo.snapshot(instance, last).await?
    };
    let latest = build(repo, &newest, Selection::Latest).await?;
    Ok(Some(Window {
        earliest_ms: oldest.created_ms,
        latest_ms: latest.covers_until_ms(),
    }))
}

/// Builds the plan for `selection` over the snapshots of `instance`.
pub async fn plan(repo: &Repo, instance: &str, selection: Selection) -> anyhow::Result<Plan> {
    let ids = repo.snapshot_ids(instance).await?;
    if ids.is_empty() {
        return Err(NoSnapshot {
            instance: instance.to_string(),
            url: repo.url().to_string(),
        }
        .into());
    }
    match &selection {
        Selection::Latest => {
            let newest = ids.last().map(String::as_str).unwrap_or_default();
            let m = repo.snapshot(instance, newest).await?;
            build(repo, &m, selection).await
        }
        Selection::Snapshot { id } => {
            if !ids.contains(id) {
                bail!("instance {instance} has no snapshot {id:?} (`aofvault list` shows them)");
            }
            let m = repo.snapshot(instance, id).await?;
            build(repo, &m, selection).await
        }
        Selection::At { ms, .. } => {
            let window = window(repo, instance, &ids).await?.context("no snapshot")?;
            if *ms < window.earliest_ms || *ms > window.latest_ms + 999 {
                bail!(
                    "--at {} is outside the restorable window of instance {instance}: {}",
                    aofvault_formats::json::rfc3339_ms(*ms),
                    window.describe()
                );
            }
            // Ids sort by creation time: the newest one created at or before T.
            let mut chosen = None;
            for id in ids.iter().rev() {
                let m = repo.snapshot(instance, id).await?;
                if m.created_ms <= *ms {
                    chosen = Some(m);
                    break;
                }
            }
            let m = chosen.with_context(|| {
                format!(
                    "no snapshot of {instance} was created by {}",
                    aofvault_formats::json::rfc3339_ms(*ms)
                )
            })?;
            build(repo, &m, selection).await
        }
    }
}

async fn build(repo: &Repo, m: &SnapshotManifest, selection: Selection) -> anyhow::Result<Plan> {
    let mut shards = Vec::with_capacity(m.shards.len());
    for cut in &m.shards {
        let segments = match &selection {
            Selection::Snapshot { .. } => cut.segments.iter().map(|s| full(s.clone())).collect(),
            Selection::Latest => extended_segments(repo, &m.instance, cut)
                .await?
                .into_iter()
                .map(full)
                .collect(),
            Selection::At { ms, secs } => {
                let all = extended_segments(repo, &m.instance, cut).await?;
                until(repo, &m.instance, cut, all, *ms, *secs).await?
            }
        };
        let end = segments
            .last()
            .map_or(cut.stream_start, |s: &PlannedSegment| s.seg.start + s.take);
        shards.push(ShardPlan {
            shard: cut.shard,
            chain: cut.chain.clone(),
            base: cut.base.clone(),
            stream_start: cut.stream_start,
            segments,
            end,
        });
    }
    Ok(Plan {
        instance: m.instance.clone(),
        snapshot: m.id.clone(),
        snapshot_created_ms: m.created_ms,
        selection,
        layout: m.layout.clone(),
        server_version: m.server_version.clone(),
        shards,
    })
}

fn full(seg: SegmentRef) -> PlannedSegment {
    PlannedSegment {
        take: seg.end - seg.start,
        seg,
    }
}

/// The segments seen by `ms`, the one seen across `ms` cut at a `#TS:` annotation if it has one.
async fn until(
    repo: &Repo,
    instance: &str,
    cut: &ShardCut,
    all: Vec<SegmentRef>,
    ms: i64,
    secs: i64,
) -> anyhow::Result<Vec<PlannedSegment>> {
    let mut out = Vec::new();
    for seg in all {
        if seg.last_seen_ms <= ms {
            out.push(full(seg));
            continue;
        }
        if keys::is_torn(&seg) {
            // A torn range holds no command to cut at: the restore stops before it.
            break;
        }
        if seg.first_seen_ms <= ms {
            let key = format!(
                "{}{}",
                keys::chain_dir(instance, ShardId(cut.shard), &cut.chain),
                seg.object
            );
            let bytes = repo
                .download(&key, seg.crc32c, Some(seg.end - seg.start), Vec::new())
                .await
                .with_context(|| {
                    format!(
                        "reading {key} to cut it at {}",
                        aofvault_formats::json::rfc3339_ms(ms)
                    )
                })?;
            if has_timestamps(&bytes, seg.start)? {
                let take = aofvault_formats::aof::cut_at_timestamp(&bytes, seg.start, secs)
                    .with_context(|| format!("{key}: cannot be decoded"))?
                    as u64;
                if take > 0 {
                    out.push(PlannedSegment { seg, take });
                }
            }
        }
        break;
    }
    Ok(out)
}

fn has_timestamps(bytes: &[u8], base: u64) -> anyhow::Result<bool> {
    let p = aofvault_formats::aof::safe_prefix(bytes, base)?;
    Ok(p.first_ts.is_some())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_with_whole_seconds_inclusive() {
        assert_eq!(
            parse_time("1795720592").unwrap(),
            Selection::At {
                ms: 1_795_720_592_999,
                secs: 1_795_720_592
            }
        );
        assert_eq!(
            parse_time("1795720592.25").unwrap(),
            Selection::At {
                ms: 1_795_720_592_250,
                secs: 1_795_720_592
            }
        );
        let Selection::At { ms, .. } = parse_time("2026-11-26T23:15:00Z").unwrap() else {
            panic!()
        };
        assert_eq!(ms % 1000, 999);
        let Selection::At { ms, secs } = parse_time("2026-11-26T23:15:00.120+01:00").unwrap()
        else {
            panic!()
        };
        assert_eq!((ms % 1000, secs), (120, ms / 1000));
        assert!(parse_time("yesterday").is_err());
    }
}
