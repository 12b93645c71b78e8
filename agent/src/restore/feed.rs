//! From staged files to the commands a target server needs, one shard at a time: the base
//! decoded (KEVYSNAP, RDB, RESP) and rendered as commands, then the stream's commands,
//! translated for the target kind ([`super::translate`]). Everything streams through fixed
//! buffers: memory does not grow with the size of the backup.
//!
//! One rule is specific to replaying several kevy shards into one keyspace (a live target, a
//! Redis target, or a different shard count): in a kevy AOF a `FLUSHALL`/`FLUSHDB` empties
//! *that shard* only, while in one keyspace it would also delete what the other shards already
//! replayed. Such a shard is therefore replayed from just after its last flush, without its
//! base — which is exactly the state that flush left — and the flush itself is not sent.
//! The same holds for the nodes of a Redis/Valkey cluster merged into one keyspace
//! ([`FeedOptions::local_flush`]): a cluster node serves database 0 only, and its `FLUSHALL`
//! empties that node's slots, not the cluster.
//!
//! Hash field TTLs go through [`translate::field_ttl`] first when the target cannot hold them
//! (from the stream, and from a base's hashes): the lost ones are listed in [`FeedStats`].
//!
//! For a kevy target, the renames of a shard's stream are found first and replayed as their
//! effect ([`super::translate::renames`]): every command and base key is written under the name its object
//! has at the end, and no `RENAME` is sent.

use std::fs::File;
use std::io::BufReader;

use anyhow::{bail, Context};
use aofvault_formats::kevy::KevySnapReader;
use aofvault_formats::model::Record;
use aofvault_formats::rdb::RdbReader;
use aofvault_formats::render::{self, Dialect};
use aofvault_formats::vault::BaseFormat;

use super::fetch::{StagedBase, StagedShard};
use super::stream::{for_each_item, for_each_item_raw, Item};
use super::thin::Thinning;
use super::translate::field_ttl::{FieldTtls, LostFieldTtl, Support};
use super::translate::renames::Renames;
use super::translate::{self, Kind};

/// Read buffer for bases.
const BASE_BUFFER: usize = 1 << 20;

/// Where commands go: a batch for a live server, or a file.
pub trait Sink {
    /// One command, ready for the target.
    fn command(&mut self, args: &[&[u8]]) -> anyhow::Result<()>;
    /// One command the target takes exactly as it is stored: `frame` is its RESP encoding,
    /// `args` its arguments. A sink that sends RESP appends `frame` as it is; the default
    /// goes through [`Sink::command`].
    fn raw(&mut self, args: &[&[u8]], _frame: &[u8]) -> anyhow::Result<()> {
        self.command(args)
    }
    /// `n` more source bytes were consumed (progress).
    fn consumed(&mut self, _n: u64) {}
}

/// How to feed a shard.
#[derive(Debug, Clone, Copy)]
pub struct FeedOptions {
    pub from: Kind,
    pub to: Kind,
    /// Several source shards end up in one keyspace (see the module doc).
    pub merge: bool,
    /// Anchors the relative TTLs of KEVYSNAP v2 files, and decides which hash field TTLs
    /// have already passed.
    pub now_ms: i64,
    /// What the target holds of hash field expiration.
    pub field_ttl: Support,
    /// Leave out the stream's writes that a later whole overwrite hides ([`super::thin`]).
    pub thin: bool,
    /// A flush in this stream empties only this stream's keys, whatever the source kind: one
    /// group of a cluster restored beside the others (see the module doc).
    pub local_flush: bool,
}

impl FeedOptions {
    /// Options for a target of the same abilities as a Redis source, or a kevy target (which
    /// holds no field TTLs).
    pub fn new(from: Kind, to: Kind, merge: bool, now_ms: i64) -> Self {
        Self {
            from,
            to,
            merge,
            now_ms,
            field_ttl: match to {
                Kind::Redis => Support::Full,
                Kind::Kevy => Support::None,
            },
            thin: false,
            local_flush: false,
        }
    }
}

/// What feeding one shard did.
#[derive(Debug, Default, Clone)]
pub struct FeedStats {
    pub base_keys: u64,
    pub commands: u64,
    /// Commands the target could not fully express, and why (the first reason seen).
    pub lossy: u64,
    pub lossy_reason: Option<&'static str>,
    /// The logical offset the stream was replayed from, when a flush made the base irrelevant.
    pub replayed_from_flush: Option<u64>,
    /// Renames replayed as their effect (kevy targets).
    pub renames: u64,
    /// Hash fields whose TTL the target could not hold (they live there without one).
    pub lost_field_ttls: Vec<LostFieldTtl>,
    /// Stream commands left out because a later whole overwrite hides them ([`super::thin`]).
    pub thinned: u64,
}

struct Counting<'a> {
    sink: &'a mut dyn Sink,
    stats: FeedStats,
    renames: Option<Renames>,
    /// Set when the target lacks (part of) hash field expiration.
    field_ttls: Option<FieldTtls>,
}

impl Counting<'_> {
    /// A base key under the name its object has at the end of the stream.
    fn relabel(&mut self, key: &mut Vec<u8>, at: u64) {
        if let Some(new) = self.renames.as_mut().and_then(|r| r.label(key, at)) {
            *key = new;
        }
    }

    fn send(&mut self, args: &[&[u8]]) -> anyhow::Result<()> {
        self.stats.commands += 1;
        self.sink.command(args)
    }

    fn send_owned(&mut self, cmd: &[Vec<u8>]) -> anyhow::Result<()> {
        let refs: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
        self.send(&refs)
    }

    /// Translates a source command that ends at logical offset `at` and sends the result;
    /// `frame`, its stored RESP bytes when known, is sent as it is if nothing changes it.
    fn source_command(
        &mut self,
        args: &[&[u8]],
        frame: Option<&[u8]>,
        opts: &FeedOptions,
        at: u64,
    ) -> anyhow::Result<()> {
        if let Some(r) = self.renames.as_mut() {
            if r.replaces(args) {
                if let Some(del) = r.at_rename(at) {
                    if let Some(del) = del {
                        self.send_owned(&del)?;
                    }
                    return Ok(());
                }
            }
            if let Some(cmd) = r.rewrite(args, at) {
                let refs: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
                return self.translated(&refs, None, opts);
            }
        }
        self.translated(args, frame, opts)
    }

    fn translated(
        &mut self,
        args: &[&[u8]],
        frame: Option<&[u8]>,
        opts: &FeedOptions,
    ) -> anyhow::Result<()> {
        if let Some(cmds) = self.field_ttls.as_mut().and_then(|f| f.command(args)) {
            for cmd in &cmds {
                let refs: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
                self.by_kind(&refs, None, opts)?;
            }
            return Ok(());
        }
        self.by_kind(args, frame, opts)
    }

    /// A base's command (already in the target's dialect): only field TTLs are translated.
    fn base_command(&mut self, cmd: &[Vec<u8>]) -> anyhow::Result<()> {
        let refs: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
        match self.field_ttls.as_mut().and_then(|f| f.command(&refs)) {
            Some(cmds) => cmds.iter().try_for_each(|c| self.send_owned(c)),
            None => self.send(&refs),
        }
    }

    /// The base entry's field TTLs, for a kevy target whose rendering leaves them out: each
    /// goes through the field TTL translation (an HDEL if already past, else reported lost).
    fn base_field_ttls(&mut self, entry: &aofvault_formats::model::Entry) -> anyhow::Result<()> {
        let aofvault_formats::model::Value::Hash(fields) = &entry.value else {
            return Ok(());
        };
        if self.field_ttls.is_none() {
            return Ok(());
        }
        for f in fields {
            if let Some(ms) = f.expire_at_ms {
                let cmd = [
                    b"HPEXPIREAT".to_vec(),
                    entry.key.clone(),
                    ms.to_string().into_bytes(),
                    b"FIELDS".to_vec(),
                    b"1".to_vec(),
                    f.field.clone(),
                ];
                self.base_command(&cmd)?;
            }
        }
        Ok(())
    }

    fn by_kind(
        &mut self,
        args: &[&[u8]],
        frame: Option<&[u8]>,
        opts: &FeedOptions,
    ) -> anyhow::Result<()> {
        let Some(name) = args.first() else {
            return Ok(());
        };
        if translate::passes_unchanged(name, opts.from, opts.to) {
            return match frame {
                Some(frame) => {
                    self.stats.commands += 1;
                    self.sink.raw(args, frame)
                }
                None => self.send(args),
            };
        }
        let tr = translate::translate(args, opts.from, opts.to)
            .with_context(|| format!("cannot replay `{}`", translate::label(args)))?;
        if let Some(reason) = tr.lossy {
            self.stats.lossy += 1;
            self.stats.lossy_reason.get_or_insert(reason);
        }
        for cmd in &tr.commands {
            self.send_owned(cmd)?;
        }
        Ok(())
    }
}

/// Feeds one shard's base and stream into `sink`.
pub fn feed_shard(
    s: &StagedShard,
    opts: &FeedOptions,
    sink: &mut dyn Sink,
) -> anyhow::Result<FeedStats> {
    feed_shard_with(s, opts, opts.to == Kind::Kevy, sink)
}

/// [`feed_shard`], with renames replayed as their effect when `relabel` (kevy targets, and
/// cluster targets, where a rename's two keys may live on two nodes).
pub fn feed_shard_with(
    s: &StagedShard,
    opts: &FeedOptions,
    relabel: bool,
    sink: &mut dyn Sink,
) -> anyhow::Result<FeedStats> {
    let reset = if opts.merge && (opts.from == Kind::Kevy || opts.local_flush) {
        last_flush_end(s)?
    } else {
        None
    };
    let renames = if relabel {
        Renames::scan(s, reset.unwrap_or(s.stream_start))?
    } else {
        None
    };
    let mut out = Counting {
        sink,
        stats: FeedStats {
            renames: renames.as_ref().map_or(0, |r| r.len() as u64),
            ..FeedStats::default()
        },
        renames,
        field_ttls: match opts.from {
            Kind::Redis => FieldTtls::new(opts.field_ttl, opts.now_ms),
            Kind::Kevy => None,
        },
    };
    if out.stats.renames > 0 {
        tracing::info!(
            shard = s.shard,
            renames = out.stats.renames,
            "renames are replayed as their effect: keys are written under their final names"
        );
    }
    let mut from = s.stream_start;
    let mut db = 0u32;
    match reset {
        Some(at) => {
            tracing::info!(shard = s.shard, offset = at, "the shard's AOF flushes it: replaying from after its last FLUSHALL/FLUSHDB, without its base");
            out.stats.replayed_from_flush = Some(at);
            from = at;
        }
        None => {
            for (n, part) in s.base.iter().enumerate() {
                // A base still downloading is read once it has checked out.
                s.wait_base(n)
                    .with_context(|| format!("shard {}: base {}", s.shard, part.part.file_name))?;
                db = feed_base(part, opts, db, s.stream_start, &mut out)
                    .with_context(|| format!("shard {}: base {}", s.shard, part.part.file_name))?;
            }
        }
    }
    if db != 0 && opts.to == Kind::Redis {
        // Redis reads the incr files with a fresh client, in database 0.
        out.send(&[b"SELECT", b"0"])?;
        if let Some(f) = out.field_ttls.as_mut() {
            f.select(0);
        }
    }
    // Planned once the base is sent: the stream keeps downloading meanwhile, and the plan
    // reads it as far as it has checked out, like the replay below.
    let mut thin = match opts.thin {
        true => Thinning::plan(s, from)?,
        false => Thinning::off(),
    };
    // Read only as far as its segments have checked out (see `fetch::ready`).
    let reader = s.open_stream(from)?;
    let what = format!("shard {}: AOF stream", s.shard);
    let mut last = from;
    // `for_each_item_raw` reads in large chunks itself: no BufReader in between.
    for_each_item_raw(reader, from, |item, end, frame| {
        out.sink.consumed(end - last);
        last = end;
        match item {
            Item::Command(args) if thin.keep_next() => {
                out.source_command(args, Some(frame), opts, end)
            }
            Item::Command(_) | Item::Timestamp(_) => Ok(()),
        }
    })
    .with_context(|| what.clone())?;
    let mut stats = out.stats;
    stats.thinned = thin.skipped();
    stats.lost_field_ttls = out.field_ttls.map(FieldTtls::finish).unwrap_or_default();
    Ok(stats)
}

/// Feeds one base part (its keys as they are at logical offset `at`, where the stream
/// starts); returns the database selected at its end.
fn feed_base(
    part: &StagedBase,
    opts: &FeedOptions,
    mut db: u32,
    at: u64,
    out: &mut Counting<'_>,
) -> anyhow::Result<u32> {
    let file =
        File::open(&part.path).with_context(|| format!("opening {}", part.path.display()))?;
    let reader = BufReader::with_capacity(BASE_BUFFER, file);
    let dialect = match opts.to {
        Kind::Redis => Dialect::Redis,
        Kind::Kevy => Dialect::Kevy,
    };
    match part.part.format {
        BaseFormat::KevySnap => {
            let mut r = KevySnapReader::new(reader, opts.now_ms)?;
            let mut last = 0;
            while let Some(mut entry) = r.next_entry()? {
                out.stats.base_keys += 1;
                out.relabel(&mut entry.key, at);
                for cmd in render::entry_commands(&entry, dialect) {
                    out.send_owned(&cmd)?;
                }
                out.sink.consumed(r.offset() - last);
                last = r.offset();
            }
        }
        BaseFormat::Rdb => {
            let mut r = RdbReader::new(reader)?;
            let mut last = 0;
            while let Some(mut record) = r.next_record()? {
                out.sink.consumed(r.offset() - last);
                last = r.offset();
                if let Record::Entry(e) = &mut record {
                    out.relabel(&mut e.key, at);
                }
                match &record {
                    Record::Entry(e) => {
                        out.stats.base_keys += 1;
                        if e.db != db {
                            if opts.to == Kind::Kevy {
                                bail!(
                                    "key {} is in database {}: kevy serves database 0 only",
                                    translate::label(&[e.key.as_slice()]),
                                    e.db
                                );
                            }
                            out.send(&[b"SELECT", e.db.to_string().as_bytes()])?;
                            db = e.db;
                            if let Some(f) = out.field_ttls.as_mut() {
                                f.select(db);
                            }
                        }
                    }
                    Record::Function { .. } if opts.to == Kind::Kevy => {
                        out.stats.lossy += 1;
                        out.stats.lossy_reason.get_or_insert(
                            "kevy has no functions: FUNCTION libraries were left out",
                        );
                    }
                    _ => {}
                }
                for cmd in render::record_commands(&record, dialect) {
                    out.base_command(&cmd)?;
                }
                if let (Record::Entry(e), Dialect::Kevy) = (&record, dialect) {
                    out.base_field_ttls(e)?;
                }
            }
            // An RDB preamble may be followed by commands (a legacy single-file AOF).
            let offset = r.offset();
            let rest = r.into_inner();
            for_each_item(rest, offset, |item, _| match item {
                Item::Command(args) => {
                    db = selected_db(args).unwrap_or(db);
                    out.source_command(args, None, opts, at)
                }
                Item::Timestamp(_) => Ok(()),
            })?;
        }
        BaseFormat::Resp => {
            let mut last = 0;
            for_each_item_raw(reader, 0, |item, end, frame| {
                out.sink.consumed(end - last);
                last = end;
                match item {
                    Item::Command(args) => {
                        db = selected_db(args).unwrap_or(db);
                        out.source_command(args, Some(frame), opts, at)
                    }
                    Item::Timestamp(_) => Ok(()),
                }
            })?;
        }
    }
    Ok(db)
}

fn selected_db(args: &[&[u8]]) -> Option<u32> {
    if args.len() == 2 && args[0].eq_ignore_ascii_case(b"SELECT") {
        std::str::from_utf8(args[1]).ok()?.trim().parse().ok()
    } else {
        None
    }
}

fn is_flush(args: &[&[u8]]) -> bool {
    args.first()
        .is_some_and(|n| n.eq_ignore_ascii_case(b"FLUSHALL") || n.eq_ignore_ascii_case(b"FLUSHDB"))
}

/// The logical offset right after the last `FLUSHALL`/`FLUSHDB` of a shard's stream, if any.
/// A byte search first: most streams have no flush and need no second parse.
pub fn last_flush_end(s: &StagedShard) -> anyhow::Result<Option<u64>> {
    let open = || s.open_stream(s.stream_start);
    if !super::search::contains_ignore_case(open()?, b"flush")? {
        return Ok(None);
    }
    let mut found = None;
    for_each_item(open()?, s.stream_start, |item, end| {
        if let Item::Command(args) = item {
            if is_flush(args) {
                found = Some(end);
            }
        }
        Ok(())
    })
    .with_context(|| format!("shard {}: AOF stream", s.shard))?;
    Ok(found)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
