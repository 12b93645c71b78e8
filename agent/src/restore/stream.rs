//! Reading the commands of an AOF stream of any size through a fixed buffer.
//!
//! [`for_each_item`] decodes RESP commands and `#` annotation lines from a reader, handing each
//! to a callback with the logical offset where it ends. The buffer grows only for a single
//! command larger than it (up to [`MAX_ITEM`]); everything else streams. A stream that ends
//! inside a command is an error naming the offset — a stored segment always holds whole
//! commands, so that is damage, not a server still writing.

use std::io::{ErrorKind, Read};

use aofvault_formats::aof::KEVY_AOF_MAGIC;
use aofvault_formats::resp;

/// Initial buffer size.
const CHUNK: usize = 1 << 20;
/// Largest single command or annotation accepted (bulk strings are at most 512 MiB).
const MAX_ITEM: usize = 1 << 30;
/// Longest annotation line Redis writes or reads.
const MAX_ANNOTATION: usize = 1024;

/// One decoded item.
pub enum Item<'a> {
    Command(&'a [&'a [u8]]),
    Timestamp(i64),
}

/// A stream that is not whole RESP commands.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("invalid AOF at byte {offset}: {reason}")]
    Invalid { offset: u64, reason: String },
    #[error("the stream ends inside a command that starts at byte {offset}")]
    Truncated { offset: u64 },
    #[error("a command at byte {offset} is larger than {MAX_ITEM} bytes")]
    TooLarge { offset: u64 },
    #[error("read error at byte {offset}: {source}")]
    Io { offset: u64, source: std::io::Error },
}

/// What a whole stream held.
#[derive(Debug, Default, Clone, Copy)]
pub struct StreamEnd {
    /// Logical offset after the last item.
    pub end: u64,
    pub commands: u64,
    /// The stream ends inside `MULTI` … `EXEC`.
    pub open_multi: bool,
}

/// Calls `f(item, end_offset)` for every command and `#TS:` annotation of `r`, whose first byte
/// is at logical offset `base`. A kevy header at offset 0 is skipped; other `#` lines are
/// skipped as Redis skips them. Stops at the first error (from the bytes or from `f`).
pub fn for_each_item<R: Read>(
    mut r: R,
    base: u64,
    mut f: impl FnMut(Item<'_>, u64) -> anyhow::Result<()>,
) -> anyhow::Result<StreamEnd> {
    let mut buf = vec![0u8; CHUNK];
    let mut len = 0usize;
    let mut abs = base;
    let mut eof = false;
    let mut out = StreamEnd {
        end: base,
        ..StreamEnd::default()
    };
    loop {
        while !eof && len < buf.len() {
            match r.read(&mut buf[len..]) {
                Ok(0) => eof = true,
                Ok(n) => len += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(StreamError::Io {
                        offset: abs + len as u64,
                        source,
                    }
                    .into())
                }
            }
        }
        let mut pos = 0usize;
        if abs == 0 && buf[..len].starts_with(KEVY_AOF_MAGIC) {
            pos = KEVY_AOF_MAGIC.len();
        }
        loop {
            let rest = &buf[pos..len];
            let at = abs + pos as u64;
            let Some(&first) = rest.first() else { break };
            if first == b'#' {
                let window = &rest[..rest.len().min(MAX_ANNOTATION)];
                let Some(nl) = window.iter().position(|&b| b == b'\n') else {
                    if rest.len() >= MAX_ANNOTATION {
                        return Err(StreamError::Invalid {
                            offset: at,
                            reason: "annotation line longer than 1024 bytes".into(),
                        }
                        .into());
                    }
                    break;
                };
                let line = &rest[..nl];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                pos += nl + 1;
                if let Some(digits) = line.strip_prefix(b"#TS:") {
                    let ts = std::str::from_utf8(digits)
                        .ok()
                        .and_then(|d| d.parse::<i64>().ok())
                        .ok_or_else(|| StreamError::Invalid {
                            offset: at,
                            reason: "#TS: annotation without a unix time".into(),
                        })?;
                    f(Item::Timestamp(ts), abs + pos as u64)?;
                }
                continue;
            }
            match resp::decode_command(rest, at) {
                Ok(Some((args, n))) => {
                    pos += n;
                    out.commands += 1;
                    let name = args[0];
                    if name.eq_ignore_ascii_case(b"MULTI") {
                        out.open_multi = true;
                    } else if name.eq_ignore_ascii_case(b"EXEC")
                        || name.eq_ignore_ascii_case(b"DISCARD")
                    {
                        out.open_multi = false;
                    }
                    f(Item::Command(&args), abs + pos as u64)?;
                }
                Ok(None) => break,
                Err(resp::RespError::Invalid { offset, reason }) => {
                    return Err(StreamError::Invalid { offset, reason }.into())
                }
            }
        }
        buf.copy_within(pos..len, 0);
        len -= pos;
        abs += pos as u64;
        if eof {
            if len > 0 {
                return Err(StreamError::Truncated { offset: abs }.into());
            }
            out.end = abs;
            return Ok(out);
        }
        if pos == 0 && len == buf.len() {
            if buf.len() >= MAX_ITEM {
                return Err(StreamError::TooLarge { offset: abs }.into());
            }
            buf.resize(buf.len() * 2, 0);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn stream() -> Vec<u8> {
        let mut s = b"#TS:1700000000\r\n".to_vec();
        for i in 0..50_000u32 {
            resp::encode_command(
                &[
                    &b"SET"[..],
                    format!("key:{i}").as_bytes(),
                    &vec![b'v'; (i % 300) as usize],
                ],
                &mut s,
            );
        }
        s.extend_from_slice(b"#TS:1700000001\r\n");
        resp::encode_command(&[&b"MULTI"[..]], &mut s);
        s
    }

    /// Hands out at most 7 bytes per read, to cross every boundary.
    struct Trickle<'a>(&'a [u8]);
    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(out.len()).min(7);
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn every_item_arrives_with_its_end_offset() {
        let s = stream();
        let mut seen = Vec::new();
        let mut last_end = 0;
        let end = for_each_item(Trickle(&s), 100, |item, end| {
            match item {
                Item::Command(args) => seen.push(args.get(1).unwrap_or(&args[0]).to_vec()),
                Item::Timestamp(ts) => seen.push(ts.to_string().into_bytes()),
            }
            assert!(end > last_end);
            last_end = end;
            Ok(())
        })
        .unwrap();
        assert_eq!(end.end, 100 + s.len() as u64);
        assert_eq!(end.commands, 50_001);
        assert!(end.open_multi);
        assert_eq!(seen.len(), 50_003);
        assert_eq!(seen[1], b"key:0");
        assert_eq!(seen[50_001], b"1700000001");
    }

    #[test]
    fn a_big_command_grows_the_buffer_and_a_cut_one_is_an_error() {
        let mut s = Vec::new();
        resp::encode_command(&[&b"SET"[..], b"k", &vec![b'x'; CHUNK + 10]], &mut s);
        let end = for_each_item(&s[..], 0, |_, _| Ok(())).unwrap();
        assert_eq!(end.commands, 1);
        let err = for_each_item(&s[..s.len() - 1], 9, |_, _| Ok(())).unwrap_err();
        let err = err.downcast::<StreamError>().unwrap();
        assert!(matches!(err, StreamError::Truncated { offset: 9 }), "{err}");
        let err = for_each_item(&b"*1\r\n$3\r\nGETxx"[..], 1000, |_, _| Ok(())).unwrap_err();
        assert!(err.to_string().contains("byte 1011"), "{err}");
    }
}
