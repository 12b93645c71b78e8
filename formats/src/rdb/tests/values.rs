//! Every value encoding: plain, legacy packed (ziplist, intset, zipmap), listpack, quicklists,
//! and hashes with field expiries.
#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn plain_collections() {
    let list = Rdb::redis(6)
        .key(1, "l")
        .len(2)
        .string(b"a")
        .raw(&[0xC0, 0x07])
        .finish();
    assert_eq!(only_value(&list), Value::List(strs(&["a", "7"])));
    let set = Rdb::redis(6)
        .key(2, "s")
        .len(2)
        .string(b"x")
        .string(b"y")
        .finish();
    assert_eq!(only_value(&set), Value::Set(strs(&["x", "y"])));
    let hash = Rdb::redis(6)
        .key(4, "h")
        .len(1)
        .string(b"f")
        .string(b"v")
        .finish();
    assert_eq!(only_value(&hash), Value::Hash(vec![field("f", "v", None)]));
    let zset2 = Rdb::redis(9)
        .key(5, "z")
        .len(1)
        .string(b"m")
        .raw(&2.5f64.to_le_bytes())
        .finish();
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
    let Value::ZSet(z) = only_value(&bytes) else {
        panic!()
    };
    assert_eq!(z[0], (b"a".to_vec(), 1.5));
    assert_eq!(z[1], (b"b".to_vec(), f64::INFINITY));
    assert_eq!(z[2], (b"c".to_vec(), f64::NEG_INFINITY));
    assert!(z[3].1.is_nan());
}

#[test]
fn legacy_packed_encodings() {
    let zl = |type_id, items: &[&[u8]]| {
        Rdb::redis(6)
            .key(type_id, "k")
            .string(&ziplist(items))
            .finish()
    };
    assert_eq!(
        only_value(&zl(10, &[b"a", b"b"])),
        Value::List(strs(&["a", "b"]))
    );
    assert_eq!(
        only_value(&zl(12, &[b"m", b"-2.5"])),
        Value::ZSet(vec![(b"m".to_vec(), -2.5)])
    );
    assert_eq!(
        only_value(&zl(13, &[b"f", b"v"])),
        Value::Hash(vec![field("f", "v", None)])
    );
    let quicklist = Rdb::redis(7)
        .key(14, "q")
        .len(2)
        .string(&ziplist(&[b"a"]))
        .string(&ziplist(&[b"b", b"c"]))
        .finish();
    assert_eq!(only_value(&quicklist), Value::List(strs(&["a", "b", "c"])));
    let intset = Rdb::redis(6)
        .key(11, "i")
        .string(&[2, 0, 0, 0, 2, 0, 0, 0, 0xFF, 0xFF, 5, 0])
        .finish();
    assert_eq!(only_value(&intset), Value::Set(strs(&["-1", "5"])));
    let zipmap = Rdb::redis(4)
        .key(9, "m")
        .string(&[1, 1, b'f', 1, 0, b'v', 0xFF])
        .raw(&[0xFF]);
    // Version 4: no checksum trailer.
    let mut reader = RdbReader::new(&zipmap.0[..]).unwrap();
    let Some(Record::Entry(e)) = reader.next_record().unwrap() else {
        panic!()
    };
    assert_eq!(e.value, Value::Hash(vec![field("f", "v", None)]));
    assert_eq!(reader.next_record().unwrap(), None);
    assert_eq!(reader.checksum(), ChecksumStatus::NotPresent);
}

#[test]
fn listpack_encodings_and_quicklist2_nodes() {
    let lp = |type_id, items: &[packed::Item<'_>]| {
        Rdb::redis(11)
            .key(type_id, "k")
            .string(&listpack(items))
            .finish()
    };
    assert_eq!(
        only_value(&lp(16, &[Str(b"f"), Int(-3)])),
        Value::Hash(vec![field("f", "-3", None)])
    );
    assert_eq!(
        only_value(&lp(
            17,
            &[
                Str(b"a"),
                Int(2),
                Str(b"b"),
                Str(b"2.5"),
                Str(b"c"),
                Str(b"inf")
            ]
        )),
        Value::ZSet(vec![
            (b"a".to_vec(), 2.0),
            (b"b".to_vec(), 2.5),
            (b"c".to_vec(), f64::INFINITY)
        ])
    );
    assert_eq!(
        only_value(&lp(20, &[Str(b"x"), Int(1)])),
        Value::Set(strs(&["x", "1"]))
    );
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
    assert_eq!(
        only_value(&list),
        Value::List(vec![b"a".to_vec(), b"1".to_vec(), big, b"z".to_vec()])
    );
    let bad_container = Rdb::redis(10)
        .key(18, "l")
        .len(1)
        .len(3)
        .string(b"x")
        .finish();
    assert!(matches!(
        decode_all(&bad_container),
        Err(RdbError::Invalid { offset: 13, .. })
    ));
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
    assert_eq!(
        only_value(&t24),
        Value::Hash(vec![
            field("a", "1", None),
            field("b", "2", Some(1_000_500))
        ])
    );
    // Listpack triplets after the minimum (type 25), and without it (type 23).
    let triplets = listpack(&[
        Str(b"a"),
        Str(b"1"),
        Int(2_000_000),
        Str(b"b"),
        Str(b"2"),
        Int(0),
    ]);
    let want = Value::Hash(vec![
        field("a", "1", Some(2_000_000)),
        field("b", "2", None),
    ]);
    let t25 = Rdb::redis(12)
        .key(25, "h")
        .i64le(2_000_000)
        .string(&triplets)
        .finish();
    assert_eq!(only_value(&t25), want);
    let t23 = Rdb::redis(12).key(23, "h").string(&triplets).finish();
    assert_eq!(only_value(&t23), want);
    // Type 22: absolute TTL lengths in Redis, trailing i64 (-1 = none) in Valkey.
    let redis22 = Rdb::redis(12)
        .key(22, "h")
        .len(1)
        .len(3_000_000)
        .string(b"a")
        .string(b"1")
        .finish();
    assert_eq!(
        only_value(&redis22),
        Value::Hash(vec![field("a", "1", Some(3_000_000))])
    );
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
    assert_eq!(
        only_value(&valkey22),
        Value::Hash(vec![field("a", "1", None), field("b", "2", Some(0))])
    );
    // Type 24 does not exist in Valkey files.
    let valkey24 = Rdb::valkey(80).key(24, "h").i64le(1).len(0).finish();
    assert!(matches!(
        decode_all(&valkey24),
        Err(RdbError::Unsupported {
            offset: 9,
            version: 80,
            ..
        })
    ));
}
