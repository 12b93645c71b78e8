//! Fuzz the RESP decoder: no panic, and whatever it accepts re-encodes to bytes that decode to
//! the same arguments (lengths written with leading zeros are accepted, as Redis accepts them,
//! so the bytes themselves may differ).
#![no_main]
use aofvault_formats::resp::{decode_command, encode_command};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut pos = 0;
    while let Ok(Some((args, n))) = decode_command(&data[pos..], pos as u64) {
        let mut again = Vec::new();
        encode_command(&args, &mut again);
        assert!(again.len() <= n);
        let decoded = decode_command(&again, 0).ok().flatten();
        assert_eq!(decoded, Some((args, again.len())));
        pos += n;
    }
});
