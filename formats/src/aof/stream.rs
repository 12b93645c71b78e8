//! Reading the items of an AOF stream of any size from a [`Read`]er through a bounded buffer.
//!
//! [`for_each_item`] hands every command and `#TS:` annotation to a callback with the absolute
//! offset where it ends. It walks its buffer with the same scanner as [`super::safe_prefix`] and
//! [`super::items`] — there is one AOF grammar — so on the same bytes it sees the same items
//! and fails at the same offset; only the error type differs: an item cut by the end of the
//! stream is [`StreamError::Truncated`] (a stored segment holds whole commands only, so that is
//! damage, not a server still writing).
//!
//! The buffer is filled completely before it is scanned, so most reads are large; it grows only
//! for a single item larger than it (up to [`MAX_ITEM`]), everything else streams.

use std::io::{ErrorKind, Read};

use super::{AofError, Scanner, Step};

/// Initial buffer size of [`for_each_item`].
pub const CHUNK: usize = 1 << 20;
/// Largest single command or annotation accepted (bulk strings are at most 512 MiB).
pub const MAX_ITEM: usize = 1 << 30;

/// One decoded item; its arguments borrow the reader's buffer for the callback's duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    Command(&'a [&'a [u8]]),
    /// A `#TS:<unix seconds>` annotation.
    Timestamp(i64),
}

/// A stream that is not whole AOF items, or that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// `offset` is the absolute offset of the first offending byte.
    #[error("invalid AOF at byte {offset}: {reason}")]
    Invalid { offset: u64, reason: String },
    #[error("the stream ends inside a command that starts at byte {offset}")]
    Truncated { offset: u64 },
    #[error("a command at byte {offset} is larger than {MAX_ITEM} bytes")]
    TooLarge { offset: u64 },
    #[error("read error at byte {offset}: {source}")]
    Io { offset: u64, source: std::io::Error },
}

impl From<AofError> for StreamError {
    fn from(err: AofError) -> Self {
        match err {
            AofError::Invalid { offset, reason } => StreamError::Invalid { offset, reason },
        }
    }
}

/// What a whole stream held.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StreamEnd {
    /// Absolute offset after the last item.
    pub end: u64,
    /// Commands (`MULTI` and `EXEC` count as commands).
    pub commands: u64,
    /// The stream ends inside `MULTI` … `EXEC` (or `DISCARD`).
    pub open_multi: bool,
}

/// Calls `f(item, end_offset)` for every command and `#TS:` annotation of `r`, whose first byte
/// is at absolute offset `base`. A kevy header at offset 0 is skipped; other `#` lines are
/// skipped as Redis skips them. Stops at the first error, from the bytes ([`StreamError`],
/// converted into `E`) or from `f`.
pub fn for_each_item<R, E, F>(r: R, base: u64, f: F) -> Result<StreamEnd, E>
where
    R: Read,
    E: From<StreamError>,
    F: FnMut(Item<'_>, u64) -> Result<(), E>,
{
    for_each_item_buffered(r, base, CHUNK, f)
}

/// [`for_each_item`] with an initial buffer of `initial` bytes (at least 1), so that tests and
/// fuzzers can put buffer boundaries anywhere. Results never depend on `initial`.
pub fn for_each_item_buffered<R, E, F>(
    r: R,
    base: u64,
    initial: usize,
    mut f: F,
) -> Result<StreamEnd, E>
where
    R: Read,
    E: From<StreamError>,
    F: FnMut(Item<'_>, u64) -> Result<(), E>,
{
    for_each_raw_buffered(r, base, initial, |item, end, _| f(item, end))
}

/// [`for_each_item`], also handing the callback each item's bytes as they are in the stream
/// (`f(item, end_offset, raw)`): a command's whole RESP frame, an annotation's line. A replay
/// into a server of the same kind sends such a frame unchanged instead of encoding it again.
pub fn for_each_item_raw<R, E, F>(r: R, base: u64, f: F) -> Result<StreamEnd, E>
where
    R: Read,
    E: From<StreamError>,
    F: FnMut(Item<'_>, u64, &[u8]) -> Result<(), E>,
{
    for_each_raw_buffered(r, base, CHUNK, f)
}

/// [`for_each_item_raw`] with an initial buffer of `initial` bytes (see
/// [`for_each_item_buffered`]).
pub fn for_each_raw_buffered<R, E, F>(
    mut r: R,
    base: u64,
    initial: usize,
    mut f: F,
) -> Result<StreamEnd, E>
where
    R: Read,
    E: From<StreamError>,
    F: FnMut(Item<'_>, u64, &[u8]) -> Result<(), E>,
{
    let mut buf = vec![0u8; initial.clamp(1, MAX_ITEM)];
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
                // A reader claiming more than it was given is clamped rather than trusted.
                Ok(n) => len = (len + n).min(buf.len()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(source) => {
                    let offset = abs + len as u64;
                    return Err(StreamError::Io { offset, source }.into());
                }
            }
        }
        let pos = scan_buffer(&buf[..len], abs, &mut out, &mut f)?;
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
            // One item fills the whole buffer: grow it, within bounds.
            if buf.len() >= MAX_ITEM {
                return Err(StreamError::TooLarge { offset: abs }.into());
            }
            buf.resize((buf.len() * 2).min(MAX_ITEM), 0);
        }
    }
}

/// Hand every whole item of `buf` (at absolute offset `abs`) to `f`, with its bytes; returns
/// the bytes used.
fn scan_buffer<E, F>(buf: &[u8], abs: u64, out: &mut StreamEnd, f: &mut F) -> Result<usize, E>
where
    E: From<StreamError>,
    F: FnMut(Item<'_>, u64, &[u8]) -> Result<(), E>,
{
    let mut scan = Scanner::new(buf, abs);
    let mut args: Vec<&[u8]> = Vec::new();
    loop {
        args.clear();
        let start = scan.pos();
        let step = scan
            .step_with(|_, arg| args.push(arg))
            .map_err(StreamError::from)?;
        match step {
            None => return Ok(scan.pos()),
            Some(Step::Command { name }) => {
                out.commands += 1;
                if name.eq_ignore_ascii_case(b"MULTI") {
                    out.open_multi = true;
                } else if name.eq_ignore_ascii_case(b"EXEC")
                    || name.eq_ignore_ascii_case(b"DISCARD")
                {
                    out.open_multi = false;
                }
                f(Item::Command(&args), scan.offset(), &buf[start..scan.pos()])?;
            }
            Some(Step::Timestamp(ts)) => {
                f(Item::Timestamp(ts), scan.offset(), &buf[start..scan.pos()])?
            }
            Some(Step::Other) => {}
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
