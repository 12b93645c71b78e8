//! Unit tests of the decoder over RDB files built byte by byte, one per encoding. The files
//! written by real servers are exercised in `formats/tests/rdb_*.rs`.
#![allow(clippy::unwrap_used)]

use super::crc64::Crc64;
use super::listpack::tests::build as listpack;
use super::packed::Item::{Int, Str};
use super::*;
use crate::model::{HashField, StreamId, Value};

/// Writes an RDB the way the server does.
struct Rdb(Vec<u8>);

impl Rdb {
    fn redis(version: u32) -> Self {
        Rdb(format!("REDIS{version:04}").into_bytes())
    }
    fn valkey(version: u32) -> Self {
        Rdb(format!("VALKEY{version:03}").into_bytes())
    }
    fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }
    fn len(mut self, n: u64) -> Self {
        match n {
            0..=63 => self.0.push(n as u8),
            64..=16383 => self.0.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]),
            16384..=0xFFFF_FFFF => {
                self.0.push(0x80);
                self.0.extend_from_slice(&(n as u32).to_be_bytes());
            }
            _ => {
                self.0.push(0x81);
                self.0.extend_from_slice(&n.to_be_bytes());
            }
        }
        self
    }
    fn string(self, s: &[u8]) -> Self {
        self.len(s.len() as u64).raw(s)
    }
    fn key(self, type_id: u8, key: &str) -> Self {
        self.raw(&[type_id]).string(key.as_bytes())
    }
    fn i64le(self, v: i64) -> Self {
        self.raw(&v.to_le_bytes())
    }
    fn stream_id(self, ms: u64, seq: u64) -> Self {
        self.raw(&ms.to_be_bytes()).raw(&seq.to_be_bytes())
    }
    /// EOF and the CRC-64 trailer.
    fn finish(mut self) -> Vec<u8> {
        self.0.push(0xFF);
        let mut crc = Crc64::new();
        crc.update(&self.0);
        self.0.extend_from_slice(&crc.value().to_le_bytes());
        self.0
    }
}

fn entries(bytes: &[u8]) -> Vec<Entry> {
    decode_all(bytes)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r {
            Record::Entry(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn only_value(bytes: &[u8]) -> Value {
    let mut all = entries(bytes);
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0).value
}

fn strs(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn field(f: &str, v: &str, expire: Option<i64>) -> HashField {
    HashField { field: f.into(), value: v.into(), expire_at_ms: expire }
}

/// One ziplist entry per string (all short), with prevlen 0.
fn ziplist(items: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    for item in items {
        body.push(0);
        body.push(item.len() as u8);
        body.extend_from_slice(item);
    }
    let mut out = ((body.len() + 11) as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(items.len() as u16).to_le_bytes());
    out.extend_from_slice(&body);
    out.push(0xFF);
    out
}

#[test]
fn strings_expiries_databases_aux_and_functions() {
    let bytes = Rdb::redis(10)
        .raw(&[0xFA])
        .string(b"redis-ver")
        .string(b"7.0.15")
        .raw(&[0xF5])
        .string(b"#!lua name=lib\n")
        .raw(&[0xFE, 0x00, 0xFB, 0x05, 0x01])
        .key(0, "int8")
        .raw(&[0xC0, 0xFB])
        .key(0, "int16")
        .raw(&[0xC1, 0x2C, 0x01])
        .key(0, "int32")
        .raw(&[0xC2, 0x70, 0x11, 0x01, 0x00])
        .key(0, "lzf")
        .raw(&[0xC3, 0x09, 0x28, 0x01, 0x61, 0x61, 0xE0, 0x1B, 0x00, 0x01, 0x61, 0x61])
        .raw(&[0xFC])
        .i64le(1_795_721_080_376)
        .raw(&[0xF8, 0x05, 0xF9, 0x03])
        .key(0, "ms")
        .string(b"v")
        .raw(&[0xFE, 0x03, 0xFD])
        .raw(&1_700_000_000i32.to_le_bytes())
        .key(0, "s")
        .string(b"w")
        .key(0, "plain")
        .string(b"x")
        .finish();
    let records = decode_all(&bytes).unwrap();
    assert_eq!(records[0], Record::Aux { key: b"redis-ver".to_vec(), value: b"7.0.15".to_vec() });
    assert_eq!(records[1], Record::Function { code: b"#!lua name=lib\n".to_vec() });
    let got: Vec<(u32, String, Value, Option<i64>)> = records[2..]
        .iter()
        .map(|r| match r {
            Record::Entry(e) => (e.db, String::from_utf8_lossy(&e.key).into_owned(), e.value.clone(), e.expire_at_ms),
            other => panic!("{other:?}"),
        })
        .collect();
    let s = |v: &str| Value::String(v.as_bytes().to_vec());
    assert_eq!(
        got,
        vec![
            (0, "int8".into(), s("-5"), None),
            (0, "int16".into(), s("300"), None),
            (0, "int32".into(), s("70000"), None),
            (0, "lzf".into(), Value::String(vec![b'a'; 40]), None),
            (0, "ms".into(), s("v"), Some(1_795_721_080_376)),
            (3, "s".into(), s("w"), Some(1_700_000_000_000)),
            (3, "plain".into(), s("x"), None),
        ]
    );
}

#[test]
fn reader_reports_version_offset_checksum_and_stops_after_the_trailer() {
    let mut bytes = Rdb::redis(9).key(0, "k").string(b"v").finish();
    let len = bytes.len() as u64;
    bytes.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    let mut reader = RdbReader::new(&bytes[..]).unwrap();
    assert_eq!(reader.version(), 9);
    assert_eq!(reader.checksum(), ChecksumStatus::Pending);
    assert!(reader.next_record().unwrap().is_some());
    assert_eq!(reader.next_record().unwrap(), None);
    assert_eq!(reader.next_record().unwrap(), None);
    assert_eq!(reader.checksum(), ChecksumStatus::Verified);
    assert_eq!(reader.offset(), len);
    assert_eq!(reader.into_inner(), b"*1\r\n$4\r\nPING\r\n");
}

#[test]
fn one_byte_buffers_decode_the_same() {
    let bytes = Rdb::redis(10)
        .key(0, "lzf")
        .raw(&[0xC3, 0x09, 0x28, 0x01, 0x61, 0x61, 0xE0, 0x1B, 0x00, 0x01, 0x61, 0x61])
        .key(16, "h")
        .string(&listpack(&[Str(b"f"), Int(7), Str(b"g"), Str(b"x")]))
        .finish();
    let mut reader = RdbReader::new(std::io::BufReader::with_capacity(1, &bytes[..])).unwrap();
    let mut got = Vec::new();
    while let Some(r) = reader.next_record().unwrap() {
        got.push(r);
    }
    assert_eq!(got, decode_all(&bytes).unwrap());
    assert_eq!(reader.checksum(), ChecksumStatus::Verified);
}

#[test]
fn plain_collections() {
    let list = Rdb::redis(6).key(1, "l").len(2).string(b"a").raw(&[0xC0, 0x07]).finish();
    assert_eq!(only_value(&list), Value::List(strs(&["a", "7"])));
    let set = Rdb::redis(6).key(2, "s").len(2).string(b"x").string(b"y").finish();
    assert_eq!(only_value(&set), Value::Set(strs(&["x", "y"])));
    let hash = Rdb::redis(6).key(4, "h").len(1).string(b"f").string(b"v").finish();
    assert_eq!(only_value(&hash), Value::Hash(vec![field("f", "v", None)]));
    let zset2 = Rdb::redis(9).key(5, "z").len(1).string(b"m").raw(&2.5f64.to_le_bytes()).finish();
    assert_eq!(only_value(&zset2), Value::ZSet(vec![(b"m".to_vec(), 2.5)]));
}

#[test]
fn text_scores_include_infinities_and_nan() {
    let bytes = Rdb::redis(6)
        .key(3, "z")
        .len(4)
        .string(b"a")
        .raw(&[3])
        .raw(b"1.5")
        .string(b"b")
        .raw(&[254])
        .string(b"c")
        .raw(&[255])
        .string(b"d")
        .raw(&[253])
        .finish();
    let Value::ZSet(z) = only_value(&bytes) else { panic!() };
    assert_eq!(z[0], (b"a".to_vec(), 1.5));
    assert_eq!(z[1], (b"b".to_vec(), f64::INFINITY));
    assert_eq!(z[2], (b"c".to_vec(), f64::NEG_INFINITY));
    assert!(z[3].1.is_nan());
}

#[test]
fn legacy_packed_encodings() {
    let zl = |type_id, items: &[&[u8]]| Rdb::redis(6).key(type_id, "k").string(&ziplist(items)).finish();
    assert_eq!(only_value(&zl(10, &[b"a", b"b"])), Value::List(strs(&["a", "b"])));
    assert_eq!(only_value(&zl(12, &[b"m", b"-2.5"])), Value::ZSet(vec![(b"m".to_vec(), -2.5)]));
    assert_eq!(only_value(&zl(13, &[b"f", b"v"])), Value::Hash(vec![field("f", "v", None)]));
    let quicklist =
        Rdb::redis(7).key(14, "q").len(2).string(&ziplist(&[b"a"])).string(&ziplist(&[b"b", b"c"])).finish();
    assert_eq!(only_value(&quicklist), Value::List(strs(&["a", "b", "c"])));
    let intset = Rdb::redis(6).key(11, "i").string(&[2, 0, 0, 0, 2, 0, 0, 0, 0xFF, 0xFF, 5, 0]).finish();
    assert_eq!(only_value(&intset), Value::Set(strs(&["-1", "5"])));
    let zipmap = Rdb::redis(4).key(9, "m").string(&[1, 1, b'f', 1, 0, b'v', 0xFF]).raw(&[0xFF]);
    // Version 4: no checksum trailer.
    let mut reader = RdbReader::new(&zipmap.0[..]).unwrap();
    let Some(Record::Entry(e)) = reader.next_record().unwrap() else { panic!() };
    assert_eq!(e.value, Value::Hash(vec![field("f", "v", None)]));
    assert_eq!(reader.next_record().unwrap(), None);
    assert_eq!(reader.checksum(), ChecksumStatus::NotPresent);
}

#[test]
fn listpack_encodings_and_quicklist2_nodes() {
    let lp = |type_id, items: &[packed::Item<'_>]| Rdb::redis(11).key(type_id, "k").string(&listpack(items)).finish();
    assert_eq!(
        only_value(&lp(16, &[Str(b"f"), Int(-3)])),
        Value::Hash(vec![field("f", "-3", None)])
    );
    assert_eq!(
        only_value(&lp(17, &[Str(b"a"), Int(2), Str(b"b"), Str(b"2.5"), Str(b"c"), Str(b"inf")])),
        Value::ZSet(vec![(b"a".to_vec(), 2.0), (b"b".to_vec(), 2.5), (b"c".to_vec(), f64::INFINITY)])
    );
    assert_eq!(only_value(&lp(20, &[Str(b"x"), Int(1)])), Value::Set(strs(&["x", "1"])));
    let big = vec![b'p'; 300];
    let list = Rdb::redis(10)
        .key(18, "l")
        .len(3)
        .len(2)
        .string(&listpack(&[Str(b"a"), Int(1)]))
        .len(1)
        .string(&big)
        .len(2)
        .string(&listpack(&[Str(b"z")]))
        .finish();
    assert_eq!(only_value(&list), Value::List(vec![b"a".to_vec(), b"1".to_vec(), big, b"z".to_vec()]));
    let bad_container = Rdb::redis(10).key(18, "l").len(1).len(3).string(b"x").finish();
    assert!(matches!(decode_all(&bad_container), Err(RdbError::Invalid { offset: 13, .. })));
}

#[test]
fn hash_field_expiries_in_every_encoding() {
    // Redis 7.4 hashtable with TTLs relative to the minimum (type 24).
    let t24 = Rdb::redis(12)
        .key(24, "h")
        .i64le(1_000_000)
        .len(2)
        .len(0)
        .string(b"a")
        .string(b"1")
        .len(501)
        .string(b"b")
        .string(b"2")
        .finish();
    assert_eq!(only_value(&t24), Value::Hash(vec![field("a", "1", None), field("b", "2", Some(1_000_500))]));
    // Listpack triplets after the minimum (type 25), and without it (type 23).
    let triplets = listpack(&[Str(b"a"), Str(b"1"), Int(2_000_000), Str(b"b"), Str(b"2"), Int(0)]);
    let want = Value::Hash(vec![field("a", "1", Some(2_000_000)), field("b", "2", None)]);
    let t25 = Rdb::redis(12).key(25, "h").i64le(2_000_000).string(&triplets).finish();
    assert_eq!(only_value(&t25), want);
    let t23 = Rdb::redis(12).key(23, "h").string(&triplets).finish();
    assert_eq!(only_value(&t23), want);
    // Type 22: absolute TTL lengths in Redis, trailing i64 (-1 = none) in Valkey.
    let redis22 = Rdb::redis(12).key(22, "h").len(1).len(3_000_000).string(b"a").string(b"1").finish();
    assert_eq!(only_value(&redis22), Value::Hash(vec![field("a", "1", Some(3_000_000))]));
    let valkey22 = Rdb::valkey(80)
        .key(22, "h")
        .len(2)
        .string(b"a")
        .string(b"1")
        .i64le(-1)
        .string(b"b")
        .string(b"2")
        .i64le(0)
        .finish();
    assert_eq!(only_value(&valkey22), Value::Hash(vec![field("a", "1", None), field("b", "2", Some(0))]));
    // Type 24 does not exist in Valkey files.
    let valkey24 = Rdb::valkey(80).key(24, "h").i64le(1).len(0).finish();
    assert!(matches!(decode_all(&valkey24), Err(RdbError::Invalid { .. })));
}

/// One stream node: master id 100-0 with master field "f"; entries 100-0 {f: a} (same fields),
/// 101-0 deleted, 102-3 {g: b, h: 7}.
fn stream_node() -> Vec<u8> {
    listpack(&[
        Int(2),
        Int(1),
        Int(1),
        Str(b"f"),
        Int(0),
        Int(2),
        Int(0),
        Int(0),
        Str(b"a"),
        Int(4),
        Int(3),
        Int(1),
        Int(0),
        Str(b"x"),
        Int(4),
        Int(0),
        Int(2),
        Int(3),
        Int(2),
        Str(b"g"),
        Str(b"b"),
        Str(b"h"),
        Int(7),
        Int(7),
    ])
}

#[test]
fn stream_v3_with_groups_and_pending_entries() {
    let bytes = Rdb::redis(11)
        .key(21, "st")
        .len(1)
        .len(16)
        .stream_id(100, 0)
        .string(&stream_node())
        .len(2) // length
        .len(102)
        .len(3) // last id
        .len(100)
        .len(0) // first id
        .len(101)
        .len(0) // max deleted
        .len(3) // entries added
        .len(1) // groups
        .string(b"g1")
        .len(102)
        .len(3)
        .len(2) // entries read
        .len(2) // PEL
        .stream_id(100, 0)
        .i64le(5000)
        .len(1)
        .stream_id(102, 3)
        .i64le(6000)
        .len(2)
        .len(2) // consumers
        .string(b"alice")
        .i64le(7000)
        .i64le(7001)
        .len(1)
        .stream_id(102, 3)
        .string(b"bob")
        .i64le(8000)
        .i64le(8001)
        .len(1)
        .stream_id(100, 0)
        .finish();
    let Value::Stream(s) = only_value(&bytes) else { panic!() };
    let ids: Vec<StreamId> = s.entries.iter().map(|e| e.id).collect();
    assert_eq!(ids, [StreamId { ms: 100, seq: 0 }, StreamId { ms: 102, seq: 3 }]);
    assert_eq!(s.entries[0].fields, vec![(b"f".to_vec(), b"a".to_vec())]);
    assert_eq!(s.entries[1].fields, vec![(b"g".to_vec(), b"b".to_vec()), (b"h".to_vec(), b"7".to_vec())]);
    assert_eq!((s.last_id, s.first_id, s.max_deleted_id), (
        StreamId { ms: 102, seq: 3 },
        StreamId { ms: 100, seq: 0 },
        StreamId { ms: 101, seq: 0 }
    ));
    assert_eq!(s.entries_added, 3);
    let g = &s.groups[0];
    assert_eq!((g.name.as_slice(), g.entries_read), (&b"g1"[..], Some(2)));
    let owners: Vec<(&[u8], u64, u64)> =
        g.pending.iter().map(|p| (p.consumer.as_slice(), p.delivery_time_ms, p.delivery_count)).collect();
    assert_eq!(owners, vec![(&b"bob"[..], 5000, 1), (&b"alice"[..], 6000, 2)]);
    assert_eq!(g.consumers[0].active_time_ms, Some(7001));
}

#[test]
fn stream_v1_derives_what_it_lacks_and_orphan_pel_is_invalid() {
    let base = Rdb::redis(9).key(15, "st").len(1).len(16).stream_id(100, 0).string(&stream_node());
    let v1 = base.len(2).len(102).len(3).len(0).finish();
    let Value::Stream(s) = only_value(&v1) else { panic!() };
    assert_eq!((s.first_id, s.entries_added), (StreamId { ms: 100, seq: 0 }, 2));
    let orphan = Rdb::redis(9)
        .key(15, "st")
        .len(0)
        .len(0)
        .len(0)
        .len(0)
        .len(1)
        .string(b"g")
        .len(0)
        .len(0)
        .len(1)
        .stream_id(1, 1)
        .i64le(1)
        .len(1)
        .len(0)
        .finish();
    let err = decode_all(&orphan).unwrap_err();
    assert!(err.to_string().contains("without a consumer"), "{err}");
}

#[test]
fn modules_are_named() {
    // "hellotype" encoding version 0, as a module value and as module aux data.
    let id = 0x6a4a_b2ff_7878_9400u64;
    let name = module::module_name(id);
    let value = Rdb::redis(9).key(7, "mykey").len(id).finish();
    match decode_all(&value) {
        Err(RdbError::Module { offset: 9, key, module }) => assert_eq!((key.as_str(), module), ("mykey", name.clone())),
        other => panic!("{other:?}"),
    }
    let aux = Rdb::redis(9).raw(&[0xF7]).len(id).finish();
    match decode_all(&aux) {
        Err(RdbError::Module { offset: 9, key, module }) => assert_eq!((key.as_str(), module), ("", name)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn checksum_outcomes() {
    let mut bytes = Rdb::redis(10).key(0, "k").string(b"v").finish();
    let n = bytes.len();
    bytes[n - 8..].fill(0);
    let mut reader = RdbReader::new(&bytes[..]).unwrap();
    while reader.next_record().unwrap().is_some() {}
    assert_eq!(reader.checksum(), ChecksumStatus::NotPresent);
    bytes[n - 1] = 1;
    match decode_all(&bytes) {
        Err(RdbError::ChecksumMismatch { offset, expected, .. }) => {
            assert_eq!(offset, n as u64 - 8);
            assert_eq!(expected, 1 << 56);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn magic_and_versions() {
    assert!(matches!(RdbReader::new(&b"REDIS0013"[..]), Err(RdbError::UnsupportedVersion { version: 13 })));
    assert!(matches!(RdbReader::new(&b"REDIS0000"[..]), Err(RdbError::UnsupportedVersion { version: 0 })));
    assert!(matches!(RdbReader::new(&b"VALKEY079"[..]), Err(RdbError::UnsupportedVersion { version: 79 })));
    assert_eq!(RdbReader::new(&b"VALKEY081"[..]).unwrap().version(), 81);
    assert!(matches!(RdbReader::new(&b"KEVYSNAP\x04"[..]), Err(RdbError::Invalid { offset: 0, .. })));
    assert!(matches!(RdbReader::new(&b"REDIS00x1"[..]), Err(RdbError::Invalid { .. })));
    assert!(matches!(RdbReader::new(&b"REDIS"[..]), Err(RdbError::Truncated { offset: 5, .. })));
}

#[test]
fn empty_collections_are_skipped_like_the_server_does() {
    let bytes = Rdb::redis(10).key(2, "empty").len(0).key(0, "k").string(b"v").finish();
    let all = entries(&bytes);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].key, b"k");
}

#[test]
fn huge_claimed_lengths_fail_without_allocating() {
    for n in [1u64 << 32, 1 << 40, 1 << 62, u64::MAX] {
        let string = Rdb::redis(10).key(0, "k").len(n).raw(b"abc").0;
        assert!(matches!(decode_all(&string), Err(RdbError::Truncated { offset: 24, .. })), "{n}");
        let list = Rdb::redis(10).key(1, "k").len(n).string(b"abc").0;
        assert!(matches!(decode_all(&list), Err(RdbError::Truncated { .. })), "{n}");
        let lzf = Rdb::redis(10).key(0, "k").raw(&[0xC3]).len(3).len(n).raw(&[0, 1, 2]).0;
        assert!(matches!(decode_all(&lzf), Err(RdbError::Invalid { .. })), "{n}");
    }
}

#[test]
fn a_failed_reader_stays_failed() {
    let bytes = Rdb::redis(10).key(99, "k").finish();
    let mut reader = RdbReader::new(&bytes[..]).unwrap();
    assert!(matches!(reader.next_record(), Err(RdbError::Invalid { offset: 9, .. })));
    assert!(reader.next_record().is_err());
}
