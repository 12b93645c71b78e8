//! Where the keys of a command are: which arguments name keys, for routing a command to a kevy
//! shard ([`crate::restore::translate::route`]) and for writing renamed keys under their final names
//! ([`super::renames`]).
//!
//! The table covers the write commands Redis 7 and kevy 1.19 put into their AOFs, and the
//! multi-key reads around them. A command it does not know has its key first, as most do.

fn eq(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

/// Positions of the keys of a command (every key it reads or writes), for routing to a kevy
/// shard and for [`super::renames`]. Commands without a key (`FLUSHALL`, `SELECT`, `MULTI`…)
/// have none; a command this table does not know has its key first, as most commands do.
pub fn key_positions(args: &[&[u8]]) -> Vec<usize> {
    let Some(&name) = args.first() else {
        return Vec::new();
    };
    let n = args.len();
    let is = |names: &[&str]| names.iter().any(|c| eq(name, c));
    if is(&[
        "FLUSHALL", "FLUSHDB", "SELECT", "MULTI", "EXEC", "DISCARD", "PING", "FUNCTION", "SCRIPT",
        "SWAPDB", "PUBLISH",
    ]) {
        return Vec::new();
    }
    if is(&[
        "RENAME",
        "RENAMENX",
        "COPY",
        "SMOVE",
        "LMOVE",
        "BLMOVE",
        "RPOPLPUSH",
        "BRPOPLPUSH",
        "ZRANGESTORE",
        "GEOSEARCHSTORE",
    ]) {
        return (1..n.min(3)).collect();
    }
    if is(&[
        "SINTERSTORE",
        "SUNIONSTORE",
        "SDIFFSTORE",
        "PFMERGE",
        "DEL",
        "UNLINK",
        "EXISTS",
        "TOUCH",
        "WATCH",
    ]) {
        return (1..n).collect();
    }
    if is(&["BLPOP", "BRPOP", "BZPOPMIN", "BZPOPMAX"]) {
        // The last argument is the timeout.
        return (1..n.saturating_sub(1)).collect();
    }
    if is(&["BITOP"]) {
        return (2..n).collect();
    }
    if is(&["XGROUP", "XINFO"]) {
        return if n >= 3 { vec![2] } else { Vec::new() };
    }
    if is(&["XREAD", "XREADGROUP"]) {
        // … STREAMS k1 k2 … id1 id2 …
        let Some(at) = args.iter().position(|a| eq(a, "STREAMS")) else {
            return Vec::new();
        };
        let rest = n - at - 1;
        return (at + 1..at + 1 + rest / 2).collect();
    }
    if is(&["GEORADIUS", "GEORADIUSBYMEMBER"]) {
        let mut pos = vec![1];
        pos.extend(
            args.iter()
                .enumerate()
                .skip(2)
                .filter(|(_, a)| eq(a, "STORE") || eq(a, "STOREDIST"))
                .map(|(i, _)| i + 1)
                .filter(|&i| i < n),
        );
        return pos;
    }
    if is(&["ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE"]) {
        let numkeys = args
            .get(2)
            .and_then(|a| std::str::from_utf8(a).ok()?.parse::<usize>().ok())
            .unwrap_or(0);
        let mut pos = vec![1];
        pos.extend((3..n).take(numkeys));
        return pos;
    }
    if is(&["MSET", "MSETNX"]) {
        return (1..n).step_by(2).collect();
    }
    if n >= 2 {
        vec![1]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_positions_of_commands_whose_key_is_not_first() {
        let kp = |args: &[&str]| {
            let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            key_positions(&args)
        };
        assert_eq!(kp(&["XGROUP", "CREATE", "s", "g", "$"]), vec![2]);
        assert_eq!(
            kp(&[
                "XREADGROUP",
                "GROUP",
                "g",
                "c",
                "COUNT",
                "1",
                "STREAMS",
                "a",
                "b",
                ">",
                ">"
            ]),
            vec![7, 8]
        );
        assert_eq!(
            kp(&["GEORADIUS", "g", "1", "2", "3", "km", "STORE", "d"]),
            vec![1, 7]
        );
        assert_eq!(kp(&["BLPOP", "a", "b", "0"]), vec![1, 2]);
        assert_eq!(kp(&["MSET", "a", "1", "b", "2"]), vec![1, 3]);
        assert!(kp(&["FLUSHALL"]).is_empty());
        assert_eq!(kp(&["SET", "k", "v"]), vec![1]);
    }
}
