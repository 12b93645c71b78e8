//! `aofvault prune` and the scheduled prune: apply `[retention]` to one instance — delete the
//! snapshot manifests the policy no longer keeps, then every chain folder no remaining snapshot
//! and no open chain needs — and say what was deleted and why.
//!
//! - [`policy`]: which snapshots are kept, with their reasons (pure, property-tested).
//! - [`gc`]: which chain folders go, planned from one listing (pure, property-tested).
//! - [`shards`]: which shards the server no longer has (a kevy shard-count shrink), whose
//!   chains are then nobody's open chain.
//! - [`report`]: the text and JSON output.
//! - [`read`]: which listed keys are manifests, and reading them.
//! - [`decide`]: the policy plus the rules around it, over the readable manifests.
//! - [`delete`]: carrying deletions out, a few at a time.
//! - [`captures`]: which captured server configurations go (pure).
//! - here: the order of work, step by step.
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
//! 6. The server configuration captures no snapshot that stays restores with ([`captures`]).
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

mod captures;
mod decide;
mod delete;
pub mod gc;
pub mod policy;
mod read;
pub mod report;
pub mod shards;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use aofvault_config::Config;

pub use gc::{inventory, plan, ChainFolder, ChainPlan, Fate, Inventory};
pub use policy::{select, Policy};
pub use report::{Deletion, Report, SnapshotFate, SnapshotLine, Summary};

use crate::cli::PruneArgs;
use crate::repo::{keys, Listed, Repo, RepoError};
use decide::{chains_of, decide};
use delete::{delete_all, delete_chain};
use read::{read_manifests, snapshot_objects, Manifests};

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
    let pass = Pass {
        repo,
        instance,
        dry_run,
        now_ms,
        grace_ms,
    };
    pass.run(policy, &mut report).await?;
    Ok(report)
}

/// The fixed inputs of one prune, and its steps in order.
struct Pass<'a> {
    repo: &'a Repo,
    instance: &'a str,
    dry_run: bool,
    now_ms: i64,
    grace_ms: i64,
}

/// The snapshots the first listing found: the listed manifest objects by id, and those read.
struct Seen {
    listed: BTreeMap<String, Listed>,
    manifests: Manifests,
}

impl Pass<'_> {
    /// Steps 1–5 of the order of work (see the module doc), filling `report`.
    async fn run(&self, policy: &Policy, report: &mut Report) -> Result<(), PruneError> {
        let prefix = keys::instance_prefix(self.instance);
        let listing = self
            .repo
            .list(&prefix)
            .await
            .map_err(|source| PruneError::List { prefix, source })?;
        if listing.is_empty() {
            report.note = Some(format!(
                "instance {} has nothing in {}: is [repository] instance right?",
                self.instance,
                self.repo.url()
            ));
            return Ok(());
        }
        let listed = snapshot_objects(self.instance, &listing);
        let (manifests, unreadable) =
            read_manifests(self.repo, self.instance, listed.keys().cloned().collect()).await?;
        let seen = Seen { listed, manifests };
        let inv = gc::inventory(self.instance, &listing);
        let decision = decide(
            &seen.manifests,
            &seen.listed,
            &inv,
            policy,
            self.now_ms,
            self.grace_ms,
        );
        self.record_decision(decision.lines, &unreadable, report);
        let mut needed = decision.needed;
        self.delete_manifests(&decision.delete, &seen, report, &mut needed)
            .await;
        if !unreadable.is_empty() {
            report.summarize();
            return Ok(());
        }
        let Some((late, stored)) = self.published_meanwhile(&seen, report, &mut needed).await?
        else {
            report.summarize();
            return Ok(());
        };
        self.delete_chains(&seen, &late, &stored, &inv, &needed, report)
            .await;
        self.delete_captures(&listing, report).await;
        report.summarize();
        Ok(())
    }

    /// Step 6: the server configuration captures no snapshot that stays restores with (see
    /// [`captures`]). After the chains, so a stop half way leaves only extra captures behind.
    async fn delete_captures(&self, listing: &[Listed], report: &mut Report) {
        let kept: Vec<i64> = report
            .snapshots
            .iter()
            .filter(|l| l.fate != SnapshotFate::Delete)
            .filter_map(|l| l.created_ms)
            .collect();
        let doomed = captures::unused(self.instance, listing, &kept, self.now_ms, self.grace_ms)
            .into_iter()
            .map(|l| (l, captures::UNUSED_CAPTURE.to_string()))
            .collect();
        report
            .deletions
            .extend(delete_all(self.repo, doomed, self.dry_run).await);
    }

    /// Puts the decided snapshot lines in the report, then a line and a warning per unreadable
    /// manifest.
    fn record_decision(
        &self,
        mut lines: Vec<SnapshotLine>,
        unreadable: &[(String, String)],
        report: &mut Report,
    ) {
        for (id, why) in unreadable {
            lines.push(SnapshotLine {
                id: id.clone(),
                created_ms: None,
                fate: SnapshotFate::Unreadable,
                reasons: Vec::new(),
            });
            report.warnings.push(format!(
                "{} is unreadable ({why}); chains are not collected until it is repaired or removed (run `aofvault verify`)",
                keys::snapshot(self.instance, id)
            ));
        }
        report.snapshots = lines;
    }

    /// Deletes the manifests the decision drops. Manifests first: afterwards no manifest names
    /// anything that is about to go. One whose deletion failed is still there, so it stays, and
    /// so do its chains.
    async fn delete_manifests(
        &self,
        ids: &[String],
        seen: &Seen,
        report: &mut Report,
        needed: &mut BTreeSet<(u32, String)>,
    ) {
        let doomed: Vec<(Listed, String)> = ids
            .iter()
            .filter_map(|id| seen.listed.get(id))
            .map(|l| (l.clone(), DROPPED.to_string()))
            .collect();
        let done = delete_all(self.repo, doomed, self.dry_run).await;
        for d in done.iter().filter(|d| d.error.is_some()) {
            let Some(line) = report
                .snapshots
                .iter_mut()
                .find(|l| keys::snapshot(self.instance, &l.id) == d.key)
            else {
                continue;
            };
            line.fate = SnapshotFate::Keep;
            line.reasons = vec![DELETE_FAILED];
            needed.extend(seen.manifests.get(&line.id).into_iter().flat_map(chains_of));
        }
        report.deletions.extend(done);
    }

    /// Lists the snapshot folder again: a manifest published meanwhile names chains the first
    /// listing may call orphans, so they become needed. Returns the late manifests and the
    /// second listing's manifest objects, or `None` when a late one is unreadable (chains are
    /// then not collected this time).
    async fn published_meanwhile(
        &self,
        seen: &Seen,
        report: &mut Report,
        needed: &mut BTreeSet<(u32, String)>,
    ) -> Result<Option<(Manifests, BTreeMap<String, Listed>)>, PruneError> {
        let prefix = keys::snapshots_prefix(self.instance);
        let again = self
            .repo
            .list(&prefix)
            .await
            .map_err(|source| PruneError::List { prefix, source })?;
        let new_ids = snapshot_objects(self.instance, &again)
            .into_keys()
            .filter(|id| !seen.listed.contains_key(id))
            .collect();
        let (late, late_unreadable) = read_manifests(self.repo, self.instance, new_ids).await?;
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
                keys::snapshot(self.instance, id)
            ));
            return Ok(None);
        }
        Ok(Some((late, snapshot_objects(self.instance, &again))))
    }

    /// Plans the chain folders against what is needed and the shards the server still has (the
    /// layout of the newest manifest still stored), and deletes those that go.
    async fn delete_chains(
        &self,
        seen: &Seen,
        late: &Manifests,
        stored: &BTreeMap<String, Listed>,
        inv: &Inventory,
        needed: &BTreeSet<(u32, String)>,
        report: &mut Report,
    ) {
        let current = shards::current_layout(
            seen.manifests
                .values()
                .chain(late.values())
                .filter_map(|m| stored.get(&m.id).map(|l| (m, l.last_modified_ms))),
        );
        let removed = current.map_or_else(BTreeSet::new, |c| shards::removed(inv, &c));
        report.chains = gc::plan(inv, needed, &removed, self.now_ms, self.grace_ms);
        for p in report.chains.iter().filter(|p| p.fate == Fate::Delete) {
            report
                .deletions
                .extend(delete_chain(self.repo, p, self.dry_run).await);
        }
    }
}

#[cfg(test)]
mod tests;
