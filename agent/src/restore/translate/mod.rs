//! Commands of one server kind rewritten for the other, and routed to a kevy shard.
//!
//! A restore across kinds replays the source's AOF commands into a server of the other kind.
//! Most commands mean the same thing in both; this table lists the ones that do not, and what a
//! restore sends instead. It is one function on purpose ([`translate`]), plus the one rewrite
//! that needs the whole stream first, `RENAME` ([`renames`]). docs/COMPATIBILITY.md says
//! why each row exists and what no restore can recover.
//!
//! | from → to | command | sent instead | why |
//! |---|---|---|---|
//! | Redis → kevy | `SELECT 0` | nothing | kevy serves DB 0 only |
//! | Redis → kevy | `SELECT n`, n ≠ 0 | error naming the db | kevy has no other database |
//! | Redis → kevy | `MULTI`, `EXEC` | nothing (the body is replayed in order) | per-shard AOFs cannot hold a cross-shard transaction; the end state is the same |
//! | Redis → kevy | `SET k v … PXAT ms` / `EXAT s` | `SET k v [NX\|XX]` + `PEXPIREAT k ms` / `EXPIREAT k s` | kevy 1.19 answers a syntax error to PXAT/EXAT, and Redis writes every `SET … EX` as `PXAT` |
//! | Redis → kevy | `SET k v … KEEPTTL` | `SET k v [NX\|XX]`, counted as a lost TTL | kevy has no way to overwrite a value and keep its TTL; Redis writes `INCRBYFLOAT` this way. The restore warns with the count |
//! | Redis → kevy | `HMSET` | `HSET` | kevy has no HMSET (same meaning) |
//! | any → kevy | `MSET`/`MSETNX k v …` | one `SET k v` per pair | kevy's start-up replay answers every `MSET` with an arity error (MSET is served by its runtime, not its store), so an `MSET` in a kevy file is lost at load; and keys of one command may live in different shards (an `MSETNX` in an AOF did set every key) |
//! | any → kevy | `DEL`/`UNLINK k …` | one `DEL` per key | keys may live in different shards; kevy has no `UNLINK` (same effect) |
//! | any → kevy | `RENAME`/`RENAMENX src dst` | nothing: every command on `src` before it is written for `dst`, the overwritten `dst` under a private name deleted there ([`renames`]) | kevy's replay has no `RENAME` (same-shard renames are logged, then dropped at load), and a cross-shard rename cannot be written into per-shard files |
//! | Redis → kevy | a command kevy 1.19 does not serve (`LMOVE`, `LPUSHX`, `ZPOPMIN`, `SETRANGE`, `PFADD`, `SINTERSTORE`…, see [`kevy_commands`]) | nothing, counted as lossy | kevy would answer "unknown command" (live) or drop it at its replay (files): the restore says how many it could not apply |
//! | kevy → Redis | `SET … PXAT`/`EXAT`/`KEEPTTL` | nothing | kevy 1.19 logs these although it rejected them with a syntax error: they never took effect, but Redis would apply them |
//! | kevy → Redis | `SPOP k [n]` | unchanged, counted as lossy | kevy logs the command, not the members it popped; Redis pops members of its own choosing. The members cannot be known from the bytes |
//! | any | anything else | unchanged | |
//!
//! Hash field TTLs (Redis 7.4/8.0) into a server without them are translated first, by
//! [`field_ttl`], which knows the target's version ([`target`]): exactly where a command can be
//! expressed, else each lost field TTL is reported by key and field.
//!
//! `FLUSHALL`/`FLUSHDB` pass through; in a kevy AOF they concern one shard only, which the
//! caller handles (see `feed`), and [`route`] sends them to every shard of a kevy target.

use std::fmt;

pub mod field_ttl;
pub mod kevy_commands;
pub mod key_positions;
pub mod renames;
pub mod target;

pub use key_positions::key_positions;

/// One command: its arguments, name first.
pub type Command = Vec<Vec<u8>>;

/// A server kind, for translation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Redis,
    Kevy,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Redis => "redis",
            Kind::Kevy => "kevy",
        })
    }
}

/// The commands to send for one source command.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Translation {
    pub commands: Vec<Command>,
    /// The target cannot express part of the command (a TTL is lost); the caller counts these.
    pub lossy: Option<&'static str>,
}

/// A command that cannot be replayed into the target at all.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TranslateError {
    #[error("`SELECT {db}`: kevy serves database 0 only; this backup has data in database {db}")]
    OtherDatabase { db: String },
    #[error("`{command}` touches keys of different kevy shards ({shards:?}); it cannot be written into per-shard files")]
    CrossShard { command: String, shards: Vec<u32> },
    #[error("`{command}` names no key, so it cannot be routed to a kevy shard")]
    NoKey { command: String },
}

fn eq(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

fn owned(args: &[&[u8]]) -> Command {
    args.iter().map(|a| a.to_vec()).collect()
}

fn unchanged(args: &[&[u8]]) -> Translation {
    Translation {
        commands: vec![owned(args)],
        lossy: None,
    }
}

/// The commands that do in `to` what `args` did in `from` (see the table in the module doc).
pub fn translate(args: &[&[u8]], from: Kind, to: Kind) -> Result<Translation, TranslateError> {
    let Some(name) = args.first() else {
        return Ok(Translation::default());
    };
    match (from, to) {
        (Kind::Redis, Kind::Kevy) => redis_to_kevy(name, args),
        (Kind::Kevy, Kind::Redis) => Ok(kevy_to_redis(name, args)),
        (Kind::Kevy, Kind::Kevy) => {
            Ok(split_multi_key(name, args).unwrap_or_else(|| unchanged(args)))
        }
        (Kind::Redis, Kind::Redis) => Ok(unchanged(args)),
    }
}

/// True when [`translate`] would return `name`'s command unchanged, so that a caller can skip
/// the copy (the fast path of a same-kind replay).
pub fn passes_unchanged(name: &[u8], from: Kind, to: Kind) -> bool {
    let is = |names: &[&str]| names.iter().any(|n| eq(name, n));
    match (from, to) {
        (Kind::Redis, Kind::Redis) => true,
        (Kind::Kevy, Kind::Kevy) => !is(&["MSET", "MSETNX", "DEL", "UNLINK"]),
        (Kind::Kevy, Kind::Redis) => !is(&["SET", "SPOP"]),
        (Kind::Redis, Kind::Kevy) => {
            kevy_commands::serves(name) && !is(&["SELECT", "MULTI", "EXEC", "SET", "MSET", "DEL"])
        }
    }
}

/// `MSET`/`MSETNX`/`DEL`/`UNLINK` with several keys, as one command per key (a kevy target
/// routes keys one by one).
fn split_multi_key(name: &[u8], args: &[&[u8]]) -> Option<Translation> {
    if (eq(name, "MSET") || eq(name, "MSETNX")) && args.len() >= 3 {
        let commands = args[1..].chunks(2).map(|kv| {
            let mut cmd = vec![b"SET".to_vec()];
            cmd.extend(kv.iter().map(|a| a.to_vec()));
            cmd
        });
        return Some(Translation {
            commands: commands.collect(),
            lossy: None,
        });
    }
    if (eq(name, "DEL") && args.len() > 2) || eq(name, "UNLINK") {
        let commands = args[1..].iter().map(|k| vec![b"DEL".to_vec(), k.to_vec()]);
        return Some(Translation {
            commands: commands.collect(),
            lossy: None,
        });
    }
    None
}

fn redis_to_kevy(name: &[u8], args: &[&[u8]]) -> Result<Translation, TranslateError> {
    if eq(name, "SELECT") {
        let db = args
            .get(1)
            .map(|d| String::from_utf8_lossy(d).into_owned())
            .unwrap_or_default();
        return if db.trim() == "0" {
            Ok(Translation::default())
        } else {
            Err(TranslateError::OtherDatabase { db })
        };
    }
    if eq(name, "MULTI") || eq(name, "EXEC") {
        return Ok(Translation::default());
    }
    if eq(name, "SET") && args.len() > 3 {
        return Ok(set_for_kevy(args));
    }
    if eq(name, "HMSET") {
        let mut cmd = owned(args);
        cmd[0] = b"HSET".to_vec();
        return Ok(Translation {
            commands: vec![cmd],
            lossy: None,
        });
    }
    if let Some(split) = split_multi_key(name, args) {
        return Ok(split);
    }
    if !kevy_commands::serves(name) {
        return Ok(Translation {
            commands: Vec::new(),
            lossy: Some(NOT_SERVED_BY_KEVY),
        });
    }
    Ok(unchanged(args))
}

/// Why a Redis command was left out of a kevy restore (see the table).
pub const NOT_SERVED_BY_KEVY: &str =
    "commands kevy 1.19 does not serve (LMOVE, LPUSHX, ZPOPMIN, SETRANGE, PFADD, …) were left out";

/// `SET k v [options]` with the options kevy rejects turned into a separate expiry command.
fn set_for_kevy(args: &[&[u8]]) -> Translation {
    let mut set = owned(&args[..3]);
    let mut expire: Option<Command> = None;
    let mut lossy = None;
    let mut i = 3;
    while i < args.len() {
        let opt = args[i];
        let value = args.get(i + 1).map(|v| v.to_vec());
        if eq(opt, "PXAT") || eq(opt, "EXAT") {
            let cmd: &[u8] = if eq(opt, "PXAT") {
                b"PEXPIREAT"
            } else {
                b"EXPIREAT"
            };
            expire = Some(vec![
                cmd.to_vec(),
                args[1].to_vec(),
                value.unwrap_or_default(),
            ]);
            i += 2;
        } else if eq(opt, "EX") || eq(opt, "PX") {
            set.push(opt.to_vec());
            set.push(value.unwrap_or_default());
            i += 2;
        } else if eq(opt, "KEEPTTL") {
            lossy = Some("SET … KEEPTTL: kevy cannot keep the TTL of an overwritten value; the key lost its TTL");
            i += 1;
        } else if eq(opt, "GET") {
            i += 1;
        } else {
            set.push(opt.to_vec());
            i += 1;
        }
    }
    let mut commands = vec![set];
    commands.extend(expire);
    Translation { commands, lossy }
}

/// Why a kevy `SPOP` replayed into Redis may differ (see the table).
pub const SPOP_LOSSY: &str = "SPOP from a kevy AOF: kevy logs the command, not the members it popped, so Redis pops members of its own choosing";

fn kevy_to_redis(name: &[u8], args: &[&[u8]]) -> Translation {
    if eq(name, "SPOP") {
        return Translation {
            commands: vec![owned(args)],
            lossy: Some(SPOP_LOSSY),
        };
    }
    if eq(name, "SET")
        && args
            .iter()
            .skip(3)
            .any(|a| eq(a, "PXAT") || eq(a, "EXAT") || eq(a, "KEEPTTL"))
    {
        return Translation::default();
    }
    unchanged(args)
}

/// Where a command goes in a kevy target of `shards` shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Shard(u32),
    /// Every shard (`FLUSHALL`, `FLUSHDB`).
    All,
}

/// The shard of a kevy target a (translated) command belongs to.
pub fn route(
    args: &[&[u8]],
    shards: u32,
    routing: aofvault_formats::kevy::Routing,
) -> Result<Route, TranslateError> {
    let Some(name) = args.first() else {
        return Ok(Route::Shard(0));
    };
    if eq(name, "FLUSHALL") || eq(name, "FLUSHDB") {
        return Ok(Route::All);
    }
    let positions = key_positions(args);
    let mut found: Vec<u32> = positions
        .iter()
        .filter_map(|&i| args.get(i))
        .map(|k| aofvault_formats::kevy::shard_for_key(k, shards, routing))
        .collect();
    found.sort_unstable();
    found.dedup();
    match found.as_slice() {
        [] => Err(TranslateError::NoKey {
            command: label(args),
        }),
        [one] => Ok(Route::Shard(*one)),
        _ => Err(TranslateError::CrossShard {
            command: label(args),
            shards: found,
        }),
    }
}

/// A short printable form of a command for messages: its name and first key.
pub fn label(args: &[&[u8]]) -> String {
    let mut s = String::new();
    for (i, a) in args.iter().take(2).enumerate() {
        if i > 0 {
            s.push(' ');
        }
        let text = String::from_utf8_lossy(&a[..a.len().min(64)]);
        s.push_str(&text.escape_debug().to_string());
        if a.len() > 64 {
            s.push('…');
        }
    }
    if args.len() > 2 {
        s.push_str(" …");
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use aofvault_formats::kevy::Routing;

    fn t(args: &[&str], from: Kind, to: Kind) -> Result<Translation, TranslateError> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        translate(&args, from, to)
    }

    fn cmds(tr: &Translation) -> Vec<String> {
        tr.commands
            .iter()
            .map(|c| {
                c.iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    #[test]
    fn set_pxat_becomes_set_and_pexpireat_for_kevy() {
        let tr = t(
            &["set", "k", "v", "PXAT", "1795720592000"],
            Kind::Redis,
            Kind::Kevy,
        )
        .unwrap();
        assert_eq!(cmds(&tr), vec!["set k v", "PEXPIREAT k 1795720592000"]);
        let tr = t(
            &["SET", "k", "v", "NX", "exat", "17"],
            Kind::Redis,
            Kind::Kevy,
        )
        .unwrap();
        assert_eq!(cmds(&tr), vec!["SET k v NX", "EXPIREAT k 17"]);
        let tr = t(&["SET", "k", "v", "KEEPTTL"], Kind::Redis, Kind::Kevy).unwrap();
        assert_eq!(cmds(&tr), vec!["SET k v"]);
        assert!(tr.lossy.is_some());
        // Same kind: untouched.
        let tr = t(&["SET", "k", "v", "PXAT", "5"], Kind::Redis, Kind::Redis).unwrap();
        assert_eq!(cmds(&tr), vec!["SET k v PXAT 5"]);
    }

    #[test]
    fn select_and_transactions_for_kevy() {
        assert!(t(&["SELECT", "0"], Kind::Redis, Kind::Kevy)
            .unwrap()
            .commands
            .is_empty());
        assert!(t(&["MULTI"], Kind::Redis, Kind::Kevy)
            .unwrap()
            .commands
            .is_empty());
        let err = t(&["SELECT", "3"], Kind::Redis, Kind::Kevy).unwrap_err();
        assert!(err.to_string().contains("database 3"), "{err}");
    }

    #[test]
    fn multi_key_commands_are_split() {
        let tr = t(&["MSET", "a", "1", "b", "2"], Kind::Redis, Kind::Kevy).unwrap();
        assert_eq!(cmds(&tr), vec!["SET a 1", "SET b 2"]);
        let tr = t(&["DEL", "a", "b", "c"], Kind::Redis, Kind::Kevy).unwrap();
        assert_eq!(cmds(&tr), vec!["DEL a", "DEL b", "DEL c"]);
        let tr = t(&["UNLINK", "a", "b"], Kind::Redis, Kind::Kevy).unwrap();
        assert_eq!(cmds(&tr), vec!["DEL a", "DEL b"]);
        let tr = t(&["unlink", "a"], Kind::Redis, Kind::Kevy).unwrap();
        assert_eq!(cmds(&tr), vec!["DEL a"]);
        let tr = t(
            &["LMOVE", "a", "b", "LEFT", "RIGHT"],
            Kind::Redis,
            Kind::Kevy,
        )
        .unwrap();
        assert!(tr.commands.is_empty());
        assert_eq!(tr.lossy, Some(NOT_SERVED_BY_KEVY));
        assert!(!passes_unchanged(b"lpushx", Kind::Redis, Kind::Kevy));
        assert!(passes_unchanged(b"rpush", Kind::Redis, Kind::Kevy));
        let tr = t(&["HMSET", "h", "f", "v"], Kind::Redis, Kind::Kevy).unwrap();
        assert_eq!(cmds(&tr), vec!["HSET h f v"]);
    }

    #[test]
    fn commands_kevy_rejected_are_dropped_towards_redis() {
        assert!(t(&["set", "a", "1", "pxat", "9"], Kind::Kevy, Kind::Redis)
            .unwrap()
            .commands
            .is_empty());
        assert_eq!(
            cmds(&t(&["set", "a", "1", "ex", "9"], Kind::Kevy, Kind::Redis).unwrap()),
            vec!["set a 1 ex 9"]
        );
    }

    #[test]
    fn kevy_spop_into_redis_is_counted_as_lossy() {
        let tr = t(&["SPOP", "s", "2"], Kind::Kevy, Kind::Redis).unwrap();
        assert_eq!(cmds(&tr), vec!["SPOP s 2"]);
        assert_eq!(tr.lossy, Some(SPOP_LOSSY));
        assert!(!passes_unchanged(b"spop", Kind::Kevy, Kind::Redis));
        assert!(t(&["SPOP", "s"], Kind::Kevy, Kind::Kevy)
            .unwrap()
            .lossy
            .is_none());
    }

    #[test]
    fn routing_follows_keys_and_refuses_cross_shard_commands() {
        let a: &[u8] = b"a";
        let shard = aofvault_formats::kevy::shard_for_key(a, 4, Routing::KevyHash);
        assert_eq!(
            route(&[b"SET", a, b"1"], 4, Routing::KevyHash).unwrap(),
            Route::Shard(shard)
        );
        assert_eq!(
            route(&[b"flushall"], 4, Routing::KevyHash).unwrap(),
            Route::All
        );
        // Find two keys on different shards.
        let other = (0..100)
            .map(|i| format!("k{i}"))
            .find(|k| {
                aofvault_formats::kevy::shard_for_key(k.as_bytes(), 4, Routing::KevyHash) != shard
            })
            .unwrap();
        let err = route(&[b"RENAME", a, other.as_bytes()], 4, Routing::KevyHash).unwrap_err();
        assert!(matches!(err, TranslateError::CrossShard { .. }), "{err}");
        assert!(matches!(
            route(&[b"PING"], 4, Routing::KevyHash),
            Err(TranslateError::NoKey { .. })
        ));
    }
}
