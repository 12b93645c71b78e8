//! Fuzz the KEVYSNAP reader: no panic, no allocation driven by a length field, and what it
//! reads from a v4 file is written back byte for byte.
#![no_main]
use aofvault_formats::kevy::{write_snapshot, KevySnapReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = KevySnapReader::new(data, 1_700_000_000_000) else {
        return;
    };
    let version = reader.version();
    let mut entries = Vec::new();
    loop {
        match reader.next_entry() {
            Ok(Some(entry)) => entries.push(entry),
            Ok(None) => break,
            Err(_) => return,
        }
    }
    let read = reader.offset() as usize;
    if version == 4 {
        let mut again = Vec::new();
        if write_snapshot(&mut again, &entries).is_ok() {
            assert_eq!(again, &data[..read]);
        }
    }
});
