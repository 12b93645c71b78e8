//! Decodes an RDB file and reports how long it took: the decoder's side of
//! `scripts/bench-rdb.sh`, which compares it with redis-server's own load time.
//!
//! Usage: `cargo run --release -p aofvault-formats --example rdb_decode -- FILE [RUNS] [plain]`.
//! The file is read through [`ReadAhead`] (reads on a helper thread); with `plain`, through a
//! `BufReader` on the decoding thread instead.
//! Prints one line per run: `decoded <records> records (<keys> keys) from <bytes> bytes in <s> seconds`.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::process::ExitCode;
use std::time::Instant;

use aofvault_formats::model::Record;
use aofvault_formats::rdb::{ChecksumStatus, RdbError, RdbReader, ReadAhead};

// The allocator the `aofvault` binary uses: the neutral form allocates once per element, and
// mimalloc's thread-local free lists make that about a third cheaper than glibc's malloc.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn decode(path: &str, plain: bool) -> Result<(u64, u64, u64, ChecksumStatus), RdbError> {
    let io = |source| RdbError::Io { offset: 0, source };
    let file = File::open(path).map_err(io)?;
    if plain {
        count(RdbReader::new(BufReader::with_capacity(1 << 20, file))?)
    } else {
        count(RdbReader::new(ReadAhead::new(file).map_err(io)?)?)
    }
}

/// Reads every record: (records, keys, bytes, checksum).
fn count<R: BufRead>(
    mut reader: RdbReader<R>,
) -> Result<(u64, u64, u64, ChecksumStatus), RdbError> {
    let (mut records, mut keys) = (0u64, 0u64);
    while let Some(record) = reader.next_record()? {
        records += 1;
        if matches!(record, Record::Entry(_)) {
            keys += 1;
        }
    }
    Ok((records, keys, reader.offset(), reader.checksum()))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: rdb_decode FILE [RUNS] [plain]");
        return ExitCode::from(2);
    };
    let runs: u32 = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(1);
    let plain = args.get(3).is_some_and(|a| a == "plain");
    for _ in 0..runs {
        let start = Instant::now();
        match decode(path, plain) {
            Ok((records, keys, bytes, checksum)) => println!(
                "decoded {records} records ({keys} keys) from {bytes} bytes in {:.3} seconds (checksum {checksum:?})",
                start.elapsed().as_secs_f64()
            ),
            Err(e) => {
                eprintln!("{path}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}
