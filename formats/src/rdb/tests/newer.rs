//! RDB 13–15 (Redis 8.6–8.10) and Valkey 80/81: files written by the small encoder below, which
//! follows the writers as their layouts are known (see `meta.rs`, `template.rs`, `stream.rs`
//! for where each layout comes from), decode to the expected neutral form; everything the
//! decoder does not read fails with [`RdbError::Unsupported`] naming version, byte and offset;
//! the same byte means different things in `REDIS` and `VALKEY` files; Valkey's compressed
//! envelope is unwrapped.
#![allow(clippy::unwrap_used)]

use std::io::Write;

use super::*;

/// `keyMetaClassEncode`: 4 name characters of 6 bits (`A-Za-z0-9_-`), 5 bits of version, 3 of
/// flags; written as 4 little-endian bytes.
fn class_spec(name: &[u8; 4], version: u32, flags: u32) -> [u8; 4] {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    let mut bits = 0u32;
    for c in name {
        bits = (bits << 6) | CHARS.iter().position(|x| x == c).unwrap() as u32;
    }
    ((((bits << 5) | version) << 3) | flags).to_le_bytes()
}

impl Rdb {
    /// `rdbSaveKeyMetadata`: opcode, class count, then per class its spec, a module-format
    /// value (here one unsigned integer and one string) and the module EOF opcode.
    fn key_meta(mut self, classes: &[(&[u8; 4], u32)]) -> Self {
        self = self.raw(&[0xF3]).len(classes.len() as u64);
        for (name, flags) in classes {
            self = self
                .raw(&class_spec(name, 1, *flags))
                .len(2) // UINT
                .len(42)
                .len(5) // STRING
                .string(b"meta")
                .len(0); // EOF
        }
        self
    }
    /// A `HASH_TEMPLATE` record.
    fn hash_template(mut self, id: u64, fields: &[&str]) -> Self {
        self = self.raw(&[0xF2]).len(id).len(fields.len() as u64);
        for f in fields {
            self = self.string(f.as_bytes());
        }
        self
    }
    /// A version-3 stream body with one entry and one group owning its only pending entry,
    /// without the trailer of later versions.
    fn stream_body(self) -> Self {
        let node = listpack(&[
            Int(1),
            Int(0),
            Int(1),
            Str(b"f"),
            Int(0),
            Int(2),
            Int(0),
            Int(0),
            Str(b"v"),
            Int(4),
        ]);
        self.len(1)
            .len(16)
            .stream_id(7, 0)
            .string(&node)
            .len(1) // length
            .len(7)
            .len(0) // last id
            .len(7)
            .len(0) // first id
            .len(0)
            .len(0) // max deleted
            .len(1) // entries added
            .len(1) // groups
            .string(b"g")
            .len(7)
            .len(0)
            .len(1) // entries read
            .len(1)
            .stream_id(7, 0)
            .i64le(100)
            .len(1)
            .len(1) // consumers
            .string(b"c")
            .i64le(200)
            .i64le(300)
            .len(1)
            .stream_id(7, 0)
    }
    /// The IDMP trailer with no tracked producer: duration, max size, producers, ids added,
    /// duplicates.
    fn idmp_none(self) -> Self {
        self.len(100).len(100).len(0).len(0).len(0)
    }
}

fn unsupported(bytes: &[u8]) -> (u64, u32, String) {
    match decode_all(bytes) {
        Err(RdbError::Unsupported {
            offset,
            version,
            what,
        }) => (offset, version, what),
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[test]
fn ignorable_key_metadata_is_skipped_and_the_key_keeps_its_expiry() {
    let bytes = Rdb::redis(13)
        .raw(&[0xFE, 0x00, 0xFC])
        .i64le(1_900_000_000_000)
        .key_meta(&[(b"BLES", 1), (b"ATTR", 1)])
        .key(0, "k")
        .string(b"v")
        .finish();
    let all = entries(&bytes);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].key, b"k");
    assert_eq!(all[0].value, Value::String(b"v".to_vec()));
    assert_eq!(all[0].expire_at_ms, Some(1_900_000_000_000));
}

#[test]
fn key_metadata_a_server_would_refuse_is_an_error_naming_its_class() {
    let bytes = Rdb::redis(13)
        .key_meta(&[(b"BLES", 1), (b"JSNx", 0)])
        .key(0, "k")
        .string(b"v")
        .finish();
    // Magic 9, opcode 1, count 1, first class 4 + 1 + 1 + 1 + 5 + 1 = 13: the second spec is
    // at 24.
    let (offset, version, what) = unsupported(&bytes);
    assert_eq!((offset, version), (24, 13));
    assert!(
        what.contains("META-JSNx") && what.contains("0xF3"),
        "{what}"
    );
}

#[test]
fn hash_templates_decode_to_plain_hashes() {
    let lp_ref = listpack(&[Int(5), Str(b"42"), Str(b"Ada")]);
    let bytes = Rdb::redis(14)
        .hash_template(5, &["age", "name"])
        .raw(&[0xFE, 0x00])
        .key(30, "lp")
        .string(&lp_ref)
        .key(32, "arr")
        .len(5)
        .string(b"7")
        .string(b"Bob")
        .key(31, "self")
        .len(2)
        .string(b"x")
        .string(b"1")
        .string(b"y")
        .string(b"2")
        .finish();
    let got: Vec<(Vec<u8>, Value)> = entries(&bytes)
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                b"lp".to_vec(),
                Value::Hash(vec![field("age", "42", None), field("name", "Ada", None)])
            ),
            (
                b"arr".to_vec(),
                Value::Hash(vec![field("age", "7", None), field("name", "Bob", None)])
            ),
            (
                b"self".to_vec(),
                Value::Hash(vec![field("x", "1", None), field("y", "2", None)])
            ),
        ]
    );
}

#[test]
fn template_references_must_match_a_declared_template() {
    let undeclared = Rdb::redis(14).key(32, "arr").len(9).string(b"x").finish();
    assert!(
        matches!(
            decode_all(&undeclared),
            Err(RdbError::Invalid { offset: 14, .. })
        ),
        "{:?}",
        decode_all(&undeclared)
    );
    let short = Rdb::redis(14)
        .hash_template(1, &["a", "b"])
        .key(30, "lp")
        .string(&listpack(&[Int(1), Str(b"only")]))
        .finish();
    assert!(matches!(decode_all(&short), Err(RdbError::Invalid { .. })));
    let twice = Rdb::redis(14)
        .hash_template(1, &["a"])
        .hash_template(1, &["b"])
        .finish();
    assert!(matches!(decode_all(&twice), Err(RdbError::Invalid { .. })));
    // The DUMP-only listpack form is refused, not guessed at.
    let (offset, version, what) = unsupported(&Rdb::redis(14).key(29, "d").len(0).finish());
    assert_eq!((offset, version), (9, 14));
    assert!(what.contains("29"), "{what}");
}

#[test]
fn streams_of_rdb_13_and_14_decode_like_version_3() {
    let v3 = only_value(&Rdb::redis(11).key(21, "s").stream_body().finish());
    let v4 = only_value(
        &Rdb::redis(13)
            .key(26, "s")
            .stream_body()
            .idmp_none()
            .finish(),
    );
    let v5 = only_value(
        &Rdb::redis(14)
            .key(27, "s")
            .stream_body()
            .len(0) // NACK zone of the group
            .idmp_none()
            .finish(),
    );
    assert_eq!(v4, v3);
    assert_eq!(v5, v3);
    let Value::Stream(s) = v3 else { panic!() };
    assert_eq!(s.entries_added, 1);
    assert_eq!(s.entries[0].fields, vec![(b"f".to_vec(), b"v".to_vec())]);
    assert_eq!(s.groups[0].pending[0].consumer, b"c");
}

#[test]
fn stream_state_without_a_neutral_form_is_refused() {
    let producers = Rdb::redis(13)
        .key(26, "s")
        .stream_body()
        .len(100)
        .len(100)
        .len(1) // one producer
        .string(b"p1")
        .finish();
    let (_, version, what) = unsupported(&producers);
    assert_eq!(version, 13);
    assert!(what.contains("IDMP"), "{what}");
    let nacked = Rdb::redis(14)
        .key(27, "s")
        .stream_body()
        .len(1)
        .stream_id(7, 0)
        .idmp_none()
        .finish();
    assert!(unsupported(&nacked).2.contains("NACK"));
}

#[test]
fn unknown_and_unconfirmed_types_name_version_byte_and_offset() {
    for (version, type_id, needle) in [(15, 28, "ARRAY"), (15, 33, "GCRA"), (15, 40, "unknown")] {
        let bytes = Rdb::redis(version)
            .raw(&[0xFE, 0x00])
            .key(type_id, "x")
            .len(0)
            .finish();
        let (offset, got_version, what) = unsupported(&bytes);
        assert_eq!((offset, got_version), (11, version));
        assert!(
            what.contains(&format!("value type {type_id}")) && what.contains(needle),
            "{what}"
        );
    }
    // Types of RDB 13 in an RDB 12 file, and the RDB 13 opcodes in an RDB 12 file.
    assert!(unsupported(&Rdb::redis(12).key(26, "s").finish())
        .2
        .contains("26"));
    let (offset, version, what) = unsupported(&Rdb::redis(12).raw(&[0xF3, 0x00]).finish());
    assert_eq!((offset, version), (9, 12));
    assert!(what.contains("0xf3"), "{what}");
    let (_, _, what) = unsupported(&Rdb::redis(15).raw(&[0xF1]).finish());
    assert!(what.contains("0xf1"), "{what}");
}

#[test]
fn the_same_bytes_mean_different_things_in_valkey_files() {
    // 0xF3 is SLOT_IMPORT (skipped), 0xF4 SLOT_INFO (skipped), 22 HASH_2.
    let bytes = Rdb::valkey(80)
        .raw(&[0xF3])
        .string(b"job-1")
        .len(2)
        .len(0)
        .len(99)
        .len(200)
        .len(300)
        .raw(&[0xF4, 0x01, 0x01, 0x00])
        .key(22, "h")
        .len(1)
        .string(b"f")
        .string(b"v")
        .i64le(1_900_000_000_000)
        .finish();
    assert_eq!(
        only_value(&bytes),
        Value::Hash(vec![field("f", "v", Some(1_900_000_000_000))])
    );
    // The Redis reading of 0xF3 (KEY_META) would have failed on these bytes.
    let redis = Rdb::redis(13).raw(&[0xF3]).string(b"job-1").finish();
    assert!(decode_all(&redis).is_err());
    // Valkey 9.2's UPDATE opcode and PATH_HASH type are refused by name.
    let (offset, version, what) = unsupported(&Rdb::valkey(81).raw(&[0xF2]).finish());
    assert_eq!((offset, version), (9, 81));
    assert!(what.contains("UPDATE"), "{what}");
    let (_, _, what) = unsupported(&Rdb::valkey(81).key(23, "p").finish());
    assert!(what.contains("PATH_HASH"), "{what}");
    // Redis-only hash types do not exist in Valkey files.
    assert!(unsupported(&Rdb::valkey(81).key(25, "h").finish())
        .2
        .contains("25"));
}

/// Wraps an RDB the way `rdbcompression lz4` does: an 8-byte `VCS` header, then one LZ4 frame.
fn envelope(rdb: &[u8]) -> Vec<u8> {
    let mut out = b"VCS\x01\x01\x01\x00\x00".to_vec();
    let mut encoder = lz4_flex::frame::FrameEncoder::new(&mut out);
    encoder.write_all(rdb).unwrap();
    encoder.finish().unwrap();
    out
}

#[test]
fn compressed_envelopes_are_unwrapped() {
    let rdb = Rdb::valkey(81)
        .raw(&[0xFE, 0x00])
        .key(0, "k")
        .string(&[b'x'; 5000])
        .finish();
    let wrapped = envelope(&rdb);
    assert!(wrapped.len() < rdb.len());
    assert_eq!(decode_all(&wrapped).unwrap(), decode_all(&rdb).unwrap());
    let mut reader = RdbReader::new(&wrapped[..]).unwrap();
    let env = reader.envelope().unwrap();
    assert_eq!((&env.magic[..3], env.format_version), (&b"VCS"[..], 1));
    while reader.next_record().unwrap().is_some() {}
    assert_eq!(reader.checksum(), ChecksumStatus::Verified);
    assert_eq!(RdbReader::new(&rdb[..]).unwrap().envelope(), None);

    // One-byte reads through the envelope decode the same.
    let trickle = std::io::BufReader::with_capacity(1, &wrapped[..]);
    let mut reader = RdbReader::new(trickle).unwrap();
    let mut n = 0;
    while reader.next_record().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 1);

    // A header not followed by an LZ4 frame, and a damaged frame, are errors.
    let mut bad = b"VCS\x01\x01\x01\x00\x00".to_vec();
    bad.extend_from_slice(&rdb);
    assert!(matches!(
        RdbReader::new(&bad[..]),
        Err(RdbError::Invalid { offset: 8, .. })
    ));
    let mut cut = wrapped.clone();
    cut.truncate(wrapped.len() - 10);
    assert!(decode_all(&cut).is_err());
}
