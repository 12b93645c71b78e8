//! `aofvault verify`: are the backups whole and restorable?
//!
//! By default it checks the whole instance: every snapshot manifest, and every chain the
//! repository lists — not only those readable manifests name — with every base and segment in
//! them; `--snapshot ID` narrows it to one manifest's objects. Documents (the format marker,
//! manifests, chain heads) must parse, validate and agree with each other and with the objects;
//! every object must be present with its recorded size and CRC-32C (each downloaded once) and
//! decode completely; a chain's segments must leave no hole ([`check`]). `--deep` also restores
//! the chosen snapshot into a scratch server and reports key counts ([`deep`]).
//!
//! Findings are collected, never fatal one by one: a damaged document is a finding like a
//! damaged object, and what it would have described is still found by listing. All are
//! printed, each naming its object, and the exit code is decided at the end (3 when there is
//! any). Only an unreachable repository (4), an empty one (5) or one of a newer format stop the
//! run. The instance's `lease.json` is not verified: it is the running writer's lock, rewritten
//! on every renewal and never read by a restore (an unreadable lease is taken over as stale).
//! The daemon's scheduled drill ([`scheduled`]) checks what a restore of the latest state needs,
//! and logs findings at error level.

pub mod check;
pub mod deep;
pub mod finding;
mod inventory;
mod object;
mod plan;
#[cfg(test)]
mod tests;

use std::io::Write;

use aofvault_config::Config;
use serde_json::json;

use crate::cli::VerifyArgs;
use crate::exit::{self, Failure};
use crate::repo::plan::Selection;
use crate::repo::{keys, Repo, RepoError};
use check::{Finding, Scope};

/// The scheduled drill runs beside a live agent: a gap whose next segment is younger than this
/// may be an upload still in flight.
const SCHEDULED_GAP_GRACE_MS: i64 = 60_000;

pub async fn run(cfg: &Config, args: &VerifyArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    if args.against.is_some() {
        return crate::drift::run(cfg, args, out).await;
    }
    verify(cfg, args, out).await
}

async fn verify(cfg: &Config, args: &VerifyArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    let repo = crate::context::open_repo(cfg)?;
    let marker = check_marker(&repo).await?;
    let instance = crate::context::pick_instance(cfg, &repo).await?;
    if repo.snapshot_ids(&instance).await?.is_empty() {
        return Err(
            anyhow::anyhow!("instance {instance} has no snapshot yet: nothing to verify")
                .context(Failure::RepoEmpty),
        );
    }
    let scope = match &args.snapshot {
        Some(id) => Scope::One(id.clone()),
        None => Scope::All,
    };
    let mut report = check::check(&repo, &instance, &scope, 0).await?;
    report.findings.splice(0..0, marker);
    let deep = if args.deep {
        let sel = match &args.snapshot {
            Some(id) => Selection::Snapshot { id: id.clone() },
            None => Selection::Latest,
        };
        if report.findings.is_empty() {
            let d = deep::deep(&repo, &instance, sel).await?;
            if d.error_replies > 0 {
                report.findings.push(Finding {
                    object: format!("snapshot {}", d.snapshot.as_deref().unwrap_or("?")),
                    problem: format!(
                        "replaying it into a scratch server got {} error replies: {}",
                        d.error_replies,
                        d.first_errors.join("; ")
                    ),
                });
            }
            Some(d)
        } else {
            Some(deep::DeepReport {
                note: "not run: the objects have problems (see the findings)".into(),
                ..Default::default()
            })
        }
    } else {
        None
    };
    if args.json {
        let doc = json!({
            "repository": repo.url(), "instance": report.instance, "snapshots": report.snapshots,
            "chains": report.chains, "objects": report.objects, "bytes": report.bytes, "base_keys": report.base_keys,
            "commands": report.commands, "findings": report.findings, "notes": report.notes, "deep": deep, "ok": report.findings.is_empty(),
        });
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        writeln!(out)?;
    } else {
        for n in &report.notes {
            writeln!(out, "note {}: {}", n.object, n.problem)?;
        }
        for f in &report.findings {
            writeln!(out, "PROBLEM {}: {}", f.object, f.problem)?;
        }
        writeln!(
            out,
            "verified instance {}: {} snapshot(s), {} chain(s), {} object(s), {} bytes ({} base keys, {} commands decoded): {}",
            report.instance,
            report.snapshots.len(),
            report.chains,
            report.objects,
            report.bytes,
            report.base_keys,
            report.commands,
            if report.findings.is_empty() { "no problems".to_string() } else { format!("{} PROBLEM(S)", report.findings.len()) }
        )?;
        if let Some(d) = &deep {
            writeln!(out, "deep: {}", d.note)?;
            if d.ran {
                let dbs: Vec<String> = d
                    .keyspace
                    .iter()
                    .map(|(db, n)| format!("{db}={n}"))
                    .collect();
                let types: Vec<String> = d.types.iter().map(|(t, n)| format!("{t}={n}")).collect();
                writeln!(
                    out,
                    "deep: snapshot {} replayed ({} commands, {} error replies); keys per db: {}; per type: {}",
                    d.snapshot.as_deref().unwrap_or("?"),
                    d.commands,
                    d.error_replies,
                    if dbs.is_empty() { "none".into() } else { dbs.join(" ") },
                    if types.is_empty() { "none".into() } else { types.join(" ") }
                )?;
            }
        }
    }
    Ok(if report.findings.is_empty() {
        exit::OK
    } else {
        exit::PROBLEMS
    })
}

/// The format marker, read as `verify` needs it: damaged or missing beside data is a finding
/// (the run goes on, listing `instances/`); missing with no data is an empty repository (exit
/// 5); a marker of a newer format is an error, since this aofvault cannot judge that repository.
async fn check_marker(repo: &Repo) -> anyhow::Result<Vec<Finding>> {
    let problem = match repo.check_format().await {
        Ok(()) => return Ok(Vec::new()),
        Err(RepoError::Empty { .. }) if !repo.instances().await?.is_empty() => {
            "missing, though the repository holds instances".to_string()
        }
        Err(RepoError::Corrupt { reason, .. }) => format!("does not parse: {reason}"),
        Err(RepoError::Other { reason, .. }) => reason,
        Err(e) => return Err(e.into()),
    };
    Ok(vec![Finding {
        object: keys::FORMAT_MARKER.to_string(),
        problem,
    }])
}

/// The `[schedule] verify` drill: checks everything a restore of the latest state needs; logs
/// each finding at error level and fails if there is any.
pub async fn scheduled(repo: &Repo, instance: &str) -> anyhow::Result<()> {
    if repo.snapshot_ids(instance).await?.is_empty() {
        tracing::warn!(instance, "verify: no snapshot yet, nothing to check");
        return Ok(());
    }
    let report = check::check(repo, instance, &Scope::Latest, SCHEDULED_GAP_GRACE_MS).await?;
    for f in &report.findings {
        tracing::error!(object = %f.object, problem = %f.problem, "verify: problem in the repository");
    }
    if !report.findings.is_empty() {
        anyhow::bail!(
            "verify found {} problem(s) in the latest snapshot of {instance} (run `aofvault verify` for the full list)",
            report.findings.len()
        );
    }
    tracing::info!(instance, snapshot = ?report.snapshots.last(), objects = report.objects, bytes = report.bytes, "verify: the latest state is restorable");
    Ok(())
}
