//! Fuzz the RESP decoder: no panic, and whatever it accepts re-encodes to the same bytes.
#![no_main]
use aofvault_formats::resp::{decode_command, encode_command};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut pos = 0;
    while let Ok(Some((args, n))) = decode_command(&data[pos..], pos as u64) {
        let mut again = Vec::new();
        encode_command(&args, &mut again);
        assert_eq!(again, &data[pos..pos + n]);
        pos += n;
    }
});
