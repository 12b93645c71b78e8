//! `restore --keys PATTERN… [--db N] [--at T]`: only the matching keys' state at T, into a live
//! server (`--to URL`, [`live`]) or as a server layout holding only them (`--to-dir`,
//! [`files`]). The state comes from [`crate::restore::history::state`] (the plan of T fetched, checked
//! and replayed in process into a model of the matching keys); each key is then written with
//! the commands that recreate it for the target's kind — the neutral form rendered for that
//! kind, or the source's commands through the same translation as a full restore
//! ([`super::translate`]). A key whose state cannot be known from the matching keys alone
//! (written from a key outside the patterns) is left out and named.

pub mod files;
pub mod live;

use std::io::Write;

use anyhow::Context;
use aofvault_config::Config;
use aofvault_formats::render::Dialect;

use super::retry::Retry;
use super::translate::{self, Command, Kind};
use crate::cli::RestoreArgs;
use crate::exit::Failure;
use crate::restore::history::model::{KeyId, Slot, State};
use crate::restore::history::state::{keyspace, Keyspace};
use crate::restore::history::Patterns;

/// `restore --keys`.
pub async fn run(cfg: &Config, args: &RestoreArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    let retry = Retry {
        deadline: args.retry_deadline.unwrap_or(cfg.restore.retry_deadline),
    };
    let sel = super::selection(None, args.at.as_deref())?;
    let (repo, plan) = super::plan_with_retries(cfg, &sel, &retry).await?;
    let patterns = Patterns::new(&args.keys);
    let ks = keyspace(&repo, plan, &patterns, args.db, &retry).await?;
    if let Some(dir) = &args.to_dir {
        return files::write(&ks, dir, args, out);
    }
    let Some(url) = &args.to else {
        return Err(anyhow::anyhow!("give --to-dir DIR or --to URL").context(Failure::Usage));
    };
    live::restore(&ks, url, args, out).await
}

/// The source's kind.
pub fn source_kind(ks: &Keyspace) -> Kind {
    if ks.plan.layout.is_kevy() {
        Kind::Kevy
    } else {
        Kind::Redis
    }
}

/// Keys of a [`Keyspace`], by reference.
pub type KeyRefs<'a> = Vec<&'a (KeyId, Slot)>;

/// The keys to write, and the ones left out because their value is unknown.
pub fn split(ks: &Keyspace) -> (KeyRefs<'_>, KeyRefs<'_>) {
    ks.keys
        .iter()
        .partition(|(_, s)| !matches!(s.state, State::Unknown { .. }))
}

/// The commands that recreate one key in a server of kind `to`.
pub fn key_commands(id: &KeyId, slot: &Slot, from: Kind, to: Kind) -> anyhow::Result<Vec<Command>> {
    let dialect = |k: Kind| match k {
        Kind::Redis => Dialect::Redis,
        Kind::Kevy => Dialect::Kevy,
    };
    match &slot.state {
        State::Value(_) => Ok(slot.commands(id.0, &id.1, dialect(to)).unwrap_or_default()),
        State::Replay { .. } => {
            let mut out = Vec::new();
            for cmd in slot
                .commands(id.0, &id.1, dialect(from))
                .unwrap_or_default()
            {
                let args: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
                let tr = translate::translate(&args, from, to)
                    .with_context(|| format!("cannot write `{}`", translate::label(&args)))?;
                out.extend(tr.commands);
            }
            Ok(out)
        }
        State::Unknown { .. } => Ok(Vec::new()),
    }
}

/// Names the keys left out, on stderr.
pub fn warn_unknown(unknown: &[&(KeyId, Slot)]) {
    for ((db, key), slot) in unknown.iter().take(20) {
        if let State::Unknown { reason, .. } = &slot.state {
            eprintln!(
                "aofvault: warning: db {db} key {} left out: its value at that moment is unknown ({reason})",
                crate::restore::history::show::arg_text(key, false)
            );
        }
    }
    if unknown.len() > 20 {
        eprintln!(
            "aofvault: warning: … and {} more keys left out",
            unknown.len() - 20
        );
    }
}
