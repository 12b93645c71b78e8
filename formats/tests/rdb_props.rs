//! Property tests: the RDB decoder never panics, whatever the bytes — random input, and real
//! RDB files mutated by byte flips, truncations, deletions and inserted `0xFF…` length fields
//! (with and without their checksum, so corrupt values reach the value parsers; the seeds
//! include encoder-made RDB 13–15 and Valkey 80 files, one in the LZ4 envelope) — and a huge
//! claimed length in a tiny input is an error, not an allocation.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use aofvault_formats::rdb::{decode_all, RdbError};
use proptest::prelude::*;

/// Real files covering most encodings: listpacks, ziplists, zipmap, intsets, quicklists, LZF,
/// streams with groups, hash field TTLs, several versions.
const SEEDS: &[&str] = &[
    "hdt3213/listpack.rdb",
    "hdt3213/stream_listpacks_1.rdb",
    "hdt3213/quicklist.rdb",
    "hdt3213/zipmap_that_compresses_easily.rdb",
    "hdt3213/ziplist_that_compresses_easily.rdb",
    "hdt3213/hash_as_listpack_with_hfe.rdb",
    "hdt3213/sorted_set_as_ziplist.rdb",
    "hdt3213/intset_64.rdb",
    "hdt3213/set_listpack.rdb",
    "hdt3213/keys_with_expiry.rdb",
    "hdt3213/non_ascii_values.rdb",
    "redis-rdb-tools/redis_50_with_streams.rdb",
    // Written by `common/rdb_writer.rs` (see `rdb_newer.rs`): RDB 13-15 key metadata, hash
    // templates, streams of types 26/27; Valkey 80 slot imports, HASH_2, the LZ4 envelope.
    "encoder/redis-15-templates-keymeta-stream27.rdb",
    "encoder/redis-13-stream26-keymeta.rdb",
    "encoder/valkey-80-slot-import-hash2.rdb",
    "encoder/valkey-80-lz4-envelope.rdb",
];

fn seed(index: usize) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/rdb")
        .join(SEEDS[index % SEEDS.len()]);
    std::fs::read(path).unwrap()
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        xor: u8,
    },
    Truncate {
        at: usize,
    },
    Delete {
        at: usize,
        len: usize,
    },
    /// A 32- or 64-bit length field of all ones.
    HugeLength {
        at: usize,
        wide: bool,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 1..=255u8).prop_map(|(at, xor)| Mutation::Flip { at, xor }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        1 => (any::<usize>(), 1..16usize).prop_map(|(at, len)| Mutation::Delete { at, len }),
        2 => (any::<usize>(), any::<bool>()).prop_map(|(at, wide)| Mutation::HugeLength { at, wide }),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8)).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len().max(1);
    match m {
        Mutation::Flip { at, xor } => {
            if let Some(b) = bytes.get_mut(at % n) {
                *b ^= xor;
            }
        }
        Mutation::Truncate { at } => bytes.truncate(at % n),
        Mutation::Delete { at, len } => {
            let at = at % n;
            let end = (at + len).min(bytes.len());
            bytes.drain(at.min(end)..end);
        }
        Mutation::HugeLength { at, wide } => {
            let field: &[u8] = if *wide {
                &[0x81, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
            } else {
                &[0x80, 0xFF, 0xFF, 0xFF, 0xFF]
            };
            let at = (at % n).min(bytes.len());
            bytes.splice(at..at, field.iter().copied());
        }
        Mutation::Insert { at, bytes: extra } => {
            let at = (at % n).min(bytes.len());
            bytes.splice(at..at, extra.iter().copied());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = decode_all(&bytes);
    }

    #[test]
    fn random_bodies_behind_a_valid_magic_never_panic(
        magic in prop_oneof![Just(&b"REDIS0003"[..]), Just(&b"REDIS0009"[..]), Just(&b"REDIS0011"[..]), Just(&b"REDIS0012"[..]), Just(&b"REDIS0013"[..]), Just(&b"REDIS0015"[..]), Just(&b"VALKEY080"[..]), Just(&b"VALKEY081"[..])],
        body in proptest::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut bytes = magic.to_vec();
        bytes.extend_from_slice(&body);
        let _ = decode_all(&bytes);
    }

    #[test]
    fn mutated_real_files_never_panic(
        which in 0..SEEDS.len(),
        mutations in proptest::collection::vec(mutation(), 1..4),
        drop_checksum in any::<bool>(),
    ) {
        let mut bytes = seed(which);
        if drop_checksum {
            // An all-zero trailer disables the check, so corrupt values reach the parsers.
            let n = bytes.len();
            bytes[n - 8..].fill(0);
        }
        for m in &mutations {
            apply(&mut bytes, m);
        }
        let _ = decode_all(&bytes);
    }

    #[test]
    fn every_prefix_of_a_real_file_is_truncated_at_its_end(which in 0..SEEDS.len(), cut in any::<usize>()) {
        let bytes = seed(which);
        let cut = cut % bytes.len();
        if bytes.starts_with(b"VCS") {
            // Inside the envelope offsets are those of the decompressed RDB, and a cut frame
            // is an LZ4 error. Only the frame's end mark may be cut without loss (the decoder
            // stops at the RDB's own verified trailer): then the records are all there.
            if let Ok(records) = decode_all(&bytes[..cut]) {
                prop_assert_eq!(records, decode_all(&bytes).unwrap(), "cut at {}", cut);
            }
            return Ok(());
        }
        match decode_all(&bytes[..cut]) {
            Err(RdbError::Truncated { offset, .. }) => prop_assert_eq!(offset, cut as u64),
            other => prop_assert!(false, "cut at {}: {:?}", cut, other),
        }
    }
}

/// `REDIS0010`, then a key of type `type_id` named "k", then `rest`.
fn key_of_type(type_id: u8, rest: &[u8]) -> Vec<u8> {
    let mut bytes = b"REDIS0010".to_vec();
    bytes.extend_from_slice(&[type_id, 1, b'k']);
    bytes.extend_from_slice(rest);
    bytes
}

#[test]
fn huge_claimed_lengths_in_tiny_inputs_are_errors() {
    let huge32 = [0x80, 0xFF, 0xFF, 0xFF, 0xFF];
    let huge64 = [0x81, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xF0];
    for len in [&huge32[..], &huge64[..]] {
        for type_id in [0u8, 1, 2, 3, 4, 5, 14, 15, 18, 19, 21, 24] {
            let mut rest = len.to_vec();
            rest.extend_from_slice(b"abcdefgh");
            let bytes = key_of_type(type_id, &rest);
            let err = decode_all(&bytes).unwrap_err();
            assert!(
                matches!(err, RdbError::Truncated { .. } | RdbError::Invalid { .. }),
                "type {type_id}: {err:?}"
            );
        }
        // An LZF string claiming a huge uncompressed size from 3 compressed bytes.
        let mut rest = vec![0xC3, 3];
        rest.extend_from_slice(len);
        rest.extend_from_slice(&[0, b'a', b'b']);
        assert!(matches!(
            decode_all(&key_of_type(0, &rest)),
            Err(RdbError::Invalid { .. })
        ));
    }
    // A listpack whose header claims 4 GB inside a 7-byte string.
    let lp = key_of_type(16, &[7, 0xFF, 0xFF, 0xFF, 0xFF, 1, 0, 0xFF]);
    assert!(matches!(decode_all(&lp), Err(RdbError::Invalid { .. })));
    // An intset claiming 2^32 - 1 eight-byte members.
    let intset = key_of_type(11, &[8, 8, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
    assert!(matches!(decode_all(&intset), Err(RdbError::Invalid { .. })));
}
