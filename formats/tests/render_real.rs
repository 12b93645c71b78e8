//! Hand-built entries of every type — several databases, TTLs, binary data, collections longer
//! than one 64-item command, a stream with deleted entries, groups, pending entries and an idle
//! consumer, an emptied stream, a function library — rendered as [`Dialect::Redis`] commands and
//! replayed into a fresh redis-server 7.0 give exactly that data back.
//! (Hash field TTLs need Redis 7.4, which this machine does not have.)
#![allow(clippy::unwrap_used)]

mod common;

use aofvault_formats::model::{
    Consumer, Entry, HashField, PendingEntry, Record, Stream, StreamEntry, StreamGroup, StreamId,
    Value,
};
use aofvault_formats::render::{record_commands, Dialect};
use common::holds::{assert_server_holds, now_ms};
use common::{Server, TempDir};

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn id(ms: u64, seq: u64) -> StreamId {
    StreamId { ms, seq }
}

fn entry(db: u32, key: &str, value: Value, expire_at_ms: Option<i64>) -> Entry {
    Entry {
        db,
        key: b(key),
        value,
        expire_at_ms,
    }
}

fn stream() -> Stream {
    let entries = vec![
        StreamEntry {
            id: id(1, 1),
            fields: vec![(b("f"), b("a")), (b("g"), b("\x00\x01"))],
        },
        StreamEntry {
            id: id(1, 2),
            fields: vec![(b("f"), b("b"))],
        },
        StreamEntry {
            id: id(3, 0),
            fields: vec![(b("f"), b("c"))],
        },
    ];
    let pending = |ms, seq, consumer: &str, count| PendingEntry {
        id: id(ms, seq),
        consumer: b(consumer),
        delivery_time_ms: 1_700_000_000_000,
        delivery_count: count,
    };
    let consumer = |name: &str| Consumer {
        name: b(name),
        seen_time_ms: 1_700_000_000_000,
        active_time_ms: None,
    };
    Stream {
        entries,
        // An entry 4-0 was added and deleted: last id and max deleted id are past the entries.
        last_id: id(4, 0),
        max_deleted_id: id(4, 0),
        entries_added: 5,
        first_id: id(1, 1),
        groups: vec![
            StreamGroup {
                name: b("g1"),
                last_delivered: id(1, 2),
                entries_read: Some(2),
                pending: vec![pending(1, 1, "alice", 3), pending(1, 2, "bob", 1)],
                consumers: vec![consumer("alice"), consumer("bob"), consumer("carol")],
            },
            StreamGroup {
                name: b("g2"),
                last_delivered: id(4, 0),
                entries_read: Some(5),
                pending: vec![],
                consumers: vec![],
            },
        ],
    }
}

fn entries(deadline: i64) -> Vec<Entry> {
    let many: Vec<Vec<u8>> = (0..150).map(|i| format!("m{i}").into_bytes()).collect();
    let fields: Vec<HashField> = (0..130)
        .map(|i| HashField {
            field: format!("f{i}").into_bytes(),
            value: format!("v{i}").into_bytes(),
            expire_at_ms: None,
        })
        .collect();
    let scores: Vec<(Vec<u8>, f64)> = (0..70)
        .map(|i| (format!("z{i}").into_bytes(), f64::from(i) / 3.0))
        .chain([
            (b("top"), f64::INFINITY),
            (b("tiny"), 1e-300),
            (b("huge"), -1.5e300),
        ])
        .collect();
    let emptied = Stream {
        last_id: id(9, 9),
        max_deleted_id: id(9, 9),
        entries_added: 1,
        ..Stream::default()
    };
    vec![
        entry(0, "str", Value::String(b("hello")), None),
        entry(
            0,
            "bin\x00key",
            Value::String(b"\xff\xfe\r\n".to_vec()),
            Some(deadline),
        ),
        entry(0, "list", Value::List(many.clone()), Some(deadline + 1000)),
        entry(0, "set", Value::Set(many), None),
        entry(0, "zset", Value::ZSet(scores), None),
        entry(0, "hash", Value::Hash(fields), Some(deadline)),
        entry(0, "stream", Value::Stream(Box::new(stream())), None),
        entry(0, "emptied", Value::Stream(Box::new(emptied)), None),
        entry(3, "str", Value::String(b("in db 3")), None),
        entry(3, "list", Value::List(vec![b("x")]), None),
    ]
}

#[test]
fn redis_dialect_commands_recreate_every_type() {
    let dir = TempDir::new("redis-render");
    let server = Server::redis(dir.path());
    let mut c = server.client();
    let deadline = now_ms() + 3_600_000;
    let entries = entries(deadline);
    let function = Record::Function {
        code: b("#!lua name=aofvault\nredis.register_function('answer', function() return 42 end)"),
    };

    let mut commands = record_commands(&function, Dialect::Redis);
    let mut db = 0;
    for e in &entries {
        if e.db != db {
            commands.push(vec![b("SELECT"), db_arg(e.db)]);
            db = e.db;
        }
        commands.extend(record_commands(&Record::Entry(e.clone()), Dialect::Redis));
    }
    commands.push(vec![b("SELECT"), b("0")]);
    // 150 members are three commands, not one.
    let list_cmds = record_commands(&Record::Entry(entries[2].clone()), Dialect::Redis);
    assert_eq!(list_cmds.iter().filter(|c| c[0] == b"RPUSH").count(), 3);
    c.pipeline(&commands);

    assert_server_holds(&mut c, &entries);
    assert_eq!(c.ok(&["FCALL", "answer", "0"]).int(), 42);
    // Aux records render to nothing.
    let aux = Record::Aux {
        key: b("redis-ver"),
        value: b("7.0.15"),
    };
    assert!(record_commands(&aux, Dialect::Redis).is_empty());
}

fn db_arg(db: u32) -> Vec<u8> {
    db.to_string().into_bytes()
}
