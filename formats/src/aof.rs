//! The command streams inside AOF files, and where they may be cut.
//!
//! Both servers append RESP multibulk commands ([`crate::resp`]). On top of that:
//!
//! - kevy files may start with the 9-byte header [`KEVY_AOF_MAGIC`] (older ones have none);
//! - Redis ≥ 7 writes `#TS:<unix seconds>\r\n` annotation lines when `aof-timestamp-enabled` is
//!   on (other `#` lines are ignored, as Redis ignores them), and wraps transactions in
//!   `MULTI` … `EXEC`;
//! - a Redis AOF may begin with an RDB preamble (`REDIS…`). That part is not RESP: callers find
//!   it with [`crate::detect`], decode it with [`crate::rdb::RdbReader`], and hand the rest to
//!   this module.
//!
//! A *safe cut point* is an offset right after a whole command or annotation and outside any
//! transaction. Shipping and point-in-time restores only ever cut there, so a replayed prefix
//! never contains half a command or half a transaction. All offsets here are absolute: callers
//! pass `base`, the file offset of `buf[0]`, and every error names the file offset it is about.
//! A buffer given to [`safe_prefix`], [`items`] or [`cut_at_timestamp`] with `base == 0` may start
//! with the kevy header, which is skipped. [`stream::for_each_item`] reads a whole stream from a
//! `Read`er with the same scanner, so every reader of AOF items shares one grammar.

use crate::resp::{self, RespError};

pub mod stream;

/// The header kevy ≥ 1.2 writes at the start of every new or truncated AOF.
pub const KEVY_AOF_MAGIC: &[u8] = b"KEVYAOF1\n";

/// Longest annotation line Redis reads (`AOF_ANNOTATION_LINE_MAX_LEN`), newline included.
const MAX_ANNOTATION_LEN: usize = 1024;

/// `9` if `buf` starts with [`KEVY_AOF_MAGIC`], else `0`.
pub fn kevy_header_len(buf: &[u8]) -> usize {
    if buf.starts_with(KEVY_AOF_MAGIC) {
        KEVY_AOF_MAGIC.len()
    } else {
        0
    }
}

/// One item of an AOF, with the absolute byte range it occupies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AofItem<'a> {
    Command {
        args: Vec<&'a [u8]>,
        start: u64,
        end: u64,
    },
    /// A `#TS:<unix seconds>` annotation.
    Timestamp {
        unix_secs: i64,
        start: u64,
        end: u64,
    },
}

/// Bytes that are not a valid AOF command stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AofError {
    /// `offset` is the absolute file offset of the first offending byte.
    #[error("invalid AOF at byte {offset}: {reason}")]
    Invalid { offset: u64, reason: String },
}

impl From<RespError> for AofError {
    fn from(err: RespError) -> Self {
        match err {
            RespError::Invalid { offset, reason } => AofError::Invalid { offset, reason },
        }
    }
}

/// The longest prefix of a buffer that ends at a safe cut point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SafePrefix {
    /// Bytes from the start of the buffer up to the last safe cut (header included).
    pub len: usize,
    /// Commands inside that prefix (`MULTI` and `EXEC` count as commands).
    pub commands: u64,
    /// First and last `#TS:` annotation inside that prefix.
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
}

/// Scan `buf`, which begins at a safe point at absolute offset `base`, and return the longest
/// prefix that ends at a safe cut. A half-written trailing command or an unfinished `MULTI` is
/// left out (that is normal while the server writes); bytes that can never become a command are
/// [`AofError::Invalid`].
pub fn safe_prefix(buf: &[u8], base: u64) -> Result<SafePrefix, AofError> {
    let mut scan = Scanner::new(buf, base);
    let mut safe = SafePrefix {
        len: scan.pos,
        ..SafePrefix::default()
    };
    // What has been seen since the last safe cut (inside an open transaction).
    let mut pending = SafePrefix::default();
    let mut in_multi = false;
    while let Some(step) = scan.step()? {
        match step {
            Step::Command { name } => {
                pending.commands += 1;
                if in_multi {
                    in_multi = !name.eq_ignore_ascii_case(b"EXEC");
                } else {
                    in_multi = name.eq_ignore_ascii_case(b"MULTI");
                }
            }
            Step::Timestamp(ts) => {
                pending.first_ts = pending.first_ts.or(Some(ts));
                pending.last_ts = Some(ts);
            }
            Step::Other => {}
        }
        if !in_multi {
            safe.len = scan.pos;
            safe.commands += pending.commands;
            safe.first_ts = safe.first_ts.or(pending.first_ts);
            safe.last_ts = pending.last_ts.or(safe.last_ts);
            pending = SafePrefix::default();
        }
    }
    Ok(safe)
}

/// The length of the longest safe prefix of `buf` whose commands all carry a timestamp
/// `<= until_unix`: the cut stops before the first `#TS:` annotation newer than `until_unix`
/// (or before the transaction holding it). Commands before the first annotation in `buf` are
/// taken to belong to the annotation in effect at `base`, which the caller has checked.
pub fn cut_at_timestamp(buf: &[u8], base: u64, until_unix: i64) -> Result<usize, AofError> {
    let mut scan = Scanner::new(buf, base);
    let mut safe = scan.pos;
    let mut in_multi = false;
    while let Some(step) = scan.step()? {
        match step {
            Step::Timestamp(ts) if ts > until_unix => return Ok(safe),
            Step::Command { name } => {
                if in_multi {
                    in_multi = !name.eq_ignore_ascii_case(b"EXEC");
                } else {
                    in_multi = name.eq_ignore_ascii_case(b"MULTI");
                }
            }
            Step::Timestamp(_) | Step::Other => {}
        }
        if !in_multi {
            safe = scan.pos;
        }
    }
    Ok(safe)
}

/// Iterate the commands and `#TS:` annotations of `buf`, which holds whole items only (use
/// [`safe_prefix`] first): an incomplete item at the end is an error.
pub fn items(buf: &[u8], base: u64) -> impl Iterator<Item = Result<AofItem<'_>, AofError>> {
    Items {
        scan: Scanner::new(buf, base),
        failed: false,
    }
}

struct Items<'a> {
    scan: Scanner<'a>,
    failed: bool,
}

impl<'a> Iterator for Items<'a> {
    type Item = Result<AofItem<'a>, AofError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = self.next_item();
        if matches!(item, Some(Err(_))) {
            self.failed = true;
        }
        item
    }
}

impl<'a> Items<'a> {
    fn next_item(&mut self) -> Option<Result<AofItem<'a>, AofError>> {
        loop {
            let start = self.scan.offset();
            let mut args = Vec::new();
            let step = match self.scan.step_with(|_, arg| args.push(arg)) {
                Ok(Some(step)) => step,
                Ok(None) if self.scan.at_end() => return None,
                Ok(None) => return Some(Err(truncated(start))),
                Err(err) => return Some(Err(err)),
            };
            let end = self.scan.offset();
            return Some(Ok(match step {
                Step::Command { .. } => AofItem::Command { args, start, end },
                Step::Timestamp(unix_secs) => AofItem::Timestamp {
                    unix_secs,
                    start,
                    end,
                },
                Step::Other => continue,
            }));
        }
    }
}

fn truncated(offset: u64) -> AofError {
    AofError::Invalid {
        offset,
        reason: "incomplete item at the end of the buffer".into(),
    }
}

/// One recognised item, reduced to what the cut-point logic needs.
pub(crate) enum Step<'a> {
    Command {
        name: &'a [u8],
    },
    Timestamp(i64),
    /// An annotation other than `#TS:`.
    Other,
}

/// A cursor over whole items; `step` returns `None` at the end or before an incomplete item.
/// This is the one AOF grammar: [`safe_prefix`], [`cut_at_timestamp`], [`items`] and the
/// streaming reader in [`stream`] all walk their bytes with it.
pub(crate) struct Scanner<'a> {
    buf: &'a [u8],
    base: u64,
    pos: usize,
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(buf: &'a [u8], base: u64) -> Self {
        let pos = if base == 0 { kevy_header_len(buf) } else { 0 };
        Scanner { buf, base, pos }
    }

    /// Bytes of the buffer consumed so far (header and whole items).
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The absolute offset of the next unread byte.
    pub(crate) fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn step(&mut self) -> Result<Option<Step<'a>>, AofError> {
        self.step_with(|_, _| {})
    }

    /// Like `step`, also calling `on_arg(index, bytes)` for each argument of a command. When
    /// the result is not a command, `on_arg` may have seen the arguments of an incomplete one:
    /// callers collecting them start afresh on every step.
    pub(crate) fn step_with(
        &mut self,
        mut on_arg: impl FnMut(usize, &'a [u8]),
    ) -> Result<Option<Step<'a>>, AofError> {
        let rest = &self.buf[self.pos..];
        let abs = self.base + self.pos as u64;
        match rest.first() {
            None => Ok(None),
            Some(b'#') => {
                let Some((step, len)) = annotation(rest, abs)? else {
                    return Ok(None);
                };
                self.pos += len;
                Ok(Some(step))
            }
            Some(b'K') if self.base == 0 && self.pos == 0 && KEVY_AOF_MAGIC.starts_with(rest) => {
                // A kevy header still being written.
                Ok(None)
            }
            Some(_) => {
                let mut name: &[u8] = &[];
                let Some(len) = resp::walk_command(rest, abs, |i, arg| {
                    if i == 0 {
                        name = arg;
                    }
                    on_arg(i, arg);
                })?
                else {
                    return Ok(None);
                };
                self.pos += len;
                Ok(Some(Step::Command { name }))
            }
        }
    }
}

/// Parse an annotation line starting with `#`. `None` if its newline has not been written yet.
fn annotation(rest: &[u8], abs: u64) -> Result<Option<(Step<'_>, usize)>, AofError> {
    let window = &rest[..rest.len().min(MAX_ANNOTATION_LEN)];
    let Some(nl) = window.iter().position(|&b| b == b'\n') else {
        if rest.len() >= MAX_ANNOTATION_LEN {
            return Err(AofError::Invalid {
                offset: abs,
                reason: format!("annotation line longer than {MAX_ANNOTATION_LEN} bytes"),
            });
        }
        return Ok(None);
    };
    let line = &rest[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let Some(digits) = line.strip_prefix(b"#TS:") else {
        return Ok(Some((Step::Other, nl + 1)));
    };
    let ts = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| AofError::Invalid {
            offset: abs + 4,
            reason: format!(
                "#TS: annotation holds {:?}, not a unix time",
                String::from_utf8_lossy(digits)
            ),
        })?;
    Ok(Some((Step::Timestamp(ts), nl + 1)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn header_prefix_is_waited_for() {
        let p = safe_prefix(b"KEVYA", 0).unwrap();
        assert_eq!(p.len, 0);
        let p = safe_prefix(KEVY_AOF_MAGIC, 0).unwrap();
        assert_eq!(p.len, 9);
        // Away from offset 0 a 'K' is garbage.
        assert!(safe_prefix(b"KEVYA", 10).is_err());
    }
}
