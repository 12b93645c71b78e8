//! `aofvault restore --cluster NAME`: the whole cluster's dataset at one moment, into any
//! target — a cluster of any shape, one plain server, or one directory per group.
//!
//! Every group (shard) recorded under NAME ([`super::doc`]) is planned at the same selection
//! (`--at T`, or each group's latest); the groups are replayed together in the phases
//! [`super::history`] derives from the recorded slot claims, so that a slot that moved during
//! the backup gets its keys from the node that held them at T. The commands are routed by the
//! *target's* slot map (`restore::live::route`), so the target's shape does not matter.
//!
//! The cut is each group's own: with `aof-timestamp-enabled yes` every group's stream is cut at
//! the same `#TS` second, else at what each agent had seen by T; `--dry-run` says which, and
//! docs/CLUSTERS.md gives the bound.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use aofvault_config::Config;
use aofvault_formats::json::rfc3339_ms;

use super::doc::{self, TopologyDoc};
use super::history::SlotOwners;
use crate::cli::RestoreArgs;
use crate::exit::{self, Failure};
use crate::repo::plan::{self, Plan, Selection};
use crate::repo::Repo;
use crate::restore::live::{self, cluster::Part};
use crate::restore::retry::Retry;
use crate::restore::to_dir;
use crate::restore::translate::Kind;

/// Latest restores use every claim ever recorded.
const LATEST_MS: i64 = i64::MAX / 4;

/// Every group's plan at one selection, and the phases to replay them in.
pub struct ClusterPlan {
    pub cluster: String,
    pub at_ms: i64,
    /// (group, its plan), ordered by group.
    pub plans: Vec<(String, Plan)>,
    /// Per phase: (index into `plans`, slots kept).
    pub phases: Vec<Vec<Part>>,
    pub moved_slots: usize,
    pub slack_ms: i64,
    /// Open migrations at T: (slot, from node, to node).
    pub open_migrations: Vec<(u16, String, String)>,
    /// Per group, the slot ranges its primary served at T (its latest document by then).
    pub slots_at: BTreeMap<String, Vec<(u16, u16)>>,
}

/// Reads the topology of `name` and plans every group at `sel`.
pub async fn plan_cluster(repo: &Repo, name: &str, sel: &Selection) -> anyhow::Result<ClusterPlan> {
    let docs = doc::load(repo, name).await?;
    if docs.is_empty() {
        return Err(anyhow::anyhow!(
            "repository {} holds no topology of cluster {name} (its agents run with --cluster {name})",
            repo.url()
        )
        .context(Failure::RepoEmpty));
    }
    let owners = SlotOwners::from_docs(&docs);
    let at_ms = match sel {
        Selection::At { ms, .. } => *ms,
        Selection::Latest => LATEST_MS,
        Selection::Snapshot { .. } => {
            return Err(anyhow::anyhow!(
                "--snapshot names one instance's snapshot: a cluster is restored --at a time or to its latest state"
            )
            .context(Failure::Usage))
        }
    };
    let phases_by_group = owners.phases(at_ms);
    let mut plans = Vec::new();
    let mut index = BTreeMap::new();
    for (group, info) in &owners.groups {
        let claims = phases_by_group.iter().any(|p| p.contains_key(group));
        if !claims {
            continue;
        }
        let p = plan::plan(repo, &info.instance, sel.clone())
            .await
            .with_context(|| format!("group {group} (instance {})", info.instance))?;
        index.insert(group.clone(), plans.len());
        plans.push((group.clone(), p));
    }
    let phases = phases_by_group
        .into_iter()
        .map(|phase| {
            phase
                .into_iter()
                .filter_map(|(g, slots)| Some((*index.get(&g)?, Some(Arc::new(slots)))))
                .collect()
        })
        .collect();
    Ok(ClusterPlan {
        cluster: name.to_string(),
        at_ms,
        plans,
        phases,
        moved_slots: owners.moved_slots(at_ms),
        slack_ms: owners.slack_ms,
        open_migrations: open_migrations(&docs, at_ms),
        slots_at: slots_at(&docs, at_ms),
    })
}

/// Per group, the slots its primary served in the latest document at or before `at_ms`.
fn slots_at(docs: &[TopologyDoc], at_ms: i64) -> BTreeMap<String, Vec<(u16, u16)>> {
    let mut latest: BTreeMap<&str, &TopologyDoc> = BTreeMap::new();
    for d in docs.iter().filter(|d| d.seen_ms <= at_ms) {
        latest.insert(d.node.as_str(), d);
    }
    let mut out: BTreeMap<String, (i64, Vec<(u16, u16)>)> = BTreeMap::new();
    for d in latest.values() {
        let Some(me) = d.view.me().filter(|m| m.role == super::nodes::Role::Master) else {
            continue;
        };
        let entry = out.entry(d.group.clone()).or_insert((i64::MIN, Vec::new()));
        if d.seen_ms >= entry.0 {
            *entry = (d.seen_ms, me.slots.clone());
        }
    }
    out.into_iter().map(|(g, (_, slots))| (g, slots)).collect()
}

/// The migrations the latest document of each node at or before `at_ms` shows open.
fn open_migrations(docs: &[TopologyDoc], at_ms: i64) -> Vec<(u16, String, String)> {
    let mut latest: BTreeMap<&str, &TopologyDoc> = BTreeMap::new();
    for d in docs.iter().filter(|d| d.seen_ms <= at_ms) {
        latest.insert(d.node.as_str(), d);
    }
    let mut open = Vec::new();
    for d in latest.values() {
        if let Some(me) = d.view.me() {
            for (slot, to) in &me.migrating {
                open.push((*slot, me.id.clone(), to.clone()));
            }
        }
    }
    open.sort();
    open
}

pub async fn run(cfg: &Config, name: &str, args: &RestoreArgs) -> anyhow::Result<u8> {
    let retry = Retry {
        deadline: args.retry_deadline.unwrap_or(cfg.restore.retry_deadline),
    };
    let sel = crate::restore::selection(args.snapshot.as_deref(), args.at.as_deref())?;
    let (repo, cp) = retry
        .reads("reading the repository to plan the cluster restore", || {
            let sel = sel.clone();
            async move {
                let repo = crate::context::open_for_reading(cfg).await?;
                let cp = plan_cluster(&repo, name, &sel).await?;
                anyhow::Ok((repo, cp))
            }
        })
        .await?;
    let mut out = std::io::stdout().lock();
    if args.dry_run {
        describe(&cp, args.json, &mut out)?;
        return Ok(exit::OK);
    }
    if let Some(dir) = &args.to_dir {
        return to_dirs(&repo, &cp, dir, args, &retry, &mut out).await;
    }
    let Some(url) = &args.to else {
        return Err(anyhow::anyhow!("give --to-dir DIR or --to URL").context(Failure::Usage));
    };
    let plans: Vec<&Plan> = cp.plans.iter().map(|(_, p)| p).collect();
    match live::cluster::replay_into(
        &repo,
        &plans,
        cp.phases.clone(),
        url,
        args.force,
        !args.exact_replay,
        &retry,
    )
    .await?
    {
        live::Outcome::NotEmpty(keys) => {
            eprintln!(
                "aofvault: {} is not empty ({} keys): restore refused; --force writes into it anyway",
                live::url_text(url),
                keys.iter().map(|(_, n)| n).sum::<u64>()
            );
            Ok(exit::TARGET_NOT_EMPTY)
        }
        live::Outcome::Done(report) => {
            let keys: u64 = report.keyspace.iter().map(|(_, n)| n).sum();
            let doc = serde_json::json!({
                "cluster": cp.cluster, "groups": cp.plans.iter().map(|(g, p)| serde_json::json!({
                    "group": g, "instance": p.instance, "snapshot": p.snapshot,
                    "covers_until": rfc3339_ms(p.covers_until_ms())})).collect::<Vec<_>>(),
                "phases": cp.phases.len(), "moved_slots": cp.moved_slots,
                "target": live::url_text(url), "report": report,
            });
            if args.json {
                serde_json::to_writer_pretty(&mut out, &doc)?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "replayed cluster {} ({} groups, {} phases, {} moved slots) into {}: {} commands in {:.1}s, {} error replies; keys now: {keys}",
                    cp.cluster, cp.plans.len(), cp.phases.len(), cp.moved_slots,
                    live::url_text(url), report.commands, report.seconds, report.errors
                )?;
                if report.thinned > 0 {
                    writeln!(out, "{}", crate::restore::thinned_line(report.thinned))?;
                }
            }
            if let Some(reason) = report.lossy_reason {
                eprintln!(
                    "aofvault: warning: {} command(s) left out: {reason}",
                    report.lossy
                );
            }
            if report.errors > 0 {
                for e in &report.first_errors {
                    eprintln!("  {e}");
                }
                return Ok(exit::ERROR);
            }
            Ok(exit::OK)
        }
    }
}

/// `--dry-run`: the groups, their plans, the phases and the consistency of the cut.
fn describe(cp: &ClusterPlan, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let timestamps = "each group's stream is cut at the last `#TS:` second not after T where the AOF has annotations (aof-timestamp-enabled), else at what its agent had seen by T";
    if json {
        let doc = serde_json::json!({
            "cluster": cp.cluster,
            "at": (cp.at_ms != LATEST_MS).then(|| rfc3339_ms(cp.at_ms)),
            "groups": cp.plans.iter().map(|(g, p)| serde_json::json!({"group": g, "plan": p})).collect::<Vec<_>>(),
            "phases": cp.phases.iter().map(|ph| ph.iter().map(|(i, s)| serde_json::json!({
                "group": cp.plans[*i].0, "slots": s.as_ref().map_or(16384, |s| s.len())})).collect::<Vec<_>>()).collect::<Vec<_>>(),
            "moved_slots": cp.moved_slots, "open_migrations": cp.open_migrations,
            "cut": timestamps, "slack_ms": cp.slack_ms,
        });
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "cluster {}: {} groups", cp.cluster, cp.plans.len())?;
    for (g, p) in &cp.plans {
        writeln!(
            out,
            "  group {g}: instance {}, snapshot {}, up to {}",
            p.instance,
            p.snapshot,
            rfc3339_ms(p.covers_until_ms())
        )?;
    }
    writeln!(
        out,
        "  {} replay phase(s); {} slot(s) moved during the history; {} migration(s) open at T",
        cp.phases.len(),
        cp.moved_slots,
        cp.open_migrations.len()
    )?;
    writeln!(
        out,
        "  one moment: {timestamps}; a slot move is recorded at most {} ms late (docs/CLUSTERS.md)",
        cp.slack_ms / 2
    )?;
    Ok(())
}

/// `--to-dir`: one directory per group (its node's files at T) and `cluster-slots.json` (which
/// slots each group served at T, for the nodes that load them), refused when a migration was
/// open at T — then no node's files alone hold its slots.
async fn to_dirs(
    repo: &Repo,
    cp: &ClusterPlan,
    dir: &Path,
    args: &RestoreArgs,
    retry: &Retry,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    if let Some((slot, from, to)) = cp.open_migrations.first() {
        eprintln!(
            "aofvault: at T, {} slot(s) were moving between nodes (slot {slot} from {from} to {to}): one directory per node would not hold them; restore --to a server or cluster instead",
            cp.open_migrations.len()
        );
        return Ok(exit::USAGE);
    }
    for (group, plan) in &cp.plans {
        let sub = dir.join(group);
        std::fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
        if let to_dir::Prepared::NotEmpty(_) = to_dir::prepare(&sub)? {
            if !args.force {
                eprintln!(
                    "aofvault: {} is not empty: restore refused; --force moves its contents aside",
                    sub.display()
                );
                return Ok(exit::TARGET_NOT_EMPTY);
            }
        }
        let target = if plan.layout.is_kevy() {
            Kind::Kevy
        } else {
            Kind::Redis
        };
        let opts = to_dir::DirOptions {
            target,
            shards: plan.layout.shards(),
            force: args.force,
            server: None,
        };
        let written = to_dir::restore_with(repo, plan, &sub, opts, retry).await?;
        writeln!(
            out,
            "group {group} (instance {}): {} file(s) in {}",
            plan.instance,
            written.files.len(),
            sub.display()
        )?;
    }
    let slots = serde_json::json!({
        "cluster": cp.cluster, "at": (cp.at_ms != LATEST_MS).then(|| rfc3339_ms(cp.at_ms)),
        "groups": cp.plans.iter().map(|(g, p)| (g.clone(), serde_json::json!({
            "instance": p.instance, "dir": g, "slots": cp.slots_at.get(g).cloned().unwrap_or_default(),
        }))).collect::<serde_json::Map<_, _>>(),
    });
    let file = dir.join("cluster-slots.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&slots)?)
        .with_context(|| format!("writing {}", file.display()))?;
    Ok(exit::OK)
}
