//! The commands kevy 1.19 serves, for a Redis → kevy restore to tell what kevy would refuse.
//!
//! Taken from kevy 1.19's command dispatch and router (`kevy/src/dispatch*.rs`, `commands.rs`):
//! a command outside this list gets "unknown command" from kevy, live or at its start-up
//! replay. Redis writes some of them into its AOF (`UNLINK`, `LPUSHX`, `LINSERT`, `LMOVE`,
//! `SMOVE`, `ZPOPMIN`, `SETRANGE`, `SETBIT`, `PFADD`, `SINTERSTORE`…); a restore into kevy
//! cannot apply them and counts them as lossy instead of writing them silently.

/// Upper-case, sorted (binary search).
const SERVED: &[&str] = &[
    "APPEND",
    "BGREWRITEAOF",
    "BGSAVE",
    "BLPOP",
    "BRPOP",
    "CLIENT",
    "CLUSTER",
    "COMMAND",
    "CONFIG",
    "DBSIZE",
    "DEBUG",
    "DECR",
    "DECRBY",
    "DEL",
    "DISCARD",
    "ECHO",
    "EXEC",
    "EXISTS",
    "EXPIRE",
    "EXPIREAT",
    "FLUSHALL",
    "FLUSHDB",
    "GEOADD",
    "GEODIST",
    "GEOHASH",
    "GEOPOS",
    "GEORADIUS",
    "GEORADIUSBYMEMBER",
    "GEOSEARCH",
    "GEOSEARCHSTORE",
    "GET",
    "GETDEL",
    "GETSET",
    "HDEL",
    "HELLO",
    "HEXISTS",
    "HGET",
    "HGETALL",
    "HINCRBY",
    "HKEYS",
    "HLEN",
    "HMGET",
    "HSET",
    "HSETNX",
    "HVALS",
    "INCR",
    "INCRBY",
    "INCRBYFLOAT",
    "INFO",
    "KEYS",
    "LINDEX",
    "LLEN",
    "LPOP",
    "LPUSH",
    "LRANGE",
    "LREM",
    "LSET",
    "LTRIM",
    "MEMORY",
    "MGET",
    "MSET",
    "MULTI",
    "PERSIST",
    "PEXPIRE",
    "PEXPIREAT",
    "PING",
    "PSETEX",
    "PSUBSCRIBE",
    "PTTL",
    "PUBLISH",
    "PUNSUBSCRIBE",
    "QUIT",
    "RANDOMKEY",
    "RENAME",
    "RENAMENX",
    "REPLICAOF",
    "ROLE",
    "RPOP",
    "RPUSH",
    "SADD",
    "SAVE",
    "SCAN",
    "SCARD",
    "SDIFF",
    "SELECT",
    "SET",
    "SETEX",
    "SETNX",
    "SHUTDOWN",
    "SINTER",
    "SISMEMBER",
    "SLAVEOF",
    "SLOWLOG",
    "SMEMBERS",
    "SPOP",
    "SRANDMEMBER",
    "SREM",
    "STRLEN",
    "SUBSCRIBE",
    "SUNION",
    "TIME",
    "TTL",
    "TYPE",
    "UNSUBSCRIBE",
    "UNWATCH",
    "WAIT",
    "WATCH",
    "XACK",
    "XADD",
    "XAUTOCLAIM",
    "XCLAIM",
    "XDEL",
    "XGROUP",
    "XINFO",
    "XLEN",
    "XPENDING",
    "XRANGE",
    "XREAD",
    "XREADGROUP",
    "XREVRANGE",
    "XSETID",
    "XTRIM",
    "ZADD",
    "ZCARD",
    "ZCOUNT",
    "ZINCRBY",
    "ZRANGE",
    "ZRANGEBYSCORE",
    "ZRANK",
    "ZREM",
    "ZSCORE",
];

/// Whether kevy 1.19 serves the command `name` (any case).
pub fn serves(name: &[u8]) -> bool {
    let mut buf = [0u8; 24];
    if name.len() > buf.len() {
        return false;
    }
    let upper = &mut buf[..name.len()];
    upper.copy_from_slice(name);
    upper.make_ascii_uppercase();
    let Ok(upper) = std::str::from_utf8(upper) else {
        return false;
    };
    SERVED.binary_search(&upper).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_sorted_and_case_does_not_matter() {
        assert!(SERVED.windows(2).all(|w| w[0] < w[1]));
        assert!(serves(b"set") && serves(b"XReadGroup") && serves(b"GEORADIUSBYMEMBER"));
        assert!(!serves(b"UNLINK") && !serves(b"LMOVE") && !serves(b"HMSET"));
        assert!(!serves(b"a-command-name-longer-than-the-buffer"));
    }
}
