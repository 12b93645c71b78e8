//! Object payload encoding: zstd (frame checksum on) or raw, and CRC-32C of the uncompressed
//! bytes, which names and manifests record and every reader checks.

use std::io::{self, Write};

use super::keys::Codec;

/// Encodes a whole in-memory payload (segments are bounded by `segment_max`).
pub fn encode(payload: &[u8], codec: Codec, level: i32) -> io::Result<Vec<u8>> {
    match codec {
        Codec::Raw => Ok(payload.to_vec()),
        Codec::Zstd => {
            let mut enc = zstd::stream::Encoder::new(Vec::with_capacity(payload.len() / 3 + 64), level)?;
            enc.include_checksum(true)?;
            enc.write_all(payload)?;
            enc.finish()
        }
    }
}

/// A writer that counts and checksums what passes through it.
pub struct CrcWriter<W> {
    inner: W,
    crc: u32,
    len: u64,
}

impl<W: Write> CrcWriter<W> {
    pub fn new(inner: W) -> Self {
        Self { inner, crc: 0, len: 0 }
    }
    pub fn crc(&self) -> u32 {
        self.crc
    }
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Streaming decoder: compressed bytes in, plain bytes out to `W` (through a [`CrcWriter`]).
pub enum Decoder<W: Write> {
    Raw(CrcWriter<W>),
    Zstd(Box<zstd::stream::write::Decoder<'static, CrcWriter<W>>>),
}

impl<W: Write> Decoder<W> {
    pub fn new(codec: Codec, out: W) -> io::Result<Self> {
        Ok(match codec {
            Codec::Raw => Decoder::Raw(CrcWriter::new(out)),
            Codec::Zstd => Decoder::Zstd(Box::new(zstd::stream::write::Decoder::new(CrcWriter::new(out))?)),
        })
    }
    pub fn write_all(&mut self, chunk: &[u8]) -> io::Result<()> {
        match self {
            Decoder::Raw(w) => w.write_all(chunk),
            Decoder::Zstd(d) => d.write_all(chunk),
        }
    }
    /// Ends the stream; (crc, plain length, writer).
    pub fn finish(self) -> io::Result<(u32, u64, W)> {
        let w = match self {
            Decoder::Raw(w) => w,
            Decoder::Zstd(mut d) => {
                d.flush()?;
                d.into_inner()
            }
        };
        Ok((w.crc(), w.len(), w.into_inner()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption_is_detected() {
        let payload: Vec<u8> = (0..100_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        for codec in [Codec::Zstd, Codec::Raw] {
            let enc = encode(&payload, codec, 3).unwrap();
            let mut d = Decoder::new(codec, Vec::new()).unwrap();
            for chunk in enc.chunks(777) {
                d.write_all(chunk).unwrap();
            }
            let (crc, len, out) = d.finish().unwrap();
            assert_eq!(out, payload);
            assert_eq!(len, payload.len() as u64);
            assert_eq!(crc, crc32c::crc32c(&payload));
        }
        let mut enc = encode(&payload, Codec::Zstd, 3).unwrap();
        let mid = enc.len() / 2;
        enc[mid] ^= 0x40;
        let mut d = Decoder::new(Codec::Zstd, Vec::new()).unwrap();
        let r = d.write_all(&enc).and_then(|_| d.finish().map(|_| ()));
        assert!(r.is_err(), "a flipped byte inside a zstd frame must not decode silently");
    }
}
