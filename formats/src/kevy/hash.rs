//! kevy 1.19's key → shard rule (its `shard_of`), written from its description in FORMATS.md
//! §5.1 and kevy's hashing crate:
//!
//! - one shard: always 0;
//! - `KevyHash`: a 64-bit hash of the key bytes (two 64-bit lanes absorbed 16 bytes at a time
//!   with a widening multiply, folded with the length, then murmur3's `fmix64`), reduced with
//!   `& (n - 1)` when `n` is a power of two, else `% n`;
//! - `Slots`: the Redis-cluster slot (CRC16/XMODEM of the `{hashtag}`, `& 16383`), then the
//!   contiguous split `(slot * n) >> 14`.
//!
//! A mistake here sends keys to the wrong `dump-{i}.rdb` on restore, so the integration tests
//! check it against where a real 4-shard kevy put every key.

use super::Routing;

/// The shard that owns `key` in a kevy server with `shards` shards and this routing.
pub fn shard_for_key(key: &[u8], shards: u32, routing: Routing) -> u32 {
    if shards <= 1 {
        return 0;
    }
    let n = u64::from(shards);
    let shard = match routing {
        Routing::Slots => (u64::from(key_hash_slot(key)) * n) >> 14,
        Routing::KevyHash if shards.is_power_of_two() => kevy_hash(key) & (n - 1),
        Routing::KevyHash => kevy_hash(key) % n,
    };
    // Both reductions are < n <= u32::MAX.
    shard as u32
}

const LANE0: u64 = 0x243f_6a88_85a3_08d3;
const LANE1: u64 = 0x1319_8a2e_0370_7344;
const ANTI_ZERO: u64 = 0xa409_3822_299f_31d0;

fn kevy_hash(key: &[u8]) -> u64 {
    let len = key.len();
    let (mut s0, mut s1) = (LANE0, LANE1);
    if len > 16 {
        // Whole 16-byte blocks of everything but the last byte, then the last 16 bytes
        // (which may overlap the final block).
        let mut blocks = key[..len - 1].chunks_exact(16);
        for block in &mut blocks {
            let mixed = widening_mix(s0 ^ le64(&block[..8]), ANTI_ZERO ^ le64(&block[8..]));
            s0 = s1;
            s1 = mixed;
        }
        s0 ^= le64(&key[len - 16..len - 8]);
        s1 ^= le64(&key[len - 8..]);
    } else if len >= 8 {
        s0 ^= le64(&key[..8]);
        s1 ^= le64(&key[len - 8..]);
    } else if len >= 4 {
        s0 ^= le32(&key[..4]);
        s1 ^= le32(&key[len - 4..]);
    } else if len > 0 {
        s0 ^= u64::from(key[0]);
        s1 ^= (u64::from(key[len - 1]) << 8) | u64::from(key[len / 2]);
    }
    fmix64(widening_mix(s0, s1) ^ len as u64)
}

/// Multiply to 128 bits and xor the halves.
fn widening_mix(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Little-endian value of up to 8 bytes (callers pass exactly 8).
fn le64(b: &[u8]) -> u64 {
    b.iter().rev().fold(0, |acc, &x| (acc << 8) | u64::from(x))
}

fn le32(b: &[u8]) -> u64 {
    le64(b)
}

/// The Redis-cluster hash slot of `key`.
fn key_hash_slot(key: &[u8]) -> u16 {
    crc16_xmodem(hash_tag(key)) & 0x3fff
}

/// The part of `key` that is hashed: between the first `{` and the first `}` after it, if that
/// is not empty; else the whole key.
fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    let rest = &key[open + 1..];
    match rest.iter().position(|&b| b == b'}') {
        Some(close) if close > 0 => &rest[..close],
        _ => key,
    }
}

/// CRC-16/XMODEM: polynomial 0x1021, initial value 0, no reflection, no final xor.
fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_check_value_and_hash_tags() {
        assert_eq!(crc16_xmodem(b"123456789"), 0x31c3);
        assert_eq!(hash_tag(b"{user1000}.following"), b"user1000");
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar"), b"foo{bar");
        // Redis cluster's documented slot for "foo".
        assert_eq!(key_hash_slot(b"foo"), 12182);
    }

    #[test]
    fn routing_stays_in_range() {
        for shards in 1..=9 {
            for i in 0..200u32 {
                let key = format!("key:{i}:{}", "x".repeat(i as usize % 40));
                assert!(shard_for_key(key.as_bytes(), shards, Routing::KevyHash) < shards);
                assert!(shard_for_key(key.as_bytes(), shards, Routing::Slots) < shards);
            }
        }
        assert_eq!(shard_for_key(b"anything", 1, Routing::KevyHash), 0);
    }
}
