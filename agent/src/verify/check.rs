//! The checks of `verify`: read the documents, choose the objects, check each once.
//!
//! 1. Manifests of the scope are read; an unreadable one is a finding, never the end of the run.
//! 2. Chains are found ([`inventory`](super::inventory)): for the whole instance by listing every
//!    shard's chains, so a damaged manifest hides nothing; for one snapshot (or the latest),
//!    the chains its manifest names. A damaged chain head is a finding.
//! 3. The objects to check and what each must be are chosen ([`plan`](super::plan)); segments
//!    are followed with the longest-run rule, holes become findings.
//! 4. Each object is downloaded once and checked ([`object`](super::object)), a few at a time.
//!
//! Every problem becomes a [`Finding`] naming its object; only an unreachable repository stops
//! the run (it says nothing about the backups).

use std::collections::BTreeMap;

use anyhow::Context;
use aofvault_formats::vault::SnapshotManifest;
use futures::StreamExt;
use serde::Serialize;

pub use super::finding::Finding;
use super::finding::{as_finding, finding};
use super::inventory::{self, Chains};
use super::object::check_object;
use super::plan::{Plan, Target};
use crate::repo::{keys, Repo, ShardId};
use crate::restore::fetch::StagingDir;

/// Objects checked at the same time.
const CONCURRENCY: usize = 4;

/// Which snapshots, and how much of their chains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The whole instance: every snapshot, and every object of every chain the repository lists.
    All,
    /// One snapshot's objects only.
    One(String),
    /// The newest snapshot and the segments a latest restore adds (the scheduled drill).
    Latest,
}

/// What a run covered.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub instance: String,
    /// Snapshots whose manifest could be read.
    pub snapshots: Vec<String>,
    pub chains: usize,
    pub objects: usize,
    pub bytes: u64,
    pub base_keys: u64,
    pub commands: u64,
    pub findings: Vec<Finding>,
    /// Remarks that are not problems (an abandoned chain, a segment off the run).
    pub notes: Vec<Finding>,
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
    let mut plan = Plan::default();
    let ids = in_scope(repo, instance, scope).await?;
    let manifests = read_manifests(repo, instance, &ids, &mut report, &mut plan).await?;
    plan_checks(
        repo,
        instance,
        scope,
        grace_ms,
        &manifests,
        &mut report,
        &mut plan,
    )
    .await?;
    // The server's ACL users and config file captured with the snapshots: a restore writes them.
    for (key, problem) in crate::server_config::unreadable(repo, instance).await? {
        plan.findings.push(finding(key, problem));
    }
    report.objects = plan.targets.len();
    report.findings = std::mem::take(&mut plan.findings);
    report.notes = std::mem::take(&mut plan.notes);
    check_objects(repo, std::mem::take(&mut plan.targets), &mut report).await?;
    report.findings.sort();
    report.findings.dedup();
    report.notes.sort();
    report.notes.dedup();
    Ok(report)
}

/// The ids of the snapshots `scope` covers, oldest first.
async fn in_scope(repo: &Repo, instance: &str, scope: &Scope) -> anyhow::Result<Vec<String>> {
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
    Ok(ids)
}

/// Reads each manifest, with its key. An unreadable one, or one naming another instance or id,
/// is a finding; the readable ones are listed in the report.
async fn read_manifests(
    repo: &Repo,
    instance: &str,
    ids: &[String],
    report: &mut Report,
    plan: &mut Plan,
) -> anyhow::Result<Vec<(String, SnapshotManifest)>> {
    let mut manifests = Vec::new();
    for id in ids {
        let key = keys::snapshot(instance, id);
        match repo.snapshot(instance, id).await {
            Ok(m) => {
                if m.instance != instance || &m.id != id {
                    plan.findings.push(finding(
                        &key,
                        format!("names instance {:?} and id {:?}", m.instance, m.id),
                    ));
                }
                report.snapshots.push(id.clone());
                manifests.push((key, m));
            }
            Err(e) => plan.findings.push(as_finding(&key, e)?),
        }
    }
    Ok(manifests)
}

/// Lists the chains `scope` covers (every chain folder, or those the manifests name) and plans
/// what to check in them: every chain and the manifests' cuts, and for `All` each chain's run of
/// segments, for `Latest` what lies after each cut.
async fn plan_checks(
    repo: &Repo,
    instance: &str,
    scope: &Scope,
    grace_ms: i64,
    manifests: &[(String, SnapshotManifest)],
    report: &mut Report,
    plan: &mut Plan,
) -> anyhow::Result<()> {
    let only: Vec<_> = manifests.iter().map(|(_, m)| m.clone()).collect();
    let chains: Chains = match scope {
        Scope::All => inventory::list_all(repo, instance, &mut plan.findings).await?,
        Scope::One(_) | Scope::Latest => {
            inventory::list_named(repo, instance, &only, &mut plan.findings).await?
        }
    };
    report.chains = chains.len();
    if *scope == Scope::All {
        for chain in chains.values() {
            plan.add_chain(chain);
        }
    }
    for (key, m) in manifests {
        plan.add_manifest(m, key, &chains);
    }
    let now = crate::context::now_ms();
    match scope {
        Scope::All => {
            for chain in chains.values() {
                plan.chain_run(chain, grace_ms, now);
            }
        }
        Scope::Latest => {
            for (_, m) in manifests {
                for cut in &m.shards {
                    if let Some(chain) = chains.get(&(ShardId(cut.shard), cut.chain.clone())) {
                        plan.after_cut(chain, cut, grace_ms, now);
                    }
                }
            }
        }
        Scope::One(_) => {}
    }
    Ok(())
}

/// Downloads and checks every planned object, a few at a time, adding what each found to the
/// report.
async fn check_objects(
    repo: &Repo,
    targets: BTreeMap<String, Target>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let scratch = StagingDir::temp()?;
    let results = futures::stream::iter(targets.into_iter().enumerate())
        .map(|(n, (key, target))| {
            let path = scratch.path().join(format!("object-{n}"));
            let repo = repo.clone();
            // A task each: downloads decode on every runtime thread.
            tokio::spawn(async move { check_object(&repo, &key, &target, &path).await })
        })
        .buffer_unordered(CONCURRENCY);
    futures::pin_mut!(results);
    while let Some(r) = results.next().await {
        let checked = r.context("check task")??;
        report.findings.extend(checked.findings);
        report.bytes += checked.bytes;
        report.base_keys += checked.base_keys;
        report.commands += checked.commands;
    }
    Ok(())
}
