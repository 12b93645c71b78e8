//! Hash field TTLs (Redis 7.4/8.0 hash field expiration) restored into a server that cannot
//! hold them — Redis ≤ 7.2, Valkey ≤ 8.1, kevy — or that lacks `HSETEX` (Redis 7.4).
//!
//! What Redis 8.0 writes (read in its `t_hash.c`): `HEXPIRE`/`HPEXPIRE`/`HEXPIREAT` as
//! `HPEXPIREAT key <abs ms> [NX|XX|GT|LT] FIELDS n f…` (only the fields it changed; a time in
//! the past as `HDEL`), `HPERSIST` as it is, `HSETEX` with `EX`/`PX`/`EXAT` as `HSETEX … PXAT
//! <abs ms> …`, `HGETEX` as `HPEXPIREAT`/`HPERSIST`, `HGETDEL` and every field expiry as `HDEL`.
//! An RDB base renders field TTLs as `HPEXPIREAT` too (`aofvault_formats::render`).
//!
//! For a target without field TTLs ([`Support::None`]) each is translated exactly where it can
//! be, and otherwise reported — never sent (the target would answer `ERR unknown command`) and
//! never dropped silently:
//!
//! | command | sent instead |
//! |---|---|
//! | `HPEXPIREAT k ms … FIELDS n f…`, `ms` already past | `HDEL k f…` (what the TTL does at once) |
//! | `HPEXPIREAT`, `ms` in the future; `HEXPIRE`/`HPEXPIRE` (relative) | nothing; each field is *lost* |
//! | `HPERSIST k FIELDS n f…` | nothing; the fields are no longer lost |
//! | `HSETEX k [FNX\|FXX] [PXAT ms\|…\|KEEPTTL] FIELDS n f v…` | `HSET k f v…` (+ `HDEL` for a past `ms`; the condition held when the source logged it); a future TTL is lost |
//! | `HGETDEL k FIELDS n f…` | `HDEL k f…` |
//! | `HGETEX k [PXAT ms\|PERSIST…] FIELDS n f…` | as `HPEXPIREAT` / `HPERSIST` |
//!
//! A lost field stops being lost when later commands remove its TTL on the source too: `HSET`/
//! `HMSET`/`HSETEX` without `KEEPTTL` of the field (an overwrite clears a field's TTL), `HDEL`,
//! `HPERSIST`, `DEL`/`UNLINK`/a `SET` of the key, `FLUSHALL`/`FLUSHDB`; `RENAME`/`MOVE`/`SWAPDB`
//! move it, `COPY` copies it. What is left at the end is reported, key and field named ([`LostFieldTtl`]).
//!
//! For a target with field TTLs but no `HSETEX` ([`Support::NoHsetex`], Redis 7.4): `HSETEX` →
//! `HSET` + `HPEXPIREAT`, `HGETEX` → `HPEXPIREAT`/`HPERSIST`, `HGETDEL` → `HDEL` (exact).

use std::collections::BTreeMap;

use super::Command;

/// What the target holds of hash field expiration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Everything: commands pass unchanged.
    Full,
    /// Field TTLs, but not `HSETEX`/`HGETEX`/`HGETDEL` (Redis 7.4).
    NoHsetex,
    /// No field TTLs at all.
    None,
}

impl Support {
    pub fn of(target: &super::target::TargetServer) -> Self {
        match (target.hash_field_ttl(), target.hsetex()) {
            (true, true) => Support::Full,
            (true, false) => Support::NoHsetex,
            (false, _) => Support::None,
        }
    }
}

/// A field whose TTL the target could not hold: it lives there without one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LostFieldTtl {
    pub db: u32,
    /// Key and field as text (non-UTF-8 bytes escaped).
    pub key: String,
    pub field: String,
    /// When the field expires on the source (unix ms); `None` for a relative TTL.
    pub expire_at_ms: Option<i64>,
}

mod parse;

use parse::{eq, num, parse, Op, Ttl};

fn cmd(name: &str, key: &[u8], rest: impl IntoIterator<Item = Vec<u8>>) -> Command {
    let mut c = vec![name.as_bytes().to_vec(), key.to_vec()];
    c.extend(rest);
    c
}

fn fields_args(fields: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut v = vec![b"FIELDS".to_vec(), fields.len().to_string().into_bytes()];
    v.extend(fields.iter().map(|f| f.to_vec()));
    v
}

/// A key's lost fields: field → its expiry on the source (`None`: relative).
type LostFields = BTreeMap<Vec<u8>, Option<i64>>;

/// The translation state of one replay: the current database and the fields lost so far.
#[derive(Debug)]
pub struct FieldTtls {
    support: Support,
    now_ms: i64,
    db: u32,
    /// (db, key) → field → its expiry on the source.
    lost: BTreeMap<(u32, Vec<u8>), LostFields>,
}

impl FieldTtls {
    /// `None` when the target holds everything (nothing to translate).
    pub fn new(support: Support, now_ms: i64) -> Option<Self> {
        (support != Support::Full).then(|| Self {
            support,
            now_ms,
            db: 0,
            lost: BTreeMap::new(),
        })
    }

    /// The replay switched to database `db` (a base's keys, or `SELECT`).
    pub fn select(&mut self, db: u32) {
        self.db = db;
    }

    /// The commands to send for `args` when they differ from `args` itself (`None`: send it
    /// unchanged). Also follows the commands that end a lost field's TTL on the source.
    pub fn command(&mut self, args: &[&[u8]]) -> Option<Vec<Command>> {
        let Some(op) = parse(args) else {
            self.follow(args);
            return None;
        };
        match self.support {
            Support::Full => None,
            Support::NoHsetex => self.no_hsetex(op),
            Support::None => Some(self.no_field_ttl(op)),
        }
    }

    /// Redis 7.4: field TTLs, but no `HSETEX`/`HGETEX`/`HGETDEL`.
    fn no_hsetex(&mut self, op: Op<'_>) -> Option<Vec<Command>> {
        let expire = |ttl: Ttl, key: &[u8], fields: &[&[u8]]| -> Option<Command> {
            match ttl {
                Ttl::At(ms) => Some(cmd("HPEXPIREAT", key, [ms.to_string().into_bytes()])),
                Ttl::In(ms) => Some(cmd("HPEXPIRE", key, [ms.to_string().into_bytes()])),
                Ttl::Persist => Some(cmd("HPERSIST", key, [])),
                Ttl::Clear | Ttl::Keep => None,
            }
            .map(|mut c| {
                c.extend(fields_args(fields));
                c
            })
        };
        match op.name {
            "HSETEX" => {
                let mut set = cmd("HSET", op.key, []);
                for (f, v) in op.fields.iter().zip(&op.values) {
                    set.extend([f.to_vec(), v.to_vec()]);
                }
                if op.ttl == Ttl::Keep {
                    // An HSET clears the TTL KEEPTTL kept: this one is lost.
                    self.lose(op.key, &op.fields, None);
                }
                let mut out = vec![set];
                out.extend(expire(op.ttl, op.key, &op.fields));
                Some(out)
            }
            "HGETEX" => Some(expire(op.ttl, op.key, &op.fields).into_iter().collect()),
            "HGETDEL" => Some(vec![cmd(
                "HDEL",
                op.key,
                op.fields.iter().map(|f| f.to_vec()),
            )]),
            _ => None,
        }
    }

    /// No field TTLs: see the table in the module doc.
    fn no_field_ttl(&mut self, op: Op<'_>) -> Vec<Command> {
        let hdel =
            |key: &[u8], fields: &[&[u8]]| cmd("HDEL", key, fields.iter().map(|f| f.to_vec()));
        let mut out = Vec::new();
        if op.name == "HSETEX" {
            let mut set = cmd("HSET", op.key, []);
            for (f, v) in op.fields.iter().zip(&op.values) {
                set.extend([f.to_vec(), v.to_vec()]);
            }
            out.push(set);
        }
        if op.name == "HGETDEL" {
            self.clear(op.key, &op.fields);
            out.push(hdel(op.key, &op.fields));
            return out;
        }
        match op.ttl {
            Ttl::At(ms) if ms <= self.now_ms => {
                self.clear(op.key, &op.fields);
                out.push(hdel(op.key, &op.fields));
            }
            Ttl::At(ms) => self.lose(op.key, &op.fields, Some(ms)),
            Ttl::In(_) => self.lose(op.key, &op.fields, None),
            Ttl::Persist | Ttl::Clear => self.clear(op.key, &op.fields),
            Ttl::Keep => {}
        }
        out
    }

    fn lose(&mut self, key: &[u8], fields: &[&[u8]], at: Option<i64>) {
        let entry = self.lost.entry((self.db, key.to_vec())).or_default();
        for f in fields {
            entry.insert(f.to_vec(), at);
        }
    }

    fn clear(&mut self, key: &[u8], fields: &[&[u8]]) {
        let k = (self.db, key.to_vec());
        if let Some(entry) = self.lost.get_mut(&k) {
            for f in fields {
                entry.remove(*f);
            }
            if entry.is_empty() {
                self.lost.remove(&k);
            }
        }
    }

    /// Commands that end or move lost TTLs on the source (see the module doc).
    fn follow(&mut self, args: &[&[u8]]) {
        let Some(name) = args.first() else { return };
        if eq(name, "SELECT") {
            if let Some(db) = args.get(1).and_then(|d| num(d)) {
                self.db = u32::try_from(db).unwrap_or(0);
            }
            return;
        }
        if self.lost.is_empty() {
            return;
        }
        let db = self.db;
        if (eq(name, "HSET") || eq(name, "HMSET")) && args.len() >= 4 {
            let fields: Vec<&[u8]> = args[2..].iter().step_by(2).copied().collect();
            self.clear(args[1], &fields);
        } else if eq(name, "HDEL") && args.len() >= 3 {
            self.clear(args[1], &args[2..]);
        } else if eq(name, "DEL") || eq(name, "UNLINK") {
            for k in &args[1..] {
                self.lost.remove(&(db, k.to_vec()));
            }
        } else if eq(name, "SET") || eq(name, "SETEX") || eq(name, "PSETEX") || eq(name, "GETSET") {
            if let Some(k) = args.get(1) {
                self.lost.remove(&(db, k.to_vec()));
            }
        } else if eq(name, "FLUSHALL") {
            self.lost.clear();
        } else if eq(name, "FLUSHDB") {
            self.lost.retain(|(d, _), _| *d != db);
        } else if (eq(name, "RENAME") || eq(name, "RENAMENX")) && args.len() == 3 {
            self.move_key((db, args[1].to_vec()), (db, args[2].to_vec()));
        } else if eq(name, "MOVE") && args.len() == 3 {
            if let Some(to) = num(args[2]).and_then(|d| u32::try_from(d).ok()) {
                self.move_key((db, args[1].to_vec()), (to, args[1].to_vec()));
            }
        } else if eq(name, "COPY") && args.len() >= 3 {
            // `COPY src dst [DB n] [REPLACE]`: the copy carries the field TTLs.
            let to_db = args
                .iter()
                .position(|a| eq(a, "DB"))
                .and_then(|i| args.get(i + 1))
                .and_then(|d| num(d))
                .and_then(|d| u32::try_from(d).ok())
                .unwrap_or(db);
            let to = (to_db, args[2].to_vec());
            self.lost.remove(&to);
            if let Some(v) = self.lost.get(&(db, args[1].to_vec())).cloned() {
                self.lost.insert(to, v);
            }
        } else if eq(name, "SWAPDB") && args.len() == 3 {
            if let (Some(a), Some(b)) = (num(args[1]), num(args[2])) {
                let (a, b) = (a as u32, b as u32);
                let old = std::mem::take(&mut self.lost);
                for ((d, k), v) in old {
                    let d = if d == a {
                        b
                    } else if d == b {
                        a
                    } else {
                        d
                    };
                    self.lost.insert((d, k), v);
                }
            }
        }
    }

    fn move_key(&mut self, from: (u32, Vec<u8>), to: (u32, Vec<u8>)) {
        self.lost.remove(&to);
        if let Some(v) = self.lost.remove(&from) {
            self.lost.insert(to, v);
        }
    }

    /// The fields still lost at the end of the replay.
    pub fn finish(self) -> Vec<LostFieldTtl> {
        let text = |b: &[u8]| String::from_utf8_lossy(b).escape_debug().to_string();
        let mut out = Vec::new();
        for ((db, key), fields) in self.lost {
            for (field, at) in fields {
                out.push(LostFieldTtl {
                    db,
                    key: text(&key),
                    field: text(&field),
                    expire_at_ms: at,
                });
            }
        }
        out
    }
}

/// Lines [`warn`] prints at most (the rest is counted; `--json` lists up to 1000).
const WARN_LINES: usize = 100;

/// Prints one warning per lost field TTL (key and field named), then the count: on stderr and
/// in the log.
pub fn warn(lost: &[LostFieldTtl], total: u64) {
    if total == 0 {
        return;
    }
    for l in lost.iter().take(WARN_LINES) {
        let when = l
            .expire_at_ms
            .map(aofvault_formats::json::rfc3339_ms)
            .unwrap_or_else(|| "a relative time".into());
        tracing::warn!(db = l.db, key = %l.key, field = %l.field, "hash field TTL lost: the target has no hash field expiration");
        eprintln!(
            "aofvault: warning: hash field TTL lost: db{} key \"{}\" field \"{}\" (expires on the source at {when}); the target keeps the field without a TTL",
            l.db, l.key, l.field
        );
    }
    if total as usize > WARN_LINES {
        eprintln!(
            "aofvault: warning: … and {} more hash field TTLs lost",
            total as usize - WARN_LINES.min(lost.len())
        );
    }
    eprintln!(
        "aofvault: warning: {total} hash field TTL(s) lost: the target has no hash field expiration (Redis < 7.4, Valkey < 9, kevy)"
    );
}

#[cfg(test)]
mod tests;
