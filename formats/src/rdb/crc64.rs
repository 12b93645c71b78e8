//! CRC-64 as Redis computes it for the RDB trailer and DUMP payloads: the "Jones" polynomial,
//! reflected input and output, initial value 0, no final xor (the catalogue's CRC-64/REDIS).
//!
//! The checksum is updated over every byte the decoder consumes, so it must not be the
//! bottleneck: this is the table-driven "slicing-by-8" form, which folds eight input bytes per
//! step with eight 256-entry tables built at compile time.

/// The Jones polynomial in reflected form (normal form `0xad93d23594c935a9`).
const POLY_REFLECTED: u64 = 0x95ac_9329_ac4b_c9b5;

/// `TABLES[0]` is the classic byte-at-a-time table; `TABLES[k][b]` is the CRC of byte `b`
/// followed by `k` zero bytes, which lets eight bytes be folded at once.
static TABLES: [[u64; 256]; 8] = build_tables();

const fn build_tables() -> [[u64; 256]; 8] {
    let mut tables = [[0u64; 256]; 8];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = byte as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        tables[0][byte] = crc;
        byte += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut byte = 0;
        while byte < 256 {
            let prev = tables[k - 1][byte];
            tables[k][byte] = tables[0][(prev & 0xff) as usize] ^ (prev >> 8);
            byte += 1;
        }
        k += 1;
    }
    tables
}

/// A running CRC-64/REDIS.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Crc64 {
    crc: u64,
}

impl Crc64 {
    pub(crate) fn new() -> Self {
        Crc64 { crc: 0 }
    }

    /// A running CRC that continues from `value`.
    pub(crate) fn from_value(value: u64) -> Self {
        Crc64 { crc: value }
    }

    /// The checksum of everything fed so far.
    pub(crate) fn value(&self) -> u64 {
        self.crc
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        let t = &TABLES;
        let mut crc = self.crc;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let x = crc ^ u64::from_le_bytes(word);
            crc = t[7][(x & 0xff) as usize]
                ^ t[6][((x >> 8) & 0xff) as usize]
                ^ t[5][((x >> 16) & 0xff) as usize]
                ^ t[4][((x >> 24) & 0xff) as usize]
                ^ t[3][((x >> 32) & 0xff) as usize]
                ^ t[2][((x >> 40) & 0xff) as usize]
                ^ t[1][((x >> 48) & 0xff) as usize]
                ^ t[0][(x >> 56) as usize];
        }
        for &b in chunks.remainder() {
            crc = t[0][((crc ^ u64::from(b)) & 0xff) as usize] ^ (crc >> 8);
        }
        self.crc = crc;
    }
}

#[cfg(test)]
mod tests {
    use super::Crc64;

    fn bitwise(bytes: &[u8]) -> u64 {
        let mut crc = 0u64;
        for &b in bytes {
            crc ^= u64::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ super::POLY_REFLECTED
                } else {
                    crc >> 1
                };
            }
        }
        crc
    }

    #[test]
    fn check_value_matches_redis_self_test() {
        let mut crc = Crc64::new();
        crc.update(b"123456789");
        assert_eq!(crc.value(), 0xe9c6_d914_c4b8_d9ca);
    }

    #[test]
    fn dump_payload_trailer_observed_on_redis_7() {
        // DUMP of the string "v1" on redis-server 7.0.15: type, value, version, then the CRC.
        let mut crc = Crc64::new();
        crc.update(&[0x00, 0x02, 0x76, 0x31, 0x0a, 0x00]);
        assert_eq!(
            crc.value().to_le_bytes(),
            [0x5f, 0xe5, 0xb0, 0x5e, 0xcb, 0x50, 0x79, 0x5b]
        );
    }

    #[test]
    fn sliced_equals_bitwise_for_every_split() {
        let data: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let want = bitwise(&data);
        for split in 0..data.len() {
            let mut crc = Crc64::new();
            crc.update(&data[..split]);
            crc.update(&data[split..]);
            assert_eq!(crc.value(), want, "split at {split}");
        }
    }
}
