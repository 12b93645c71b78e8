//! The decoder against a real `redis-server` (7.0 here): fill a server with every type in its
//! small and large encodings, `SAVE`, decode `dump.rdb`, and check every decoded key against
//! what the server answers. Then: every truncation of that file is `Truncated` at the cut, every
//! flipped byte is an error, and the rendered commands replayed into a fresh server give the
//! same `DEBUG DIGEST`.
//!
//! Each test starts its own server on a free 127.0.0.1 port in a temporary directory and kills
//! it on drop, printing the server's log when the test failed. A small RESP client over
//! `TcpStream` keeps replies binary-safe.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aofvault_formats::model::{Entry, Record, Value};
use aofvault_formats::rdb::{decode_all, ChecksumStatus, RdbError, RdbReader};
use aofvault_formats::render::{record_commands, Dialect};

// ---------------------------------------------------------------- RESP client

#[derive(Debug, Clone, PartialEq)]
enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Reply>),
}

impl Reply {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Reply::Bulk(b) => b.clone(),
            Reply::Status(s) => s.clone().into_bytes(),
            Reply::Int(i) => i.to_string().into_bytes(),
            other => panic!("not a string reply: {other:?}"),
        }
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }
    fn int(&self) -> i64 {
        match self {
            Reply::Int(i) => *i,
            other => panic!("not an integer reply: {other:?}"),
        }
    }
    fn array(&self) -> &[Reply] {
        match self {
            Reply::Array(a) => a,
            other => panic!("not an array reply: {other:?}"),
        }
    }
    /// A flat `[name, value, name, value…]` reply as a map.
    fn map(&self) -> BTreeMap<String, Reply> {
        self.array()
            .chunks(2)
            .map(|kv| (kv[0].text(), kv[1].clone()))
            .collect()
    }
}

struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn connect(port: u16) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        Ok(Conn {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    fn encode(out: &mut Vec<u8>, args: &[Vec<u8>]) {
        out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
    }

    fn read(&mut self) -> Reply {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).unwrap();
        let text = String::from_utf8_lossy(&line[1..line.len() - 2]).into_owned();
        match line[0] {
            b'+' => Reply::Status(text),
            b'-' => Reply::Error(text),
            b':' => Reply::Int(text.parse().unwrap()),
            b'$' if text == "-1" => Reply::Nil,
            b'$' => {
                let mut body = vec![0; text.parse::<usize>().unwrap() + 2];
                self.reader.read_exact(&mut body).unwrap();
                body.truncate(body.len() - 2);
                Reply::Bulk(body)
            }
            b'*' if text == "-1" => Reply::Nil,
            b'*' => Reply::Array(
                (0..text.parse::<usize>().unwrap())
                    .map(|_| self.read())
                    .collect(),
            ),
            other => panic!("unexpected reply byte {other:#x}"),
        }
    }

    /// Sends commands in batches and returns every reply.
    fn pipeline(&mut self, commands: &[Vec<Vec<u8>>]) -> Vec<Reply> {
        let mut replies = Vec::with_capacity(commands.len());
        for batch in commands.chunks(256) {
            let mut out = Vec::new();
            for c in batch {
                Self::encode(&mut out, c);
            }
            self.writer.write_all(&out).unwrap();
            replies.extend(batch.iter().map(|_| self.read()));
        }
        replies
    }

    fn call(&mut self, args: &[&[u8]]) -> Reply {
        self.pipeline(&[args.iter().map(|a| a.to_vec()).collect()])
            .remove(0)
    }

    /// A command that must succeed.
    fn ok(&mut self, args: &[&[u8]]) -> Reply {
        let reply = self.call(args);
        assert!(
            !matches!(reply, Reply::Error(_)),
            "{:?}: {reply:?}",
            args.iter()
                .map(|a| String::from_utf8_lossy(a))
                .collect::<Vec<_>>()
        );
        reply
    }
}

// ---------------------------------------------------------------- server harness

struct Redis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    fn start(name: &str) -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::env::temp_dir().join(format!("aofvault-rdb-{name}-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"])
            .arg(&dir)
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--enable-debug-command",
                "yes",
                "--logfile",
                "redis.log",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install redis-server)");
        let server = Redis { child, port, dir };
        for _ in 0..600 {
            if let Ok(mut c) = Conn::connect(port) {
                if c.call(&[b"PING"]) == Reply::Status("PONG".into()) {
                    return server;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "redis-server on port {port} did not start; log:\n{}",
            server.log()
        );
    }

    fn conn(&self) -> Conn {
        Conn::connect(self.port).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    fn save(&self) -> Vec<u8> {
        self.conn().ok(&[b"SAVE"]);
        std::fs::read(self.dir.join("dump.rdb")).unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- redis-server log ({}) ----\n{}",
                self.dir.display(),
                self.log()
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------- data set

fn cmd(args: &[&[u8]]) -> Vec<Vec<u8>> {
    args.iter().map(|a| a.to_vec()).collect()
}

/// Deterministic incompressible bytes.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (x >> 33) as u8
        })
        .collect()
}

/// Fills the server: every type, small and large encodings, expiries, three databases, streams
/// with groups, a function library.
fn populate(server: &Redis) {
    let mut c = server.conn();
    c.ok(&[b"CONFIG", b"SET", b"list-compress-depth", b"1"]);
    // Elements above this size go into PLAIN quicklist nodes (default 1 GB).
    c.ok(&[b"DEBUG", b"QUICKLIST-PACKED-THRESHOLD", b"1000"]);
    let mut cmds: Vec<Vec<Vec<u8>>> = vec![
        cmd(&[b"SET", b"str:small", b"hello"]),
        cmd(&[b"SET", b"str:int", b"12345"]),
        cmd(&[b"SET", b"str:neg", b"-42"]),
        cmd(&[b"SET", b"str:int64", b"12345678901234"]),
        cmd(&[b"SET", b"str:empty", b""]),
        cmd(&[b"SET", b"str:binary", b"\x00\xff\r\n\x01bin"]),
        cmd(&[b"SET", b"str:compressible", "ab".repeat(500).as_bytes()]),
        cmd(&[b"SET", b"str:noise", &noise(3000, 1)]),
        cmd(&[b"SET", b"exp:s", b"v", b"EX", b"100000"]),
        cmd(&[b"SET", b"exp:ms", b"v", b"PX", b"500000123"]),
        cmd(&[
            b"RPUSH",
            b"list:small",
            b"a",
            b"b",
            b"1",
            b"-300",
            b"70000",
            b"5000000000",
        ]),
        cmd(&[b"RPUSH", b"list:plain", b"x", &vec![b'p'; 2000], b"y"]),
        cmd(&[b"SADD", b"set:int", b"1", b"2", b"3", b"-5", b"100000"]),
        cmd(&[b"SADD", b"set:small", b"a", b"b", b"c"]),
        cmd(&[
            b"ZADD",
            b"zset:small",
            b"1.5",
            b"a",
            b"-2",
            b"b",
            b"inf",
            b"c",
            b"-inf",
            b"d",
            b"3",
            b"e",
        ]),
        cmd(&[
            b"HSET",
            b"hash:small",
            b"f1",
            b"v1",
            b"f2",
            b"12345",
            b"f3",
            b"",
        ]),
        cmd(&[b"HSET", b"hash:bigval", b"f", &[b'h'; 200]]),
        cmd(&[b"PEXPIREAT", b"list:small", b"4102444800123"]),
        cmd(&[b"PEXPIREAT", b"hash:small", b"4102444800456"]),
    ];
    let mut big_list = cmd(&[b"RPUSH", b"list:large"]);
    let mut big_set = cmd(&[b"SADD", b"set:large"]);
    let mut int64_set = cmd(&[b"SADD", b"set:int64"]);
    let mut big_zset = cmd(&[b"ZADD", b"zset:large"]);
    let mut big_hash = cmd(&[b"HSET", b"hash:large"]);
    for i in 0..1000i64 {
        big_list.push(format!("item-{i}-{}", "x".repeat((i % 7) as usize)).into_bytes());
        big_set.push(format!("member-{i}").into_bytes());
        big_zset.push(format!("{}", (i as f64) * 0.37 - 100.0).into_bytes());
        big_zset.push(format!("z{i}").into_bytes());
        big_hash.push(format!("field-{i}").into_bytes());
        big_hash.push(if i % 3 == 0 {
            i.to_string().into_bytes()
        } else {
            format!("value-{i}").into_bytes()
        });
        if i < 400 {
            int64_set.push(
                (i * 23_058_430_092_136_939 - 4_611_686_018_427_387_903)
                    .to_string()
                    .into_bytes(),
            );
        }
    }
    big_zset.extend([
        b"inf".to_vec(),
        b"top".to_vec(),
        b"-inf".to_vec(),
        b"bottom".to_vec(),
    ]);
    cmds.extend([big_list, big_set, int64_set, big_zset, big_hash]);
    // A stream with two groups, pending entries owned by two consumers, a deleted entry.
    for i in 1..=10 {
        let fields: Vec<&[u8]> = if i % 3 == 0 {
            vec![b"other", b"shape"]
        } else {
            vec![b"f", b"v", b"n"]
        };
        let mut xadd = cmd(&[b"XADD", b"stream:s", format!("{i}-{}", i % 2).as_bytes()]);
        for (j, f) in fields.iter().enumerate() {
            xadd.push(f.to_vec());
            xadd.push(format!("{i}.{j}").into_bytes());
        }
        cmds.push(xadd);
    }
    cmds.extend([
        cmd(&[b"XGROUP", b"CREATE", b"stream:s", b"g1", b"0"]),
        cmd(&[
            b"XREADGROUP",
            b"GROUP",
            b"g1",
            b"alice",
            b"COUNT",
            b"3",
            b"STREAMS",
            b"stream:s",
            b">",
        ]),
        cmd(&[
            b"XREADGROUP",
            b"GROUP",
            b"g1",
            b"bob",
            b"COUNT",
            b"2",
            b"STREAMS",
            b"stream:s",
            b">",
        ]),
        cmd(&[b"XACK", b"stream:s", b"g1", b"2-0"]),
        cmd(&[b"XDEL", b"stream:s", b"7-1"]),
        cmd(&[b"XGROUP", b"CREATE", b"stream:s", b"g2", b"$"]),
        cmd(&[b"XGROUP", b"CREATECONSUMER", b"stream:s", b"g2", b"carol"]),
        cmd(&[b"XADD", b"stream:empty", b"5-5", b"f", b"v"]),
        cmd(&[b"XDEL", b"stream:empty", b"5-5"]),
        cmd(&[b"XGROUP", b"CREATE", b"stream:empty", b"g", b"0"]),
    ]);
    for i in 0..1000 {
        cmds.push(cmd(&[
            b"XADD",
            b"stream:large",
            b"*",
            b"n",
            i.to_string().as_bytes(),
            b"payload",
            &noise(20, i),
        ]));
    }
    cmds.push(cmd(&[
        b"FUNCTION",
        b"LOAD",
        b"#!lua name=mylib\nredis.register_function('myfunc', function(keys, args) return args[1] end)",
    ]));
    cmds.extend([
        cmd(&[b"SELECT", b"1"]),
        cmd(&[b"SET", b"db1:k", b"v1"]),
        cmd(&[b"RPUSH", b"db1:l", b"a"]),
        cmd(&[b"SELECT", b"5"]),
        cmd(&[b"HSET", b"db5:h", b"f", b"v"]),
        cmd(&[b"SET", b"db5:exp", b"v", b"EX", b"86400"]),
    ]);
    for (command, reply) in cmds.iter().zip(c.pipeline(&cmds)) {
        assert!(
            !matches!(reply, Reply::Error(_)),
            "{:?}: {reply:?}",
            String::from_utf8_lossy(&command[0])
        );
    }
}

// ---------------------------------------------------------------- checks

fn decode_file(bytes: &[u8]) -> Vec<Record> {
    // Through a small BufReader, as the agent reads files, so values straddle refills.
    let mut reader = RdbReader::new(BufReader::with_capacity(4096, bytes)).unwrap();
    let mut out = Vec::new();
    while let Some(r) = reader.next_record().unwrap() {
        out.push(r);
    }
    assert_eq!(reader.checksum(), ChecksumStatus::Verified);
    assert_eq!(reader.offset(), bytes.len() as u64);
    out
}

fn id(reply: &Reply) -> String {
    reply.text()
}

/// Asserts that `entry` is what the server holds under its key.
fn check_entry(c: &mut Conn, e: &Entry) {
    let key = e.key.as_slice();
    let ctx = format!("db {} key {:?}", e.db, String::from_utf8_lossy(key));
    assert_eq!(c.ok(&[b"TYPE", key]).text(), e.value.type_name(), "{ctx}");
    assert_eq!(
        c.ok(&[b"PEXPIRETIME", key]).int(),
        e.expire_at_ms.unwrap_or(-1),
        "{ctx}: expiry"
    );
    match &e.value {
        Value::String(v) => assert_eq!(&c.ok(&[b"GET", key]).bytes(), v, "{ctx}"),
        Value::List(v) => {
            let got: Vec<Vec<u8>> = c
                .ok(&[b"LRANGE", key, b"0", b"-1"])
                .array()
                .iter()
                .map(Reply::bytes)
                .collect();
            assert_eq!(&got, v, "{ctx}");
        }
        Value::Set(v) => {
            let got: BTreeSet<Vec<u8>> = c
                .ok(&[b"SMEMBERS", key])
                .array()
                .iter()
                .map(Reply::bytes)
                .collect();
            assert_eq!(got.len(), v.len(), "{ctx}");
            assert_eq!(got, v.iter().cloned().collect(), "{ctx}");
        }
        Value::ZSet(v) => {
            let reply = c.ok(&[b"ZRANGE", key, b"0", b"-1", b"WITHSCORES"]);
            let got: Vec<(Vec<u8>, f64)> = reply
                .array()
                .chunks(2)
                .map(|p| (p[0].bytes(), p[1].text().parse().unwrap()))
                .collect();
            let mut want = v.clone();
            want.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
            assert_eq!(got, want, "{ctx}");
        }
        Value::Hash(v) => {
            let got: BTreeMap<Vec<u8>, Vec<u8>> = c
                .ok(&[b"HGETALL", key])
                .array()
                .chunks(2)
                .map(|p| (p[0].bytes(), p[1].bytes()))
                .collect();
            assert_eq!(got.len(), v.len(), "{ctx}");
            assert_eq!(
                got,
                v.iter()
                    .map(|f| (f.field.clone(), f.value.clone()))
                    .collect(),
                "{ctx}"
            );
        }
        Value::Stream(s) => {
            let got: Vec<(String, Vec<Vec<u8>>)> = c
                .ok(&[b"XRANGE", key, b"-", b"+"])
                .array()
                .iter()
                .map(|e| {
                    (
                        id(&e.array()[0]),
                        e.array()[1].array().iter().map(Reply::bytes).collect(),
                    )
                })
                .collect();
            let want: Vec<(String, Vec<Vec<u8>>)> = s
                .entries
                .iter()
                .map(|e| {
                    (
                        e.id.to_string(),
                        e.fields
                            .iter()
                            .flat_map(|(f, v)| [f.clone(), v.clone()])
                            .collect(),
                    )
                })
                .collect();
            assert_eq!(got, want, "{ctx}: entries");
            let info = c.ok(&[b"XINFO", b"STREAM", key]).map();
            assert_eq!(
                id(&info["last-generated-id"]),
                s.last_id.to_string(),
                "{ctx}"
            );
            assert_eq!(
                id(&info["max-deleted-entry-id"]),
                s.max_deleted_id.to_string(),
                "{ctx}"
            );
            assert_eq!(info["entries-added"].int() as u64, s.entries_added, "{ctx}");
            assert_eq!(
                id(&info["recorded-first-entry-id"]),
                s.first_id.to_string(),
                "{ctx}"
            );
            let groups = c.ok(&[b"XINFO", b"GROUPS", key]);
            assert_eq!(groups.array().len(), s.groups.len(), "{ctx}: groups");
            for (g, info) in s.groups.iter().zip(groups.array()) {
                let info = info.map();
                assert_eq!(info["name"].bytes(), g.name, "{ctx}");
                assert_eq!(
                    id(&info["last-delivered-id"]),
                    g.last_delivered.to_string(),
                    "{ctx}"
                );
                let entries_read = match &info["entries-read"] {
                    Reply::Nil => None,
                    r => Some(r.int() as u64),
                };
                assert_eq!(entries_read, g.entries_read, "{ctx}");
                assert_eq!(info["pending"].int() as usize, g.pending.len(), "{ctx}");
                assert_eq!(info["consumers"].int() as usize, g.consumers.len(), "{ctx}");
                let pending = c.ok(&[b"XPENDING", key, &g.name, b"-", b"+", b"100000"]);
                let got: Vec<(String, Vec<u8>, u64)> = pending
                    .array()
                    .iter()
                    .map(|p| {
                        (
                            id(&p.array()[0]),
                            p.array()[1].bytes(),
                            p.array()[3].int() as u64,
                        )
                    })
                    .collect();
                let want: Vec<(String, Vec<u8>, u64)> = g
                    .pending
                    .iter()
                    .map(|p| (p.id.to_string(), p.consumer.clone(), p.delivery_count))
                    .collect();
                assert_eq!(
                    got,
                    want,
                    "{ctx}: pending of group {:?}",
                    String::from_utf8_lossy(&g.name)
                );
                let consumers = c.ok(&[b"XINFO", b"CONSUMERS", key, &g.name]);
                let got: BTreeSet<Vec<u8>> = consumers
                    .array()
                    .iter()
                    .map(|c| c.map()["name"].bytes())
                    .collect();
                assert_eq!(
                    got,
                    g.consumers.iter().map(|c| c.name.clone()).collect(),
                    "{ctx}"
                );
            }
        }
    }
}

#[test]
fn redis_7_dump_decodes_to_what_the_server_holds() {
    let server = Redis::start("content");
    populate(&server);
    let bytes = server.save();
    let records = decode_file(&bytes);
    assert_eq!(decode_all(&bytes).unwrap(), records);

    let mut c = server.conn();
    let functions: Vec<&[u8]> = records
        .iter()
        .filter_map(|r| {
            if let Record::Function { code } = r {
                Some(code.as_slice())
            } else {
                None
            }
        })
        .collect();
    let listed = c.ok(&[b"FUNCTION", b"LIST", b"WITHCODE"]);
    let codes: Vec<Vec<u8>> = listed
        .array()
        .iter()
        .map(|lib| lib.map()["library_code"].bytes())
        .collect();
    assert_eq!(
        functions,
        codes.iter().map(Vec::as_slice).collect::<Vec<_>>()
    );
    assert!(records
        .iter()
        .any(|r| matches!(r, Record::Aux { key, .. } if key == b"redis-ver")));

    let mut per_db: BTreeMap<u32, Vec<&Entry>> = BTreeMap::new();
    for r in &records {
        if let Record::Entry(e) = r {
            per_db.entry(e.db).or_default().push(e);
        }
    }
    assert_eq!(per_db.keys().copied().collect::<Vec<_>>(), [0, 1, 5]);
    for (db, entries) in &per_db {
        c.ok(&[b"SELECT", db.to_string().as_bytes()]);
        assert_eq!(c.ok(&[b"DBSIZE"]).int() as usize, entries.len(), "db {db}");
        for e in entries {
            check_entry(&mut c, e);
        }
    }
    // The data set exercised what it claims to: large and small encodings, expiries, groups.
    let db0 = &per_db[&0];
    let find = |k: &str| db0.iter().find(|e| e.key == k.as_bytes()).unwrap();
    assert!(matches!(&find("list:large").value, Value::List(v) if v.len() == 1000));
    assert!(matches!(&find("list:plain").value, Value::List(v) if v[1].len() == 2000));
    assert!(matches!(&find("set:int64").value, Value::Set(v) if v.len() == 400));
    assert!(matches!(&find("zset:large").value, Value::ZSet(v) if v.len() == 1002));
    assert!(matches!(&find("hash:large").value, Value::Hash(v) if v.len() == 1000));
    assert!(matches!(&find("stream:large").value, Value::Stream(s) if s.entries.len() == 1000));
    assert!(
        matches!(&find("stream:empty").value, Value::Stream(s) if s.entries.is_empty() && s.groups.len() == 1)
    );
    assert_eq!(find("list:small").expire_at_ms, Some(4_102_444_800_123));
    assert!(find("exp:s").expire_at_ms.is_some() && find("exp:ms").expire_at_ms.is_some());
    let Value::Stream(s) = &find("stream:s").value else {
        panic!()
    };
    assert_eq!(s.entries.len(), 9);
    assert_eq!(s.groups[0].pending.len(), 4);
}

#[test]
fn truncated_and_corrupted_copies_fail_cleanly() {
    let server = Redis::start("corrupt");
    populate(&server);
    let bytes = server.save();
    let len = bytes.len();
    let step = (len / 400).max(1);
    let cuts = (0..len).step_by(step).chain(len - 12..len);
    let mut truncations = 0;
    for cut in cuts {
        match decode_all(&bytes[..cut]) {
            Err(RdbError::Truncated { offset, .. }) => {
                assert_eq!(offset, cut as u64, "cut at {cut}")
            }
            other => panic!("cut at {cut} of {len}: {other:?}"),
        }
        truncations += 1;
    }
    let mut flips = 0;
    let mut mismatches = 0;
    for at in (0..len).step_by((len / 600).max(1)).chain(len - 8..len) {
        let mut copy = bytes.clone();
        copy[at] ^= 0x5a;
        match decode_all(&copy) {
            Ok(_) => panic!("flipping byte {at} went unnoticed"),
            Err(RdbError::ChecksumMismatch { .. }) => mismatches += 1,
            Err(_) => {}
        }
        flips += 1;
    }
    eprintln!("{len}-byte file: {truncations} truncations, {flips} flips ({mismatches} caught by the checksum only)");
    assert!(mismatches > 0);
}

#[test]
fn rendered_commands_replay_to_the_same_digest() {
    let original = Redis::start("digest-src");
    populate(&original);
    let records = decode_file(&original.save());
    let replica = Redis::start("digest-dst");
    let mut commands = Vec::new();
    let mut db = None;
    for r in &records {
        if let Record::Entry(e) = r {
            if db != Some(e.db) {
                commands.push(cmd(&[b"SELECT", e.db.to_string().as_bytes()]));
                db = Some(e.db);
            }
        }
        commands.extend(record_commands(r, Dialect::Redis));
    }
    let mut c = replica.conn();
    for (command, reply) in commands.iter().zip(c.pipeline(&commands)) {
        assert!(
            !matches!(reply, Reply::Error(_)),
            "{:?}: {reply:?}",
            command
                .iter()
                .map(|a| String::from_utf8_lossy(a))
                .collect::<Vec<_>>()
        );
    }
    let want = original.conn().ok(&[b"DEBUG", b"DIGEST"]);
    let got = c.ok(&[b"DEBUG", b"DIGEST"]);
    if want != got {
        // Name the keys that differ before failing.
        let mut o = original.conn();
        for r in &records {
            if let Record::Entry(e) = r {
                o.ok(&[b"SELECT", e.db.to_string().as_bytes()]);
                c.ok(&[b"SELECT", e.db.to_string().as_bytes()]);
                let a = o.ok(&[b"DEBUG", b"DIGEST-VALUE", &e.key]);
                let b = c.ok(&[b"DEBUG", b"DIGEST-VALUE", &e.key]);
                if a != b {
                    eprintln!(
                        "differs: db {} key {:?}",
                        e.db,
                        String::from_utf8_lossy(&e.key)
                    );
                }
            }
        }
    }
    assert_eq!(got, want);
    let listed = c.ok(&[b"FUNCTION", b"LIST"]);
    assert_eq!(listed.array().len(), 1, "the function library was replayed");
}
