//! The checks of `verify`: which objects a scope needs, and each one downloaded once (CRC-32C
//! and size checked by [`Repo::download`]) into a scratch file and decoded in full — a base to
//! its last entry and trailer, a segment to its last byte, which must end a whole command
//! outside any `MULTI`. Every problem becomes a [`Finding`] naming the object; only an
//! unreachable repository stops the run (it says nothing about the backups).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use anyhow::Context;
use aofvault_formats::kevy::KevySnapReader;
use aofvault_formats::model::Record;
use aofvault_formats::rdb::RdbReader;
use aofvault_formats::vault::{BaseFormat, SegmentRef, ShardCut, SnapshotManifest};
use futures::StreamExt;
use serde::Serialize;

use crate::repo::{keys, Repo, RepoError, ShardId};
use crate::restore::fetch::{create_private, StagingDir};
use crate::restore::stream::{for_each_item, Item};

/// Objects checked at the same time.
const CONCURRENCY: usize = 4;

/// One problem, naming the object it is about.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub object: String,
    pub problem: String,
}

/// Which snapshots, and how much of their chains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every snapshot, and every stored segment that continues their chains.
    All,
    /// One snapshot's objects only.
    One(String),
    /// The newest snapshot and the segments a latest restore adds (the scheduled drill).
    Latest,
}

/// What an object must be.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Base(BaseFormat),
    Segment {
        start: u64,
    },
    /// A crash's torn command, recorded on purpose: size and CRC only, never decoded.
    Torn,
}

#[derive(Debug, Clone)]
struct Expect {
    crc: u32,
    size: u64,
    kind: Kind,
}

/// What a run covered.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub instance: String,
    pub snapshots: Vec<String>,
    pub objects: usize,
    pub bytes: u64,
    pub base_keys: u64,
    pub commands: u64,
    pub findings: Vec<Finding>,
}

fn finding(object: impl Into<String>, problem: impl Into<String>) -> Finding {
    Finding {
        object: object.into(),
        problem: problem.into(),
    }
}

/// A repository error that is about an object (a finding), or about reaching the store (`Err`).
fn as_finding(key: &str, e: RepoError) -> anyhow::Result<Finding> {
    match e {
        e @ RepoError::Unreachable { .. } => Err(e.into()),
        RepoError::NotFound { key } => Ok(finding(key, "missing")),
        RepoError::Corrupt { key, reason } => Ok(finding(key, reason)),
        other => Ok(finding(key, other.to_string())),
    }
}

/// Runs every check of `scope` over `instance`. A gap in a chain counts once the segment after
/// it is `grace_ms` old (while an agent runs, uploads may finish out of order).
pub async fn check(
    repo: &Repo,
    instance: &str,
    scope: &Scope,
    grace_ms: i64,
) -> anyhow::Result<Report> {
    let mut report = Report {
        instance: instance.to_string(),
        ..Report::default()
    };
    let mut ids = repo.snapshot_ids(instance).await?;
    match scope {
        Scope::One(id) => {
            if !ids.contains(id) {
                anyhow::bail!(
                    "instance {instance} has no snapshot {id:?} (`aofvault list` shows them)"
                );
            }
            ids = vec![id.clone()];
        }
        Scope::Latest => ids = ids.split_off(ids.len().saturating_sub(1)),
        Scope::All => {}
    }
    let mut objects: BTreeMap<String, Expect> = BTreeMap::new();
    let mut chains_seen = std::collections::BTreeSet::new();
    for id in &ids {
        let key = keys::snapshot(instance, id);
        let m = match repo.snapshot(instance, id).await {
            Ok(m) => m,
            Err(e) => {
                report.findings.push(as_finding(&key, e)?);
                continue;
            }
        };
        report.snapshots.push(id.clone());
        if m.instance != instance || &m.id != id {
            report.findings.push(finding(
                &key,
                format!("names instance {:?} and id {:?}", m.instance, m.id),
            ));
        }
        check_heads(repo, instance, &m, &mut report.findings).await?;
        for cut in &m.shards {
            let dir = keys::chain_dir(instance, ShardId(cut.shard), &cut.chain);
            for b in &cut.base {
                add(
                    &mut objects,
                    &mut report.findings,
                    format!("{dir}{}", b.object),
                    Expect {
                        crc: b.crc32c,
                        size: b.size,
                        kind: Kind::Base(b.format),
                    },
                );
            }
            let segs = if *scope == Scope::One(id.clone()) || !chains_seen.insert(dir.clone()) {
                cut.segments.clone()
            } else {
                let (run, gap) = chain_run(repo, instance, cut).await?;
                if let Some(g) =
                    gap.filter(|g| crate::context::now_ms() - g.next_seen_ms >= grace_ms)
                {
                    report.findings.push(finding(
                        format!("{dir}seg-{:016x}-{:016x}", g.start, g.end),
                        format!(
                            "missing: the chain's segments stop at offset {} and go on at {}; a restore stops at the gap",
                            g.start, g.end
                        ),
                    ));
                }
                run
            };
            for s in segs {
                let e = Expect {
                    crc: s.crc32c,
                    size: s.end - s.start,
                    kind: if keys::is_torn(&s) {
                        Kind::Torn
                    } else {
                        Kind::Segment { start: s.start }
                    },
                };
                add(
                    &mut objects,
                    &mut report.findings,
                    format!("{dir}{}", s.object),
                    e,
                );
            }
        }
    }
    report.objects = objects.len();
    report.bytes = objects.values().map(|e| e.size).sum();
    let scratch = StagingDir::temp()?;
    let results = futures::stream::iter(objects.into_iter().enumerate())
        .map(|(n, (key, expect))| {
            let path = scratch.path().join(format!("object-{n}"));
            let repo = repo.clone();
            // A task each: downloads decode on every runtime thread.
            tokio::spawn(async move { check_object(&repo, &key, &expect, &path).await })
        })
        .buffer_unordered(CONCURRENCY);
    futures::pin_mut!(results);
    while let Some(r) = results.next().await {
        let (problems, keys_n, commands) = r.context("check task")??;
        report.findings.extend(problems);
        report.base_keys += keys_n;
        report.commands += commands;
    }
    report.findings.sort();
    report.findings.dedup();
    Ok(report)
}

/// A hole in a chain's stored segments.
struct Gap {
    start: u64,
    end: u64,
    /// When the agent saw the segment after the hole.
    next_seen_ms: i64,
}

/// The segments a latest restore reads for `cut` (the manifest's, then every stored segment
/// continuing them), and the first gap after them if stored segments go on beyond one.
async fn chain_run(
    repo: &Repo,
    instance: &str,
    cut: &ShardCut,
) -> anyhow::Result<(Vec<SegmentRef>, Option<Gap>)> {
    let listed: Vec<SegmentRef> = repo
        .segments(instance, ShardId(cut.shard), &cut.chain)
        .await?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let found = crate::repo::run::longest_run(cut.end, &listed);
    let mut run = cut.segments.clone();
    run.extend(found.segments);
    let gap = found.gap.map(|g| Gap {
        start: g.start,
        end: g.end,
        next_seen_ms: g.next_seen_ms,
    });
    Ok((run, gap))
}

/// Records an object once; the same name with other contents is itself a finding.
fn add(
    objects: &mut BTreeMap<String, Expect>,
    findings: &mut Vec<Finding>,
    key: String,
    e: Expect,
) {
    match objects.get(&key) {
        Some(old) if old.crc != e.crc || old.size != e.size => {
            findings.push(finding(&key, format!("named by two manifests with different checksums or sizes ({:08x}/{} and {:08x}/{})", old.crc, old.size, e.crc, e.size)));
        }
        Some(_) => {}
        None => {
            objects.insert(key, e);
        }
    }
}

/// Every chain a manifest names must have its head, agreeing with the manifest.
async fn check_heads(
    repo: &Repo,
    instance: &str,
    m: &SnapshotManifest,
    findings: &mut Vec<Finding>,
) -> anyhow::Result<()> {
    for cut in &m.shards {
        let key = keys::chain_head(instance, ShardId(cut.shard), &cut.chain);
        match repo.chain_head(instance, ShardId(cut.shard), &cut.chain).await {
            Ok(Some(head)) => {
                if head.base != cut.base || head.stream_start != cut.stream_start || head.shard != cut.shard {
                    findings.push(finding(&key, format!("disagrees with snapshot {} about the chain's base or start", m.id)));
                }
            }
            Ok(None) => findings.push(finding(&key, format!("missing: snapshot {} uses this chain, but a chain without its head counts as abandoned", m.id))),
            Err(e) => findings.push(as_finding(&key, e)?),
        }
    }
    Ok(())
}

/// Downloads and decodes one object: (findings, base keys, commands).
async fn check_object(
    repo: &Repo,
    key: &str,
    e: &Expect,
    path: &Path,
) -> anyhow::Result<(Vec<Finding>, u64, u64)> {
    let file = create_private(path)?;
    let writer = std::io::BufWriter::with_capacity(1 << 20, file);
    match repo.download(key, e.crc, Some(e.size), writer).await {
        Ok(w) => {
            w.into_inner()
                .map_err(|e| e.into_error())
                .context("writing the scratch copy")?;
        }
        Err(err) => {
            let _ = std::fs::remove_file(path);
            return Ok((vec![as_finding(key, err)?], 0, 0));
        }
    }
    let (p, k) = (path.to_path_buf(), e.kind.clone());
    let decoded = tokio::task::spawn_blocking(move || decode(&p, &k))
        .await
        .context("decode task")?;
    let _ = std::fs::remove_file(path);
    Ok(match decoded {
        Ok((keys_n, commands)) => (Vec::new(), keys_n, commands),
        Err(err) => (
            vec![finding(key, format!("does not decode: {err:#}"))],
            0,
            0,
        ),
    })
}

/// Decodes a downloaded object completely: (base keys, commands).
fn decode(path: &Path, kind: &Kind) -> anyhow::Result<(u64, u64)> {
    let reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    match kind {
        Kind::Base(BaseFormat::KevySnap) => {
            let mut r = KevySnapReader::new(reader, crate::context::now_ms())?;
            let mut n = 0;
            while r.next_entry()?.is_some() {
                n += 1;
            }
            Ok((n, 0))
        }
        Kind::Base(BaseFormat::Rdb) => {
            let mut r = RdbReader::new(reader)?;
            let mut n = 0;
            while let Some(rec) = r.next_record()? {
                n += u64::from(matches!(rec, Record::Entry(_)));
            }
            let offset = r.offset();
            let tail = for_each_item(r.into_inner(), offset, |_, _| Ok(()))?;
            Ok((n, tail.commands))
        }
        Kind::Base(BaseFormat::Resp) => {
            let end = for_each_item(reader, 0, |_, _| Ok(()))?;
            Ok((0, end.commands))
        }
        Kind::Torn => Ok((0, 0)),
        Kind::Segment { start } => {
            let end = for_each_item(reader, *start, |item, _| match item {
                Item::Command(_) | Item::Timestamp(_) => Ok(()),
            })?;
            if end.open_multi {
                anyhow::bail!("it ends inside MULTI … EXEC (a segment must end at a safe point)");
            }
            Ok((0, end.commands))
        }
    }
}
