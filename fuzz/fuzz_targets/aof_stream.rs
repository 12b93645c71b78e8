//! Fuzz the streaming AOF reader: no panic on any bytes cut into any buffer and read sizes, and
//! it agrees with the slice scanner on the same input — the same items at the same end offsets,
//! the same error offset, and `safe_prefix` failing where the stream finds invalid bytes.
#![no_main]
use std::io::Read;

use aofvault_formats::aof::stream::{for_each_item_buffered, Item, StreamError};
use aofvault_formats::aof::{items, safe_prefix, AofError, AofItem};
use libfuzzer_sys::fuzz_target;

/// Hands out at most `self.1` bytes per read.
struct Trickle<'a>(&'a [u8], usize);
impl Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.len().min(out.len()).min(self.1);
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

type Seen = Vec<(Result<Vec<Vec<u8>>, i64>, u64)>;

fuzz_target!(|input: &[u8]| {
    // The first two bytes choose the buffer and read sizes; the rest is the AOF.
    let (initial, read, data) = match input {
        [a, b, rest @ ..] => (usize::from(*a) + 1, usize::from(*b) + 1, rest),
        _ => return,
    };
    for base in [0u64, 1] {
        let mut want = Seen::new();
        let mut want_err = None;
        for item in items(data, base) {
            match item {
                Ok(AofItem::Command { args, end, .. }) => {
                    want.push((Ok(args.iter().map(|a| a.to_vec()).collect()), end))
                }
                Ok(AofItem::Timestamp { unix_secs, end, .. }) => want.push((Err(unix_secs), end)),
                Err(AofError::Invalid { offset, .. }) => want_err = Some(offset),
            }
        }
        let mut seen = Seen::new();
        let res = for_each_item_buffered(Trickle(data, read), base, initial, |item, end| {
            seen.push(match item {
                Item::Command(args) => (Ok(args.iter().map(|a| a.to_vec()).collect()), end),
                Item::Timestamp(ts) => (Err(ts), end),
            });
            Ok::<(), StreamError>(())
        });
        assert_eq!(seen, want);
        match res {
            Ok(end) => {
                assert_eq!(want_err, None);
                assert_eq!(end.end, base + data.len() as u64);
                assert!(safe_prefix(data, base).is_ok());
            }
            Err(StreamError::Invalid { offset, .. }) => {
                assert_eq!(want_err, Some(offset));
                assert!(matches!(
                    safe_prefix(data, base),
                    Err(AofError::Invalid { offset: at, .. }) if at == offset
                ));
            }
            Err(StreamError::Truncated { offset }) => {
                assert_eq!(want_err, Some(offset));
                assert!(safe_prefix(data, base).is_ok_and(|p| p.len as u64 <= offset - base));
            }
            Err(err) => panic!("unexpected {err}"),
        }
    }
});
