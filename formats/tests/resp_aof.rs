//! RESP decoding and AOF cut points: incomplete vs invalid at the right absolute offset, safe
//! prefixes that leave out open transactions and half-written commands, `#TS:` annotations,
//! the kevy header, and point-in-time cuts.
#![allow(clippy::unwrap_used)]

use aofvault_formats::aof::{
    self, cut_at_timestamp, items, kevy_header_len, safe_prefix, AofError, AofItem, KEVY_AOF_MAGIC,
};
use aofvault_formats::resp::{decode_command, encode_command, RespError};

fn cmd(args: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_command(args, &mut out);
    out
}

fn offset_of(err: AofError) -> u64 {
    let AofError::Invalid { offset, .. } = err;
    offset
}

#[test]
fn decoder_borrows_arguments_and_reports_consumed_bytes() {
    let mut buf = cmd(&["SET", "key", "value"]);
    let first_len = buf.len();
    buf.extend(cmd(&["DEL", "key"]));
    let (args, n) = decode_command(&buf, 0).unwrap().unwrap();
    assert_eq!(n, first_len);
    assert_eq!(args, vec![&b"SET"[..], b"key", b"value"]);
    // Zero-copy: the arguments point into the buffer.
    assert!(std::ptr::eq(args[1].as_ptr(), buf[17..].as_ptr()));
    let (args, _) = decode_command(&buf[n..], n as u64).unwrap().unwrap();
    assert_eq!(args, vec![&b"DEL"[..], b"key"]);
}

#[test]
fn incomplete_is_not_invalid_and_invalid_names_the_absolute_offset() {
    let full = cmd(&["RPUSH", "list", "a", "b"]);
    for cut in 0..full.len() {
        assert_eq!(
            decode_command(&full[..cut], 5000).unwrap(),
            None,
            "cut at {cut}"
        );
    }
    // A wrong byte in each position class, each at a known offset.
    let cases: &[(&[u8], u64)] = &[
        (b"x", 0),                          // not '*'
        (b"*2\r\n$3\r\nGET\r\n:1\r\n", 13), // ':' instead of '$'
        (b"*1x", 2),                        // junk after argc
        (b"*1\r\r", 3),                     // '\r' not followed by '\n'
        (b"*1\r\n$-1\r\n", 5),              // negative length
        (b"*1\r\n$3\r\nGETX\r\n", 11),      // payload longer than declared
        (b"*1\r\n$3\r\nGET\rX", 12),        // '\r' then junk
    ];
    for (bytes, rel) in cases {
        let err = decode_command(bytes, 1000).unwrap_err();
        let RespError::Invalid { offset, .. } = err;
        assert_eq!(
            offset,
            1000 + rel,
            "input {:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn safe_prefix_leaves_out_a_half_command() {
    let mut buf = cmd(&["SET", "a", "1"]);
    buf.extend(cmd(&["SET", "b", "2"]));
    let whole = buf.len();
    buf.extend(&cmd(&["SET", "c", "3"])[..7]);
    let p = safe_prefix(&buf, 0).unwrap();
    assert_eq!(p.len, whole);
    assert_eq!(p.commands, 2);
}

#[test]
fn safe_prefix_leaves_out_an_open_multi_and_keeps_a_closed_one() {
    let mut buf = cmd(&["SET", "a", "1"]);
    let before_multi = buf.len();
    buf.extend(cmd(&["multi"]));
    buf.extend(cmd(&["INCR", "n"]));
    buf.extend(cmd(&["INCR", "m"]));
    let p = safe_prefix(&buf, 0).unwrap();
    assert_eq!(p.len, before_multi, "an open transaction is not safe");
    assert_eq!(p.commands, 1);

    buf.extend(cmd(&["Exec"]));
    let p = safe_prefix(&buf, 0).unwrap();
    assert_eq!(p.len, buf.len());
    assert_eq!(p.commands, 5);
}

#[test]
fn garbage_after_valid_commands_is_invalid_at_its_offset() {
    let mut buf = cmd(&["SET", "a", "1"]);
    let at = buf.len() as u64;
    buf.extend_from_slice(b"hello world\r\n");
    assert_eq!(offset_of(safe_prefix(&buf, 4096).unwrap_err()), 4096 + at);
    let all: Vec<_> = items(&buf, 4096).collect();
    assert_eq!(all.len(), 2);
    assert_eq!(offset_of(all[1].clone().unwrap_err()), 4096 + at);
}

#[test]
fn timestamps_are_parsed_and_counted() {
    let mut buf = b"#TS:1795720592\r\n".to_vec();
    buf.extend(cmd(&["SET", "a", "1"]));
    buf.extend_from_slice(b"#some other annotation\r\n");
    buf.extend_from_slice(b"#TS:1795720593\r\n");
    buf.extend(cmd(&["SET", "b", "2"]));
    let p = safe_prefix(&buf, 0).unwrap();
    assert_eq!(p.len, buf.len());
    assert_eq!(
        (p.first_ts, p.last_ts),
        (Some(1795720592), Some(1795720593))
    );
    assert_eq!(p.commands, 2);

    let got: Vec<_> = items(&buf, 0).map(|r| r.unwrap()).collect();
    assert_eq!(got.len(), 4, "the unknown annotation is skipped");
    assert_eq!(
        got[0],
        AofItem::Timestamp {
            unix_secs: 1795720592,
            start: 0,
            end: 16
        }
    );
    let AofItem::Command { args, start, .. } = &got[1] else {
        panic!("expected a command, got {:?}", got[1]);
    };
    assert_eq!((args[1], *start), (&b"a"[..], 16));

    // A half-written annotation is incomplete; a bad number is invalid.
    let p = safe_prefix(b"#TS:17957", 0).unwrap();
    assert_eq!(p.len, 0);
    let err = safe_prefix(b"#TS:12ab\r\n", 300).unwrap_err();
    assert_eq!(offset_of(err), 304);
    let long = vec![b'#'; 2000];
    assert_eq!(offset_of(safe_prefix(&long, 8).unwrap_err()), 8);
}

#[test]
fn kevy_header_is_recognised_and_skipped_at_offset_zero() {
    assert_eq!(kevy_header_len(b"KEVYAOF1\n*1\r\n"), 9);
    assert_eq!(kevy_header_len(b"*1\r\n$4\r\nPING\r\n"), 0);
    assert_eq!(kevy_header_len(b"KEVYAOF2\n"), 0);
    let mut buf = KEVY_AOF_MAGIC.to_vec();
    buf.extend(cmd(&["SET", "k", "v"]));
    let p = safe_prefix(&buf, 0).unwrap();
    assert_eq!((p.len, p.commands), (buf.len(), 1));
    let first = items(&buf, 0).next().unwrap().unwrap();
    assert!(matches!(first, AofItem::Command { start: 9, .. }));
    // The header alone (a kevy AOF right after SAVE) is a safe, empty stream.
    assert_eq!(safe_prefix(KEVY_AOF_MAGIC, 0).unwrap().len, 9);
    assert_eq!(items(KEVY_AOF_MAGIC, 0).count(), 0);
}

#[test]
fn cut_at_timestamp_stops_before_the_first_newer_annotation() {
    let mut buf = cmd(&["SET", "early", "0"]);
    buf.extend_from_slice(b"#TS:100\r\n");
    buf.extend(cmd(&["SET", "a", "1"]));
    let after_100 = buf.len();
    buf.extend_from_slice(b"#TS:200\r\n");
    buf.extend(cmd(&["SET", "b", "2"]));
    let after_200 = buf.len();
    buf.extend_from_slice(b"#TS:300\r\n");
    buf.extend(cmd(&["SET", "c", "3"]));

    assert_eq!(
        cut_at_timestamp(&buf, 0, 99).unwrap(),
        cmd(&["SET", "early", "0"]).len()
    );
    assert_eq!(cut_at_timestamp(&buf, 0, 100).unwrap(), after_100);
    assert_eq!(cut_at_timestamp(&buf, 0, 250).unwrap(), after_200);
    assert_eq!(cut_at_timestamp(&buf, 0, 300).unwrap(), buf.len());
    assert_eq!(cut_at_timestamp(&buf, 0, i64::MAX).unwrap(), buf.len());
}

#[test]
fn cut_at_timestamp_never_splits_a_transaction() {
    let mut buf = b"#TS:100\r\n".to_vec();
    buf.extend(cmd(&["SET", "a", "1"]));
    let before_multi = buf.len();
    buf.extend(cmd(&["MULTI"]));
    buf.extend(cmd(&["SET", "b", "2"]));
    buf.extend_from_slice(b"#TS:200\r\n");
    buf.extend(cmd(&["SET", "c", "3"]));
    buf.extend(cmd(&["EXEC"]));
    assert_eq!(cut_at_timestamp(&buf, 0, 150).unwrap(), before_multi);
    assert_eq!(cut_at_timestamp(&buf, 0, 200).unwrap(), buf.len());
    // And a trailing half command is never included.
    let mut half = buf.clone();
    half.extend_from_slice(b"*2\r\n$3\r\nDEL");
    assert_eq!(cut_at_timestamp(&half, 0, 999).unwrap(), buf.len());
}

#[test]
fn items_report_a_truncated_tail_as_an_error() {
    let mut buf = cmd(&["SET", "a", "1"]);
    let at = buf.len() as u64;
    buf.extend_from_slice(b"*2\r\n$3\r\n");
    let got: Vec<_> = aof::items(&buf, 10).collect();
    assert!(got[0].is_ok());
    assert_eq!(offset_of(got[1].clone().unwrap_err()), 10 + at);
    assert_eq!(got.len(), 2);
}

#[test]
fn lengths_with_leading_zeros_are_accepted_like_redis_does() {
    let (args, n) = decode_command(b"*02\r\n$003\r\nGET\r\n$1\r\nk\r\n", 0)
        .unwrap()
        .unwrap();
    assert_eq!((args, n), (vec![&b"GET"[..], b"k"], 23));
}
