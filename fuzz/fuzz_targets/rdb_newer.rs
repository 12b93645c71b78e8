//! Fuzz the RDB decoder behind the headers of the newest formats (Redis RDB 13–15, Valkey
//! 80/81), so that the fuzzer spends its time in their opcodes and value types — key metadata,
//! hash templates, streams of types 26/27, slot imports — instead of rediscovering a magic.
//! The first input byte picks the header, the rest is the body. Any body must decode or fail
//! with an error, never panic, and decode the same through a tiny buffer.
#![no_main]
use libfuzzer_sys::fuzz_target;

const HEADERS: [&[u8; 9]; 5] = [
    b"REDIS0013",
    b"REDIS0014",
    b"REDIS0015",
    b"VALKEY080",
    b"VALKEY081",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let mut bytes = HEADERS[usize::from(pick) % HEADERS.len()].to_vec();
    bytes.extend_from_slice(body);
    let whole = aofvault_formats::rdb::decode_all(&bytes);
    let mut reader = match aofvault_formats::rdb::RdbReader::new(std::io::BufReader::with_capacity(
        5,
        &bytes[..],
    )) {
        Ok(reader) => reader,
        Err(e) => panic!("a valid header was refused: {e}"),
    };
    let mut again = Vec::new();
    let tiny = loop {
        match reader.next_record() {
            Ok(Some(record)) => again.push(record),
            Ok(None) => break Ok(again),
            Err(e) => break Err(e),
        }
    };
    // Same records, or an error at the same offset. Compared as text: a NaN score is not
    // equal to itself.
    match (whole, tiny) {
        (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}")),
        (Err(a), Err(b)) => assert_eq!(a.offset(), b.offset(), "{a} / {b}"),
        (a, b) => panic!("whole input and tiny buffer disagree: {a:?} / {b:?}"),
    }
});
