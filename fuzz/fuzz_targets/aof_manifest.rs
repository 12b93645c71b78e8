//! Fuzz the Redis AOF manifest reader: no panic, and what it accepts round-trips through the
//! writer.
#![no_main]
use aofvault_formats::aof_manifest::AofManifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = AofManifest::parse(data) {
        if !manifest.entries.is_empty() {
            let again = AofManifest::parse(manifest.render().as_bytes());
            assert_eq!(again.ok(), Some(manifest));
        }
    }
});
