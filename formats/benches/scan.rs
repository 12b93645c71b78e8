//! How fast the AOF scanner finds safe cut points, next to plain reading of the same bytes.
//!
//! A ~64 MiB synthetic AOF (a mix of `SET`, `HSET` and `RPUSH` with 8–200-byte values) is written
//! to a temp file once. Three measurements, all reported in bytes/s:
//!
//! - `safe_prefix`: [`aofvault_formats::aof::safe_prefix`] over the bytes in memory;
//! - `fs_read`: `std::fs::read` of the file (from page cache after the first pass);
//! - `byte_sum`: a plain loop adding every byte, the cost of merely touching the memory.
//!
//! Run: `cargo bench -p aofvault-formats --bench scan`.

use std::hint::black_box;

use aofvault_formats::aof::safe_prefix;
use aofvault_formats::resp::encode_command;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const TARGET_BYTES: usize = 64 << 20;

/// Deterministic mixed AOF content (xorshift-driven sizes, no external RNG).
fn synthetic_aof() -> Vec<u8> {
    let mut out = Vec::with_capacity(TARGET_BYTES + 4096);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let filler = vec![b'v'; 256];
    let mut i: u64 = 0;
    while out.len() < TARGET_BYTES {
        let r = next();
        let len = 8 + (r % 193) as usize;
        let key = format!("key:{}", r % 100_000);
        let value = &filler[..len];
        match i % 3 {
            0 => encode_command(&[b"SET".as_slice(), key.as_bytes(), value], &mut out),
            1 => encode_command(
                &[
                    b"HSET".as_slice(),
                    key.as_bytes(),
                    b"field",
                    value,
                    b"other",
                    &value[..8],
                ],
                &mut out,
            ),
            _ => encode_command(
                &[
                    b"RPUSH".as_slice(),
                    key.as_bytes(),
                    value,
                    &value[..len / 2],
                ],
                &mut out,
            ),
        }
        i += 1;
    }
    out
}

fn scan(c: &mut Criterion) {
    let data = synthetic_aof();
    let path = std::env::temp_dir().join(format!("aofvault-scan-bench-{}.aof", std::process::id()));
    if let Err(e) = std::fs::write(&path, &data) {
        eprintln!("cannot write {}: {e}", path.display());
        return;
    }
    let mut group = c.benchmark_group("scan");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(10);
    group.bench_function("safe_prefix", |b| {
        b.iter(|| {
            let prefix = safe_prefix(black_box(&data), 0);
            black_box(prefix.map(|p| p.commands).unwrap_or(0))
        })
    });
    group.bench_function("fs_read", |b| {
        b.iter(|| black_box(std::fs::read(&path).map(|v| v.len()).unwrap_or(0)))
    });
    group.bench_function("byte_sum", |b| {
        b.iter(|| {
            black_box(&data)
                .iter()
                .fold(0u64, |acc, &x| acc.wrapping_add(u64::from(x)))
        })
    });
    group.finish();
    let _ = std::fs::remove_file(&path);
}

criterion_group!(benches, scan);
criterion_main!(benches);
