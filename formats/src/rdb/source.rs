//! The byte source under the decoder: a [`BufRead`] read through its own buffer slices, with the
//! absolute offset and the running CRC-64 kept alongside.
//!
//! Bytes are taken from `fill_buf()` slices and only `consume`d in batches (when the buffer is
//! used up, every [`FLUSH_AT`] bytes, or at the end); the CRC is updated over each consumed batch.
//! This keeps the per-byte cost to a bounds check, and it lets a value that lies wholly inside
//! the buffer be parsed in place, without a copy. Nothing past the bytes the decoder actually
//! read is ever consumed, so the inner reader can be handed back positioned exactly after the
//! RDB (an AOF continues with RESP commands there).
//!
//! Lengths never drive allocation on their own: a read of `n` bytes grows its buffer as bytes
//! arrive, so a 4 GB length in a 100-byte file ends in [`RdbError::Truncated`].

use std::io::{BufRead, ErrorKind};

use super::checksum::Checksum;
use super::error::{PackError, RdbError};

/// Consume (and checksum) the bytes read so far once this many have accumulated, so a reader
/// whose buffer is the whole input (`&[u8]`) is checksummed while its bytes are still in cache.
const FLUSH_AT: usize = 256 * 1024;

/// The first allocation for a byte string whose bytes have not all arrived yet.
const FIRST_CHUNK: usize = 64 * 1024;

pub(crate) struct Source<R> {
    inner: R,
    /// Bytes of the inner reader's current buffer already read but not yet consumed.
    pos: usize,
    /// Bytes consumed from the inner reader (and fed to the CRC).
    consumed: u64,
    crc: Checksum,
    /// Reused for values that straddle buffer refills.
    scratch: Vec<u8>,
    /// Reused for decompressed packed values.
    lzf: Vec<u8>,
}

impl<R: BufRead> Source<R> {
    pub(crate) fn new(inner: R) -> Self {
        Source {
            inner,
            pos: 0,
            consumed: 0,
            crc: Checksum::new(),
            scratch: Vec::new(),
            lzf: Vec::new(),
        }
    }

    /// Bytes read from the start of the input.
    pub(crate) fn offset(&self) -> u64 {
        self.consumed + self.pos as u64
    }

    /// The CRC over every byte read so far.
    pub(crate) fn crc(&mut self) -> Result<u64, RdbError> {
        self.release()?;
        Ok(self.crc.value())
    }

    /// Gives back the inner reader positioned right after the last byte read.
    pub(crate) fn into_inner(mut self) -> R {
        self.inner.consume(self.pos);
        self.inner
    }

    /// Consumes what was read of the current buffer, after adding it to the CRC.
    fn release(&mut self) -> Result<(), RdbError> {
        if self.pos == 0 {
            return Ok(());
        }
        let offset = self.offset();
        let buf = fill(&mut self.inner, offset)?;
        let read = buf.get(..self.pos).ok_or_else(|| shrunk(offset))?;
        self.crc.update(read);
        self.inner.consume(self.pos);
        self.consumed += self.pos as u64;
        self.pos = 0;
        Ok(())
    }

    pub(crate) fn take_lzf_buffer(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.lzf)
    }

    /// Keeps a moderate buffer for the next compressed value, not a huge one.
    pub(crate) fn put_lzf_buffer(&mut self, buf: Vec<u8>) {
        if buf.capacity() <= 4 * FIRST_CHUNK {
            self.lzf = buf;
        }
    }

    /// Releases the bytes read so far once enough have accumulated; call between records.
    pub(crate) fn checkpoint(&mut self) -> Result<(), RdbError> {
        if self.pos >= FLUSH_AT {
            self.release()?;
        }
        Ok(())
    }

    /// The unread bytes of the current buffer, refilled when it is used up; empty at the end
    /// of the input.
    fn available(&mut self) -> Result<&[u8], RdbError> {
        let offset = self.offset();
        let used_up = self.pos >= fill(&mut self.inner, offset)?.len();
        if used_up {
            self.release()?;
        }
        let buf = fill(&mut self.inner, offset)?;
        buf.get(self.pos..).ok_or_else(|| shrunk(offset))
    }

    fn truncated(&self, what: &str) -> RdbError {
        RdbError::Truncated {
            offset: self.offset(),
            context: what.to_owned(),
        }
    }

    // The byte in the buffer inline, the refill out of line: length fields are read per element.
    #[inline(always)]
    pub(crate) fn read_u8(&mut self, what: &'static str) -> Result<u8, RdbError> {
        if let Ok(buf) = self.inner.fill_buf() {
            if let Some(&b) = buf.get(self.pos) {
                self.pos += 1;
                return Ok(b);
            }
        }
        self.read_u8_refill(what)
    }

    #[inline(never)]
    fn read_u8_refill(&mut self, what: &'static str) -> Result<u8, RdbError> {
        match self.available()?.first() {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(self.truncated(what)),
        }
    }

    #[inline]
    pub(crate) fn read_array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], RdbError> {
        let mut out = [0u8; N];
        if let Ok(buf) = self.inner.fill_buf() {
            if let Some(bytes) = buf.get(self.pos..self.pos + N) {
                out.copy_from_slice(bytes);
                self.pos += N;
                return Ok(out);
            }
        }
        for byte in out.iter_mut() {
            *byte = self.read_u8(what)?;
        }
        Ok(out)
    }

    /// The common case of a string: a 1-byte length below 64 and its bytes, all in the buffer.
    /// `None` when the next string is anything else (the caller then takes the general path).
    #[inline(always)]
    pub(crate) fn try_short_string(&mut self) -> Option<Vec<u8>> {
        let buf = self.inner.fill_buf().ok()?;
        let first = *buf.get(self.pos)?;
        if first >= 0x40 {
            return None;
        }
        let end = self.pos + 1 + usize::from(first);
        let out = buf.get(self.pos + 1..end)?.to_vec();
        self.pos = end;
        Some(out)
    }

    /// Reads exactly `n` bytes into a new vector.
    pub(crate) fn read_bytes(&mut self, n: usize, what: &'static str) -> Result<Vec<u8>, RdbError> {
        if let Ok(buf) = self.inner.fill_buf() {
            if let Some(bytes) = buf.get(self.pos..self.pos.saturating_add(n)) {
                let out = bytes.to_vec();
                self.pos += n;
                return Ok(out);
            }
        }
        let mut out = Vec::new();
        self.append_bytes(n, what, &mut out)?;
        Ok(out)
    }

    /// Appends exactly `n` bytes to `out`, growing it only as bytes arrive.
    fn append_bytes(
        &mut self,
        n: usize,
        what: &'static str,
        out: &mut Vec<u8>,
    ) -> Result<(), RdbError> {
        let mut left = n;
        out.reserve(n.min(FIRST_CHUNK));
        while left > 0 {
            let buf = self.available()?;
            if buf.is_empty() {
                return Err(self.truncated(what));
            }
            let take = buf.len().min(left);
            out.extend_from_slice(&buf[..take]);
            self.pos += take;
            left -= take;
        }
        Ok(())
    }

    /// Calls `f` on the next `n` bytes: in place when they are all in the reader's buffer,
    /// else after gathering them into a scratch buffer.
    pub(crate) fn with_bytes<T>(
        &mut self,
        n: usize,
        what: &'static str,
        f: impl FnOnce(&[u8]) -> T,
    ) -> Result<T, RdbError> {
        if let Ok(buf) = self.inner.fill_buf() {
            if let Some(bytes) = buf.get(self.pos..self.pos.saturating_add(n)) {
                let out = f(bytes);
                self.pos += n;
                return Ok(out);
            }
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let gathered = self.append_bytes(n, what, &mut scratch);
        let out = gathered.map(|()| f(&scratch));
        // Keep a moderate scratch buffer for the next straddling value, not a huge one.
        if scratch.capacity() <= 4 * FIRST_CHUNK {
            self.scratch = scratch;
        }
        out
    }
}

/// `fill_buf`, retried on `Interrupted`, with the error placed at `offset`.
fn fill<R: BufRead>(inner: &mut R, offset: u64) -> Result<&[u8], RdbError> {
    loop {
        match inner.fill_buf() {
            Ok(_) => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(source) => return Err(RdbError::Io { offset, source }),
        }
    }
    inner
        .fill_buf()
        .map_err(|source| RdbError::Io { offset, source })
}

/// A reader whose buffer got shorter without a `consume` breaks the `BufRead` contract.
fn shrunk(offset: u64) -> RdbError {
    RdbError::Io {
        offset,
        source: std::io::Error::new(
            ErrorKind::InvalidData,
            "the reader's buffer shrank between fill_buf calls",
        ),
    }
}

/// Capacity to reserve for a collection whose count comes from the file: enough to avoid most
/// regrowth, too little to matter when the count is a lie.
pub(crate) fn capacity(count: u64) -> usize {
    count.min(4096) as usize
}

/// Parses a packed container held in the next string; its errors point at that string.
pub(crate) fn packed<R: BufRead, T>(
    src: &mut Source<R>,
    key: &[u8],
    what: &'static str,
    parse: impl FnOnce(&[u8]) -> Result<T, PackError>,
) -> Result<T, RdbError> {
    let at = src.offset();
    src.with_string(what, parse)?
        .map_err(|e| e.into_rdb(at, what, key))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::rdb::crc64::Crc64;
    use std::io::BufReader;

    /// A reader that hands out one byte per `read`, so every value straddles refills.
    struct Trickle<'a>(&'a [u8]);
    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            match (self.0.split_first(), out.first_mut()) {
                (Some((&b, rest)), Some(slot)) => {
                    *slot = b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn reads_across_refills_and_checksums_everything() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let mut src = Source::new(BufReader::with_capacity(3, Trickle(&data)));
        assert_eq!(src.read_u8("a").unwrap(), 0);
        assert_eq!(src.read_array::<4>("b").unwrap(), [1, 2, 3, 4]);
        assert_eq!(
            src.read_bytes(10, "c").unwrap(),
            (5..15).collect::<Vec<u8>>()
        );
        let sum = src
            .with_bytes(5, "d", |b| b.iter().map(|&x| u32::from(x)).sum::<u32>())
            .unwrap();
        assert_eq!(sum, 15 + 16 + 17 + 18 + 19);
        assert_eq!(src.read_bytes(980, "e").unwrap().len(), 980);
        assert_eq!(src.offset(), 1000);
        assert!(matches!(
            src.read_u8("f"),
            Err(RdbError::Truncated { offset: 1000, .. })
        ));
        let mut want = Crc64::new();
        want.update(&data);
        assert_eq!(src.crc().unwrap(), want.value());
    }

    #[test]
    fn huge_read_fails_as_truncated_without_allocating_it() {
        let data = [7u8; 100];
        let mut src = Source::new(&data[..]);
        let err = src.read_bytes(usize::MAX / 2, "huge").unwrap_err();
        assert!(
            matches!(err, RdbError::Truncated { offset: 100, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn into_inner_stops_exactly_after_the_last_byte_read() {
        let data = b"abcdef";
        let mut src = Source::new(&data[..]);
        src.read_array::<3>("x").unwrap();
        let rest = src.into_inner();
        assert_eq!(rest, b"def");
    }
}
