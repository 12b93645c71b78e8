//! Against a real kevy 1.19 with 1 and 4 shards: every type (TTLs, binary values, a stream with
//! deleted entries, two groups, pending entries, a consumer without any), `SAVE`, then
//!
//! 1. every `dump-{i}.rdb` decodes to exactly what the server answers, and every key sits in the
//!    shard [`shard_for_key`] names;
//! 2. [`write_snapshot`] files (split by [`shard_for_key`]) load into a fresh kevy with the same
//!    data;
//! 3. the decoded entries rendered as [`Dialect::Kevy`] commands and replayed into a fresh kevy
//!    reproduce the data (minus what commands cannot carry: pending entries of deleted ids).
#![allow(clippy::unwrap_used)]

mod common;

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use aofvault_formats::kevy::{shard_for_key, write_snapshot, KevySnapReader, ShardsMeta};
use aofvault_formats::model::{Entry, Value};
use aofvault_formats::render::{entry_commands, Dialect};
use common::holds::{assert_server_holds, now_ms};
use common::{Client, Server, TempDir};

fn populate(c: &mut Client, deadline_ms: i64) {
    let deadline = deadline_ms.to_string();
    let mut cmds: Vec<Vec<Vec<u8>>> = Vec::new();
    let mut add = |args: &[&[u8]]| cmds.push(args.iter().map(|a| a.to_vec()).collect());
    for i in 0..60 {
        let key = format!("s:{i}");
        add(&[b"SET", key.as_bytes(), format!("value {i}").as_bytes()]);
    }
    add(&[b"SET", b"bin", b"\x00\xff\r\n\x01"]);
    add(&[b"SET", b"empty", b""]);
    add(&[b"SET", b"big", "x".repeat(100_000).as_bytes()]);
    let items: Vec<String> = (0..100).map(|i| format!("item-{i}")).collect();
    let mut rpush: Vec<&[u8]> = vec![b"RPUSH", b"l:long"];
    rpush.extend(items.iter().map(|s| s.as_bytes()));
    add(&rpush);
    add(&[b"RPUSH", b"l:short", b"a", b"b", b"a"]);
    add(&[b"SADD", b"set", b"x", b"y", b"z", b"\xfe"]);
    add(&[
        b"ZADD", b"z", b"1", b"one", b"2.5", b"two", b"-3.25", b"neg", b"1e20", b"big",
    ]);
    add(&[b"ZADD", b"z", b"0.1", b"tenth", b"-inf", b"bottom"]);
    let mut hset: Vec<Vec<u8>> = vec![b"HSET".to_vec(), b"h:big".to_vec()];
    for i in 0..100 {
        hset.push(format!("f{i}").into_bytes());
        hset.push(format!("v{i}").into_bytes());
    }
    add(&hset.iter().map(Vec::as_slice).collect::<Vec<_>>());
    add(&[b"HSET", b"h", b"name", b"kevy", b"bin", b"\x00\x01"]);
    add(&[b"SET", b"ttl:s", b"soon"]);
    add(&[b"PEXPIREAT", b"ttl:s", deadline.as_bytes()]);
    add(&[b"RPUSH", b"ttl:l", b"a"]);
    add(&[b"PEXPIREAT", b"ttl:l", deadline.as_bytes()]);
    for (id, v) in [
        ("1-1", "a"),
        ("1-2", "b"),
        ("1-3", "c"),
        ("1-4", "d"),
        ("2-0", "e"),
    ] {
        add(&[
            b"XADD",
            b"st",
            id.as_bytes(),
            b"field",
            v.as_bytes(),
            b"n",
            b"1",
        ]);
    }
    add(&[b"XDEL", b"st", b"1-3"]);
    add(&[b"XGROUP", b"CREATE", b"st", b"g1", b"0"]);
    add(&[b"XGROUP", b"CREATE", b"st", b"g2", b"$"]);
    add(&[b"XADD", b"st:emptied", b"5-1", b"a", b"b"]);
    add(&[b"XDEL", b"st:emptied", b"5-1"]);
    c.pipeline(&cmds);
    // Reads create pending entries; they need their own round trips.
    let read = |c: &mut Client, consumer: &str, count: &str| {
        c.ok(&[
            "XREADGROUP",
            "GROUP",
            "g1",
            consumer,
            "COUNT",
            count,
            "STREAMS",
            "st",
            ">",
        ]);
    };
    read(c, "alice", "2");
    read(c, "bob", "1");
    c.ok(&["XGROUP", "CREATECONSUMER", "st", "g1", "carol"]);
    // A pending entry whose stream entry is then deleted (a tombstone row in the PEL).
    c.ok(&["XDEL", "st", "1-2"]);
}

/// `SAVE`, then wait until every shard has renamed its snapshot into place.
fn save(c: &mut Client, dir: &Path, shards: u32) {
    c.ok(&["SAVE"]);
    for i in 0..shards {
        let path = dir.join(format!("dump-{i}.rdb"));
        for _ in 0..400 {
            if path.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        assert!(path.exists(), "{} never appeared", path.display());
    }
}

fn decode_dir(dir: &Path, meta: &ShardsMeta) -> Vec<Entry> {
    let mut all = Vec::new();
    for shard in 0..meta.shards {
        let file = File::open(dir.join(format!("dump-{shard}.rdb"))).unwrap();
        let mut reader = KevySnapReader::new(BufReader::new(file), now_ms()).unwrap();
        assert_eq!(reader.version(), 4);
        while let Some(entry) = reader.next_entry().unwrap() {
            assert_eq!(
                shard_for_key(&entry.key, meta.shards, meta.routing),
                shard,
                "key {:?} found in dump-{shard}.rdb",
                String::from_utf8_lossy(&entry.key)
            );
            all.push(entry);
        }
    }
    all.sort_by(|a, b| a.key.cmp(&b.key));
    all
}

fn round_trip(shards: u32) {
    let deadline = now_ms() + 3_600_000;
    let src_dir = TempDir::new("kevy-src");
    let src = Server::kevy(src_dir.path(), shards);
    let mut c = src.client();
    populate(&mut c, deadline);
    save(&mut c, src_dir.path(), shards);
    let meta_text = std::fs::read_to_string(src_dir.path().join("shards.meta")).unwrap();
    let meta = ShardsMeta::parse(&meta_text).unwrap();
    assert_eq!(meta.shards, shards);

    // 1. The snapshots hold exactly what the server answers.
    let entries = decode_dir(src_dir.path(), &meta);
    assert_eq!(
        entries.len(),
        60 + 3 + 2 + 1 + 1 + 2 + 2 + 2,
        "decoded key count"
    );
    let ttl_s = entries.iter().find(|e| e.key == b"ttl:s").unwrap();
    assert!((ttl_s.expire_at_ms.unwrap() - deadline).abs() < 5_000);
    let Value::Stream(st) = &entries.iter().find(|e| e.key == b"st").unwrap().value else {
        panic!("st is not a stream");
    };
    assert_eq!(st.groups.len(), 2);
    assert_eq!(st.groups[0].pending.len() + st.groups[1].pending.len(), 3);
    assert_server_holds(&mut c, &entries);
    drop(src);

    // 2. write_snapshot files load into a fresh kevy.
    let snap_dir = TempDir::new("kevy-snap");
    for shard in 0..shards {
        let mine = entries
            .iter()
            .filter(|e| shard_for_key(&e.key, meta.shards, meta.routing) == shard);
        let file = File::create(snap_dir.path().join(format!("dump-{shard}.rdb"))).unwrap();
        write_snapshot(file, mine).unwrap();
    }
    std::fs::write(snap_dir.path().join("shards.meta"), meta.render()).unwrap();
    let loaded = Server::kevy(snap_dir.path(), shards);
    assert_server_holds(&mut loaded.client(), &entries);
    drop(loaded);

    // 3. Rendered kevy commands replayed into a fresh kevy.
    let replay_dir = TempDir::new("kevy-replay");
    let replay = Server::kevy(replay_dir.path(), shards);
    let mut c = replay.client();
    let commands: Vec<_> = entries
        .iter()
        .flat_map(|e| entry_commands(e, Dialect::Kevy))
        .collect();
    c.pipeline(&commands);
    assert_server_holds(&mut c, &without_tombstones(entries));
}

/// What commands can recreate: pending entries whose stream entry still exists.
fn without_tombstones(mut entries: Vec<Entry>) -> Vec<Entry> {
    for e in &mut entries {
        if let Value::Stream(s) = &mut e.value {
            let live: Vec<_> = s.entries.iter().map(|x| x.id).collect();
            for g in &mut s.groups {
                g.pending.retain(|p| live.contains(&p.id));
            }
        }
    }
    entries
}

#[test]
fn one_shard_snapshots_decode_load_and_replay() {
    round_trip(1);
}

#[test]
fn four_shard_snapshots_decode_route_load_and_replay() {
    round_trip(4);
}
