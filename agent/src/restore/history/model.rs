//! The keyspace of the matching keys at one moment, built by replaying a restore plan's base and
//! commands in process — no scratch server. Only keys that match the patterns are held, so
//! memory is bounded by the matching keys' values (all keys when no pattern is given).
//!
//! A key's state is one of:
//! - [`State::Value`]: its typed value, for the commands the model evaluates ([`super::apply`]);
//! - [`State::Replay`]: the commands that recreate it, for the write commands of one key the
//!   model does not evaluate (streams, `SETRANGE`, `PFADD`, …): replayed in order into an empty
//!   key they rebuild it exactly, and two equal lists mean equal states;
//! - [`State::Unknown`]: a command wrote it from a key outside the patterns (`RENAME other:1
//!   user:1`, `SUNIONSTORE user:s other:a`): its value cannot be known from the matching keys
//!   alone. `diff` reports it as changed, a selective restore leaves it out and says so.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use aofvault_formats::model::{Bytes, Entry, Value};
use aofvault_formats::render::{self, Dialect};

use super::glob::Patterns;

/// One command: its arguments, name first.
pub type Command = Vec<Vec<u8>>;

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Value(Value),
    Replay {
        /// `TYPE`'s answer, guessed from the command that created it.
        type_name: &'static str,
        commands: Vec<Command>,
    },
    Unknown {
        type_name: &'static str,
        reason: &'static str,
    },
}

/// One key's state, the shard whose stream wrote it last, and its absolute expiry.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub shard: u32,
    pub state: State,
    pub expire_at_ms: Option<i64>,
}

impl Slot {
    pub fn type_name(&self) -> &'static str {
        match &self.state {
            State::Value(v) => v.type_name(),
            State::Replay { type_name, .. } | State::Unknown { type_name, .. } => type_name,
        }
    }

    /// A digest of the value alone (not the TTL): collections whose order carries no meaning
    /// (sets, hashes, sorted sets) are compared as sorted.
    pub fn value_digest(&self) -> u64 {
        let mut h = DefaultHasher::new();
        match &self.state {
            State::Value(v) => digest_value(v, &mut h),
            State::Replay { commands, .. } => {
                1u8.hash(&mut h);
                commands.hash(&mut h);
            }
            State::Unknown { .. } => {
                // Never equal to anything: an unknown value is reported as changed.
                2u8.hash(&mut h);
                rand::random::<u64>().hash(&mut h);
            }
        }
        h.finish()
    }

    /// The commands that recreate the key (value then TTL) in a server of `dialect`; `None`
    /// for an unknown value. Replayed commands are the source's: the caller translates them.
    pub fn commands(&self, db: u32, key: &[u8], dialect: Dialect) -> Option<Vec<Command>> {
        match &self.state {
            State::Value(v) => Some(render::entry_commands(
                &Entry {
                    db,
                    key: key.to_vec(),
                    value: v.clone(),
                    expire_at_ms: self.expire_at_ms,
                },
                dialect,
            )),
            State::Replay { commands, .. } => {
                let mut out = commands.clone();
                if let Some(ms) = self.expire_at_ms {
                    out.push(vec![
                        b"PEXPIREAT".to_vec(),
                        key.to_vec(),
                        ms.to_string().into_bytes(),
                    ]);
                }
                Some(out)
            }
            State::Unknown { .. } => None,
        }
    }
}

fn digest_value(v: &Value, h: &mut DefaultHasher) {
    v.type_name().hash(h);
    match v {
        Value::String(s) => s.hash(h),
        Value::List(items) => items.hash(h),
        Value::Set(members) => {
            let mut m: Vec<&Bytes> = members.iter().collect();
            m.sort();
            m.hash(h);
        }
        Value::ZSet(pairs) => {
            let mut m: Vec<(&Bytes, u64)> = pairs.iter().map(|(m, s)| (m, s.to_bits())).collect();
            m.sort();
            m.hash(h);
        }
        Value::Hash(fields) => {
            let mut f: Vec<(&Bytes, &Bytes)> =
                fields.iter().map(|f| (&f.field, &f.value)).collect();
            f.sort();
            f.hash(h);
        }
        Value::Stream(s) => format!("{s:?}").hash(h),
    }
}

/// (database, key).
pub type KeyId = (u32, Bytes);

/// The matching keys of a keyspace.
#[derive(Debug, Default)]
pub struct Model {
    patterns: Patterns,
    /// Only this database (`--db`), or all.
    db: Option<u32>,
    pub keys: HashMap<KeyId, Slot>,
}

impl Model {
    pub fn new(patterns: Patterns, db: Option<u32>) -> Model {
        Model {
            patterns,
            db,
            keys: HashMap::new(),
        }
    }

    /// Does the model hold this key when it exists?
    pub fn tracks(&self, db: u32, key: &[u8]) -> bool {
        self.db.is_none_or(|d| d == db) && self.patterns.matches(key)
    }

    /// A key as a snapshot (base) holds it: replaces what was there.
    pub fn put_entry(&mut self, shard: u32, entry: Entry) {
        if !self.tracks(entry.db, &entry.key) {
            return;
        }
        let slot = Slot {
            shard,
            state: State::Value(entry.value),
            expire_at_ms: entry.expire_at_ms,
        };
        self.keys.insert((entry.db, entry.key), slot);
    }

    /// The live slot of a key at `now_ms` (an expired key is removed first, as the server does
    /// on access).
    pub fn live(&mut self, db: u32, key: &[u8], now_ms: i64) -> Option<&mut Slot> {
        let id = (db, key.to_vec());
        if self
            .keys
            .get(&id)
            .is_some_and(|s| s.expire_at_ms.is_some_and(|e| e <= now_ms))
        {
            self.keys.remove(&id);
        }
        self.keys.get_mut(&id)
    }

    /// `FLUSHALL` (`db` None) or `FLUSHDB` written by `shard`'s stream; `per_shard` for kevy,
    /// whose flush empties its own shard only.
    pub fn flush(&mut self, shard: u32, db: Option<u32>, per_shard: bool) {
        self.keys
            .retain(|(d, _), s| !(db.is_none_or(|x| x == *d) && (!per_shard || s.shard == shard)));
    }

    /// `SWAPDB a b`.
    pub fn swap_db(&mut self, a: u32, b: u32) {
        let keys = std::mem::take(&mut self.keys);
        for ((d, k), s) in keys {
            let d = if d == a {
                b
            } else if d == b {
                a
            } else {
                d
            };
            if self.tracks(d, &k) {
                self.keys.insert((d, k), s);
            }
        }
    }

    /// The keys alive at `moment_ms`, sorted by (db, key).
    pub fn into_sorted(self, moment_ms: i64) -> Vec<(KeyId, Slot)> {
        let mut out: Vec<(KeyId, Slot)> = self
            .keys
            .into_iter()
            .filter(|(_, s)| s.expire_at_ms.is_none_or(|e| e > moment_ms))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}
