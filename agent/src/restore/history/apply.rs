//! What one AOF command does to the matching keys of a [`Model`]: the write commands Redis 7 and
//! kevy 1.19 put into their AOFs are evaluated on typed values (strings, hashes, lists, sets,
//! sorted sets, TTLs, renames, flushes); any other command on one key is kept as a command to
//! replay ([`State::Replay`]); a command that writes a matching key from other keys makes it
//! [`State::Unknown`]. Commands only reach the AOF when they took effect, so conditions
//! (`NX`, `XX`) are evaluated only where they decide what happened.

use aofvault_formats::model::Value;
use aofvault_formats::render::Dialect;

use super::model::{Model, Slot, State};
use crate::restore::translate::key_positions;

/// Where a command ran: the source shard, its database, its time (for relative TTLs), and
/// whether the source is kevy (whose flushes empty one shard, and which logs some `SET`s it
/// rejected).
#[derive(Debug, Clone, Copy)]
pub struct At {
    pub shard: u32,
    pub db: u32,
    pub now_ms: i64,
    pub kevy: bool,
}

fn up(a: &[u8]) -> String {
    String::from_utf8_lossy(a).to_ascii_uppercase()
}

fn int(a: &[u8]) -> Option<i64> {
    std::str::from_utf8(a).ok()?.trim().parse().ok()
}

/// Applies one command (`args`, name first) to `m`.
pub fn apply(m: &mut Model, at: At, args: &[&[u8]]) {
    let Some(name) = args.first() else { return };
    let name = up(name);
    let n = args.len();
    match name.as_str() {
        "FLUSHALL" => return m.flush(at.shard, None, at.kevy),
        "FLUSHDB" => return m.flush(at.shard, Some(at.db), at.kevy),
        "SWAPDB" if n == 3 => {
            if let (Some(a), Some(b)) = (int(args[1]), int(args[2])) {
                m.swap_db(a as u32, b as u32);
            }
            return;
        }
        "RENAME" | "RENAMENX" if n == 3 => return rename(m, at, args[1], args[2], None, true),
        "COPY" if n >= 3 => {
            let mut dst_db = at.db;
            let mut i = 3;
            while i < n {
                if up(args[i]) == "DB" {
                    dst_db = args.get(i + 1).and_then(|d| int(d)).unwrap_or(0) as u32;
                    i += 1;
                }
                i += 1;
            }
            return rename(m, at, args[1], args[2], Some(dst_db), false);
        }
        "MOVE" if n == 3 => {
            let dst = int(args[2]).unwrap_or(0) as u32;
            let slot = m.live(at.db, args[1], at.now_ms).cloned();
            m.keys.remove(&(at.db, args[1].to_vec()));
            if let Some(slot) = slot {
                if m.tracks(dst, args[1]) {
                    m.keys.insert((dst, args[1].to_vec()), slot);
                }
            }
            return;
        }
        "DEL" | "UNLINK" => {
            for k in &args[1..] {
                m.keys.remove(&(at.db, k.to_vec()));
            }
            return;
        }
        "MSET" | "MSETNX" => {
            for kv in args[1..].chunks(2) {
                if let [k, v] = kv {
                    set_string(m, at, k, v.to_vec(), None);
                }
            }
            return;
        }
        _ => {}
    }
    let positions = key_positions(args);
    let keys: Vec<&[u8]> = positions
        .iter()
        .filter_map(|&i| args.get(i).copied())
        .collect();
    if !keys.iter().any(|k| m.tracks(at.db, k)) {
        return;
    }
    let distinct = keys.iter().all(|k| *k == keys[0]);
    if !distinct {
        return cross_key(m, at, &name, &keys);
    }
    let key = keys[0];
    if !single(m, at, &name, args) {
        replay(m, at, key, args, &name);
    }
}

/// `RENAME src dst` (or `COPY` when `keep_source`=false, into `dst_db`).
fn rename(m: &mut Model, at: At, src: &[u8], dst: &[u8], dst_db: Option<u32>, move_: bool) {
    let dst_db = dst_db.unwrap_or(at.db);
    let slot = m.live(at.db, src, at.now_ms).cloned();
    if move_ {
        m.keys.remove(&(at.db, src.to_vec()));
    }
    if !m.tracks(dst_db, dst) {
        return;
    }
    let slot = match slot {
        Some(s) => s,
        None if m.tracks(at.db, src) => {
            // The source did not exist here: the server refused, so nothing was logged.
            return;
        }
        None => Slot {
            shard: at.shard,
            state: State::Unknown {
                type_name: "unknown",
                reason: "written from a key outside the patterns (RENAME/COPY)",
            },
            expire_at_ms: None,
        },
    };
    m.keys.insert(
        (dst_db, dst.to_vec()),
        Slot {
            shard: at.shard,
            ..slot
        },
    );
}

/// A command writing from several keys: the keys it writes that match become unknown, unless
/// every key it reads is tracked too (then it is replayed on the destination alone when that is
/// possible — it is not: its value depends on the others — so unknown as well).
fn cross_key(m: &mut Model, at: At, name: &str, keys: &[&[u8]]) {
    let written: &[&[u8]] = match name {
        "SMOVE" | "LMOVE" | "BLMOVE" | "RPOPLPUSH" | "BRPOPLPUSH" => keys,
        "SINTERSTORE" | "SUNIONSTORE" | "SDIFFSTORE" | "ZUNIONSTORE" | "ZINTERSTORE"
        | "ZDIFFSTORE" | "ZRANGESTORE" | "GEOSEARCHSTORE" | "PFMERGE" | "BITOP" | "GEORADIUS"
        | "GEORADIUSBYMEMBER" => &keys[..1.min(keys.len())],
        _ => keys,
    };
    for k in written {
        if m.tracks(at.db, k) {
            let type_name = guess_type(name);
            m.keys.insert(
                (at.db, k.to_vec()),
                Slot {
                    shard: at.shard,
                    state: State::Unknown {
                        type_name,
                        reason: "written from other keys by a multi-key command",
                    },
                    expire_at_ms: None,
                },
            );
        }
    }
}

/// `TYPE` of a key a command creates, from the command's name.
fn guess_type(name: &str) -> &'static str {
    let set_like = name.starts_with('S') && !name.starts_with("SET");
    if name.starts_with('H') {
        "hash"
    } else if name.starts_with('L') || name.starts_with("RPUSH") || name.starts_with("RPOP") {
        "list"
    } else if set_like {
        "set"
    } else if name.starts_with('Z') || name.starts_with("GEO") {
        "zset"
    } else if name.starts_with('X') {
        "stream"
    } else {
        "string"
    }
}

/// Keeps `args` as a command to replay on `key`.
fn replay(m: &mut Model, at: At, key: &[u8], args: &[&[u8]], name: &str) {
    let dialect = if at.kevy {
        Dialect::Kevy
    } else {
        Dialect::Redis
    };
    let cmd: Vec<Vec<u8>> = args.iter().map(|a| a.to_vec()).collect();
    let db = at.db;
    match m.live(db, key, at.now_ms) {
        Some(slot) => {
            if let State::Value(_) = slot.state {
                let ttl = slot.expire_at_ms.take();
                let type_name = slot.type_name();
                let commands = slot.commands(db, key, dialect).unwrap_or_default();
                slot.state = State::Replay {
                    type_name,
                    commands,
                };
                slot.expire_at_ms = ttl;
            }
            slot.shard = at.shard;
            if let State::Replay { commands, .. } = &mut slot.state {
                commands.push(cmd);
            }
        }
        None => {
            let slot = Slot {
                shard: at.shard,
                state: State::Replay {
                    type_name: guess_type(name),
                    commands: vec![cmd],
                },
                expire_at_ms: None,
            };
            m.keys.insert((db, key.to_vec()), slot);
        }
    }
}

fn set_string(m: &mut Model, at: At, key: &[u8], v: Vec<u8>, ttl: Option<i64>) {
    if m.tracks(at.db, key) {
        let slot = Slot {
            shard: at.shard,
            state: State::Value(Value::String(v)),
            expire_at_ms: ttl,
        };
        m.keys.insert((at.db, key.to_vec()), slot);
    }
}

/// The absolute expiry an option pair gives (`EX s`, `PX ms`, `EXAT s`, `PXAT ms`).
fn expiry(opt: &str, v: &[u8], now_ms: i64) -> Option<i64> {
    let v = int(v)?;
    Some(match opt {
        "EX" => now_ms + v * 1000,
        "PX" => now_ms + v,
        "EXAT" => v * 1000,
        "PXAT" => v,
        _ => return None,
    })
}

/// Evaluates a one-key command the model knows; false when it does not (then it is replayed).
fn single(m: &mut Model, at: At, name: &str, args: &[&[u8]]) -> bool {
    let key = args[1];
    let n = args.len();
    let exists = m.live(at.db, key, at.now_ms).is_some();
    match name {
        "SET" if n >= 3 => {
            let mut ttl = None;
            let mut keep = false;
            let mut i = 3;
            while i < n {
                let o = up(args[i]);
                match o.as_str() {
                    "NX" if exists => return true,
                    "XX" if !exists => return true,
                    "KEEPTTL" => keep = true,
                    "EX" | "PX" | "EXAT" | "PXAT" => {
                        if at.kevy && (o == "EXAT" || o == "PXAT") {
                            return true; // logged although kevy 1.19 rejected it
                        }
                        ttl = args.get(i + 1).and_then(|v| expiry(&o, v, at.now_ms));
                        i += 1;
                    }
                    _ => {}
                }
                i += 1;
            }
            if keep && at.kevy {
                return true;
            }
            if keep {
                ttl = m.live(at.db, key, at.now_ms).and_then(|s| s.expire_at_ms);
            }
            set_string(m, at, key, args[2].to_vec(), ttl);
        }
        "SETNX" if n == 3 => {
            if !exists {
                set_string(m, at, key, args[2].to_vec(), None);
            }
        }
        "SETEX" | "PSETEX" if n == 4 => {
            let unit = if name == "SETEX" { "EX" } else { "PX" };
            let ttl = expiry(unit, args[2], at.now_ms);
            set_string(m, at, key, args[3].to_vec(), ttl);
        }
        "GETSET" if n == 3 => set_string(m, at, key, args[2].to_vec(), None),
        "GETDEL" => {
            m.keys.remove(&(at.db, key.to_vec()));
        }
        "EXPIRE" | "PEXPIRE" | "EXPIREAT" | "PEXPIREAT" | "GETEX" | "PERSIST" => {
            let ttl = match (name, args.get(2)) {
                ("EXPIRE", Some(v)) => expiry("EX", v, at.now_ms),
                ("PEXPIRE", Some(v)) => expiry("PX", v, at.now_ms),
                ("EXPIREAT", Some(v)) => expiry("EXAT", v, at.now_ms),
                ("PEXPIREAT", Some(v)) => expiry("PXAT", v, at.now_ms),
                ("GETEX", Some(o)) if up(o) == "PERSIST" => None,
                ("GETEX", Some(o)) => match args.get(3) {
                    Some(v) => expiry(&up(o), v, at.now_ms),
                    None => return true,
                },
                ("GETEX", None) => return true,
                _ => None,
            };
            if let Some(slot) = m.live(at.db, key, at.now_ms) {
                slot.expire_at_ms = ttl;
                slot.shard = at.shard;
            }
            // An expiry in the past deletes the key (the server logs a DEL, but not always).
            m.live(at.db, key, at.now_ms);
        }
        _ => return typed(m, at, name, args),
    }
    true
}

/// The commands on typed values; false for one the model does not evaluate.
fn typed(m: &mut Model, at: At, name: &str, args: &[&[u8]]) -> bool {
    let key = args[1];
    let rest = &args[2..];
    let creates = matches!(
        name,
        "APPEND"
            | "INCR"
            | "DECR"
            | "INCRBY"
            | "DECRBY"
            | "HSET"
            | "HMSET"
            | "HSETNX"
            | "HINCRBY"
            | "LPUSH"
            | "RPUSH"
            | "SADD"
            | "ZADD"
            | "ZINCRBY"
    );
    let empty = match name {
        "APPEND" | "INCR" | "DECR" | "INCRBY" | "DECRBY" => Value::String(Vec::new()),
        "HSET" | "HMSET" | "HSETNX" | "HINCRBY" => Value::Hash(Vec::new()),
        "LPUSH" | "RPUSH" => Value::List(Vec::new()),
        "SADD" => Value::Set(Vec::new()),
        _ => Value::ZSet(Vec::new()),
    };
    let shard = at.shard;
    let slot = match m.live(at.db, key, at.now_ms) {
        Some(s) => s,
        None if creates => {
            m.keys.insert(
                (at.db, key.to_vec()),
                Slot {
                    shard,
                    state: State::Value(empty),
                    expire_at_ms: None,
                },
            );
            match m.keys.get_mut(&(at.db, key.to_vec())) {
                Some(s) => s,
                None => return true,
            }
        }
        // A command on a missing key that does not create it changed nothing.
        None => return super::values::known(name),
    };
    slot.shard = shard;
    let State::Value(value) = &mut slot.state else {
        return false;
    };
    let ok = super::values::eval(value, name, rest);
    if ok && super::values::is_empty(value) {
        m.keys.remove(&(at.db, key.to_vec()));
    }
    ok
}
