//! Property tests over random and mutated inputs for the RESP, AOF, AOF-manifest and KEVYSNAP
//! decoders: they never panic, what they accept re-encodes to the same bytes, and a huge length
//! field in a small input is an error (or "incomplete"), never an allocation of that size.
#![allow(clippy::unwrap_used)]

use aofvault_formats::aof::{cut_at_timestamp, items, safe_prefix};
use aofvault_formats::aof_manifest::{AofFileEntry, AofFileType, AofManifest};
use aofvault_formats::kevy::{write_snapshot, KevyError, KevySnapReader};
use aofvault_formats::model::{
    Consumer, Entry, HashField, PendingEntry, Stream, StreamEntry, StreamGroup, StreamId, Value,
};
use aofvault_formats::resp::{decode_command, encode_command, MAX_BULK_LEN};
use proptest::collection::vec;
use proptest::prelude::*;

fn args() -> impl Strategy<Value = Vec<Vec<u8>>> {
    vec(vec(any::<u8>(), 0..40), 1..6)
}

fn encoded_stream() -> impl Strategy<Value = Vec<u8>> {
    vec(
        prop_oneof![
            args().prop_map(|a| {
                let mut out = Vec::new();
                encode_command(&a, &mut out);
                out
            }),
            Just(b"*1\r\n$5\r\nMULTI\r\n".to_vec()),
            Just(b"*1\r\n$4\r\nEXEC\r\n".to_vec()),
            (0i64..2_000_000_000).prop_map(|t| format!("#TS:{t}\r\n").into_bytes()),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

/// Overwrite, insert or delete bytes at random positions.
fn mutate(mut buf: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(pos, byte, kind) in edits {
        if buf.is_empty() {
            buf.push(byte);
            continue;
        }
        let at = pos % buf.len();
        match kind % 3 {
            0 => buf[at] = byte,
            1 => buf.insert(at, byte),
            _ => {
                buf.remove(at);
            }
        }
    }
    buf
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..4)
}

fn check_resp(buf: &[u8]) {
    if let Ok(Some((args, n))) = decode_command(buf, 0) {
        // Leading zeros in lengths are accepted, so compare arguments, not bytes.
        let mut again = Vec::new();
        encode_command(&args, &mut again);
        assert!(again.len() <= n);
        assert_eq!(
            decode_command(&again, 0).unwrap(),
            Some((args, again.len()))
        );
    }
}

fn check_aof(buf: &[u8], base: u64) {
    if let Ok(p) = safe_prefix(buf, base) {
        assert!(p.len <= buf.len());
        // Everything before the safe cut is whole items.
        for item in items(&buf[..p.len], base) {
            item.unwrap();
        }
        assert!(cut_at_timestamp(buf, base, i64::MAX).unwrap() == p.len);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn resp_round_trips_and_prefixes_are_incomplete(a in args(), cut in any::<usize>()) {
        let mut buf = Vec::new();
        encode_command(&a, &mut buf);
        let (got, n) = decode_command(&buf, 0).unwrap().unwrap();
        prop_assert_eq!(n, buf.len());
        prop_assert_eq!(got, a.iter().map(Vec::as_slice).collect::<Vec<_>>());
        prop_assert_eq!(decode_command(&buf[..cut % buf.len()], 0).unwrap(), None);
    }

    #[test]
    fn resp_never_panics_on_random_or_mutated_input(
        noise in vec(any::<u8>(), 0..200), a in args(), e in edits()
    ) {
        check_resp(&noise);
        let mut buf = Vec::new();
        encode_command(&a, &mut buf);
        check_resp(&mutate(buf, &e));
    }

    #[test]
    fn resp_huge_lengths_are_errors_or_incomplete(len in (MAX_BULK_LEN as u64 + 1)..u64::MAX, argc in (1u64 << 24) + 1..u64::MAX) {
        let buf = format!("*1\r\n${len}\r\nabc");
        prop_assert!(decode_command(buf.as_bytes(), 0).is_err());
        let buf = format!("*{argc}\r\n$1\r\na\r\n");
        prop_assert!(decode_command(buf.as_bytes(), 0).is_err());
        // A length within the limit but past the input is incomplete (and allocates nothing).
        let buf = format!("*1\r\n${MAX_BULK_LEN}\r\nabc");
        prop_assert_eq!(decode_command(buf.as_bytes(), 0).unwrap(), None);
    }

    #[test]
    fn aof_scanners_never_panic(
        stream in encoded_stream(), noise in vec(any::<u8>(), 0..200), e in edits(), base in 0u64..3
    ) {
        check_aof(&stream, base);
        check_aof(&noise, base);
        check_aof(&mutate(stream.clone(), &e), base);
        let p = safe_prefix(&stream, base).unwrap();
        // A valid stream is safe up to its last closed transaction.
        prop_assert!(p.len <= stream.len());
    }

    #[test]
    fn manifest_never_panics_and_what_parses_round_trips(
        noise in vec(any::<u8>(), 0..300), e in edits()
    ) {
        for text in [noise.clone(), mutate(b"file a.rdb seq 1 type b\nfile \"b c\" seq 2 type i\n".to_vec(), &e)] {
            // (A manifest of comments only has no entries, and renders as an empty file.)
            if let Ok(m) = AofManifest::parse(&text).map_err(drop).and_then(|m| if m.entries.is_empty() { Err(()) } else { Ok(m) }) {
                prop_assert_eq!(AofManifest::parse(m.render().as_bytes()).unwrap(), m);
            }
        }
    }

    #[test]
    fn manifest_names_round_trip(names in vec("[^/\u{0}]{1,30}", 1..5)) {
        let entries = names.iter().enumerate().map(|(i, name)| AofFileEntry {
            name: name.clone(),
            seq: i as i64 + 1,
            file_type: AofFileType::Incr,
            extra: vec![],
        }).collect();
        let m = AofManifest { entries };
        prop_assert_eq!(AofManifest::parse(m.render().as_bytes()).unwrap(), m);
    }

    #[test]
    fn kevysnap_never_panics(noise in vec(any::<u8>(), 0..300), version in 2u8..5, e in edits()) {
        let mut buf = b"KEVYSNAP".to_vec();
        buf.push(version);
        buf.extend(&noise);
        drain(&buf);
        let mut valid = Vec::new();
        write_snapshot(&mut valid, &sample_entries()).unwrap();
        drain(&mutate(valid, &e));
    }

    #[test]
    fn kevysnap_huge_lengths_are_truncation_errors(len in 1_000u32.., version in 2u8..5) {
        // A string record whose key claims `len` bytes, in a 30-byte file.
        let mut buf = b"KEVYSNAP".to_vec();
        buf.extend([version, 1, 0]);
        buf.extend(len.to_le_bytes());
        buf.extend(b"short key");
        let err = KevySnapReader::new(buf.as_slice(), 0).unwrap().next_entry().unwrap_err();
        let is_truncated = matches!(err, KevyError::Truncated { .. });
        prop_assert!(is_truncated);
        // A list claiming `len` elements.
        let mut buf = b"KEVYSNAP".to_vec();
        buf.extend([version, 3, 0, 1, 0, 0, 0, b'L']);
        buf.extend(len.to_le_bytes());
        let err = KevySnapReader::new(buf.as_slice(), 0).unwrap().next_entry().unwrap_err();
        let is_truncated = matches!(err, KevyError::Truncated { .. });
        prop_assert!(is_truncated);
    }

    #[test]
    fn kevysnap_round_trips(entries in vec(entry(), 0..8)) {
        let mut buf = Vec::new();
        write_snapshot(&mut buf, &entries).unwrap();
        let mut reader = KevySnapReader::new(buf.as_slice(), 0).unwrap();
        let mut got = Vec::new();
        while let Some(e) = reader.next_entry().unwrap() {
            got.push(e);
        }
        prop_assert_eq!(reader.offset(), buf.len() as u64);
        prop_assert_eq!(got, entries);
    }
}

/// Read entries until EOF or the first error; must neither panic nor loop.
fn drain(buf: &[u8]) {
    if let Ok(mut reader) = KevySnapReader::new(buf, 1_000) {
        while let Ok(Some(_)) = reader.next_entry() {}
        assert!(reader.offset() <= buf.len() as u64);
    }
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..12)
}

fn stream_id() -> impl Strategy<Value = StreamId> {
    (any::<u64>(), any::<u64>()).prop_map(|(ms, seq)| StreamId { ms, seq })
}

/// Entries a KEVYSNAP v4 can hold exactly (db 0, no field TTLs, kevy's stream fields).
fn entry() -> impl Strategy<Value = Entry> {
    let value = prop_oneof![
        bytes().prop_map(Value::String),
        vec(bytes(), 0..5).prop_map(Value::List),
        vec(bytes(), 0..5).prop_map(Value::Set),
        vec((bytes(), -1e9f64..1e9), 0..5).prop_map(Value::ZSet),
        vec((bytes(), bytes()), 0..5).prop_map(|f| Value::Hash(
            f.into_iter()
                .map(|(field, value)| HashField {
                    field,
                    value,
                    expire_at_ms: None
                })
                .collect()
        )),
        stream().prop_map(|s| Value::Stream(Box::new(s))),
    ];
    (bytes(), value, proptest::option::of(0i64..i64::MAX)).prop_map(|(key, value, ttl)| Entry {
        db: 0,
        key,
        value,
        expire_at_ms: ttl,
    })
}

fn stream() -> impl Strategy<Value = Stream> {
    let entries = vec((stream_id(), vec((bytes(), bytes()), 0..3)), 0..4);
    let group = (
        bytes(),
        stream_id(),
        vec((bytes(), any::<u64>()), 0..3),
        vec((stream_id(), bytes(), any::<u64>(), any::<u32>()), 0..3),
    );
    (
        entries,
        stream_id(),
        stream_id(),
        any::<u64>(),
        vec(group, 0..3),
    )
        .prop_map(
            |(entries, last_id, max_deleted_id, entries_added, groups)| {
                let entries: Vec<StreamEntry> = entries
                    .into_iter()
                    .map(|(id, fields)| StreamEntry { id, fields })
                    .collect();
                Stream {
                    first_id: entries.first().map(|e| e.id).unwrap_or_default(),
                    entries,
                    last_id,
                    max_deleted_id,
                    entries_added,
                    groups: groups
                        .into_iter()
                        .map(|(name, last_delivered, consumers, pending)| StreamGroup {
                            name,
                            last_delivered,
                            entries_read: None,
                            consumers: consumers
                                .into_iter()
                                .map(|(name, seen)| Consumer {
                                    name,
                                    seen_time_ms: seen,
                                    active_time_ms: None,
                                })
                                .collect(),
                            pending: pending
                                .into_iter()
                                .map(|(id, consumer, at, count)| PendingEntry {
                                    id,
                                    consumer,
                                    delivery_time_ms: at,
                                    delivery_count: u64::from(count),
                                })
                                .collect(),
                        })
                        .collect(),
                }
            },
        )
}

fn sample_entries() -> Vec<Entry> {
    vec![
        Entry {
            db: 0,
            key: b"k".to_vec(),
            value: Value::List(vec![b"a".to_vec(), b"b".to_vec()]),
            expire_at_ms: Some(1_795_721_055_561),
        },
        Entry {
            db: 0,
            key: b"s".to_vec(),
            value: Value::Stream(Box::new(Stream {
                entries: vec![StreamEntry {
                    id: StreamId { ms: 1, seq: 1 },
                    fields: vec![(b"f".to_vec(), b"v".to_vec())],
                }],
                groups: vec![StreamGroup {
                    name: b"g".to_vec(),
                    last_delivered: StreamId { ms: 1, seq: 1 },
                    entries_read: None,
                    pending: vec![],
                    consumers: vec![],
                }],
                ..Stream::default()
            })),
            expire_at_ms: None,
        },
    ]
}
