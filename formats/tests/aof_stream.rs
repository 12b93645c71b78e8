//! The streaming AOF reader against the slice scanner, on random and mutated inputs cut into
//! random buffer and read sizes: the same items with the same end offsets, and the same error
//! offset (the fuzz target `aof_stream` checks the same on arbitrary bytes).
#![allow(clippy::unwrap_used)]

use std::io::Read;

use aofvault_formats::aof::stream::{for_each_item_buffered, Item, StreamError};
use aofvault_formats::aof::{items, safe_prefix, AofError, AofItem, KEVY_AOF_MAGIC};
use aofvault_formats::resp::encode_command;
use proptest::collection::vec;
use proptest::prelude::*;

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

fn check(data: &[u8], base: u64, initial: usize, read: usize) {
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
    let safe = safe_prefix(data, base);
    match res {
        Ok(end) => {
            assert_eq!(want_err, None);
            assert_eq!(end.end, base + data.len() as u64);
            let commands = want.iter().filter(|(i, _)| i.is_ok()).count() as u64;
            assert_eq!(end.commands, commands);
            let safe = safe.unwrap();
            if safe.len == data.len() {
                assert_eq!(safe.commands, commands);
            }
        }
        Err(StreamError::Invalid { offset, .. }) => {
            assert_eq!(want_err, Some(offset));
            let Err(AofError::Invalid { offset: at, .. }) = safe else {
                panic!("safe_prefix accepts what the stream rejects at {offset}");
            };
            assert_eq!(at, offset);
        }
        Err(StreamError::Truncated { offset }) => {
            assert_eq!(want_err, Some(offset));
            assert!(safe.unwrap().len as u64 <= offset - base);
        }
        Err(err) => panic!("unexpected {err}"),
    }
}

fn part() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(vec(any::<u8>(), 0..20), 1..4).prop_map(|a| {
            let mut out = Vec::new();
            encode_command(&a, &mut out);
            out
        }),
        Just(b"*1\r\n$5\r\nMULTI\r\n".to_vec()),
        Just(b"*1\r\n$4\r\nEXEC\r\n".to_vec()),
        Just(b"# a comment\r\n".to_vec()),
        (0i64..2_000_000_000).prop_map(|t| format!("#TS:{t}\r\n").into_bytes()),
    ]
}

fn stream() -> impl Strategy<Value = Vec<u8>> {
    (any::<bool>(), vec(part(), 0..10)).prop_map(|(header, parts)| {
        let mut out = if header {
            KEVY_AOF_MAGIC.to_vec()
        } else {
            Vec::new()
        };
        out.extend(parts.concat());
        out
    })
}

/// Overwrite, insert, delete or truncate at random positions.
fn mutate(mut buf: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(pos, byte, kind) in edits {
        let at = if buf.is_empty() { 0 } else { pos % buf.len() };
        match kind % 4 {
            0 if !buf.is_empty() => buf[at] = byte,
            1 => buf.insert(at, byte),
            2 if !buf.is_empty() => {
                buf.remove(at);
            }
            _ => buf.truncate(at),
        }
    }
    buf
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn whole_streams_agree(s in stream(), base in prop_oneof![Just(0u64), 1u64..1 << 40],
                           initial in 1usize..80, read in 1usize..80) {
        check(&s, base, initial, read);
    }

    #[test]
    fn mutated_streams_agree(s in stream(), edits in vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..4),
                             base in prop_oneof![Just(0u64), Just(7u64)],
                             initial in 1usize..80, read in 1usize..80) {
        check(&mutate(s, &edits), base, initial, read);
    }

    #[test]
    fn random_bytes_agree(s in vec(any::<u8>(), 0..200), base in 0u64..3,
                          initial in 1usize..80, read in 1usize..80) {
        check(&s, base, initial, read);
    }
}
