//! Every write to the matching keys, in order, across every chain of an instance: the service
//! `aofvault log` prints. Per shard, chains oldest first (their ids sort by creation time), each
//! chain's base (when it starts inside the window: a compaction shows the keys' state as
//! `base` events) and then its segments along the longest contiguous run, the same run a
//! restore follows. Shards are merged by time, unit by unit (a base or a segment), so one
//! shard's events stay in order and the shards interleave by when their bytes were seen.
//!
//! Time: a command after a `#TS:` annotation (Redis `aof-timestamp-enabled`) has that second
//! ([`TimeSource::Ts`]); otherwise the time the agent had seen its segment by
//! ([`TimeSource::Seen`]: an upper bound, at most `ship.interval` after the write); a base
//! event has its chain's start ([`TimeSource::Chain`]).
//!
//! Memory: one segment at a time (segments are at most `ship.segment_max`), bases streamed from
//! a temporary file, and the listing's metadata. kevy segments before `--since` are not read
//! (kevy has one database); a Redis chain is read from its start when any of it is in the
//! window, since a `SELECT` before `--since` decides the database of what follows.

use std::collections::VecDeque;

use anyhow::Context;
use aofvault_formats::model::Entry;
use aofvault_formats::vault::{BasePart, SegmentRef};
use serde::Serialize;

use super::glob::Patterns;
use super::read::{read_base, BaseEvent, Cursor};
use crate::repo::{keys, Repo, ShardId};
use crate::restore::fetch::{create_private, StagingDir};
use crate::restore::progress::Progress;
use crate::restore::stream::for_each_item;
use crate::restore::translate::key_positions;

/// Where an event's time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeSource {
    Ts,
    Seen,
    Chain,
}

/// What the walk selects.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub patterns: Patterns,
    pub db: Option<u32>,
    /// Unix ms, inclusive.
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

/// One write.
pub enum What<'a> {
    Command(&'a [&'a [u8]]),
    /// A key as a base (a chain's first state) holds it.
    Base(&'a Entry),
}

/// One write and where it came from.
pub struct Event<'a> {
    pub time_ms: i64,
    pub time_source: TimeSource,
    pub shard: u32,
    pub db: u32,
    /// The object, relative to the instance (`shards/…/chains/…/seg-…`).
    pub object: &'a str,
    /// Logical offset after the command in the shard's stream (commands only).
    pub offset: Option<u64>,
    pub what: What<'a>,
}

enum Unit {
    Base {
        chain: String,
        created_ms: i64,
        parts: Vec<BasePart>,
    },
    Segment {
        chain: String,
        seg: SegmentRef,
        show: bool,
    },
}

impl Unit {
    fn time(&self) -> i64 {
        match self {
            Unit::Base { created_ms, .. } => *created_ms,
            Unit::Segment { seg, .. } => seg.first_seen_ms,
        }
    }
    fn bytes(&self) -> u64 {
        match self {
            Unit::Base { parts, .. } => parts.iter().map(|p| p.size).sum(),
            Unit::Segment { seg, .. } => seg.end - seg.start,
        }
    }
}

/// The units of one shard, in order.
async fn shard_units(
    repo: &Repo,
    instance: &str,
    shard: ShardId,
    f: &Filter,
    kevy: bool,
) -> anyhow::Result<VecDeque<Unit>> {
    let mut out = VecDeque::new();
    let after = |t: i64| f.since_ms.is_none_or(|s| t >= s);
    let before = |t: i64| f.until_ms.is_none_or(|u| t <= u);
    for chain in repo.chain_ids(instance, shard).await? {
        let Some(head) = repo.chain_head(instance, shard, &chain).await? else {
            continue; // an abandoned start
        };
        let listed: Vec<SegmentRef> = repo
            .segments(instance, shard, &chain)
            .await?
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        let run = crate::repo::run::longest_run(head.stream_start, &listed);
        let shown = |s: &SegmentRef| after(s.last_seen_ms) && before(s.first_seen_ms);
        let any = run.segments.iter().any(shown);
        if !head.base.is_empty() && after(head.created_ms) && before(head.created_ms) {
            out.push_back(Unit::Base {
                chain: chain.clone(),
                created_ms: head.created_ms,
                parts: head.base.clone(),
            });
        }
        for seg in run.segments {
            if keys::is_torn(&seg) {
                continue;
            }
            let show = shown(&seg);
            // Redis: read what precedes the window too, for the database it selects.
            if show || (any && !kevy && !after(seg.last_seen_ms)) {
                out.push_back(Unit::Segment {
                    chain: chain.clone(),
                    seg,
                    show,
                });
            }
        }
    }
    Ok(out)
}

/// Walks every write matching `f` in `instance`, calling `on` for each. Returns the bytes read.
pub async fn walk(
    repo: &Repo,
    instance: &str,
    f: &Filter,
    mut on: impl FnMut(&Event<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let ids = repo.snapshot_ids(instance).await?;
    let kevy = match ids.last() {
        Some(id) => repo.snapshot(instance, id).await?.layout.is_kevy(),
        None => false,
    };
    let mut shards = Vec::new();
    for shard in repo.shard_ids(instance).await? {
        shards.push((shard, shard_units(repo, instance, shard, f, kevy).await?));
    }
    let total: u64 = shards
        .iter()
        .flat_map(|(_, u)| u.iter().map(Unit::bytes))
        .sum();
    let progress = Progress::new("log", total);
    let staging = StagingDir::temp()?;
    // Per shard: (chain, end offset) of the last segment read, and the stream's cursor.
    let mut state: Vec<(Option<(String, u64)>, Cursor)> =
        vec![(None, Cursor::default()); shards.len()];
    loop {
        let next = shards
            .iter()
            .enumerate()
            .filter_map(|(i, (_, u))| u.front().map(|u| (u.time(), i)))
            .min();
        let Some((_, i)) = next else { break };
        let (shard, units) = &mut shards[i];
        let Some(unit) = units.pop_front() else { break };
        progress.add_bytes(unit.bytes());
        let (last, cursor) = &mut state[i];
        match unit {
            Unit::Base {
                chain,
                created_ms,
                parts,
            } => {
                *last = None;
                for (n, part) in parts.iter().enumerate() {
                    let dir = keys::chain_dir(instance, *shard, &chain);
                    let key = keys::object(&dir, &part.object);
                    let path = staging.path().join(format!("base-{}-{n}", shard.0));
                    let file = std::io::BufWriter::new(create_private(&path)?);
                    repo.download(&key, part.crc32c, Some(part.size), file)
                        .await
                        .with_context(|| format!("reading {key}"))?;
                    let object = relative(instance, &key);
                    read_base(&path, part.format, created_ms, |ev| {
                        let (db, what, keys_of): (u32, What<'_>, Vec<&[u8]>) = match &ev {
                            BaseEvent::Entry(e) => (e.db, What::Base(e), vec![e.key.as_slice()]),
                            BaseEvent::Command { db, args } => {
                                (*db, What::Command(args), command_keys(args))
                            }
                        };
                        if selected(f, db, &keys_of) {
                            on(&Event {
                                time_ms: created_ms,
                                time_source: TimeSource::Chain,
                                shard: shard.0,
                                db,
                                object: &object,
                                offset: None,
                                what,
                            })?;
                        }
                        Ok(())
                    })
                    .with_context(|| format!("decoding {key}"))?;
                    std::fs::remove_file(&path).ok();
                }
            }
            Unit::Segment { chain, seg, show } => {
                let follows = last
                    .as_ref()
                    .is_some_and(|(c, end)| *c == chain && *end == seg.start);
                if !follows {
                    // A chain's stream starts in database 0; a gap in what was read loses the
                    // annotation time until the next one.
                    *cursor = Cursor::default();
                }
                *last = Some((chain.clone(), seg.end));
                let dir = keys::chain_dir(instance, *shard, &chain);
                let key = keys::object(&dir, &seg.object);
                let bytes = repo
                    .download(&key, seg.crc32c, Some(seg.end - seg.start), Vec::new())
                    .await
                    .with_context(|| format!("reading {key}"))?;
                let object = relative(instance, &key);
                for_each_item(&bytes[..], seg.start, |item, end| {
                    let Some(args) = cursor.step(item) else {
                        return Ok(());
                    };
                    if !show {
                        return Ok(());
                    }
                    let (time_ms, time_source) = match cursor.ts {
                        Some(t) => (t * 1000, TimeSource::Ts),
                        None => (seg.last_seen_ms, TimeSource::Seen),
                    };
                    if time_source == TimeSource::Ts
                        && (f.since_ms.is_some_and(|s| time_ms + 999 < s)
                            || f.until_ms.is_some_and(|u| time_ms > u))
                    {
                        return Ok(());
                    }
                    if selected(f, cursor.db, &command_keys(args)) {
                        on(&Event {
                            time_ms,
                            time_source,
                            shard: shard.0,
                            db: cursor.db,
                            object: &object,
                            offset: Some(end),
                            what: What::Command(args),
                        })?;
                    }
                    Ok(())
                })
                .with_context(|| format!("decoding {key}"))?;
            }
        }
    }
    progress.finish();
    Ok(total)
}

fn relative(instance: &str, key: &str) -> String {
    key.strip_prefix(&keys::instance_prefix(instance))
        .unwrap_or(key)
        .to_string()
}

fn command_keys<'a>(args: &[&'a [u8]]) -> Vec<&'a [u8]> {
    key_positions(args)
        .into_iter()
        .filter_map(|i| args.get(i).copied())
        .collect()
}

/// Any of the keys matches (and the database is the one asked for).
fn selected(f: &Filter, db: u32, keys: &[&[u8]]) -> bool {
    f.db.is_none_or(|d| d == db) && keys.iter().any(|k| f.patterns.matches(k))
}
