//! Fuzz the AOF scanners: no panic; the safe prefix holds whole items only, and a point-in-time
//! cut never goes past it.
#![no_main]
use aofvault_formats::aof::{cut_at_timestamp, items, safe_prefix};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for base in [0u64, 1] {
        let Ok(prefix) = safe_prefix(data, base) else {
            continue;
        };
        assert!(prefix.len <= data.len());
        for item in items(&data[..prefix.len], base) {
            assert!(item.is_ok());
        }
        let cut = cut_at_timestamp(data, base, 1_700_000_000);
        assert!(cut.is_ok_and(|c| c <= prefix.len));
    }
});
