//! What the decoder reads from: the caller's reader as is, or — for a file that starts with
//! Valkey 9.2's compressed-stream envelope — that reader through an LZ4 frame decoder, so that
//! the rest of the decoder only ever sees the logical RDB.
//!
//! The envelope (`rdbcompression lz4`, valkey-io/valkey PR #3531) wraps a whole logical RDB:
//! 8 bytes — a 4-byte magic starting `VCS`, a format version, a codec id, flags and a stream
//! kind — then one LZ4 frame (magic `04 22 4d 18`) holding the RDB, `REDIS`/`VALKEY` magic
//! included. Only the `VCS` prefix and the frame that follows are relied on: the meaning of the
//! four single-byte fields was not available in source form here, so they are reported
//! ([`Envelope`]) but not interpreted, and a file whose frame does not start right after the
//! 8 bytes fails with an error naming the envelope. Offsets in errors are then offsets into
//! the decompressed RDB.
//!
//! To tell the envelope from an RDB magic without a peek-ahead contract on [`BufRead`], the
//! first 8 bytes are read up front and, for a plain file, handed back before the reader's own
//! bytes.

use std::io::{BufRead, BufReader, Read};

use super::error::RdbError;

/// Size of the compressed-stream envelope header.
pub const ENVELOPE_LEN: usize = 8;
/// The first bytes of the compressed-stream envelope.
pub const ENVELOPE_PREFIX: &[u8; 3] = b"VCS";
/// The LZ4 frame format magic (`0x184D2204` little-endian), which must follow the envelope.
const LZ4_FRAME_MAGIC: [u8; 4] = [0x04, 0x22, 0x4D, 0x18];

/// The header fields of a Valkey compressed-stream envelope, as found in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope {
    /// The 4-byte magic (`VCS` and one more byte).
    pub magic: [u8; 4],
    pub format_version: u8,
    pub codec: u8,
    pub flags: u8,
    pub stream_kind: u8,
}

/// The decoder's byte source: plain, or LZ4-decompressed from inside an envelope.
pub(crate) enum Input<R: BufRead> {
    Plain {
        /// The bytes read ahead to look for the envelope, replayed first.
        head: [u8; ENVELOPE_LEN],
        head_len: usize,
        head_pos: usize,
        inner: R,
    },
    Lz4(Box<BufReader<lz4_flex::frame::FrameDecoder<R>>>),
}

impl<R: BufRead> Input<R> {
    /// Reads the first bytes of `reader` and sets up the source; `Some` envelope when the
    /// input is compressed.
    pub(crate) fn open(mut reader: R) -> Result<(Self, Option<Envelope>), RdbError> {
        let mut head = [0u8; ENVELOPE_LEN];
        let mut head_len = 0;
        while head_len < ENVELOPE_LEN {
            match reader.read(&mut head[head_len..]) {
                Ok(0) => break,
                Ok(n) => head_len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(RdbError::Io {
                        offset: head_len as u64,
                        source,
                    })
                }
            }
        }
        if head_len < ENVELOPE_LEN || !head.starts_with(ENVELOPE_PREFIX) {
            let plain = Input::Plain {
                head,
                head_len,
                head_pos: 0,
                inner: reader,
            };
            return Ok((plain, None));
        }
        let envelope = Envelope {
            magic: [head[0], head[1], head[2], head[3]],
            format_version: head[4],
            codec: head[5],
            flags: head[6],
            stream_kind: head[7],
        };
        // The frame must start right after the 8-byte header; anything else is a layout this
        // reader does not know, and must not be guessed at.
        let frame_start = reader.fill_buf().map_err(|source| RdbError::Io {
            offset: ENVELOPE_LEN as u64,
            source,
        })?;
        if !frame_start.is_empty()
            && !LZ4_FRAME_MAGIC.starts_with(&frame_start[..frame_start.len().min(4)])
        {
            return Err(RdbError::Invalid {
                offset: ENVELOPE_LEN as u64,
                reason: format!(
                    "Valkey compressed-stream envelope (magic {:?}, version {}, codec {}): no LZ4 \
                     frame after the 8-byte header; this envelope layout is not supported",
                    String::from_utf8_lossy(&envelope.magic),
                    envelope.format_version,
                    envelope.codec
                ),
            });
        }
        let decoder = lz4_flex::frame::FrameDecoder::new(reader);
        Ok((
            Input::Lz4(Box::new(BufReader::new(decoder))),
            Some(envelope),
        ))
    }

    /// The caller's reader. For a plain input it is positioned right after the last byte
    /// consumed; for a compressed one, wherever the frame decoder stopped reading.
    pub(crate) fn into_inner(self) -> R {
        match self {
            Input::Plain { inner, .. } => inner,
            Input::Lz4(reader) => reader.into_inner().into_inner(),
        }
    }
}

impl<R: BufRead> Read for Input<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
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

impl<R: BufRead> BufRead for Input<R> {
    // Inlined: the decoder asks for the buffer on every byte it reads.
    #[inline]
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        match self {
            Input::Plain {
                head,
                head_len,
                head_pos,
                inner,
            } => {
                if *head_pos < *head_len {
                    Ok(&head[*head_pos..*head_len])
                } else {
                    inner.fill_buf()
                }
            }
            Input::Lz4(reader) => reader.fill_buf(),
        }
    }

    #[inline]
    fn consume(&mut self, amount: usize) {
        match self {
            Input::Plain {
                head_len,
                head_pos,
                inner,
                ..
            } => {
                if *head_pos < *head_len {
                    // `fill_buf` handed out only head bytes, so `amount` cannot go past them.
                    *head_pos = (*head_pos + amount).min(*head_len);
                } else {
                    inner.consume(amount);
                }
            }
            Input::Lz4(reader) => reader.consume(amount),
        }
    }
}
