//! Streams: node listpacks with deleted and same-fields entries, metadata per version, groups,
//! PEL owners.
#![allow(clippy::unwrap_used)]

use super::*;

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
    let Value::Stream(s) = only_value(&bytes) else {
        panic!()
    };
    let ids: Vec<StreamId> = s.entries.iter().map(|e| e.id).collect();
    assert_eq!(
        ids,
        [StreamId { ms: 100, seq: 0 }, StreamId { ms: 102, seq: 3 }]
    );
    assert_eq!(s.entries[0].fields, vec![(b"f".to_vec(), b"a".to_vec())]);
    assert_eq!(
        s.entries[1].fields,
        vec![
            (b"g".to_vec(), b"b".to_vec()),
            (b"h".to_vec(), b"7".to_vec())
        ]
    );
    assert_eq!(
        (s.last_id, s.first_id, s.max_deleted_id),
        (
            StreamId { ms: 102, seq: 3 },
            StreamId { ms: 100, seq: 0 },
            StreamId { ms: 101, seq: 0 }
        )
    );
    assert_eq!(s.entries_added, 3);
    let g = &s.groups[0];
    assert_eq!((g.name.as_slice(), g.entries_read), (&b"g1"[..], Some(2)));
    let owners: Vec<(&[u8], u64, u64)> = g
        .pending
        .iter()
        .map(|p| (p.consumer.as_slice(), p.delivery_time_ms, p.delivery_count))
        .collect();
    assert_eq!(
        owners,
        vec![(&b"bob"[..], 5000, 1), (&b"alice"[..], 6000, 2)]
    );
    assert_eq!(g.consumers[0].active_time_ms, Some(7001));
}

#[test]
fn stream_v1_derives_what_it_lacks_and_orphan_pel_is_invalid() {
    let base = Rdb::redis(9)
        .key(15, "st")
        .len(1)
        .len(16)
        .stream_id(100, 0)
        .string(&stream_node());
    let v1 = base.len(2).len(102).len(3).len(0).finish();
    let Value::Stream(s) = only_value(&v1) else {
        panic!()
    };
    assert_eq!(
        (s.first_id, s.entries_added),
        (StreamId { ms: 100, seq: 0 }, 2)
    );
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
