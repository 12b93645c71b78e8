//! `aofvault log PATTERN…`: every write to the matching keys, one line each (or one JSON object
//! per line), streamed as the walk finds them ([`crate::restore::history::walk`]).

use std::io::Write;

use anyhow::Context;
use aofvault_config::Config;
use aofvault_formats::json::{bytes_json, rfc3339_ms};
use aofvault_formats::render::{entry_commands, Dialect};

use crate::cli::LogArgs;
use crate::exit::{self, Failure};
use crate::repo::plan::{parse_time, Selection};
use crate::restore::history::show::{command_json, command_text};
use crate::restore::history::walk::{walk, Event, Filter, TimeSource, What};
use crate::restore::history::Patterns;

/// `--since`: the start of the second given (or the exact time given with a fraction).
pub fn since_ms(text: &str) -> anyhow::Result<i64> {
    if let Ok(secs) = text.trim().parse::<i64>() {
        return secs.checked_mul(1000).context("time out of range");
    }
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(text.trim()) {
        return Ok(dt.timestamp_millis());
    }
    match parse_time(text)? {
        Selection::At { ms, .. } => Ok(ms),
        _ => anyhow::bail!("{text:?} is not a time"),
    }
}

/// `--until`: the end of the second given.
pub fn until_ms(text: &str) -> anyhow::Result<i64> {
    match parse_time(text)? {
        Selection::At { ms, .. } => Ok(ms),
        _ => anyhow::bail!("{text:?} is not a time"),
    }
}

pub async fn run(cfg: &Config, args: &LogArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    let filter = Filter {
        patterns: Patterns::new(&args.patterns),
        db: args.db,
        since_ms: args
            .since
            .as_deref()
            .map(since_ms)
            .transpose()
            .context(Failure::Usage)?,
        until_ms: args
            .until
            .as_deref()
            .map(until_ms)
            .transpose()
            .context(Failure::Usage)?,
    };
    let repo = crate::context::open_for_reading(cfg).await?;
    let instance = crate::context::pick_instance(cfg, &repo).await?;
    let mut shown = 0u64;
    walk(&repo, &instance, &filter, |ev| {
        shown += print(ev, args, out)?;
        Ok(())
    })
    .await?;
    out.flush()?;
    if !args.json {
        eprintln!(
            "aofvault: {shown} write(s) to keys matching {} in instance {instance}",
            filter.patterns.describe()
        );
    }
    Ok(exit::OK)
}

fn source(ev: &Event<'_>) -> &'static str {
    match ev.what {
        What::Command(_) => "aof",
        What::Base(_) => "base",
    }
}

fn time_source(t: TimeSource) -> &'static str {
    match t {
        TimeSource::Ts => "ts",
        TimeSource::Seen => "seen",
        TimeSource::Chain => "chain",
    }
}

/// Prints one event (a base key may take several lines: one per command recreating it);
/// returns the lines printed.
fn print(ev: &Event<'_>, args: &LogArgs, out: &mut dyn Write) -> anyhow::Result<u64> {
    let owned;
    let commands: Vec<Vec<&[u8]>> = match &ev.what {
        What::Command(a) => vec![a.to_vec()],
        What::Base(entry) => {
            owned = entry_commands(entry, Dialect::Redis);
            owned
                .iter()
                .map(|c| c.iter().map(Vec::as_slice).collect())
                .collect()
        }
    };
    for cmd in &commands {
        if args.json {
            let (command, cut) = command_json(cmd, args.full);
            let keys: Vec<serde_json::Value> = crate::restore::translate::key_positions(cmd)
                .into_iter()
                .filter_map(|i| cmd.get(i).map(|k| bytes_json(k)))
                .collect();
            let mut doc = serde_json::json!({
                "time": rfc3339_ms(ev.time_ms), "time_ms": ev.time_ms,
                "time_source": time_source(ev.time_source), "shard": ev.shard, "db": ev.db,
                "source": source(ev), "object": ev.object, "keys": keys, "command": command,
            });
            if let Some(o) = ev.offset {
                doc["offset"] = o.into();
            }
            if cut {
                doc["shortened"] = true.into();
            }
            serde_json::to_writer(&mut *out, &doc)?;
            writeln!(out)?;
        } else {
            writeln!(
                out,
                "{} {:<5} shard {} db {} {:<4} {}  [{}]",
                rfc3339_ms(ev.time_ms),
                time_source(ev.time_source),
                ev.shard,
                ev.db,
                source(ev),
                command_text(cmd, args.full),
                ev.object
            )?;
        }
    }
    Ok(commands.len() as u64)
}
