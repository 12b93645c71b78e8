//! The thinning rules, one sequence of commands per rule: which commands of a stream are sent.

#![allow(clippy::unwrap_used)]

use aofvault_formats::resp;

use super::*;

fn stream(cmds: &[&str]) -> Vec<u8> {
    let mut s = Vec::new();
    for c in cmds {
        let args: Vec<&[u8]> = c.split(' ').map(str::as_bytes).collect();
        resp::encode_command(&args, &mut s);
    }
    s
}

/// The sent flags of `cmds`, planned in `parts` passes.
fn kept_in(cmds: &[&str], parts: u64) -> Vec<bool> {
    let s = stream(cmds);
    let (mut spill, n, _) = classify_stream(&s[..], 0, tempfile::tempfile().unwrap()).unwrap();
    assert_eq!(n, cmds.len() as u64);
    let mut t = plan_spilled(&mut spill, n, parts, 16).unwrap();
    (0..n).map(|_| t.keep_next()).collect()
}

/// The commands that are sent.
fn sent(cmds: &[&str]) -> Vec<String> {
    cmds.iter()
        .zip(kept_in(cmds, 1))
        .filter(|(_, k)| *k)
        .map(|(c, _)| c.to_string())
        .collect()
}

#[test]
fn writes_before_a_whole_overwrite_are_left_out() {
    let cmds = [
        "SET k 1",
        "INCR k",
        "EXPIRE k 100",
        "SET k 2 PXAT 99999999999999",
        "SET other 1",
    ];
    assert_eq!(sent(&cmds), ["SET k 2 PXAT 99999999999999", "SET other 1"]);
}

#[test]
fn a_del_is_an_overwrite_and_is_itself_left_out_before_another() {
    assert_eq!(
        sent(&["HSET h f v", "DEL h", "RPUSH h a", "UNLINK h", "SET h x"]),
        ["SET h x"]
    );
    // A DEL of two keys goes only when both are overwritten later.
    assert_eq!(sent(&["DEL a b", "SET a 1"]), ["DEL a b", "SET a 1"]);
    assert_eq!(
        sent(&["DEL a b", "SET a 1", "MSET b 2 c 3"]),
        ["SET a 1", "MSET b 2 c 3"]
    );
}

#[test]
fn set_with_keepttl_nx_xx_or_get_is_not_an_overwrite() {
    for opt in ["KEEPTTL", "NX", "XX", "GET", "IFEQ x"] {
        let last = format!("SET k 2 {opt}");
        let cmds = ["SET k 0", "PEXPIREAT k 99999999999999", last.as_str()];
        // The conditional SET is itself a single-key command: everything stays.
        assert_eq!(sent(&cmds), cmds, "{opt}");
    }
    // … but it is left out itself before a real overwrite.
    assert_eq!(
        sent(&["SET k 1 KEEPTTL", "SET k 2 EX 10"]),
        ["SET k 2 EX 10"]
    );
}

#[test]
fn a_pin_in_between_keeps_the_writes_before_it() {
    let cmds = ["SET a 1", "INCR a", "RENAME a b", "SET a 2", "SET b 3"];
    // The writes to `a` before the RENAME are read by it; `b`'s are overwritten.
    assert_eq!(
        sent(&cmds),
        ["SET a 1", "INCR a", "RENAME a b", "SET a 2", "SET b 3"]
    );
    let cmds = ["SADD s x", "SADD t y", "SMOVE s t x", "SADD s z", "DEL s"];
    assert_eq!(
        sent(&cmds),
        ["SADD s x", "SADD t y", "SMOVE s t x", "DEL s"]
    );
}

#[test]
fn a_barrier_in_between_keeps_everything_before_it() {
    for barrier in [
        "FLUSHALL",
        "FLUSHDB",
        "SWAPDB 0 1",
        "EVAL x 0",
        "FUNCTION LOAD x",
        "SORT k BY w_* STORE d",
        "MOVE k 1",
        "COPY k d DB 1",
        "SOMETHINGNEW k",
    ] {
        let cmds = ["SET k 1", "INCR k", barrier, "SET k 2"];
        assert_eq!(sent(&cmds), cmds, "{barrier}");
    }
}

#[test]
fn select_makes_the_same_name_another_key() {
    let cmds = ["SET k 1", "SELECT 1", "SET k 2", "SELECT 0", "SET k 3"];
    assert_eq!(sent(&cmds), ["SELECT 1", "SET k 2", "SELECT 0", "SET k 3"]);
    let cmds = ["SELECT 1", "SET k 1", "SELECT 0", "SET k 3"];
    assert_eq!(sent(&cmds), cmds);
}

#[test]
fn multi_exec_framing_stays_and_its_commands_are_decided_one_by_one() {
    let cmds = ["MULTI", "SET k 1", "INCR n", "EXEC", "SET k 2"];
    assert_eq!(sent(&cmds), ["MULTI", "INCR n", "EXEC", "SET k 2"]);
}

#[test]
fn the_last_overwrite_and_everything_after_it_are_sent() {
    let cmds = ["SET k 1", "SET k 2", "APPEND k x", "EXPIRE k 9"];
    assert_eq!(sent(&cmds), ["SET k 2", "APPEND k x", "EXPIRE k 9"]);
    let cmds = ["XADD s * a 1", "XGROUP CREATE s g $", "DEL s"];
    assert_eq!(sent(&cmds), ["DEL s"]);
}

#[test]
fn restore_replace_overwrites_restore_without_it_does_not() {
    let cmds = ["RPUSH k a", "RESTORE k 0 payload REPLACE"];
    assert_eq!(sent(&cmds), ["RESTORE k 0 payload REPLACE"]);
    let cmds = ["RPUSH k a", "RESTORE k 0 payload"];
    assert_eq!(sent(&cmds), cmds);
}

#[test]
fn partitions_give_the_same_bitmap_as_one_pass() {
    // A pseudo-random history over 300 keys in two databases, with pins and barriers.
    let mut cmds = Vec::new();
    let mut x = 12345u64;
    for _ in 0..20_000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let k = (x >> 33) % 300;
        let j = (x >> 13) % 300;
        cmds.push(match (x >> 50) % 23 {
            0..=5 => format!("SET k{k} v"),
            6..=9 => format!("INCR k{k}"),
            10 => format!("DEL k{k} k{j}"),
            11 => format!("RENAME k{k} k{j}"),
            12 => format!("SET k{k} v KEEPTTL"),
            13 => format!("SELECT {}", k % 2),
            14 => "MULTI".into(),
            15 => "EXEC".into(),
            16 if k == 0 => "FLUSHALL".into(),
            _ => format!("HSET k{k} f v"),
        });
    }
    let refs: Vec<&str> = cmds.iter().map(String::as_str).collect();
    let one = kept_in(&refs, 1);
    assert!(
        one.iter().filter(|k| !**k).count() > 5_000,
        "thinning left out too little"
    );
    for parts in [2, 3, 7, 64] {
        assert_eq!(kept_in(&refs, parts), one, "{parts} partitions");
    }
}

#[test]
fn the_plan_counts_what_it_leaves_out_and_sends_commands_past_its_end() {
    let s = stream(&["SET k 1", "SET k 2"]);
    let mut t = plan_stream(&s[..], 0, tempfile::tempfile().unwrap()).unwrap();
    assert!(!t.keep_next());
    assert!(t.keep_next());
    assert!(t.keep_next(), "a command the plan did not see is sent");
    assert_eq!(t.skipped(), 1);
    let mut off = Thinning::off();
    assert!(off.keep_next() && off.keep_next());
    assert_eq!(off.skipped(), 0);
}

#[test]
fn a_pass_whose_set_outgrows_its_limit_gives_up_and_partitions_do_not() {
    let cmds: Vec<String> = (0..100).map(|i| format!("SET k{i} v")).collect();
    let refs: Vec<&str> = cmds.iter().map(String::as_str).collect();
    let s = stream(&refs);
    let (mut spill, n, overwritten) =
        classify_stream(&s[..], 0, tempfile::tempfile().unwrap()).unwrap();
    assert_eq!(overwritten, 100);
    assert!(keep_bitmap(&mut spill, n, 1, 16, 50).unwrap().is_none());
    let keep = keep_bitmap(&mut spill, n, 4, 16, 50).unwrap().unwrap();
    assert_eq!(keep.cleared(), 0, "every SET is a key's last");
}
