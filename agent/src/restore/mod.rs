//! `aofvault restore`: from a repository back to a server — as files it loads at start
//! (`--to-dir`) or replayed into a running one (`--to`), to the latest second, a snapshot, or a
//! point in time.
//!
//! The parts, in the order a restore runs through them — three folders by what they produce,
//! and the shared steps beside them:
//!
//! - [`crate::repo::plan`] picks one snapshot's chains and how far along each to go (never
//!   mixing chains), and [`dry_run`] prints it for `--dry-run`;
//! - [`fetch`] downloads every object into a staging directory, each checked (CRC-32C, size)
//!   before anything reaches the target, [`retry`] trying again what the store broke off;
//! - [`feed`] turns staged bases and streams into commands for the target, reading through
//!   [`stream`] ([`search`] tells whether a stream needs the careful replay at all);
//! - **[`translate`]**: what changes between kevy and Redis — the command table, where each
//!   command's keys are (`translate::key_positions`), which commands kevy serves
//!   (`translate::kevy_commands`), and renames written under their final names
//!   (`translate::renames`: kevy cannot replay a `RENAME`);
//! - **[`to_dir`]**: files the server loads at start — the staged files renamed into the
//!   server's layout, or converted (`to_dir::files`), the "looks complete" marker last;
//! - **[`live`]**: a running server — pipelined, shards in parallel (`live::send`), into a
//!   target found empty (`live::counts`);
//! - [`progress`] shows it all;
//! - [`history`]: the incident tools' service — every write to matching keys (`aofvault log`),
//!   and their state at a moment, replayed in process (`aofvault diff`, `restore --keys`);
//! - [`selective`]: `--keys`, only the matching keys' state at a moment ([`history`]).

pub mod dry_run;
pub mod feed;
pub mod fetch;
pub mod history;
pub mod live;
pub mod progress;
pub mod retry;
pub mod search;
pub mod selective;
pub mod stream;
pub mod thin;
pub mod to_dir;
pub mod translate;

use anyhow::Context;
use aofvault_config::Config;
use aofvault_formats::json::rfc3339_ms;

use crate::cli::{RestoreArgs, TargetFormat};
use crate::exit::{self, Failure};
use crate::repo::plan::{self, Plan, Selection};
use crate::repo::Repo;
use translate::target::TargetServer;
use translate::Kind;

/// The selection the arguments ask for.
pub fn selection(snapshot: Option<&str>, at: Option<&str>) -> anyhow::Result<Selection> {
    Ok(match (snapshot, at) {
        (Some(id), _) => Selection::Snapshot { id: id.to_string() },
        (None, Some(t)) => plan::parse_time(t).context(Failure::Usage)?,
        (None, None) => Selection::Latest,
    })
}

pub async fn run(cfg: &Config, args: &RestoreArgs) -> anyhow::Result<u8> {
    restore(cfg, args).await
}

async fn restore(cfg: &Config, args: &RestoreArgs) -> anyhow::Result<u8> {
    if !args.keys.is_empty() {
        return selective::run(cfg, args, &mut std::io::stdout().lock()).await;
    }
    let retry = retry::Retry {
        deadline: args.retry_deadline.unwrap_or(cfg.restore.retry_deadline),
    };
    let sel = &selection(args.snapshot.as_deref(), args.at.as_deref())?;
    let (repo, plan) = plan_with_retries(cfg, sel, &retry).await?;
    let mut stdout = std::io::stdout().lock();
    if args.dry_run {
        print_plan(&plan, args.json, &mut stdout)?;
        return Ok(exit::OK);
    }
    if let Some(dir) = &args.to_dir {
        return restore_to_dir(&repo, &plan, dir, args, &retry, &mut stdout).await;
    }
    let Some(url) = &args.to else {
        return Err(anyhow::anyhow!("give --to-dir DIR or --to URL").context(Failure::Usage));
    };
    match live::replay_with(&repo, &plan, url, args.force, !args.exact_replay, &retry).await? {
        live::Outcome::NotEmpty(keyspace) => {
            let shown: Vec<String> = keyspace
                .iter()
                .map(|(db, n)| format!("{db}: {n} keys"))
                .collect();
            eprintln!(
                "aofvault: {} is not empty ({}): restore refused; --force writes into it anyway",
                live::url_text(url),
                shown.join(", ")
            );
            Ok(exit::TARGET_NOT_EMPTY)
        }
        live::Outcome::Done(report) => {
            let code = report_replay(&plan, url, args.json, &report, &mut stdout)?;
            if args.with_acl {
                apply_acl(&repo, &plan, url).await?;
            }
            Ok(code)
        }
    }
}

/// `--with-acl`: the ACL users captured with the snapshot, created on the live target.
async fn apply_acl(repo: &Repo, plan: &Plan, url: &str) -> anyhow::Result<()> {
    match crate::server_config::for_snapshot(repo, &plan.instance, plan.snapshot_created_ms).await?
    {
        Some(doc) if !doc.acl.is_empty() => {
            let n = crate::server_config::apply::apply_acl(&doc, url).await?;
            eprintln!(
                "aofvault: created {n} ACL user(s) on {}",
                live::url_text(url)
            );
        }
        _ => eprintln!(
            "aofvault: --with-acl: no ACL users were captured with snapshot {}",
            plan.snapshot
        ),
    }
    Ok(())
}

/// Opens the repository, picks the instance and plans the restore. Planning only reads: when
/// the store fails on the way, it is planned again from the start.
pub(crate) async fn plan_with_retries(
    cfg: &Config,
    sel: &Selection,
    retry: &retry::Retry,
) -> anyhow::Result<(Repo, Plan)> {
    retry
        .reads(
            "reading the repository to plan the restore",
            move || async move {
                let repo = crate::context::open_for_reading(cfg).await?;
                let instance = crate::context::pick_instance(cfg, &repo).await?;
                let plan = plan::plan(&repo, &instance, sel.clone()).await?;
                anyhow::Ok((repo, plan))
            },
        )
        .await
}

/// `--dry-run`: the plan as JSON, or described in words.
fn print_plan(plan: &Plan, json: bool, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    if json {
        let doc = serde_json::json!({
            "plan": plan, "objects": plan.objects(), "total_bytes": plan.total_bytes(),
            "covers_until_ms": plan.covers_until_ms(), "covers_until": rfc3339_ms(plan.covers_until_ms()),
        });
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        writeln!(out)?;
    } else {
        dry_run::describe(plan, out)?;
    }
    Ok(())
}

/// `--to-dir`: files the server loads at start, in the source's format unless `--format` says
/// otherwise; a non-empty directory is refused without `--force`.
async fn restore_to_dir(
    repo: &Repo,
    plan: &Plan,
    dir: &std::path::Path,
    args: &RestoreArgs,
    retry: &retry::Retry,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<u8> {
    let source = if plan.layout.is_kevy() {
        Kind::Kevy
    } else {
        Kind::Redis
    };
    let server = match &args.for_server {
        Some(spec) => Some(TargetServer::parse(spec).context(Failure::Usage)?),
        None => None,
    };
    let target = match (args.format, server) {
        (Some(f), Some(s)) if (f == TargetFormat::Kevy) != (s.kind() == Kind::Kevy) => {
            return Err(anyhow::anyhow!(
                "--format {} contradicts --for {s}",
                if f == TargetFormat::Kevy {
                    "kevy"
                } else {
                    "redis"
                }
            )
            .context(Failure::Usage));
        }
        (_, Some(s)) => s.kind(),
        (Some(TargetFormat::Kevy), None) => Kind::Kevy,
        (Some(TargetFormat::Redis), None) => Kind::Redis,
        (None, None) => source,
    };
    let shards = args.shards.unwrap_or(if source == Kind::Kevy {
        plan.layout.shards()
    } else {
        1
    });
    if let to_dir::Prepared::NotEmpty(names) = to_dir::prepare(dir)? {
        if !args.force {
            let shown: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
            eprintln!(
                "aofvault: {} is not empty ({}{}): restore refused; --force moves its contents aside",
                dir.display(),
                shown.join(", "),
                if names.len() > 5 { ", …" } else { "" }
            );
            return Ok(exit::TARGET_NOT_EMPTY);
        }
    }
    let opts = to_dir::DirOptions {
        target,
        shards,
        force: args.force,
        server,
    };
    let mut written = to_dir::restore_with(repo, plan, dir, opts, retry).await?;
    // The server's ACL users and config file, captured with the snapshot (when it was). The
    // data is restored by now: a capture that cannot be read is said, not fatal.
    let captured =
        crate::server_config::for_snapshot(repo, &plan.instance, plan.snapshot_created_ms).await;
    let mut server_config_error = None;
    match captured {
        Ok(Some(doc)) => {
            for name in crate::server_config::apply::write_to_dir(&doc, dir, !args.no_acl)? {
                written.files.push(dir.join(name));
            }
        }
        Ok(None) => {}
        Err(e) => {
            eprintln!("aofvault: WARNING: the data is restored, but not the ACL users and config file captured with it: {e:#} (`aofvault verify` names the object)");
            server_config_error = Some(format!("{e:#}"));
        }
    }
    let summary = serde_json::json!({
        "instance": plan.instance, "snapshot": plan.snapshot, "dir": dir, "format": target,
        "for": server, "converted": written.converted, "server_config_error": server_config_error,
        "field_ttls_lost": written.field_ttls_lost, "lost_field_ttls": written.lost_field_ttls,
        "files": written.files, "bytes": plan.total_bytes(), "covers_until": rfc3339_ms(plan.covers_until_ms()),
    });
    print_result(out, args.json, &summary, || {
        format!(
            "restored instance {} (snapshot {}, up to {}) into {}: {} file(s) in {} layout{}{}",
            plan.instance,
            plan.snapshot,
            rfc3339_ms(plan.covers_until_ms()),
            dir.display(),
            written.files.len(),
            target,
            match (&written.converted, server) {
                (Some(why), Some(s)) => format!(", converted for {s} ({why})"),
                _ => String::new(),
            },
            if written.field_ttls_lost > 0 {
                format!(", {} hash field TTLs lost", written.field_ttls_lost)
            } else {
                String::new()
            }
        )
    })?;
    Ok(exit::OK)
}

/// What a finished replay into a running server says: a warning for lossy translations, the
/// summary, and the first error replies (which make the exit code an error).
fn report_replay(
    plan: &Plan,
    url: &str,
    json: bool,
    report: &live::Report,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<u8> {
    if let Some(reason) = &report.lossy_reason {
        eprintln!(
            "aofvault: warning: {} command(s) could not be fully translated: {reason}",
            report.lossy
        );
    }
    translate::field_ttl::warn(&report.lost_field_ttls, report.field_ttls_lost);
    let summary = serde_json::json!({
        "instance": plan.instance, "snapshot": plan.snapshot, "target": live::url_text(url),
        "covers_until": rfc3339_ms(plan.covers_until_ms()), "report": report,
    });
    print_result(out, json, &summary, || {
        let keys: Vec<String> = report
            .keyspace
            .iter()
            .map(|(db, n)| format!("{db}={n}"))
            .collect();
        format!(
            "replayed instance {} (snapshot {}, up to {}) into {} ({}): {} commands in {:.1}s, {} error replies, {} hash field TTLs lost; keys now: {}",
            plan.instance,
            plan.snapshot,
            rfc3339_ms(plan.covers_until_ms()),
            live::url_text(url),
            report
                .target_server
                .map_or_else(|| "?".into(), |s| s.to_string()),
            report.commands,
            report.seconds,
            report.errors,
            report.field_ttls_lost,
            if keys.is_empty() { "none".into() } else { keys.join(" ") }
        )
    })?;
    if !json && report.thinned > 0 {
        writeln!(out, "{}", thinned_line(report.thinned))?;
    }
    if report.errors > 0 {
        eprintln!(
            "aofvault: the target answered {} command(s) with an error; the first ones:",
            report.errors
        );
        for e in &report.first_errors {
            eprintln!("  {e}");
        }
        return Ok(exit::ERROR);
    }
    Ok(exit::OK)
}

/// The report's line about the commands [`thin`] left out.
pub fn thinned_line(n: u64) -> String {
    format!("left out {n} command(s) of the log whose key a later whole overwrite (SET, DEL, RESTORE REPLACE) replaces unread; --exact-replay sends them")
}

fn print_result(
    out: &mut dyn std::io::Write,
    json: bool,
    doc: &serde_json::Value,
    text: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    if json {
        serde_json::to_writer_pretty(&mut *out, doc)?;
        writeln!(out)?;
    } else {
        writeln!(out, "{}", text())?;
    }
    Ok(())
}
