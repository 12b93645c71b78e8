//! Unit tests of the streaming reader: buffer and read boundaries anywhere, absolute offsets,
//! and agreement with the slice scanner.

use super::*;
use crate::aof::{items, AofItem, KEVY_AOF_MAGIC};
use crate::resp::encode_command;

fn stream() -> Vec<u8> {
    let mut s = b"#TS:1700000000\r\n".to_vec();
    for i in 0..50_000u32 {
        encode_command(
            &[
                &b"SET"[..],
                format!("key:{i}").as_bytes(),
                &vec![b'v'; (i % 300) as usize],
            ],
            &mut s,
        );
    }
    s.extend_from_slice(b"#TS:1700000001\r\n");
    encode_command(&[&b"MULTI"[..]], &mut s);
    s
}

/// Hands out at most `self.1` bytes per read, to cross every boundary.
struct Trickle<'a>(&'a [u8], usize);
impl Read for Trickle<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.len().min(out.len()).min(self.1);
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// Owned form of what the reader handed out: (arguments or timestamp, end offset).
type Seen = Vec<(Result<Vec<Vec<u8>>, i64>, u64)>;

fn collect(r: impl Read, base: u64, initial: usize) -> (Seen, Result<StreamEnd, StreamError>) {
    let mut seen = Seen::new();
    let end = for_each_item_buffered(r, base, initial, |item, end| {
        seen.push(match item {
            Item::Command(args) => (Ok(args.iter().map(|a| a.to_vec()).collect()), end),
            Item::Timestamp(ts) => (Err(ts), end),
        });
        Ok::<(), StreamError>(())
    });
    (seen, end)
}

fn error_offset(err: &StreamError) -> u64 {
    match err {
        StreamError::Invalid { offset, .. }
        | StreamError::Truncated { offset }
        | StreamError::TooLarge { offset }
        | StreamError::Io { offset, .. } => *offset,
    }
}

#[test]
fn every_item_arrives_with_its_end_offset() {
    let s = stream();
    let (seen, end) = collect(Trickle(&s, 7), 100, CHUNK);
    let end = end.unwrap();
    assert_eq!(end.end, 100 + s.len() as u64);
    assert_eq!(end.commands, 50_001);
    assert!(end.open_multi);
    assert_eq!(seen.len(), 50_003);
    assert!(seen.windows(2).all(|w| w[0].1 < w[1].1));
    assert_eq!(seen[0], (Err(1_700_000_000), 116));
    assert_eq!(seen[1].0.as_ref().unwrap()[1], b"key:0");
    assert_eq!(seen[50_001].0, Err(1_700_000_001));
}

#[test]
fn a_big_command_grows_the_buffer_and_a_cut_one_is_an_error() {
    let mut s = Vec::new();
    encode_command(&[&b"SET"[..], b"k", &vec![b'x'; CHUNK + 10]], &mut s);
    let (seen, end) = collect(&s[..], 0, CHUNK);
    assert_eq!(end.unwrap().commands, 1);
    assert_eq!(seen[0].0.as_ref().unwrap()[2].len(), CHUNK + 10);
    let (_, end) = collect(&s[..s.len() - 1], 9, CHUNK);
    let err = end.unwrap_err();
    assert!(matches!(err, StreamError::Truncated { offset: 9 }), "{err}");
    let (_, end) = collect(&b"*1\r\n$3\r\nGETxx"[..], 1000, CHUNK);
    assert!(end.unwrap_err().to_string().contains("byte 1011"));
}

#[test]
fn every_buffer_size_and_read_size_gives_the_same_items() {
    let mut s = KEVY_AOF_MAGIC.to_vec();
    encode_command(&[&b"SET"[..], b"key", b"a value"], &mut s);
    s.extend_from_slice(b"#TS:1700000123\r\n# another annotation\n");
    encode_command(&[&b"MULTI"[..]], &mut s);
    encode_command(&[&b"INCR"[..], b"n"], &mut s);
    encode_command(&[&b"EXEC"[..]], &mut s);
    let (want, want_end) = collect(&s[..], 0, CHUNK);
    let want_end = want_end.unwrap();
    assert_eq!(want.len(), 5);
    assert_eq!(want_end.commands, 4);
    assert!(!want_end.open_multi);
    assert_eq!(want[0].1, 9 + 35);
    // Buffers from 1 byte (every boundary inside the header, a command, `#TS:`) up.
    for initial in 1..s.len() + 2 {
        for step in [1, 2, 3, 5, 64] {
            let (seen, end) = collect(Trickle(&s, step), 0, initial);
            assert_eq!(seen, want, "buffer {initial}, reads of {step}");
            assert_eq!(end.unwrap(), want_end, "buffer {initial}, reads of {step}");
        }
    }
}

#[test]
fn a_kevy_header_split_across_reads_is_skipped_only_at_offset_zero() {
    let mut s = KEVY_AOF_MAGIC.to_vec();
    encode_command(&[&b"PING"[..]], &mut s);
    for initial in 1..=10 {
        let (seen, end) = collect(Trickle(&s, 2), 0, initial);
        assert_eq!(seen.len(), 1, "buffer {initial}");
        assert_eq!(end.unwrap().end, s.len() as u64);
    }
    // The same bytes further into a file are garbage at their first byte.
    let (_, end) = collect(Trickle(&s, 2), 50, 4);
    let err = end.unwrap_err();
    assert!(
        matches!(err, StreamError::Invalid { offset: 50, .. }),
        "{err}"
    );
    // A header cut short is a truncated stream, not garbage.
    let (_, end) = collect(&KEVY_AOF_MAGIC[..5], 0, 3);
    assert!(matches!(end, Err(StreamError::Truncated { offset: 0 })));
}

#[test]
fn a_cut_inside_ts_or_a_command_is_truncated_at_the_item_start() {
    let mut s = Vec::new();
    encode_command(&[&b"SET"[..], b"k", b"v"], &mut s);
    let first = s.len() as u64;
    s.extend_from_slice(b"#TS:1700000000\r\n");
    for cut in first as usize + 1..s.len() {
        let (seen, end) = collect(Trickle(&s[..cut], 3), 10, 4);
        assert_eq!(seen.len(), 1);
        let err = end.unwrap_err();
        assert!(
            matches!(err, StreamError::Truncated { offset } if offset == 10 + first),
            "cut {cut}: {err}"
        );
    }
    let (_, end) = collect(&b"#TS:17x\r\n"[..], 0, 2);
    let err = end.unwrap_err();
    assert!(
        matches!(err, StreamError::Invalid { offset: 4, .. }),
        "{err}"
    );
}

#[test]
fn an_invalid_byte_far_into_a_large_input_names_its_absolute_offset() {
    let mut s = stream();
    let good = s.len();
    assert!(good > 3 * CHUNK);
    s.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    s[good + 4] = b'!';
    s.resize(s.len() + CHUNK, b'z');
    let base = 1 << 40;
    let (seen, end) = collect(Trickle(&s, 100_000), base, CHUNK);
    assert_eq!(seen.len(), 50_003);
    let err = end.unwrap_err();
    let offset = error_offset(&err);
    assert_eq!(offset, base + good as u64 + 4, "{err}");
    let slice_err = items(&s, base).find_map(Result::err).unwrap();
    let crate::aof::AofError::Invalid { offset: want, .. } = slice_err;
    assert_eq!(offset, want);
    assert!(err.to_string().contains(&format!("byte {offset}")));
}

#[test]
fn it_agrees_with_the_slice_scanner() {
    let s = stream();
    let want: Vec<_> = items(&s, 0)
        .map(|i| match i.unwrap() {
            AofItem::Command { args, end, .. } => {
                (Ok(args.iter().map(|a| a.to_vec()).collect()), end)
            }
            AofItem::Timestamp { unix_secs, end, .. } => (Err(unix_secs), end),
        })
        .collect();
    let (seen, end) = collect(Trickle(&s, 4096), 0, 1000);
    assert_eq!(seen, want);
    assert_eq!(end.unwrap().end, s.len() as u64);
}

#[test]
fn errors_from_the_callback_stop_the_stream() {
    let s = stream();
    let mut calls = 0;
    let res = for_each_item(&s[..], 0, |_, _| {
        calls += 1;
        if calls == 3 {
            return Err(StreamError::TooLarge { offset: 77 });
        }
        Ok(())
    });
    assert!(matches!(res, Err(StreamError::TooLarge { offset: 77 })));
    assert_eq!(calls, 3);
}

#[test]
fn read_errors_name_the_offset_reached() {
    struct Broken(usize);
    impl Read for Broken {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("disk on fire"));
            }
            let n = out.len().min(self.0).min(4);
            out[..n].fill(b'#');
            self.0 -= n;
            Ok(n)
        }
    }
    let res = for_each_item::<_, StreamError, _>(Broken(10), 5, |_, _| Ok(()));
    assert!(
        matches!(res, Err(StreamError::Io { offset: 15, .. })),
        "{res:?}"
    );
}

#[test]
fn raw_frames_are_the_stored_bytes_of_each_item_at_any_buffer_size() {
    let mut s = KEVY_AOF_MAGIC.to_vec();
    s.extend_from_slice(&stream());
    for initial in [1, 7, 4096, CHUNK] {
        let mut pieces: Vec<u8> = KEVY_AOF_MAGIC.to_vec();
        let mut last = 0u64;
        let mut commands = 0;
        for_each_raw_buffered(Trickle(&s, 3001), 0, initial, |item, end, raw| {
            // Each frame is exactly the bytes between the previous item's end and this one's.
            let from = if last == 0 {
                KEVY_AOF_MAGIC.len()
            } else {
                last as usize
            };
            assert_eq!(raw, &s[from..end as usize]);
            if let Item::Command(args) = item {
                let mut again = Vec::new();
                encode_command(args, &mut again);
                assert_eq!(raw, &again[..]);
                commands += 1;
            }
            pieces.extend_from_slice(raw);
            last = end;
            Ok::<(), StreamError>(())
        })
        .unwrap();
        assert_eq!(commands, 50_001);
        assert_eq!(pieces, s, "initial buffer {initial}");
    }
}
