//! Writer of `KEVYSNAP` version 4 snapshots, the version kevy 1.19 writes and loads.
//!
//! What kevy cannot hold is dropped, by design of the target: hash field TTLs, a stream's
//! `entries_read` and consumers' active times. Delivery counts above `u32::MAX` saturate.
//! The caller picks the entries (kevy serves database 0 only) and the file for each shard
//! ([`super::shard_for_key`]); the caller also makes the write durable (tmp, fsync, rename).

use std::io::{self, Write};

use super::{op, SNAPSHOT_MAGIC, SNAPSHOT_VERSION};
use crate::model::{Entry, Stream, StreamId, Value};

/// Write a complete v4 snapshot holding `entries` (magic, records, EOF).
pub fn write_snapshot<'a, W: Write>(
    w: W,
    entries: impl IntoIterator<Item = &'a Entry>,
) -> io::Result<()> {
    let mut w = io::BufWriter::with_capacity(1 << 16, w);
    w.write_all(SNAPSHOT_MAGIC)?;
    w.write_all(&[SNAPSHOT_VERSION])?;
    for entry in entries {
        write_entry(&mut w, entry)?;
    }
    w.write_all(&[op::EOF])?;
    w.flush()
}

fn write_entry(w: &mut impl Write, entry: &Entry) -> io::Result<()> {
    let opcode = match &entry.value {
        Value::String(_) => op::STR,
        Value::Hash(_) => op::HASH,
        Value::List(_) => op::LIST,
        Value::Set(_) => op::SET,
        Value::ZSet(_) => op::ZSET,
        Value::Stream(_) => op::STREAM,
    };
    w.write_all(&[opcode])?;
    match entry.expire_at_ms {
        // A deadline already in the past (or before 1970) loads as expired, as it should.
        Some(ms) => {
            w.write_all(&[1])?;
            w.write_all(&(ms.max(0) as u64).to_le_bytes())?;
        }
        None => w.write_all(&[0])?,
    }
    bytes(w, &entry.key)?;
    match &entry.value {
        Value::String(v) => bytes(w, v),
        Value::Hash(fields) => {
            count(w, fields.len())?;
            for f in fields {
                bytes(w, &f.field)?;
                bytes(w, &f.value)?;
            }
            Ok(())
        }
        Value::List(items) | Value::Set(items) => {
            count(w, items.len())?;
            items.iter().try_for_each(|item| bytes(w, item))
        }
        Value::ZSet(pairs) => {
            count(w, pairs.len())?;
            for (member, score) in pairs {
                bytes(w, member)?;
                w.write_all(&score.to_bits().to_le_bytes())?;
            }
            Ok(())
        }
        Value::Stream(stream) => write_stream(w, stream),
    }
}

fn write_stream(w: &mut impl Write, s: &Stream) -> io::Result<()> {
    id(w, s.last_id)?;
    id(w, s.max_deleted_id)?;
    w.write_all(&s.entries_added.to_le_bytes())?;
    count(w, s.entries.len())?;
    for e in &s.entries {
        id(w, e.id)?;
        count(w, e.fields.len())?;
        for (field, value) in &e.fields {
            bytes(w, field)?;
            bytes(w, value)?;
        }
    }
    count(w, s.groups.len())?;
    for g in &s.groups {
        bytes(w, &g.name)?;
        id(w, g.last_delivered)?;
        count(w, g.consumers.len())?;
        for c in &g.consumers {
            bytes(w, &c.name)?;
            w.write_all(&c.seen_time_ms.to_le_bytes())?;
        }
        count(w, g.pending.len())?;
        for p in &g.pending {
            id(w, p.id)?;
            bytes(w, &p.consumer)?;
            w.write_all(&p.delivery_time_ms.to_le_bytes())?;
            let delivered = u32::try_from(p.delivery_count).unwrap_or(u32::MAX);
            w.write_all(&delivered.to_le_bytes())?;
        }
    }
    Ok(())
}

fn id(w: &mut impl Write, id: StreamId) -> io::Result<()> {
    w.write_all(&id.ms.to_le_bytes())?;
    w.write_all(&id.seq.to_le_bytes())
}

fn count(w: &mut impl Write, n: usize) -> io::Result<()> {
    let n = u32::try_from(n).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{n} elements do not fit a kevy snapshot (u32 counts)"),
        )
    })?;
    w.write_all(&n.to_le_bytes())
}

fn bytes(w: &mut impl Write, b: &[u8]) -> io::Result<()> {
    count(w, b.len())?;
    w.write_all(b)
}
