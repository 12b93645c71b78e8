//! The neutral form as the commands that recreate it — what an AOF rewrite would write — so that
//! any snapshot can be replayed into any server, or written as a RESP base file.
//!
//! Shapes follow Redis's own rewrite (FORMATS.md §1.7) and, for [`Dialect::Kevy`], only what
//! kevy 1.19 accepts (its rewrite in kevy-persist, and its command table):
//!
//! | value | Redis | kevy |
//! |---|---|---|
//! | string | `SET` | `SET` |
//! | list / set / zset | `RPUSH` / `SADD` / `ZADD`, 64 items per command | same |
//! | hash | `HMSET`, 64 fields per command; `HPEXPIREAT key ms FIELDS 1 f` per field TTL | `HSET`; field TTLs dropped (kevy has none) |
//! | stream | `XADD` per entry (explicit id); `XADD key MAXLEN 0 <id> x y` for an empty stream; `XSETID … ENTRIESADDED … MAXDELETEDID …`; `XGROUP CREATE … [ENTRIESREAD n]`; `XGROUP CREATECONSUMER`; `XCLAIM … TIME t RETRYCOUNT n FORCE JUSTID` per pending entry | same, but `XGROUP CREATE … MKSTREAM` without `ENTRIESREAD` |
//! | key TTL | `PEXPIREAT key ms` | same |
//!
//! What commands cannot recreate is lost here, exactly as in the servers' own rewrites: empty
//! collections (no command makes one), pending entries whose stream entry was deleted, and
//! consumers' seen/active times (the server sets them to the replay time). No `SELECT` is
//! emitted: the caller switches databases. Scores are written in Rust's shortest round-trip
//! form, which parses back to the identical `f64`.

use crate::model::{Entry, HashField, Record, Stream, Value};

/// Which server the commands are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Redis,
    Kevy,
}

/// Items per command for collections, as Redis's rewrite (`AOF_REWRITE_ITEMS_PER_CMD`).
const ITEMS_PER_COMMAND: usize = 64;

/// One command: its arguments.
type Command = Vec<Vec<u8>>;

/// The commands recreating one record: an entry (see [`entry_commands`]), a function library
/// (`FUNCTION LOAD REPLACE`, Redis only), or nothing for aux fields.
pub fn record_commands(record: &Record, dialect: Dialect) -> Vec<Command> {
    match record {
        Record::Entry(entry) => entry_commands(entry, dialect),
        Record::Function { code } if dialect == Dialect::Redis => {
            vec![vec![
                b"FUNCTION".to_vec(),
                b"LOAD".to_vec(),
                b"REPLACE".to_vec(),
                code.clone(),
            ]]
        }
        Record::Function { .. } | Record::Aux { .. } => Vec::new(),
    }
}

/// The commands recreating one entry (value, then TTL), in replay order.
pub fn entry_commands(entry: &Entry, dialect: Dialect) -> Vec<Command> {
    let key = entry.key.as_slice();
    let mut out = Vec::new();
    match &entry.value {
        Value::String(v) => out.push(vec![b"SET".to_vec(), key.to_vec(), v.clone()]),
        Value::List(items) => chunked(&mut out, b"RPUSH", key, items, |item, cmd| {
            cmd.push(item.clone())
        }),
        Value::Set(members) => chunked(&mut out, b"SADD", key, members, |m, cmd| {
            cmd.push(m.clone())
        }),
        Value::ZSet(pairs) => chunked(&mut out, b"ZADD", key, pairs, |(member, score), cmd| {
            cmd.push(score_arg(*score));
            cmd.push(member.clone());
        }),
        Value::Hash(fields) => hash_commands(&mut out, key, fields, dialect),
        Value::Stream(stream) => stream_commands(&mut out, key, stream, dialect),
    }
    if let (Some(ms), false) = (entry.expire_at_ms, out.is_empty()) {
        out.push(vec![b"PEXPIREAT".to_vec(), key.to_vec(), int(ms)]);
    }
    out
}

/// `name key item…` commands of at most [`ITEMS_PER_COMMAND`] items each.
fn chunked<T>(
    out: &mut Vec<Command>,
    name: &[u8],
    key: &[u8],
    items: &[T],
    mut push: impl FnMut(&T, &mut Command),
) {
    for chunk in items.chunks(ITEMS_PER_COMMAND) {
        let mut cmd = Vec::with_capacity(2 + 2 * chunk.len());
        cmd.push(name.to_vec());
        cmd.push(key.to_vec());
        for item in chunk {
            push(item, &mut cmd);
        }
        out.push(cmd);
    }
}

fn hash_commands(out: &mut Vec<Command>, key: &[u8], fields: &[HashField], dialect: Dialect) {
    let name: &[u8] = match dialect {
        Dialect::Redis => b"HMSET",
        Dialect::Kevy => b"HSET",
    };
    chunked(out, name, key, fields, |f, cmd| {
        cmd.push(f.field.clone());
        cmd.push(f.value.clone());
    });
    if dialect == Dialect::Redis {
        for f in fields {
            if let Some(ms) = f.expire_at_ms {
                out.push(vec![
                    b"HPEXPIREAT".to_vec(),
                    key.to_vec(),
                    int(ms),
                    b"FIELDS".to_vec(),
                    b"1".to_vec(),
                    f.field.clone(),
                ]);
            }
        }
    }
}

fn stream_commands(out: &mut Vec<Command>, key: &[u8], s: &Stream, dialect: Dialect) {
    let word = |w: &str| w.as_bytes().to_vec();
    for e in &s.entries {
        let mut cmd = vec![word("XADD"), key.to_vec(), id(e.id)];
        for (field, value) in &e.fields {
            cmd.push(field.clone());
            cmd.push(value.clone());
        }
        out.push(cmd);
    }
    if s.entries.is_empty() {
        // No command creates an empty stream directly: add a dummy entry that MAXLEN 0 trims at
        // once. Its id must be above 0-0; XSETID below sets the real last id.
        let dummy = if s.last_id == Default::default() {
            "0-1".into()
        } else {
            s.last_id.to_string()
        };
        out.push(vec![
            word("XADD"),
            key.to_vec(),
            word("MAXLEN"),
            word("0"),
            dummy.into_bytes(),
            word("x"),
            word("y"),
        ]);
    }
    // Servers refuse an XSETID below the last entry or a count below the length; a file that
    // claims so (an old RDB without these fields) gets the smallest consistent values.
    let top = s.entries.last().map_or(s.last_id, |e| e.id.max(s.last_id));
    let added = s.entries_added.max(s.entries.len() as u64);
    out.push(vec![
        word("XSETID"),
        key.to_vec(),
        id(top),
        word("ENTRIESADDED"),
        int(added),
        word("MAXDELETEDID"),
        id(s.max_deleted_id.min(top)),
    ]);
    for g in &s.groups {
        let mut create = vec![word("XGROUP"), word("CREATE"), key.to_vec(), g.name.clone()];
        create.push(id(g.last_delivered));
        match (dialect, g.entries_read) {
            (Dialect::Redis, Some(n)) => create.extend([word("ENTRIESREAD"), int(n)]),
            (Dialect::Redis, None) => {}
            (Dialect::Kevy, _) => create.push(word("MKSTREAM")),
        }
        out.push(create);
        for c in &g.consumers {
            out.push(vec![
                word("XGROUP"),
                word("CREATECONSUMER"),
                key.to_vec(),
                g.name.clone(),
                c.name.clone(),
            ]);
        }
        for p in &g.pending {
            // XCLAIM ignores ids that are no longer in the stream: skip them up front.
            if s.entries.binary_search_by(|e| e.id.cmp(&p.id)).is_err() {
                continue;
            }
            out.push(vec![
                word("XCLAIM"),
                key.to_vec(),
                g.name.clone(),
                p.consumer.clone(),
                word("0"),
                id(p.id),
                word("TIME"),
                int(p.delivery_time_ms),
                word("RETRYCOUNT"),
                int(p.delivery_count),
                word("FORCE"),
                word("JUSTID"),
            ]);
        }
    }
}

fn id(id: crate::model::StreamId) -> Vec<u8> {
    id.to_string().into_bytes()
}

fn int(n: impl std::fmt::Display) -> Vec<u8> {
    n.to_string().into_bytes()
}

/// Shortest text that parses back to the same `f64` (`inf`/`-inf` for infinities).
fn score_arg(score: f64) -> Vec<u8> {
    format!("{score}").into_bytes()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(value: Value, ttl: Option<i64>) -> Entry {
        Entry {
            db: 0,
            key: b"k".to_vec(),
            value,
            expire_at_ms: ttl,
        }
    }

    #[test]
    fn collections_are_chunked_and_ttl_comes_last() {
        let items: Vec<Vec<u8>> = (0..130).map(|i| i.to_string().into_bytes()).collect();
        let cmds = entry_commands(&entry(Value::List(items), Some(42)), Dialect::Redis);
        assert_eq!(cmds.len(), 4);
        assert_eq!(cmds[0].len(), 66);
        assert_eq!(cmds[2].len(), 4);
        assert_eq!(
            cmds[3],
            vec![b"PEXPIREAT".to_vec(), b"k".to_vec(), b"42".to_vec()]
        );
    }

    #[test]
    fn scores_round_trip_exactly() {
        for s in [
            0.1,
            1.0,
            -2.5,
            1e300,
            f64::INFINITY,
            f64::NEG_INFINITY,
            3.19,
            1.0 / 3.0,
        ] {
            let text = String::from_utf8(score_arg(s)).unwrap();
            assert_eq!(
                text.parse::<f64>().unwrap().to_bits(),
                s.to_bits(),
                "{text}"
            );
        }
    }

    #[test]
    fn empty_collections_render_nothing() {
        assert!(entry_commands(&entry(Value::Set(vec![]), Some(1)), Dialect::Kevy).is_empty());
    }
}
