//! The file around the values: opcodes, expiries, databases, the trailer, the magic, modules,
//! and what happens on lies and errors.
#![allow(clippy::unwrap_used)]

use super::*;

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
        .raw(&[
            0xC3, 0x09, 0x28, 0x01, 0x61, 0x61, 0xE0, 0x1B, 0x00, 0x01, 0x61, 0x61,
        ])
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
    assert_eq!(
        records[0],
        Record::Aux {
            key: b"redis-ver".to_vec(),
            value: b"7.0.15".to_vec()
        }
    );
    assert_eq!(
        records[1],
        Record::Function {
            code: b"#!lua name=lib\n".to_vec()
        }
    );
    let got: Vec<(u32, String, Value, Option<i64>)> = records[2..]
        .iter()
        .map(|r| match r {
            Record::Entry(e) => (
                e.db,
                String::from_utf8_lossy(&e.key).into_owned(),
                e.value.clone(),
                e.expire_at_ms,
            ),
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
        .raw(&[
            0xC3, 0x09, 0x28, 0x01, 0x61, 0x61, 0xE0, 0x1B, 0x00, 0x01, 0x61, 0x61,
        ])
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
fn modules_are_named() {
    // "hellotype" encoding version 0, as a module value and as module aux data.
    let id = 0x6a4a_b2ff_7878_9400u64;
    let name = module::module_name(id);
    let value = Rdb::redis(9).key(7, "mykey").len(id).finish();
    match decode_all(&value) {
        Err(RdbError::Module {
            offset: 9,
            key,
            module,
        }) => assert_eq!((key.as_str(), module), ("mykey", name.clone())),
        other => panic!("{other:?}"),
    }
    let aux = Rdb::redis(9).raw(&[0xF7]).len(id).finish();
    match decode_all(&aux) {
        Err(RdbError::Module {
            offset: 9,
            key,
            module,
        }) => assert_eq!((key.as_str(), module), ("", name)),
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
        Err(RdbError::ChecksumMismatch {
            offset, expected, ..
        }) => {
            assert_eq!(offset, n as u64 - 8);
            assert_eq!(expected, 1 << 56);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn magic_and_versions() {
    assert!(matches!(
        RdbReader::new(&b"REDIS0016"[..]),
        Err(RdbError::UnsupportedVersion { version: 16 })
    ));
    assert!(matches!(
        RdbReader::new(&b"REDIS0000"[..]),
        Err(RdbError::UnsupportedVersion { version: 0 })
    ));
    assert!(matches!(
        RdbReader::new(&b"VALKEY079"[..]),
        Err(RdbError::UnsupportedVersion { version: 79 })
    ));
    assert_eq!(RdbReader::new(&b"VALKEY081"[..]).unwrap().version(), 81);
    assert!(matches!(
        RdbReader::new(&b"KEVYSNAP\x04"[..]),
        Err(RdbError::Invalid { offset: 0, .. })
    ));
    assert!(matches!(
        RdbReader::new(&b"REDIS00x1"[..]),
        Err(RdbError::Invalid { .. })
    ));
    assert!(matches!(
        RdbReader::new(&b"REDIS"[..]),
        Err(RdbError::Truncated { offset: 5, .. })
    ));
}

#[test]
fn empty_collections_are_skipped_like_the_server_does() {
    let bytes = Rdb::redis(10)
        .key(2, "empty")
        .len(0)
        .key(0, "k")
        .string(b"v")
        .finish();
    let all = entries(&bytes);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].key, b"k");
}

#[test]
fn huge_claimed_lengths_fail_without_allocating() {
    for n in [1u64 << 32, 1 << 40, 1 << 62, u64::MAX] {
        let string = Rdb::redis(10).key(0, "k").len(n).raw(b"abc").0;
        assert!(
            matches!(
                decode_all(&string),
                Err(RdbError::Truncated { offset: 24, .. })
            ),
            "{n}"
        );
        let list = Rdb::redis(10).key(1, "k").len(n).string(b"abc").0;
        assert!(
            matches!(decode_all(&list), Err(RdbError::Truncated { .. })),
            "{n}"
        );
        let lzf = Rdb::redis(10)
            .key(0, "k")
            .raw(&[0xC3])
            .len(3)
            .len(n)
            .raw(&[0, 1, 2])
            .0;
        assert!(
            matches!(decode_all(&lzf), Err(RdbError::Invalid { .. })),
            "{n}"
        );
    }
}

#[test]
fn a_failed_reader_stays_failed() {
    let bytes = Rdb::redis(10).key(99, "k").finish();
    let mut reader = RdbReader::new(&bytes[..]).unwrap();
    assert!(matches!(
        reader.next_record(),
        Err(RdbError::Unsupported { offset: 9, .. })
    ));
    assert!(reader.next_record().is_err());
}
