//! What one AOF command does to the keys it names, as far as thinning cares: the rules of
//! [`super`] in one function ([`Classifier::classify`]).
//!
//! Only commands listed here can ever be left out: a command this module does not know is a
//! [`Class::Barrier`], which keeps everything before it. The lists cover the write commands
//! Redis 7 and kevy 1.19 put into their AOFs.

use xxhash_rust::xxh3::xxh3_128_with_seed;

/// A key's identity: a 128-bit digest of the key, seeded with its database, so that the same
/// name in two databases is two keys. 128 bits make a collision (which could leave out a
/// command a different key needed) negligible for any number of keys a server holds.
pub type KeyId = u128;

/// The digest of `key` in database `db`.
pub fn key_id(db: u32, key: &[u8]) -> KeyId {
    xxh3_128_with_seed(key, u64::from(db))
}

/// What a command means for thinning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// Touches no key and depends on none (`SELECT`, `MULTI`, `EXEC`, `PING`…): always sent.
    Neutral,
    /// May read or write keys it does not name (scripts, flushes, `SWAPDB`, `SORT`, `MOVE`,
    /// any unknown command): always sent, and no command before it is left out because of an
    /// overwrite after it.
    Barrier,
    /// A command whose only key is this one: left out when the key's next event (overwrite,
    /// pin, barrier) is a whole overwrite.
    Single(KeyId),
    /// Replaces each key's whole value and TTL whatever the key held (`SET` without
    /// `KEEPTTL`/`NX`/`XX`/`GET`, `DEL`, `UNLINK`, `MSET`, `RESTORE … REPLACE`); itself left
    /// out when every key it names is overwritten again later.
    Overwrite(Vec<KeyId>),
    /// A command over several keys that reads at least one of them (`RENAME`, `SMOVE`, `*STORE`…):
    /// always sent, and the writes before it to any of its keys are kept.
    Pin(Vec<KeyId>),
}

fn eq(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// Touch no key.
const NEUTRAL: &[&str] = &["MULTI", "EXEC", "DISCARD", "PING", "ECHO", "PUBLISH"];

/// Commands whose only key is the first argument and whose effect is on that key alone.
const SINGLE: &[&str] = &[
    // strings and key metadata
    "SETNX",
    "SETEX",
    "PSETEX",
    "GETSET",
    "GETDEL",
    "GETEX",
    "APPEND",
    "INCR",
    "DECR",
    "INCRBY",
    "DECRBY",
    "INCRBYFLOAT",
    "SETRANGE",
    "SETBIT",
    "BITFIELD",
    "PFADD",
    "EXPIRE",
    "PEXPIRE",
    "EXPIREAT",
    "PEXPIREAT",
    "PERSIST", // lists
    "LPUSH",
    "RPUSH",
    "LPUSHX",
    "RPUSHX",
    "LPOP",
    "RPOP",
    "LSET",
    "LINSERT",
    "LREM",
    "LTRIM",
    // sets
    "SADD",
    "SREM",
    "SPOP", // hashes
    "HSET",
    "HMSET",
    "HSETNX",
    "HDEL",
    "HINCRBY",
    "HINCRBYFLOAT",
    "HEXPIRE",
    "HPEXPIRE",
    "HEXPIREAT",
    "HPEXPIREAT",
    "HPERSIST",
    "HSETEX",
    "HGETEX",
    "HGETDEL", // sorted sets
    "ZADD",
    "ZINCRBY",
    "ZREM",
    "ZREMRANGEBYSCORE",
    "ZREMRANGEBYRANK",
    "ZREMRANGEBYLEX",
    "ZPOPMIN",
    "ZPOPMAX",
    "GEOADD", // streams
    "XADD",
    "XDEL",
    "XTRIM",
    "XSETID",
    "XACK",
    "XCLAIM",
    "XAUTOCLAIM",
];

/// Commands over several keys, every one of them named by
/// [`crate::restore::translate::key_positions`].
const PIN: &[&str] = &[
    "RENAME",
    "RENAMENX",
    "SMOVE",
    "LMOVE",
    "BLMOVE",
    "RPOPLPUSH",
    "BRPOPLPUSH",
    "ZRANGESTORE",
    "GEOSEARCHSTORE",
    "SINTERSTORE",
    "SUNIONSTORE",
    "SDIFFSTORE",
    "PFMERGE",
    "BITOP",
    "ZUNIONSTORE",
    "ZINTERSTORE",
    "ZDIFFSTORE",
    "MSETNX",
    "GEORADIUS",
    "GEORADIUSBYMEMBER",
];

/// Classifies the commands of one stream in order (it follows `SELECT`).
#[derive(Debug, Default)]
pub struct Classifier {
    db: u32,
}

impl Classifier {
    /// A stream replayed from database 0 (a Redis replay selects 0 before its stream; kevy
    /// serves only database 0).
    pub fn new() -> Self {
        Self::default()
    }

    /// The class of `args`, the next command of the stream.
    pub fn classify(&mut self, args: &[&[u8]]) -> Class {
        let Some(&name) = args.first() else {
            return Class::Neutral;
        };
        let is = |names: &[&str]| names.iter().any(|c| eq(name, c));
        let n = args.len();
        if eq(name, "SELECT") {
            return match std::str::from_utf8(args.get(1).copied().unwrap_or(b"")).map(str::trim) {
                Ok(t) if n == 2 => match t.parse() {
                    Ok(db) => {
                        self.db = db;
                        Class::Neutral
                    }
                    // A SELECT the server refuses leaves the database as it was.
                    Err(_) => Class::Barrier,
                },
                _ => Class::Barrier,
            };
        }
        if is(NEUTRAL) {
            return Class::Neutral;
        }
        let id = |i: usize| key_id(self.db, args[i]);
        if eq(name, "SET") && n >= 3 {
            return if set_replaces(&args[3..]) {
                Class::Overwrite(vec![id(1)])
            } else {
                Class::Single(id(1))
            };
        }
        if (eq(name, "DEL") || eq(name, "UNLINK")) && n >= 2 {
            return Class::Overwrite((1..n).map(id).collect());
        }
        if eq(name, "MSET") && n >= 3 && n % 2 == 1 {
            return Class::Overwrite((1..n).step_by(2).map(id).collect());
        }
        if eq(name, "RESTORE") && n >= 4 {
            return if args[4..].iter().any(|a| eq(a, "REPLACE")) {
                Class::Overwrite(vec![id(1)])
            } else {
                Class::Single(id(1))
            };
        }
        if is(SINGLE) && n >= 2 {
            return Class::Single(id(1));
        }
        if eq(name, "XGROUP") && n >= 3 {
            return Class::Single(id(2));
        }
        if eq(name, "COPY") && n >= 3 {
            // `COPY … DB n` writes into another database: rare enough to stop at.
            return if args[3..].iter().any(|a| eq(a, "DB")) {
                Class::Barrier
            } else {
                Class::Pin(vec![id(1), id(2)])
            };
        }
        if is(PIN) {
            let keys = crate::restore::translate::key_positions(args);
            if !keys.is_empty() {
                return Class::Pin(keys.into_iter().map(id).collect());
            }
        }
        Class::Barrier
    }
}

/// Whether `SET key value <options>` replaces the key whatever it held: only the expiry
/// options are allowed (`KEEPTTL`, `NX`, `XX`, `GET`, `IFEQ`… depend on the old key or fail on
/// a wrong type; an unknown option is taken to depend on it too).
fn set_replaces(options: &[&[u8]]) -> bool {
    let mut i = 0;
    while i < options.len() {
        let o = options[i];
        if ["EX", "PX", "EXAT", "PXAT"].iter().any(|x| eq(o, x)) {
            i += 2;
        } else {
            return false;
        }
    }
    i == options.len()
}
