//! The matching keys' state at one moment, from the repository alone: the restore plan of that
//! moment ([`crate::repo::plan`]) is fetched and checked ([`crate::restore::fetch`]), then each
//! shard's base and commands are replayed into a [`Model`] that holds only the matching keys.
//! Memory: the matching keys' values (with no pattern, the whole keyspace) plus one read buffer
//! per stream; the staged objects are on disk, in a temporary directory removed at the end.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use anyhow::Context;

use super::apply::{apply, At};
use super::glob::Patterns;
use super::model::{KeyId, Model, Slot};
use super::read::{read_base, BaseEvent, Cursor};
use crate::repo::keys;
use crate::repo::plan::{Plan, ShardPlan};
use crate::repo::Repo;
use crate::restore::fetch::{fetch, StagedShard, StagingDir};
use crate::restore::progress::Progress;
use crate::restore::retry::Retry;
use crate::restore::stream::for_each_item;

/// The matching keys alive at the moment a plan covers.
pub struct Keyspace {
    pub plan: Plan,
    /// The moment (unix ms) the state is for: the plan's `covers_until`.
    pub moment_ms: i64,
    pub keys: Vec<(KeyId, Slot)>,
}

/// Fetches `plan` and replays it into a model of the keys `patterns` (and `db`) select.
pub async fn keyspace(
    repo: &Repo,
    plan: Plan,
    patterns: &Patterns,
    db: Option<u32>,
    retry: &Retry,
) -> anyhow::Result<Keyspace> {
    let staging = StagingDir::temp()?;
    let progress = Progress::new("fetch", plan.total_bytes());
    let staged = fetch(repo, &plan, staging.path(), b"", &progress, retry).await?;
    progress.finish();
    let moment_ms = plan.covers_until_ms();
    let kevy = plan.layout.is_kevy();
    let patterns = patterns.clone();
    let shards = plan.shards.clone();
    let keys = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let mut model = Model::new(patterns, db);
        for (s, p) in staged.iter().zip(&shards) {
            replay_shard(&mut model, s, p, kevy, moment_ms)
                .with_context(|| format!("shard {}", s.shard))?;
        }
        Ok(model.into_sorted(moment_ms))
    })
    .await??;
    drop(staging);
    Ok(Keyspace {
        plan,
        moment_ms,
        keys,
    })
}

/// The time of the segment holding each stretch of a staged stream: (staged end offset, first
/// seen ms), for commands without a `#TS:` annotation (relative TTLs are anchored there).
fn seen_times(p: &ShardPlan) -> Vec<(u64, i64)> {
    let mut torn = 0;
    let mut out = Vec::new();
    for s in &p.segments {
        if keys::is_torn(&s.seg) {
            torn += s.take;
            continue;
        }
        out.push((s.seg.start - torn + s.take, s.seg.first_seen_ms));
    }
    out
}

fn replay_shard(
    m: &mut Model,
    s: &StagedShard,
    p: &ShardPlan,
    kevy: bool,
    moment_ms: i64,
) -> anyhow::Result<()> {
    let base_ms = keys::chain_created_ms(&p.chain).unwrap_or(moment_ms);
    let mut at = At {
        shard: s.shard,
        db: 0,
        now_ms: base_ms,
        kevy,
    };
    for part in &s.base {
        read_base(&part.path, part.part.format, base_ms, |ev| {
            match ev {
                BaseEvent::Entry(e) => m.put_entry(s.shard, e),
                BaseEvent::Command { db, args } => apply(m, At { db, ..at }, args),
            }
            Ok(())
        })
        .with_context(|| format!("base {}", part.part.file_name))?;
    }
    let times = seen_times(p);
    let mut file =
        File::open(&s.stream).with_context(|| format!("opening {}", s.stream.display()))?;
    file.seek(SeekFrom::Start(s.prefix))?;
    let mut cursor = Cursor::default();
    let mut seg = 0;
    for_each_item(
        file.take(s.stream_end - s.stream_start),
        s.stream_start,
        |item, end| {
            while seg + 1 < times.len() && times[seg].0 < end {
                seg += 1;
            }
            if let Some(args) = cursor.step(item) {
                at.db = cursor.db;
                at.now_ms = match cursor.ts {
                    Some(t) => t * 1000,
                    None => times.get(seg).map_or(base_ms, |t| t.1),
                };
                apply(m, at, args);
            }
            Ok(())
        },
    )
    .context("AOF stream")?;
    Ok(())
}
