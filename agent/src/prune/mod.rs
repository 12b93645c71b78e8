//! `aofvault prune` and the scheduled prune: apply `[retention]` to one instance — delete the
//! snapshot manifests the policy no longer keeps, then every chain folder no remaining snapshot
//! and no open chain needs — and say what was deleted and why.
//!
//! - [`policy`]: which snapshots are kept, with their reasons (pure, property-tested).
//! - [`gc`]: which chain folders go, planned from one listing (pure, property-tested).
//! - [`shards`]: which shards the server no longer has (a kevy shard-count shrink), whose
//!   chains are then nobody's open chain.
//! - [`report`]: the text and JSON output.
//! - here: reading the repository, ordering the deletions, carrying them out.
//!
//! # Order of work
//!
//! 1. One listing of `instances/<instance>/` (snapshots and chain folders), then every manifest.
//! 2. [`policy::select`] over the readable manifests. The newest *restorable* snapshot (every
//!    object it names is in the listing) is kept too, in case the newest one is broken.
//! 3. Manifests the policy drops are deleted only once older than `gc_grace`; younger ones are
//!    spared and still count as snapshots that stay.
//! 4. The manifests are deleted **before** any chain object, so no manifest ever names a deleted
//!    object, even if prune stops half way.
//! 5. The snapshot folder is listed again: a manifest published meanwhile (by a running agent)
//!    adds its chains to those needed. Then [`gc::plan`] and the chain deletions (see [`gc`]
//!    for the rules and why `chain.json` goes first).
//!
//! # Why it runs beside `aofvault run` without taking the lease
//!
//! The lease makes one *writer*; prune only deletes, and only what the writer will not touch
//! again. The agent writes to one chain per shard: the newest (it resumes the newest chain that
//! has a `chain.json`, or starts a newer one, after draining the old one). Prune never deletes a
//! shard's newest chain (by id and by the store's time of its head), nor a head-less folder
//! newer than it (a chain whose base is uploading), nor a folder with an object younger than
//! `gc_grace`. The first two hold for the shards the server still has: after a kevy
//! shard-count shrink the agent never writes to the removed shards again, so their chains stay
//! only while a snapshot that stays names them, or while young (see [`shards`]). The manifests
//! the agent publishes name its current chains: a manifest published before the second snapshot listing is seen there, and one published later names the open
//! chain — or, if the daemon has not yet heard of a chain that just started, the chain its
//! previous manifest named, which the newest snapshot (always kept) still names. Old chains are
//! immutable and nobody reopens them. `gc_grace` (default 1h) is the margin for what these rules
//! cannot see: clocks (the agent's, which dates chain ids, and the store's, which dates objects,
//! against this host's) and readers that resolved a manifest a moment ago.
//!
//! A *reader* (restore, verify) of a snapshot the policy drops may find its objects gone; that
//! is the cost of retention, and the reader reports the missing object by name.

pub mod gc;
pub mod policy;
pub mod report;
pub mod shards;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use aofvault_config::Config;
use aofvault_formats::vault::SnapshotManifest;
use futures::StreamExt;

pub use gc::{inventory, plan, ChainFolder, ChainPlan, Fate, Inventory};
pub use policy::{select, Policy};
pub use report::{Deletion, Report, SnapshotFate, SnapshotLine, Summary};

use crate::cli::PruneArgs;
use crate::repo::{keys, Listed, Repo, RepoError};

/// Keep reason: the newest snapshot whose every object exists (when the newest does not).
pub const NEWEST_RESTORABLE: &str = "newest restorable";
/// Keep reason: published while prune ran.
pub const PUBLISHED_MEANWHILE: &str = "published during prune";
/// Why a dropped manifest was deleted.
pub const DROPPED: &str = "snapshot not kept by the retention policy, older than gc_grace";
/// Why a dropped manifest stays after all.
pub const DELETE_FAILED: &str = "dropped by the policy, but its deletion failed";
/// Why a dropped manifest was spared.
pub const SPARED: &str = "not kept by the policy, but younger than gc_grace";

/// How many deletions or reads are in flight at once.
const PARALLEL: usize = 8;

/// What can stop a prune before it decides anything.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error("cannot list {prefix}: {source}")]
    List { prefix: String, source: RepoError },
    #[error("cannot read snapshot manifest {key}: {source}")]
    Manifest { key: String, source: RepoError },
}

/// `aofvault prune [--dry-run] [--json]`.
pub async fn run(cfg: &Config, args: &PruneArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    let repo = crate::context::open_for_reading(cfg).await?;
    let policy = Policy::from_retention(&cfg.retention);
    let grace = policy::duration_ms(cfg.retention.gc_grace);
    let now = crate::context::now_ms();
    let report = prune(
        &repo,
        &cfg.repository.instance,
        &policy,
        grace,
        args.dry_run,
        now,
    )
    .await?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        report::text(&report, out)?;
    }
    Ok(if report.clean() {
        crate::exit::OK
    } else {
        crate::exit::ERROR
    })
}

/// The daemon's `[schedule] prune` job: the same work, reported in the log.
pub async fn scheduled(cfg: &Config, repo: &Repo, instance: &str) -> anyhow::Result<()> {
    let policy = Policy::from_retention(&cfg.retention);
    if !policy.has_rules() {
        tracing::debug!("prune: no [retention] keep rule is set; nothing to do");
        return Ok(());
    }
    let grace = policy::duration_ms(cfg.retention.gc_grace);
    let report = prune(
        repo,
        instance,
        &policy,
        grace,
        false,
        crate::context::now_ms(),
    )
    .await?;
    report::log(&report);
    if report.clean() {
        Ok(())
    } else {
        anyhow::bail!(
            "prune of {instance}: {} deletion(s) failed, {} warning(s): {}",
            report.summary.failures,
            report.warnings.len(),
            report.warnings.join("; ")
        )
    }
}

/// Applies `policy` to `instance`: decides, then (unless `dry_run`) deletes. Deletion failures
/// are recorded in the report, not returned: the rest of the work still happens.
pub async fn prune(
    repo: &Repo,
    instance: &str,
    policy: &Policy,
    grace_ms: i64,
    dry_run: bool,
    now_ms: i64,
) -> Result<Report, PruneError> {
    let mut report = Report {
        instance: instance.to_string(),
        policy: policy.describe(),
        gc_grace_ms: grace_ms,
        now_ms,
        dry_run,
        note: None,
        snapshots: Vec::new(),
        chains: Vec::new(),
        deletions: Vec::new(),
        warnings: Vec::new(),
        summary: Summary::default(),
    };
    if !policy.has_rules() {
        report.note = Some(
            "no [retention] keep rule is set: every snapshot is kept, nothing is deleted".into(),
        );
        return Ok(report);
    }
    let prefix = keys::instance_prefix(instance);
    let listing = repo
        .list(&prefix)
        .await
        .map_err(|source| PruneError::List { prefix, source })?;
    if listing.is_empty() {
        report.note = Some(format!(
            "instance {instance} has nothing in {}: is [repository] instance right?",
            repo.url()
        ));
        return Ok(report);
    }
    let listed = snapshot_objects(instance, &listing);
    let (manifests, unreadable) =
        read_manifests(repo, instance, listed.keys().cloned().collect()).await?;
    let inv = gc::inventory(instance, &listing);
    let mut decision = decide(&manifests, &listed, &inv, policy, now_ms, grace_ms);
    for (id, why) in &unreadable {
        decision.lines.push(SnapshotLine {
            id: id.clone(),
            created_ms: None,
            fate: SnapshotFate::Unreadable,
            reasons: Vec::new(),
        });
        report.warnings.push(format!(
            "{} is unreadable ({why}); chains are not collected until it is repaired or removed (run `aofvault verify`)",
            keys::snapshot(instance, id)
        ));
    }
    report.snapshots = decision.lines;
    let mut needed = decision.needed;

    // Manifests first: afterwards no manifest names anything that is about to go.
    let doomed: Vec<(Listed, String)> = decision
        .delete
        .iter()
        .filter_map(|id| listed.get(id))
        .map(|l| (l.clone(), DROPPED.to_string()))
        .collect();
    let done = delete_all(repo, doomed, dry_run).await;
    for d in done.iter().filter(|d| d.error.is_some()) {
        // Still there, so it stays, and so do its chains.
        let Some(line) = report
            .snapshots
            .iter_mut()
            .find(|l| keys::snapshot(instance, &l.id) == d.key)
        else {
            continue;
        };
        line.fate = SnapshotFate::Keep;
        line.reasons = vec![DELETE_FAILED];
        needed.extend(manifests.get(&line.id).into_iter().flat_map(chains_of));
    }
    report.deletions.extend(done);
    if !unreadable.is_empty() {
        report.summarize();
        return Ok(report);
    }

    // A manifest published meanwhile names chains the first listing may call orphans.
    let prefix = keys::snapshots_prefix(instance);
    let again = repo
        .list(&prefix)
        .await
        .map_err(|source| PruneError::List { prefix, source })?;
    let new_ids = snapshot_objects(instance, &again)
        .into_keys()
        .filter(|id| !listed.contains_key(id))
        .collect();
    let (late, late_unreadable) = read_manifests(repo, instance, new_ids).await?;
    for m in late.values() {
        needed.extend(chains_of(m));
        report.snapshots.push(SnapshotLine {
            id: m.id.clone(),
            created_ms: Some(m.created_ms),
            fate: SnapshotFate::Keep,
            reasons: vec![PUBLISHED_MEANWHILE],
        });
    }
    if let Some((id, why)) = late_unreadable.first() {
        report.warnings.push(format!(
            "{} appeared during prune and is unreadable ({why}); chains are not collected this time",
            keys::snapshot(instance, id)
        ));
        report.summarize();
        return Ok(report);
    }

    // The layout of the newest manifest still stored: which shards the server has.
    let stored = snapshot_objects(instance, &again);
    let current = shards::current_layout(
        manifests
            .values()
            .chain(late.values())
            .filter_map(|m| stored.get(&m.id).map(|l| (m, l.last_modified_ms))),
    );
    let removed = current.map_or_else(BTreeSet::new, |c| shards::removed(&inv, &c));
    report.chains = gc::plan(&inv, &needed, &removed, now_ms, grace_ms);
    for p in report.chains.iter().filter(|p| p.fate == Fate::Delete) {
        report
            .deletions
            .extend(delete_chain(repo, p, dry_run).await);
    }
    report.summarize();
    Ok(report)
}

/// What happens to each readable snapshot, and what that leaves needed.
#[derive(Debug, Default)]
struct Decision {
    /// Newest first.
    lines: Vec<SnapshotLine>,
    /// Ids whose manifests go.
    delete: Vec<String>,
    /// (shard, chain) named by the snapshots that stay.
    needed: BTreeSet<(u32, String)>,
}

/// The policy, plus the two rules around it: the newest restorable snapshot stays, and a
/// dropped manifest younger than the grace (by its own time or the store's) is spared.
fn decide(
    manifests: &Manifests,
    listed: &BTreeMap<String, Listed>,
    inv: &Inventory,
    policy: &Policy,
    now_ms: i64,
    grace_ms: i64,
) -> Decision {
    let times: Vec<(String, i64)> = manifests
        .values()
        .map(|m| (m.id.clone(), m.created_ms))
        .collect();
    let mut selection = policy::select(&times, policy, now_ms);
    if let Some((_, reasons)) = selection
        .iter_mut()
        .find(|(id, _)| manifests.get(id).is_some_and(|m| restorable(m, inv)))
    {
        if reasons.is_empty() {
            reasons.push(NEWEST_RESTORABLE);
        }
    }
    let young_after = now_ms.saturating_sub(grace_ms);
    let mut d = Decision::default();
    for (id, reasons) in selection {
        let Some(m) = manifests.get(&id) else {
            continue;
        };
        let stored_ms = listed.get(&id).map_or(i64::MIN, |l| l.last_modified_ms);
        let (fate, reasons) = if !reasons.is_empty() {
            (SnapshotFate::Keep, reasons)
        } else if m.created_ms > young_after || stored_ms > young_after {
            (SnapshotFate::Spare, vec![SPARED])
        } else {
            (SnapshotFate::Delete, Vec::new())
        };
        if fate == SnapshotFate::Delete {
            d.delete.push(id.clone());
        } else {
            d.needed.extend(chains_of(m));
        }
        d.lines.push(SnapshotLine {
            id,
            created_ms: Some(m.created_ms),
            fate,
            reasons,
        });
    }
    d
}

/// Deletes one chain folder: its `chain.json` alone first (from then on every reader sees an
/// abandoned start), then the rest; if the head cannot be deleted, nothing else is tried.
async fn delete_chain(repo: &Repo, p: &ChainPlan, dry_run: bool) -> Vec<Deletion> {
    let reason = format!("{} (shard {}, chain {})", p.reason, p.shard, p.chain);
    let mut objects = p.delete_order.iter();
    let mut out = Vec::new();
    if let Some(first) = objects.next() {
        out = delete_all(repo, vec![(first.clone(), reason.clone())], dry_run).await;
        if out.iter().any(|d| d.error.is_some()) {
            return out;
        }
    }
    let rest = objects.map(|o| (o.clone(), reason.clone())).collect();
    out.extend(delete_all(repo, rest, dry_run).await);
    out
}

/// Snapshot manifests in a listing, by id (only keys exactly as [`keys::snapshot`] builds them).
fn snapshot_objects(instance: &str, listing: &[Listed]) -> BTreeMap<String, Listed> {
    let prefix = keys::snapshots_prefix(instance);
    listing
        .iter()
        .filter_map(|l| {
            let id = l.key.strip_prefix(&prefix)?.strip_suffix(".json")?;
            (!id.is_empty() && !id.contains('/') && keys::snapshot(instance, id) == l.key)
                .then(|| (id.to_string(), l.clone()))
        })
        .collect()
}

type Manifests = BTreeMap<String, SnapshotManifest>;

/// Reads manifests, a few at a time. Vanished ones (another prune) are skipped; unparsable ones
/// are returned apart with the reason; any other failure (unreachable store) stops the prune.
async fn read_manifests(
    repo: &Repo,
    instance: &str,
    ids: Vec<String>,
) -> Result<(Manifests, Vec<(String, String)>), PruneError> {
    let results: Vec<(String, Result<SnapshotManifest, RepoError>)> = futures::stream::iter(ids)
        .map(|id| async move {
            let r = repo.snapshot(instance, &id).await;
            (id, r)
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let mut ok = Manifests::new();
    let mut bad = Vec::new();
    for (id, r) in results {
        match r {
            Ok(m) if m.id == id && m.instance == instance => {
                ok.insert(id, m);
            }
            Ok(m) => bad.push((
                id,
                format!("it says it is snapshot {} of instance {}", m.id, m.instance),
            )),
            Err(RepoError::NotFound { .. }) => {}
            Err(RepoError::Corrupt { reason, .. }) => bad.push((id, reason)),
            Err(RepoError::Format { source, .. }) => bad.push((id, source.to_string())),
            Err(source) => {
                return Err(PruneError::Manifest {
                    key: keys::snapshot(instance, &id),
                    source,
                })
            }
        }
    }
    bad.sort();
    Ok((ok, bad))
}

/// The (shard, chain) pairs a manifest names.
fn chains_of(m: &SnapshotManifest) -> impl Iterator<Item = (u32, String)> + '_ {
    m.shards.iter().map(|c| (c.shard, c.chain.clone()))
}

/// Whether every object the manifest names is in the listing.
fn restorable(m: &SnapshotManifest, inv: &Inventory) -> bool {
    m.shards.iter().all(|cut| {
        inv.get(&(cut.shard, cut.chain.clone()))
            .is_some_and(|folder| {
                folder.head().is_some()
                    && cut.base.iter().all(|b| folder.has(&b.object))
                    && cut.segments.iter().all(|s| folder.has(&s.object))
            })
    })
}

/// Deletes `objects` (nothing with `dry_run`), a few at a time, and reports each.
async fn delete_all(repo: &Repo, objects: Vec<(Listed, String)>, dry_run: bool) -> Vec<Deletion> {
    futures::stream::iter(objects)
        .map(|(obj, reason)| async move {
            let result = if dry_run {
                Ok(())
            } else {
                repo.delete(&obj.key).await
            };
            Deletion {
                deleted: !dry_run && result.is_ok(),
                error: result.err().map(|e| e.to_string()),
                key: obj.key,
                size: obj.size,
                reason,
            }
        })
        .buffered(PARALLEL)
        .collect()
        .await
}

#[cfg(test)]
mod tests;
