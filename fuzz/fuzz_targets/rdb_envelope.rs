//! Fuzz Valkey's compressed-stream envelope: the input, wrapped the way `rdbcompression lz4`
//! writes a file (an 8-byte `VCS` header, then one LZ4 frame), must decode exactly like the
//! input itself — the same records, or the same error at the same offset — and never panic.
#![no_main]
use std::io::Write;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.starts_with(b"VCS") {
        // Already an envelope: wrapping it again would nest two, which no server writes.
        return;
    }
    let mut wrapped = b"VCS\x01\x01\x01\x00\x00".to_vec();
    let mut encoder = lz4_flex::frame::FrameEncoder::new(&mut wrapped);
    if encoder.write_all(data).is_err() || encoder.finish().is_err() {
        return;
    }
    let plain = aofvault_formats::rdb::decode_all(data);
    let enveloped = aofvault_formats::rdb::decode_all(&wrapped);
    match (plain, enveloped) {
        (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}")),
        (Err(a), Err(b)) => assert_eq!(a.offset(), b.offset(), "{a} / {b}"),
        (a, b) => panic!("plain and enveloped disagree: {a:?} / {b:?}"),
    }
});
