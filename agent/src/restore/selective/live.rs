//! `restore --keys … --to URL`: the matching keys written into a running server, nothing else
//! touched. Before anything is written the target is asked which of the keys exist (`EXISTS`)
//! — any does and `--replace` was not given: refused (exit 7), naming them — and which keys
//! matching the patterns it holds that did not exist at T (`SCAN MATCH`): they are left alone
//! and listed. With `--replace` an existing key is deleted right before its commands, in the
//! same pipeline.

use std::collections::BTreeSet;
use std::io::Write;

use anyhow::Context;
use aofvault_formats::json::{bytes_json, rfc3339_ms};
use redis::aio::MultiplexedConnection;

use super::{key_commands, source_kind, split, warn_unknown};
use crate::cli::RestoreArgs;
use crate::exit;
use crate::restore::history::model::KeyId;
use crate::restore::history::show::arg_text;
use crate::restore::history::state::Keyspace;
use crate::restore::history::Patterns;
use crate::restore::live::{open, url_text};
use crate::restore::translate::Kind;

/// Commands per pipeline.
const BATCH: usize = 1000;
/// Keys named in messages.
const SHOWN: usize = 20;

fn db_of(name: &str) -> Option<u32> {
    name.strip_prefix("db")?.parse().ok()
}

async fn select(conn: &mut MultiplexedConnection, db: u32) -> anyhow::Result<()> {
    redis::cmd("SELECT")
        .arg(db)
        .query_async::<()>(conn)
        .await
        .with_context(|| format!("SELECT {db}"))
}

/// Which of `keys` (sorted by database) exist in the target.
async fn existing(
    conn: &mut MultiplexedConnection,
    keys: &[&KeyId],
    kind: Kind,
) -> anyhow::Result<BTreeSet<KeyId>> {
    let mut found = BTreeSet::new();
    for group in keys.chunk_by(|a, b| a.0 == b.0) {
        let db = group[0].0;
        if kind == Kind::Kevy && db != 0 {
            anyhow::bail!(
                "key {} is in database {db}: kevy serves database 0 only",
                arg_text(&group[0].1, false)
            );
        }
        if kind == Kind::Redis {
            select(conn, db).await?;
        }
        for chunk in group.chunks(BATCH) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.cmd("EXISTS").arg(&id.1);
            }
            let answers: Vec<i64> = pipe.query_async(conn).await.context("EXISTS")?;
            for (id, n) in chunk.iter().zip(answers) {
                if n > 0 {
                    found.insert((*id).clone());
                }
            }
        }
    }
    Ok(found)
}

/// Keys matching the patterns that the target holds in `dbs`.
async fn scan(
    conn: &mut MultiplexedConnection,
    patterns: &[String],
    dbs: &[u32],
    kind: Kind,
) -> anyhow::Result<BTreeSet<KeyId>> {
    let mut out = BTreeSet::new();
    for &db in dbs {
        if kind == Kind::Redis {
            select(conn, db).await?;
        }
        for p in patterns {
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(p)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(conn)
                    .await
                    .context("SCAN")?;
                out.extend(keys.into_iter().map(|k| (db, k)));
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
    }
    Ok(out)
}

fn names(keys: &[&KeyId]) -> String {
    let mut s: Vec<String> = keys
        .iter()
        .take(SHOWN)
        .map(|(db, k)| format!("db {db} {}", arg_text(k, false)))
        .collect();
    if keys.len() > SHOWN {
        s.push(format!("… {} more", keys.len() - SHOWN));
    }
    s.join(", ")
}

pub async fn restore(
    ks: &Keyspace,
    url: &str,
    args: &RestoreArgs,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let target = open(url).await?;
    let client = redis::Client::open(url).context("invalid target URL")?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .with_context(|| format!("cannot connect to {}", url_text(url)))?;
    let home_db = client.get_connection_info().redis_settings().db();
    let (write, unknown) = split(ks);
    warn_unknown(&unknown);
    let ids: Vec<&KeyId> = write.iter().map(|(id, _)| id).collect();
    let exists = existing(&mut conn, &ids, target.kind).await?;
    let mut dbs: BTreeSet<u32> = target
        .keyspace
        .iter()
        .filter_map(|(d, _)| db_of(d))
        .collect();
    if target.kind == Kind::Kevy {
        dbs = BTreeSet::from([0]);
    }
    if let Some(d) = args.db {
        dbs.retain(|x| *x == d);
    }
    let dbs: Vec<u32> = dbs.into_iter().collect();
    let at_t: BTreeSet<&KeyId> = ks.keys.iter().map(|(id, _)| id).collect();
    let extra: Vec<KeyId> = scan(&mut conn, &args.keys, &dbs, target.kind)
        .await?
        .into_iter()
        .filter(|id| !at_t.contains(id))
        .collect();
    let replaced: Vec<&KeyId> = ids
        .iter()
        .copied()
        .filter(|id| exists.contains(*id))
        .collect();
    let extra_refs: Vec<&KeyId> = extra.iter().collect();
    if !replaced.is_empty() && !args.replace && !args.dry_run {
        eprintln!(
            "aofvault: {} already holds {} of the {} key(s) to restore ({}): restore refused; --replace replaces them",
            url_text(url),
            replaced.len(),
            ids.len(),
            names(&replaced)
        );
        return Ok(exit::TARGET_NOT_EMPTY);
    }
    let from = source_kind(ks);
    let mut commands = 0u64;
    if !args.dry_run {
        let mut pipe = redis::pipe();
        let mut queued = 0;
        let mut db = None;
        for (id, slot) in &write {
            if db != Some(id.0) {
                if queued > 0 {
                    pipe.query_async::<()>(&mut conn)
                        .await
                        .context("writing the keys")?;
                    pipe = redis::pipe();
                    queued = 0;
                }
                if target.kind == Kind::Redis {
                    select(&mut conn, id.0).await?;
                }
                db = Some(id.0);
            }
            if exists.contains(id) {
                pipe.cmd("DEL").arg(&id.1).ignore();
                queued += 1;
            }
            for cmd in key_commands(id, slot, from, target.kind)? {
                let mut c = redis::cmd(&String::from_utf8_lossy(&cmd[0]));
                for a in &cmd[1..] {
                    c.arg(a);
                }
                pipe.add_command(c).ignore();
                queued += 1;
                commands += 1;
            }
            if queued >= BATCH {
                pipe.query_async::<()>(&mut conn)
                    .await
                    .context("writing the keys")?;
                pipe = redis::pipe();
                queued = 0;
            }
        }
        if queued > 0 {
            pipe.query_async::<()>(&mut conn)
                .await
                .context("writing the keys")?;
        }
        if target.kind == Kind::Redis {
            select(&mut conn, home_db as u32).await?;
        }
    }
    let key_json = |ids: &[&KeyId]| -> Vec<serde_json::Value> {
        ids.iter()
            .map(|(db, k)| serde_json::json!({"db": db, "key": bytes_json(k)}))
            .collect()
    };
    if args.json {
        let doc = serde_json::json!({
            "instance": ks.plan.instance, "snapshot": ks.plan.snapshot,
            "at": rfc3339_ms(ks.moment_ms), "target": url_text(url), "dry_run": args.dry_run,
            "keys": ids.len(), "replaced": key_json(&replaced), "commands": commands,
            "left_alone": key_json(&extra_refs),
            "unknown": key_json(&unknown.iter().map(|(id, _)| id).collect::<Vec<_>>()),
            "written": if args.dry_run { serde_json::Value::Null } else { ids.len().into() },
        });
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        writeln!(out)?;
    } else {
        let verb = if args.dry_run { "would write" } else { "wrote" };
        writeln!(
            out,
            "{verb} {} key(s) matching {} as they were at {} into {} ({} replaced{})",
            ids.len(),
            Patterns::new(&args.keys).describe(),
            rfc3339_ms(ks.moment_ms),
            url_text(url),
            replaced.len(),
            if args.dry_run {
                ""
            } else {
                ", the rest untouched"
            }
        )?;
        if args.dry_run {
            for (db, k) in &ids {
                let mark = if exists.contains(&(*db, k.clone())) {
                    "replace"
                } else {
                    "create"
                };
                writeln!(out, "  {mark} db {db} {}", arg_text(k, false))?;
            }
        }
        if !extra.is_empty() {
            writeln!(
                out,
                "left alone: {} key(s) in the target that did not exist then: {}",
                extra.len(),
                names(&extra_refs)
            )?;
        }
    }
    Ok(exit::OK)
}
