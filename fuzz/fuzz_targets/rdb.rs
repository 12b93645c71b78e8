//! Fuzz the RDB decoder: any bytes must decode or fail with an error, never panic, hang, or
//! allocate from an unchecked length. Seed the corpus with `formats/tests/fixtures/rdb/**/*.rdb`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(records) = aofvault_formats::rdb::decode_all(data) {
        // Whatever decodes must also decode the same way through a tiny buffer, where every
        // value straddles a refill.
        let mut reader =
            match aofvault_formats::rdb::RdbReader::new(std::io::BufReader::with_capacity(7, data))
            {
                Ok(reader) => reader,
                Err(e) => panic!("decode_all accepted what RdbReader::new refuses: {e}"),
            };
        let mut again = Vec::new();
        while let Ok(Some(record)) = reader.next_record() {
            again.push(record);
        }
        // Compared as text: a NaN score is not equal to itself.
        assert_eq!(format!("{records:?}"), format!("{again:?}"));
    }
});
