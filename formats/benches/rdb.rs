//! How fast the RDB decoder turns a file into records.
//!
//! A ~48 MiB synthetic RDB is generated once, in the encodings Redis 7 writes: strings (raw,
//! integer-encoded, LZF-compressed), listpack hashes, sets and zsets, quicklist-2 lists, hashtable
//! hashes, skiplist zsets, intsets, and a stream, with expiries and a real CRC-64 trailer.
//! Measurements, in bytes/s:
//!
//! - `next_record/slice`: [`RdbReader`] over the bytes in memory (what `decode_all` does,
//!   without keeping the records);
//! - `next_record/bufreader_64k`: the same through a 64 KiB `BufReader`, as a file is read.
//!
//! Run: `cargo bench -p aofvault-formats --bench rdb`. For a real server's file and its own load
//! time, see `scripts/bench-rdb.sh`.

use std::hint::black_box;
use std::io::{BufRead, BufReader};

use aofvault_formats::rdb::{ChecksumStatus, RdbReader};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const TARGET_BYTES: usize = 48 << 20;

/// A minimal RDB writer for the benchmark's input.
struct Writer {
    out: Vec<u8>,
}

impl Writer {
    fn len(&mut self, n: usize) {
        match n {
            0..=63 => self.out.push(n as u8),
            64..=16383 => self
                .out
                .extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]),
            _ => {
                self.out.push(0x80);
                self.out.extend_from_slice(&(n as u32).to_be_bytes());
            }
        }
    }
    fn string(&mut self, s: &[u8]) {
        self.len(s.len());
        self.out.extend_from_slice(s);
    }
    fn key(&mut self, type_id: u8, key: &[u8]) {
        self.out.push(type_id);
        self.string(key);
    }
}

/// A listpack of short strings and small integers, as Redis encodes them.
fn listpack(items: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::new();
    for item in items {
        let start = body.len();
        match std::str::from_utf8(item)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
        {
            Some(v) if (0..=127).contains(&v) => body.push(v as u8),
            Some(v) if i32::try_from(v).is_ok() => {
                body.push(0xF3);
                body.extend_from_slice(&(v as i32).to_le_bytes());
            }
            _ if item.len() < 64 => {
                body.push(0x80 | item.len() as u8);
                body.extend_from_slice(item);
            }
            _ => {
                body.extend_from_slice(&[0xE0 | (item.len() >> 8) as u8, item.len() as u8]);
                body.extend_from_slice(item);
            }
        }
        let size = body.len() - start;
        body.extend(std::iter::repeat_n(0u8, if size <= 127 { 1 } else { 2 }));
    }
    let mut out = ((body.len() + 7) as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&(items.len().min(65535) as u16).to_le_bytes());
    out.extend_from_slice(&body);
    out.push(0xFF);
    out
}

/// LZF-compresses `n` repetitions of one byte, the way liblzf would: a 1-byte literal, then
/// maximal back-references at distance 1.
fn lzf_run(byte: u8, n: usize) -> Vec<u8> {
    let mut out = vec![0x00, byte];
    let mut left = n - 1;
    while left >= 3 {
        let len = left.min(264);
        let l = len - 2;
        if l >= 7 {
            out.extend_from_slice(&[0xE0, (l - 7) as u8, 0x00]);
        } else {
            out.extend_from_slice(&[(l as u8) << 5, 0x00]);
        }
        left -= len;
    }
    for _ in 0..left {
        out.extend_from_slice(&[0x00, byte]);
    }
    out
}

fn crc64(bytes: &[u8]) -> u64 {
    let mut table = [0u64; 256];
    for (i, slot) in table.iter_mut().enumerate() {
        let mut crc = i as u64;
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x95ac_9329_ac4b_c9b5
            } else {
                crc >> 1
            };
        }
        *slot = crc;
    }
    bytes.iter().fold(0u64, |crc, &b| {
        table[((crc ^ u64::from(b)) & 0xff) as usize] ^ (crc >> 8)
    })
}

/// Deterministic mixed RDB content.
fn synthetic_rdb() -> Vec<u8> {
    let mut w = Writer {
        out: b"REDIS0011".to_vec(),
    };
    w.out.push(0xFA);
    w.string(b"redis-ver");
    w.string(b"7.2.0");
    w.out.extend_from_slice(&[0xFE, 0x00]);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let word = |r: u64, len: usize| -> Vec<u8> {
        (0..len)
            .map(|i| b'a' + ((r >> (i % 60)) % 26) as u8)
            .collect()
    };
    let mut i = 0u64;
    while w.out.len() < TARGET_BYTES {
        let r = next();
        let key = format!("key:{i}").into_bytes();
        if r % 5 == 0 {
            w.out.push(0xFC);
            w.out
                .extend_from_slice(&(1_900_000_000_000i64 + (r % 1000) as i64).to_le_bytes());
        }
        match i % 10 {
            0 | 1 => {
                w.key(0, &key);
                w.string(&word(r, 8 + (r % 120) as usize));
            }
            2 => {
                w.key(0, &key);
                w.out.extend_from_slice(&[0xC2]);
                w.out.extend_from_slice(&(r as i32).to_le_bytes());
            }
            3 => {
                let n = 100 + (r % 400) as usize;
                let lzf = lzf_run(b'z', n);
                w.key(0, &key);
                w.out.push(0xC3);
                w.len(lzf.len());
                w.len(n);
                w.out.extend_from_slice(&lzf);
            }
            4 => {
                let items: Vec<Vec<u8>> = (0..20)
                    .map(|j| {
                        if j % 2 == 0 {
                            format!("f{j}").into_bytes()
                        } else {
                            word(r >> j, 12)
                        }
                    })
                    .collect();
                w.key(16, &key);
                w.string(&listpack(&items));
            }
            5 => {
                let items: Vec<Vec<u8>> = (0..60)
                    .map(|j| {
                        if j % 3 == 0 {
                            j.to_string().into_bytes()
                        } else {
                            word(r >> (j % 40), 10)
                        }
                    })
                    .collect();
                w.key(18, &key);
                w.len(1);
                w.len(2);
                w.string(&listpack(&items));
            }
            6 => {
                let items: Vec<Vec<u8>> = (0..32)
                    .map(|j| {
                        if j % 2 == 0 {
                            word(r >> j, 9)
                        } else {
                            (j * 7).to_string().into_bytes()
                        }
                    })
                    .collect();
                w.key(17, &key);
                w.string(&listpack(&items));
            }
            7 => {
                w.key(4, &key);
                w.len(150);
                for j in 0..150u64 {
                    w.string(format!("field:{j}").as_bytes());
                    w.string(&word(r.rotate_left(j as u32), 16));
                }
            }
            8 => {
                w.key(5, &key);
                w.len(150);
                for j in 0..150u64 {
                    w.string(&word(r.rotate_left(j as u32), 14));
                    w.out.extend_from_slice(&((j as f64) * 1.25).to_le_bytes());
                }
            }
            _ => {
                let mut intset = vec![4, 0, 0, 0, 64, 0, 0, 0];
                for j in 0..64i32 {
                    intset.extend_from_slice(&(j * 1000 + (r % 1000) as i32).to_le_bytes());
                }
                w.key(11, &key);
                w.string(&intset);
            }
        }
        i += 1;
    }
    w.out.push(0xFF);
    let crc = crc64(&w.out);
    w.out.extend_from_slice(&crc.to_le_bytes());
    w.out
}

fn decode<R: BufRead>(reader: R) -> usize {
    let mut reader = RdbReader::new(reader).expect("magic");
    let mut n = 0;
    while let Some(record) = reader.next_record().expect("decodes") {
        black_box(&record);
        n += 1;
    }
    assert_eq!(reader.checksum(), ChecksumStatus::Verified);
    n
}

fn bench(c: &mut Criterion) {
    let bytes = synthetic_rdb();
    let records = decode(&bytes[..]);
    eprintln!("synthetic RDB: {} bytes, {records} records", bytes.len());
    let mut group = c.benchmark_group("rdb");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.sample_size(10);
    group.bench_function("next_record/slice", |b| {
        b.iter(|| decode(black_box(&bytes[..])))
    });
    group.bench_function("next_record/bufreader_64k", |b| {
        b.iter(|| decode(BufReader::with_capacity(64 << 10, black_box(&bytes[..]))))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
