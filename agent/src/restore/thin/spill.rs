//! The classified stream on disk: one record per command, written forward while the stream is
//! read once, then read backward by each partition pass ([`super::passes`]).
//!
//! A record is the command's key digests (16 bytes each, little-endian), then their count
//! (`u32` LE), then the class tag (`u8`): the trailer is at the end so that a reader walking
//! backward finds it first. About 21 bytes per single-key command — less than the command
//! itself in the AOF for all but the shortest keys and values.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};

use super::classify::{Class, KeyId};

/// Read and write buffer size.
const BLOCK: usize = 1 << 20;

/// Class tags on disk.
pub const NEUTRAL: u8 = 0;
pub const BARRIER: u8 = 1;
pub const SINGLE: u8 = 2;
pub const OVERWRITE: u8 = 3;
pub const PIN: u8 = 4;

/// Appends records to an anonymous temporary file.
pub struct SpillWriter {
    out: BufWriter<File>,
}

impl SpillWriter {
    pub fn new(file: File) -> Self {
        Self {
            out: BufWriter::with_capacity(BLOCK, file),
        }
    }

    /// Writes the record of the next command.
    pub fn push(&mut self, class: &Class) -> std::io::Result<()> {
        let (tag, keys): (u8, &[KeyId]) = match class {
            Class::Neutral => (NEUTRAL, &[]),
            Class::Barrier => (BARRIER, &[]),
            Class::Single(k) => (SINGLE, std::slice::from_ref(k)),
            Class::Overwrite(ks) => (OVERWRITE, ks),
            Class::Pin(ks) => (PIN, ks),
        };
        for k in keys {
            self.out.write_all(&k.to_le_bytes())?;
        }
        let n = u32::try_from(keys.len())
            .map_err(|_| std::io::Error::other("a command with more than 2^32 keys"))?;
        self.out.write_all(&n.to_le_bytes())?;
        self.out.write_all(&[tag])
    }

    /// Flushes and hands the file back for reading.
    pub fn finish(self) -> std::io::Result<File> {
        self.out.into_inner().map_err(|e| e.into_error())
    }
}

/// Walks the records of a spill file from the last to the first.
pub struct Backward<'a> {
    file: &'a mut File,
    /// Bytes `[lo, lo + end)` of the file; `buf[..end]` is still to be read.
    buf: Vec<u8>,
    end: usize,
    lo: u64,
    keys: Vec<KeyId>,
}

impl<'a> Backward<'a> {
    pub fn new(file: &'a mut File) -> std::io::Result<Self> {
        let len = file.seek(SeekFrom::End(0))?;
        Ok(Self {
            file,
            buf: Vec::new(),
            end: 0,
            lo: len,
            keys: Vec::new(),
        })
    }

    /// Makes the last `n` unread bytes available in `buf[end - n..end]`.
    fn need(&mut self, n: usize) -> std::io::Result<()> {
        if self.end >= n {
            return Ok(());
        }
        let more = (n - self.end).max(BLOCK) as u64;
        let new_lo = self.lo.saturating_sub(more);
        let take = (self.lo - new_lo) as usize;
        if take + self.end < n {
            return Err(std::io::Error::other(
                "spill file: record runs past its start",
            ));
        }
        let mut fresh = vec![0u8; take + self.end];
        self.file.seek(SeekFrom::Start(new_lo))?;
        self.file.read_exact(&mut fresh[..take])?;
        fresh[take..].copy_from_slice(&self.buf[..self.end]);
        self.buf = fresh;
        self.end = self.buf.len();
        self.lo = new_lo;
        Ok(())
    }

    /// The previous record: its tag and keys; `None` before the first.
    pub fn prev(&mut self) -> std::io::Result<Option<(u8, &[KeyId])>> {
        if self.end == 0 && self.lo == 0 {
            return Ok(None);
        }
        self.need(5)?;
        let tag = self.buf[self.end - 1];
        let mut n = [0u8; 4];
        n.copy_from_slice(&self.buf[self.end - 5..self.end - 1]);
        let n = u32::from_le_bytes(n) as usize;
        self.end -= 5;
        self.need(16 * n)?;
        self.keys.clear();
        let start = self.end - 16 * n;
        for chunk in self.buf[start..self.end].chunks_exact(16) {
            let mut k = [0u8; 16];
            k.copy_from_slice(chunk);
            self.keys.push(KeyId::from_le_bytes(k));
        }
        self.end = start;
        Ok(Some((tag, &self.keys)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_in_reverse_order_across_block_boundaries() {
        let mut w = SpillWriter::new(tempfile::tempfile().unwrap());
        let mut classes = Vec::new();
        for i in 0..200_000u128 {
            let c = match i % 5 {
                0 => Class::Neutral,
                1 => Class::Single(i << 70 | i),
                2 => Class::Overwrite(vec![i, i + 1, i + 2]),
                3 => Class::Pin(vec![i * 7, i * 11]),
                _ => Class::Barrier,
            };
            w.push(&c).unwrap();
            classes.push(c);
        }
        // One record larger than a block.
        let big = Class::Overwrite((0..100_000).collect());
        w.push(&big).unwrap();
        classes.push(big);
        let mut f = w.finish().unwrap();
        let mut r = Backward::new(&mut f).unwrap();
        for c in classes.iter().rev() {
            let (tag, keys) = r.prev().unwrap().unwrap();
            let back = match tag {
                NEUTRAL => Class::Neutral,
                BARRIER => Class::Barrier,
                SINGLE => Class::Single(keys[0]),
                OVERWRITE => Class::Overwrite(keys.to_vec()),
                _ => Class::Pin(keys.to_vec()),
            };
            assert_eq!(&back, c);
        }
        assert!(r.prev().unwrap().is_none());
    }
}
