//! `aofvault diff --from T1 [--to T2|latest] [PATTERN…]`: the matching keys created, changed
//! (type, value, TTL) and deleted between two moments. Each moment's state is built by
//! [`crate::restore::history::state`] from the repository alone. The earlier state is reduced
//! to a digest per key (type, value digest, TTL) before the later one is built, so memory holds
//! the matching keys' values at one moment plus a few dozen bytes per key of the other (the
//! values of both with `--values`).

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Context;
use aofvault_config::Config;
use aofvault_formats::json::{bytes_json, record_json, rfc3339_ms};
use aofvault_formats::model::{Entry, Record};
use serde::Serialize;

use crate::cli::DiffArgs;
use crate::exit::{self, Failure};
use crate::repo::plan::{self, Selection};
use crate::restore::history::model::{KeyId, Slot, State};
use crate::restore::history::show::{arg_text, command_json};
use crate::restore::history::state::{keyspace, Keyspace};
use crate::restore::history::Patterns;
use crate::restore::retry::Retry;

/// What happened to one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Created,
    Changed,
    Deleted,
}

/// Counts per change, per type.
#[derive(Debug, Default, Serialize)]
pub struct Counts {
    pub created: u64,
    pub changed: u64,
    pub deleted: u64,
    pub by_type: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
}

impl Counts {
    fn add(&mut self, change: Change, type_name: &'static str) {
        let name = match change {
            Change::Created => {
                self.created += 1;
                "created"
            }
            Change::Changed => {
                self.changed += 1;
                "changed"
            }
            Change::Deleted => {
                self.deleted += 1;
                "deleted"
            }
        };
        *self
            .by_type
            .entry(type_name)
            .or_default()
            .entry(name)
            .or_default() += 1;
    }
}

pub async fn run(cfg: &Config, args: &DiffArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    let from = plan::parse_time(&args.from).context(Failure::Usage)?;
    let to = match args.to.as_deref() {
        None | Some("latest") => Selection::Latest,
        Some(t) => plan::parse_time(t).context(Failure::Usage)?,
    };
    let retry = Retry {
        deadline: cfg.restore.retry_deadline,
    };
    let patterns = Patterns::new(&args.patterns);
    let repo = crate::context::open_for_reading(cfg).await?;
    let instance = crate::context::pick_instance(cfg, &repo).await?;
    let before = plan::plan(&repo, &instance, from).await?;
    let before = Earlier::of(
        keyspace(&repo, before, &patterns, args.db, &retry).await?,
        args.values,
    );
    let after = plan::plan(&repo, &instance, to).await?;
    let after = keyspace(&repo, after, &patterns, args.db, &retry).await?;
    let counts = compare(&before, &after, args, out)?;
    let summary = serde_json::json!({
        "summary": {
            "instance": instance, "patterns": patterns.describe(),
            "from": rfc3339_ms(before.moment_ms), "to": rfc3339_ms(after.moment_ms),
            "keys_before": before.keys.len(), "keys_after": after.keys.len(),
            "created": counts.created, "changed": counts.changed, "deleted": counts.deleted,
            "by_type": counts.by_type,
        }
    });
    if args.json {
        serde_json::to_writer(&mut *out, &summary)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "{} … {} ({}): {} created, {} changed, {} deleted",
            rfc3339_ms(before.moment_ms),
            rfc3339_ms(after.moment_ms),
            patterns.describe(),
            counts.created,
            counts.changed,
            counts.deleted
        )?;
        for (t, c) in &counts.by_type {
            let parts: Vec<String> = c.iter().map(|(k, n)| format!("{n} {k}")).collect();
            writeln!(out, "  {t}: {}", parts.join(", "))?;
        }
    }
    Ok(exit::OK)
}

/// One key of the earlier state: what a comparison needs, and its slot only for `--values`.
struct Digest {
    type_name: &'static str,
    value: u64,
    expire_at_ms: Option<i64>,
    slot: Option<Slot>,
}

/// The earlier state, reduced to digests.
struct Earlier {
    moment_ms: i64,
    keys: Vec<(KeyId, Digest)>,
}

impl Earlier {
    fn of(ks: Keyspace, keep_values: bool) -> Earlier {
        let keys = ks
            .keys
            .into_iter()
            .map(|(id, slot)| {
                let d = Digest {
                    type_name: slot.type_name(),
                    value: slot.value_digest(),
                    expire_at_ms: slot.expire_at_ms,
                    slot: keep_values.then_some(slot),
                };
                (id, d)
            })
            .collect();
        Earlier {
            moment_ms: ks.moment_ms,
            keys,
        }
    }
}

/// What differs between the two states of one key: `type`, `value`, `ttl`.
fn differences(a: &Digest, b: &Slot) -> Vec<&'static str> {
    let mut what = Vec::new();
    if a.type_name != b.type_name() {
        what.push("type");
    } else if a.value != b.value_digest() {
        what.push("value");
    }
    if a.expire_at_ms != b.expire_at_ms {
        what.push("ttl");
    }
    what
}

/// Walks both sorted key lists together, printing each difference; returns the counts.
fn compare(
    before: &Earlier,
    after: &Keyspace,
    args: &DiffArgs,
    out: &mut dyn Write,
) -> anyhow::Result<Counts> {
    let mut counts = Counts::default();
    let (mut i, mut j) = (0, 0);
    let (a, b) = (&before.keys, &after.keys);
    while i < a.len() || j < b.len() {
        let order = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.0.cmp(&y.0),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        match order {
            std::cmp::Ordering::Less => {
                let (id, d) = &a[i];
                counts.add(Change::Deleted, d.type_name);
                line(out, args, Change::Deleted, id, Some(d), None, &[])?;
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                let (id, s) = &b[j];
                counts.add(Change::Created, s.type_name());
                line(out, args, Change::Created, id, None, Some(s), &[])?;
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                let (id, x) = &a[i];
                let y = &b[j].1;
                let what = differences(x, y);
                if !what.is_empty() {
                    counts.add(Change::Changed, y.type_name());
                    line(out, args, Change::Changed, id, Some(x), Some(y), &what)?;
                }
                i += 1;
                j += 1;
            }
        }
    }
    Ok(counts)
}

/// A slot's value as JSON: the neutral form's, the commands that rebuild it, or null.
fn value_json(id: &KeyId, s: &Slot) -> serde_json::Value {
    match &s.state {
        State::Value(v) => record_json(&Record::Entry(Entry {
            db: id.0,
            key: id.1.clone(),
            value: v.clone(),
            expire_at_ms: s.expire_at_ms,
        })),
        State::Replay { commands, .. } => {
            let cmds: Vec<serde_json::Value> = commands
                .iter()
                .map(|c| command_json(&c.iter().map(Vec::as_slice).collect::<Vec<_>>(), true).0)
                .collect();
            serde_json::json!({ "commands": cmds })
        }
        State::Unknown { reason, .. } => serde_json::json!({ "unknown": reason }),
    }
}

fn line(
    out: &mut dyn Write,
    args: &DiffArgs,
    change: Change,
    id: &KeyId,
    before: Option<&Digest>,
    after: Option<&Slot>,
    what: &[&str],
) -> anyhow::Result<()> {
    let type_name = after.map_or_else(|| before.map_or("none", |d| d.type_name), Slot::type_name);
    let before = before.and_then(|d| d.slot.as_ref());
    if args.json {
        let mut doc = serde_json::json!({
            "change": change, "db": id.0, "key": bytes_json(&id.1), "type": type_name,
        });
        if !what.is_empty() {
            doc["what"] = serde_json::json!(what);
        }
        if args.values {
            doc["before"] = before.map_or(serde_json::Value::Null, |s| value_json(id, s));
            doc["after"] = after.map_or(serde_json::Value::Null, |s| value_json(id, s));
        }
        serde_json::to_writer(&mut *out, &doc)?;
        return Ok(writeln!(out)?);
    }
    let mark = match change {
        Change::Created => '+',
        Change::Changed => '~',
        Change::Deleted => '-',
    };
    let mut text = format!("{mark} db {} {} ({type_name}", id.0, arg_text(&id.1, false));
    if !what.is_empty() {
        text.push_str(&format!(": {}", what.join(", ")));
    }
    text.push(')');
    if args.values {
        let show =
            |s: Option<&Slot>| s.map_or("none".to_string(), |s| value_json(id, s).to_string());
        text.push_str(&format!(" before: {} after: {}", show(before), show(after)));
    }
    Ok(writeln!(out, "{text}")?)
}
