//! The formats of servers this machine cannot run — Redis RDB 13–15 (Redis 8.6–8.10) and Valkey
//! 80/81 (Valkey 9.0/9.2), plain and in Valkey's compressed envelope — proven with files
//! written by the test writer in `common/rdb_writer.rs`:
//!
//! - property tests: random hashes stored as templates (types 30, 31, 32), random streams as
//!   types 26 and 27, keys behind ignorable key metadata, whole files in the envelope, all
//!   decode to exactly what was written;
//! - the fixture files under `fixtures/rdb/encoder/` (also seeds of the mutation property test
//!   in `rdb_props.rs` and of the fuzz targets) are what the writer produces today, and decode
//!   to the expected neutral form. `AOFVAULT_WRITE_FIXTURES=1` rewrites them.
#![allow(clippy::unwrap_used)]

#[path = "common/rdb_writer.rs"]
mod rdb_writer;

use std::path::PathBuf;

use aofvault_formats::model::{Entry, HashField, Record, StreamEntry, StreamId, Value};
use aofvault_formats::rdb::decode_all;
use proptest::collection::{btree_set, vec};
use proptest::prelude::*;
use rdb_writer::{envelope, StreamEntryIn, Writer};

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

fn hash(fields: &[Vec<u8>], values: &[Vec<u8>]) -> Value {
    Value::Hash(
        fields
            .iter()
            .zip(values)
            .map(|(f, v)| HashField {
                field: f.clone(),
                value: v.clone(),
                expire_at_ms: None,
            })
            .collect(),
    )
}

fn bytes_strategy(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..max)
}

/// Stream entries with strictly increasing ids and 1..4 fields each.
fn stream_entries() -> impl Strategy<Value = Vec<StreamEntryIn>> {
    (
        btree_set((1u64..1 << 40, 0u64..1000), 0..12),
        vec(vec((bytes_strategy(12), bytes_strategy(80)), 1..4), 12),
    )
        .prop_map(|(ids, fields)| ids.into_iter().zip(fields).collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn template_hashes_decode_to_what_was_written(
        fields in btree_set(bytes_strategy(20), 1..10),
        rows in vec(vec(bytes_strategy(300), 10), 1..5),
        id in 0u64..100_000,
    ) {
        let fields: Vec<Vec<u8>> = fields.into_iter().collect();
        let mut w = Writer::redis(15);
        w.hash_template(id, &fields).select_db(0);
        let mut want = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let values = &row[..fields.len()];
            let (lp, arr, own) = (format!("lp{i}"), format!("arr{i}"), format!("own{i}"));
            w.template_lp_ref(lp.as_bytes(), id, values);
            w.template_array_ref(arr.as_bytes(), id, values);
            let pairs: Vec<_> = fields.iter().cloned().zip(values.iter().cloned()).collect();
            w.template_array(own.as_bytes(), &pairs);
            for key in [lp, arr, own] {
                want.push((key.into_bytes(), hash(&fields, values)));
            }
        }
        let got: Vec<_> = entries(&w.finish()).into_iter().map(|e| (e.key, e.value)).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn streams_of_types_26_and_27_decode_like_type_21(entries_in in stream_entries()) {
        let mut decoded = Vec::new();
        for (version, type_id) in [(11, 21), (13, 26), (14, 27)] {
            let mut w = Writer::redis(version);
            w.select_db(0).stream(type_id, b"s", &entries_in);
            decoded.push(entries(&w.finish()));
        }
        let Value::Stream(s) = &decoded[0][0].value else { panic!() };
        let want: Vec<StreamEntry> = entries_in
            .iter()
            .map(|((ms, seq), fields)| StreamEntry { id: StreamId { ms: *ms, seq: *seq }, fields: fields.clone() })
            .collect();
        prop_assert_eq!(&s.entries, &want);
        prop_assert_eq!(&decoded[1], &decoded[0]);
        prop_assert_eq!(&decoded[2], &decoded[0]);
    }

    #[test]
    fn ignorable_key_metadata_changes_nothing(
        values in vec(bytes_strategy(100), 1..6),
        classes in vec(prop_oneof![Just(*b"BLES"), Just(*b"ATTR"), Just(*b"KMT1")], 0..4),
        expire in proptest::option::of(1i64..1 << 47),
    ) {
        let meta: Vec<([u8; 4], bool)> = classes.iter().map(|c| (*c, true)).collect();
        let (mut with, mut without) = (Writer::redis(13), Writer::redis(13));
        for w in [&mut with, &mut without] {
            w.select_db(0);
        }
        for (i, v) in values.iter().enumerate() {
            let key = format!("k{i}");
            for (w, with_meta) in [(&mut with, true), (&mut without, false)] {
                if let Some(at) = expire {
                    w.expire_ms(at);
                }
                if with_meta && !meta.is_empty() {
                    w.key_meta(&meta);
                }
                w.key(0, key.as_bytes()).string(v);
            }
        }
        prop_assert_eq!(entries(&with.finish()), entries(&without.finish()));
    }

    #[test]
    fn envelopes_decode_like_the_plain_file(values in vec(bytes_strategy(2000), 0..8)) {
        let mut w = Writer::valkey(81);
        w.select_db(0);
        for (i, v) in values.iter().enumerate() {
            w.key(0, format!("k{i}").as_bytes()).string(v);
        }
        let plain = w.finish();
        prop_assert_eq!(decode_all(&envelope(&plain)).unwrap(), decode_all(&plain).unwrap());
    }
}

/// The encoder-made fixture files: name and bytes.
fn fixtures() -> Vec<(&'static str, Vec<u8>)> {
    let tmpl_fields = vec![b"age".to_vec(), b"name".to_vec(), b"email".to_vec()];
    let mut redis15 = Writer::redis(15);
    redis15
        .hash_template(1, &tmpl_fields)
        .select_db(0)
        .template_lp_ref(
            b"user:1",
            1,
            &[b"42".to_vec(), b"Ada".to_vec(), b"a@x".to_vec()],
        )
        .template_array_ref(
            b"user:2",
            1,
            &[b"7".to_vec(), b"Bob".to_vec(), b"b@x".to_vec()],
        )
        .template_array(b"user:3", &[(b"f".to_vec(), b"v".to_vec())])
        .expire_ms(1_900_000_000_000)
        .key_meta(&[(*b"BLES", true)])
        .key(0, b"blessed")
        .string(b"yes")
        .stream(
            27,
            b"events",
            &[(
                (1_700_000_000_000, 0),
                vec![(b"type".to_vec(), b"signup".to_vec())],
            )],
        );
    let mut redis13 = Writer::redis(13);
    redis13
        .select_db(0)
        .stream(
            26,
            b"s",
            &[
                ((5, 0), vec![(b"a".to_vec(), b"1".to_vec())]),
                ((5, 1), vec![(b"b".to_vec(), b"2".to_vec())]),
            ],
        )
        .key_meta(&[(*b"ATTR", true)])
        .key(0, b"k")
        .string(b"v");
    let mut valkey80 = Writer::valkey(80);
    valkey80
        .slot_import(b"import-1", &[(0, 5460)])
        .select_db(0)
        .key(22, b"h")
        .len(2)
        .string(b"f1")
        .string(b"v1")
        .raw(&(-1i64).to_le_bytes())
        .string(b"f2")
        .string(b"v2")
        .raw(&1_900_000_000_000i64.to_le_bytes());
    let valkey80 = valkey80.finish();
    vec![
        ("redis-15-templates-keymeta-stream27.rdb", redis15.finish()),
        ("redis-13-stream26-keymeta.rdb", redis13.finish()),
        ("valkey-80-slot-import-hash2.rdb", valkey80.clone()),
        ("valkey-80-lz4-envelope.rdb", envelope(&valkey80)),
    ]
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rdb/encoder")
}

#[test]
fn fixtures_are_what_the_writer_writes_and_decode_as_expected() {
    let dir = fixture_dir();
    let write = std::env::var_os("AOFVAULT_WRITE_FIXTURES").is_some();
    for (name, bytes) in fixtures() {
        let path = dir.join(name);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(on_disk, bytes, "{name} differs from the writer's output");
    }
    let summary = |name: &str| -> Vec<(String, String, Option<i64>)> {
        entries(&std::fs::read(dir.join(name)).unwrap())
            .into_iter()
            .map(|e| {
                let shape = match &e.value {
                    Value::Hash(h) => h
                        .iter()
                        .map(|f| {
                            format!(
                                "{}={}@{:?}",
                                String::from_utf8_lossy(&f.field),
                                String::from_utf8_lossy(&f.value),
                                f.expire_at_ms
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                    Value::Stream(s) => format!("stream:{}", s.entries.len()),
                    Value::String(v) => String::from_utf8_lossy(v).into_owned(),
                    other => other.type_name().to_owned(),
                };
                (
                    String::from_utf8_lossy(&e.key).into_owned(),
                    shape,
                    e.expire_at_ms,
                )
            })
            .collect()
    };
    let s = |a: &str, b: &str, c: Option<i64>| (a.to_owned(), b.to_owned(), c);
    assert_eq!(
        summary("redis-15-templates-keymeta-stream27.rdb"),
        vec![
            s("user:1", "age=42@None,name=Ada@None,email=a@x@None", None),
            s("user:2", "age=7@None,name=Bob@None,email=b@x@None", None),
            s("user:3", "f=v@None", None),
            s("blessed", "yes", Some(1_900_000_000_000)),
            s("events", "stream:1", None),
        ]
    );
    assert_eq!(
        summary("redis-13-stream26-keymeta.rdb"),
        vec![s("s", "stream:2", None), s("k", "v", None)]
    );
    let valkey = vec![s("h", "f1=v1@None,f2=v2@Some(1900000000000)", None)];
    assert_eq!(summary("valkey-80-slot-import-hash2.rdb"), valkey);
    assert_eq!(summary("valkey-80-lz4-envelope.rdb"), valkey);
}
