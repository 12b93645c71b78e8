//! Streams (types 15, 19, 21, 26, 27 — "listpacks" versions 1 to 5).
//!
//! A stream is a list of nodes, each a 16-byte master ID (ms, seq big-endian) and a listpack
//! whose entries are delta-encoded against it; then the stream metadata (length, last ID, and
//! from version 2 the first ID, the largest deleted ID and the count of entries ever added);
//! then the consumer groups, each with its pending entries list (PEL) and its consumers, whose
//! own PELs name the entries they own. Entries flagged deleted are dropped; each pending entry
//! gets the name of the consumer whose PEL holds it.
//!
//! Node listpack: a master entry `count deleted n_fields field… 0`, then per entry
//! `flags ms_delta seq_delta` and either (flag SAMEFIELDS) the values in master-field order or
//! `n field value…`, then the entry's element count (for walking backwards; skipped here).
//!
//! Versions 4 (type 26, Redis 8.6) and 5 (type 27, Redis 8.8) extend version 3, as described
//! by third-party readers of Redis's `rdb.c` (Redis's own source was not available here):
//! version 5 adds to each group, after its consumers, a "NACK zone" — `count:len`, then 16-byte
//! ids of pending entries that no consumer owns —; both add after the groups the stream's
//! idempotent-producer (IDMP) state — `duration:len maxsize:len producers:len`, the producers'
//! tracked ids, `iids_added:len iids_duplicates:len`. Those descriptions disagree on how a
//! producer's tracked ids are laid out, and the neutral form has no place for unowned pending
//! entries, so a stream with tracked producers or NACKed entries is refused
//! ([`RdbError::Unsupported`]) rather than guessed; the IDMP configuration itself
//! (`XCFGSET … IDMP-DURATION … IDMP-MAXSIZE …`) is not kept.

use std::collections::HashMap;
use std::io::BufRead;

use crate::model::{Bytes, Consumer, PendingEntry, Stream, StreamEntry, StreamGroup, StreamId};

use super::error::{display_key, PackError, RdbError};
use super::listpack::Listpack;
use super::packed::{Item, Packed};
use super::source::{capacity, packed, Source};

const FLAG_DELETED: i64 = 1;
const FLAG_SAMEFIELDS: i64 = 2;

/// A consumer group's `entries_read` when unknown (Redis writes -1 as an unsigned length).
const ENTRIES_READ_UNKNOWN: u64 = u64::MAX;

pub(crate) fn read_stream<R: BufRead>(
    src: &mut Source<R>,
    type_id: u8,
    rdb_version: u32,
    key: &[u8],
) -> Result<Stream, RdbError> {
    let version = match type_id {
        15 => 1,
        19 => 2,
        21 => 3,
        26 => 4,
        _ => 5,
    };
    let mut stream = Stream::default();
    let nodes = src.read_len("stream node count")?;
    for _ in 0..nodes {
        let at = src.offset();
        let master = src.read_string("stream node id")?;
        let master = id_from_bytes(&master).ok_or_else(|| RdbError::Invalid {
            offset: at,
            reason: format!("key `{}`: stream node id is not 16 bytes", display_key(key)),
        })?;
        packed(src, key, "listpack of stream node", |data| {
            read_node(data, master, &mut stream.entries)
        })?;
    }
    let length = src.read_len("stream length")?;
    stream.last_id = read_id(src)?;
    if version >= 2 {
        stream.first_id = read_id(src)?;
        stream.max_deleted_id = read_id(src)?;
        stream.entries_added = src.read_len("stream entries added")?;
    } else {
        // What the server itself derives when loading a version 1 stream.
        stream.first_id = stream.entries.first().map(|e| e.id).unwrap_or_default();
        stream.entries_added = length;
    }
    let groups = src.read_len("stream group count")?;
    stream.groups.reserve(capacity(groups));
    for _ in 0..groups {
        stream
            .groups
            .push(read_group(src, version, rdb_version, key)?);
    }
    if version >= 4 {
        read_idmp(src, rdb_version, key)?;
    }
    Ok(stream)
}

/// The IDMP trailer of versions 4 and 5: accepted only without tracked producers.
fn read_idmp<R: BufRead>(
    src: &mut Source<R>,
    rdb_version: u32,
    key: &[u8],
) -> Result<(), RdbError> {
    src.read_len("stream IDMP duration")?;
    src.read_len("stream IDMP max size")?;
    let at = src.offset();
    let producers = src.read_len("stream IDMP producer count")?;
    if producers != 0 {
        return Err(RdbError::Unsupported {
            offset: at,
            version: rdb_version,
            what: format!(
                "key `{}`: stream with idempotent-producer (IDMP) history of {producers} producers \
                 (type 26/27): its layout could not be confirmed from Redis's source",
                display_key(key)
            ),
        });
    }
    src.read_len("stream IDMP ids added")?;
    src.read_len("stream IDMP duplicates")?;
    Ok(())
}

fn read_id<R: BufRead>(src: &mut Source<R>) -> Result<StreamId, RdbError> {
    Ok(StreamId {
        ms: src.read_len("stream id")?,
        seq: src.read_len("stream id")?,
    })
}

fn id_from_bytes(bytes: &[u8]) -> Option<StreamId> {
    let raw: &[u8; 16] = bytes.try_into().ok()?;
    let mut ms = [0u8; 8];
    let mut seq = [0u8; 8];
    ms.copy_from_slice(&raw[..8]);
    seq.copy_from_slice(&raw[8..]);
    Some(StreamId {
        ms: u64::from_be_bytes(ms),
        seq: u64::from_be_bytes(seq),
    })
}

fn int(item: Item<'_>, at: usize, what: &'static str) -> Result<i64, PackError> {
    item.as_i64().ok_or(PackError::new(at, what))
}

fn count(item: Item<'_>, at: usize, what: &'static str) -> Result<usize, PackError> {
    usize::try_from(int(item, at, what)?).map_err(|_| PackError::new(at, what))
}

fn next<'a>(lp: &mut Listpack<'a>) -> Result<Item<'a>, PackError> {
    lp.expect_item("stream node ends in the middle of an entry")
}

/// Appends the live entries of one node to `out`.
fn read_node(data: &[u8], master: StreamId, out: &mut Vec<StreamEntry>) -> Result<(), PackError> {
    let mut lp = Listpack::new(data)?;
    let at = lp.position();
    let live = count(next(&mut lp)?, at, "stream node entry count is not a count")?;
    let deleted = count(
        next(&mut lp)?,
        at,
        "stream node deleted count is not a count",
    )?;
    let n_fields = count(next(&mut lp)?, at, "stream node field count is not a count")?;
    let mut master_fields = Vec::with_capacity(n_fields.min(256));
    for _ in 0..n_fields {
        master_fields.push(next(&mut lp)?.to_bytes());
    }
    let at = lp.position();
    if next(&mut lp)?.as_i64() != Some(0) {
        return Err(PackError::new(
            at,
            "stream node master entry does not end with 0",
        ));
    }
    out.reserve(live.min(4096));
    let (mut live_seen, mut deleted_seen) = (0usize, 0usize);
    while let Some(flags) = lp.next_item()? {
        let at = lp.position();
        let flags = int(flags, at, "stream entry flags are not an integer")?;
        let ms_delta = int(next(&mut lp)?, at, "stream entry id is not an integer")?;
        let seq_delta = int(next(&mut lp)?, at, "stream entry id is not an integer")?;
        let id = StreamId {
            ms: master.ms.wrapping_add(ms_delta as u64),
            seq: master.seq.wrapping_add(seq_delta as u64),
        };
        let fields: Vec<(Bytes, Bytes)> = if flags & FLAG_SAMEFIELDS != 0 {
            let mut fields = Vec::with_capacity(master_fields.len());
            for field in &master_fields {
                fields.push((field.clone(), next(&mut lp)?.to_bytes()));
            }
            fields
        } else {
            let n = count(
                next(&mut lp)?,
                at,
                "stream entry field count is not a count",
            )?;
            let mut fields = Vec::with_capacity(n.min(256));
            for _ in 0..n {
                let field = next(&mut lp)?.to_bytes();
                fields.push((field, next(&mut lp)?.to_bytes()));
            }
            fields
        };
        next(&mut lp)?; // the entry's element count, for backward walks
        if flags & FLAG_DELETED != 0 {
            deleted_seen += 1;
        } else {
            live_seen += 1;
            out.push(StreamEntry { id, fields });
        }
    }
    if live_seen != live || deleted_seen != deleted {
        return Err(PackError::new(
            lp.position(),
            "stream node entry counts disagree with its master entry",
        ));
    }
    Ok(())
}

fn read_group<R: BufRead>(
    src: &mut Source<R>,
    version: u8,
    rdb_version: u32,
    key: &[u8],
) -> Result<StreamGroup, RdbError> {
    let name = src.read_string("stream group name")?;
    let last_delivered = read_id(src)?;
    let entries_read = if version >= 2 {
        Some(src.read_len("stream group entries read")?).filter(|&n| n != ENTRIES_READ_UNKNOWN)
    } else {
        None
    };
    // The group PEL, owners still unknown: (id, delivery time, delivery count, owner index).
    let pel_len = src.read_len("stream group PEL length")?;
    let mut pel: Vec<(StreamId, u64, u64, Option<usize>)> = Vec::with_capacity(capacity(pel_len));
    let mut by_id: HashMap<(u64, u64), usize> = HashMap::with_capacity(capacity(pel_len));
    for _ in 0..pel_len {
        let at = src.offset();
        let id = read_raw_id(src)?;
        let delivery_time = src.read_i64_le("stream PEL delivery time")? as u64;
        let delivery_count = src.read_len("stream PEL delivery count")?;
        if by_id.insert((id.ms, id.seq), pel.len()).is_some() {
            return Err(invalid(at, key, "duplicate id in a stream group PEL"));
        }
        pel.push((id, delivery_time, delivery_count, None));
    }
    let n_consumers = src.read_len("stream consumer count")?;
    let mut consumers = Vec::with_capacity(capacity(n_consumers));
    for _ in 0..n_consumers {
        let name = src.read_string("stream consumer name")?;
        let seen_time_ms = src.read_i64_le("stream consumer seen time")? as u64;
        let active_time_ms = if version >= 3 {
            Some(src.read_i64_le("stream consumer active time")? as u64)
        } else {
            None
        };
        let owned = src.read_len("stream consumer PEL length")?;
        for _ in 0..owned {
            let at = src.offset();
            let id = read_raw_id(src)?;
            let slot = by_id
                .get(&(id.ms, id.seq))
                .and_then(|&i| pel.get_mut(i))
                .ok_or_else(|| invalid(at, key, "consumer PEL id missing from the group PEL"))?;
            if slot.3.replace(consumers.len()).is_some() {
                return Err(invalid(at, key, "stream PEL entry owned by two consumers"));
            }
        }
        consumers.push(Consumer {
            name,
            seen_time_ms,
            active_time_ms,
        });
    }
    if version >= 5 {
        let at = src.offset();
        let nacked = src.read_len("stream group NACK count")?;
        if nacked != 0 {
            return Err(RdbError::Unsupported {
                offset: at,
                version: rdb_version,
                what: format!(
                    "key `{}`: stream group with {nacked} NACKed pending entries (type 27): \
                     unowned pending entries have no neutral form",
                    display_key(key)
                ),
            });
        }
    }
    let at = src.offset();
    let mut pending = Vec::with_capacity(pel.len());
    for (id, delivery_time_ms, delivery_count, owner) in pel {
        let consumer = owner
            .and_then(|i| consumers.get(i))
            .ok_or_else(|| invalid(at, key, "stream group PEL entry without a consumer"))?;
        pending.push(PendingEntry {
            id,
            consumer: consumer.name.clone(),
            delivery_time_ms,
            delivery_count,
        });
    }
    Ok(StreamGroup {
        name,
        last_delivered,
        entries_read,
        pending,
        consumers,
    })
}

/// A PEL id: 16 raw bytes, ms and seq big-endian.
fn read_raw_id<R: BufRead>(src: &mut Source<R>) -> Result<StreamId, RdbError> {
    let raw: [u8; 16] = src.read_array("stream PEL id")?;
    id_from_bytes(&raw).ok_or_else(|| invalid(src.offset(), b"", "stream PEL id"))
}

fn invalid(at: u64, key: &[u8], reason: &str) -> RdbError {
    RdbError::Invalid {
        offset: at,
        reason: format!("key `{}`: {reason}", display_key(key)),
    }
}
