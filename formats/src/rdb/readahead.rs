//! [`ReadAhead`]: a [`BufRead`] whose reads happen on a helper thread, one block ahead of the
//! consumer, so that the system calls (and the kernel's copy of the bytes) of reading a large
//! file overlap the decoding on another core instead of interrupting it.
//!
//! Meant for whole files or streams that the decoder reads to the end: the helper reads up to
//! [`DEPTH`] blocks past what the consumer has used, so the underlying reader cannot be handed
//! back positioned anywhere useful (unlike [`RdbReader::into_inner`](super::RdbReader) on a
//! plain reader). Blocks are recycled, so the memory in use stays at a few blocks whatever the
//! input's size. The helper stops at the end of the input, on the first error (handed to the
//! consumer in order, after the bytes read before it), or when the [`ReadAhead`] is dropped.

use std::io::{self, BufRead, ErrorKind, Read};
use std::sync::mpsc::{self, Receiver, SyncSender};

/// Bytes per block read by the helper.
pub const BLOCK: usize = 1 << 20;
/// Blocks read ahead of the consumer at most.
const DEPTH: usize = 2;

/// What the helper sends: a block of bytes (never empty), or the error that ended reading.
/// The end of the input is the channel closing.
type Message = io::Result<Vec<u8>>;

/// A [`BufRead`] over `R`, read by a helper thread; see the module doc.
pub struct ReadAhead {
    blocks: Receiver<Message>,
    /// Emptied blocks, handed back to the helper for reuse.
    spare: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
    done: bool,
}

impl ReadAhead {
    /// Starts the helper thread over `reader`. Fails only if no thread can be started.
    pub fn new<R: Read + Send + 'static>(reader: R) -> io::Result<Self> {
        let (block_tx, blocks) = mpsc::sync_channel::<Message>(DEPTH);
        let (spare, spare_rx) = mpsc::sync_channel::<Vec<u8>>(DEPTH + 2);
        std::thread::Builder::new()
            .name("read-ahead".into())
            .spawn(move || fill_blocks(reader, &block_tx, &spare_rx))?;
        Ok(ReadAhead {
            blocks,
            spare,
            current: Vec::new(),
            pos: 0,
            done: false,
        })
    }
}

/// The helper's loop: read blocks until the end, an error, or nobody listening.
fn fill_blocks<R: Read>(mut reader: R, out: &SyncSender<Message>, spare: &Receiver<Vec<u8>>) {
    loop {
        let mut block = spare.try_recv().unwrap_or_default();
        // A recycled block is full-size already; its old bytes are overwritten or cut off.
        if block.len() < BLOCK {
            block.resize(BLOCK, 0);
        }
        let mut len = 0;
        // Fill the block (short reads are normal for pipes and decompressors).
        let outcome = loop {
            match reader.read(&mut block[len..]) {
                Ok(0) => break Ok(()),
                Ok(n) => {
                    len += n;
                    if len == BLOCK {
                        break Ok(());
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        block.truncate(len);
        if len > 0 && out.send(Ok(block)).is_err() {
            return;
        }
        match outcome {
            Ok(()) if len == BLOCK => {}
            // The end of the input: closing the channel says so.
            Ok(()) => return,
            Err(e) => {
                let _ = out.send(Err(e));
                return;
            }
        }
    }
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let buf = self.fill_buf()?;
            let n = buf.len().min(out.len());
            out[..n].copy_from_slice(&buf[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ReadAhead {
    #[inline]
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos >= self.current.len() {
            self.next_block()?;
        }
        Ok(self.current.get(self.pos..).unwrap_or_default())
    }

    #[inline]
    fn consume(&mut self, amount: usize) {
        self.pos = (self.pos + amount).min(self.current.len());
    }
}

impl ReadAhead {
    /// Replaces the used-up block with the next one; at the end, leaves it empty. The helper's
    /// error, which comes after the bytes read before it, is returned once; the input then
    /// ends.
    #[cold]
    fn next_block(&mut self) -> io::Result<()> {
        if self.done {
            return Ok(());
        }
        let used = std::mem::take(&mut self.current);
        self.pos = 0;
        // A full spare queue (or a finished helper) just drops the block.
        let _ = self.spare.try_send(used);
        match self.blocks.recv() {
            Ok(Ok(block)) => self.current = block,
            Ok(Err(e)) => {
                self.done = true;
                return Err(e);
            }
            Err(_) => self.done = true,
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Hands out `step` bytes per read, then fails with `fail` if given.
    struct Uneven {
        data: Vec<u8>,
        at: usize,
        step: usize,
        fail: Option<ErrorKind>,
    }

    impl Read for Uneven {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.at == self.data.len() {
                return match self.fail {
                    Some(kind) => Err(io::Error::new(kind, "disk on fire")),
                    None => Ok(0),
                };
            }
            let n = self.step.min(out.len()).min(self.data.len() - self.at);
            out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn hands_out_every_byte_in_order_across_blocks() {
        for (len, step) in [(0, 1), (5, 1), (BLOCK, 4096), (3 * BLOCK + 17, 100_003)] {
            let want = data(len);
            let reader = Uneven {
                data: want.clone(),
                at: 0,
                step,
                fail: None,
            };
            let mut got = Vec::new();
            ReadAhead::new(reader)
                .unwrap()
                .read_to_end(&mut got)
                .unwrap();
            assert!(got == want, "{len} bytes in reads of {step}");
        }
    }

    #[test]
    fn an_error_comes_after_the_bytes_read_before_it() {
        let want = data(BLOCK + 10);
        let reader = Uneven {
            data: want.clone(),
            at: 0,
            step: 65_536,
            fail: Some(ErrorKind::PermissionDenied),
        };
        let mut ahead = ReadAhead::new(reader).unwrap();
        let mut got = vec![0u8; want.len()];
        ahead.read_exact(&mut got).unwrap();
        assert!(got == want);
        let err = ahead.fill_buf().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    }

    #[test]
    fn decodes_an_rdb_like_the_plain_reader() {
        // A string key, through the decoder, read ahead in one-byte reads.
        let mut rdb = b"REDIS0011".to_vec();
        rdb.extend_from_slice(&[0xFE, 0, 0, 1, b'k', 2, b'v', b'1', 0xFF]);
        rdb.extend_from_slice(&[0; 8]); // checksum disabled
        let plain = crate::rdb::decode_all(&rdb).unwrap();
        let reader = Uneven {
            data: rdb,
            at: 0,
            step: 1,
            fail: None,
        };
        let mut decoder = crate::rdb::RdbReader::new(ReadAhead::new(reader).unwrap()).unwrap();
        let mut ahead = Vec::new();
        while let Some(record) = decoder.next_record().unwrap() {
            ahead.push(record);
        }
        assert_eq!(ahead, plain);
        assert_eq!(plain.len(), 1);
    }
}
