//! Object payload encoding: zstd (frame checksum on) or raw, optionally then age-encrypted
//! ([`super::crypt`]), and CRC-32C of the plain bytes, which names and manifests record and every
//! reader checks after decoding (so a wrong or tampered object is caught even past the cipher).
//!
//! Writing: [`Encoder`] wraps a sink (compress, then encrypt). Reading: [`Decoder`] undoes the
//! compression of bytes that are already decrypted (the repository decrypts as the object
//! streams in, see `Repo::download`).

use std::io::{self, Write};

use age::stream::StreamWriter;

use super::crypt::KeyRing;
use super::keys::Codec;

/// Payloads at least this large are compressed by zstd's worker threads, in jobs of
/// [`PARALLEL_JOB`] bytes: a backlog (cold start, `aofvault backup`) is a run of full
/// `segment_max` segments, and compressing each on one core left the other idle.
pub const PARALLEL_FROM: usize = 2 * PARALLEL_JOB;
/// zstd's job size for parallel compression, its minimum: a 16 MiB segment makes 32 jobs, and
/// the buffers zstd keeps per job in flight stay small (peak RSS); the ratio moves by under a
/// percent.
const PARALLEL_JOB: usize = 512 << 10;

/// Encodes a whole in-memory payload (segments are bounded by `segment_max`). A large payload
/// is compressed on every core ([`PARALLEL_FROM`]); the output depends only on the payload and
/// the settings, so a retry of the same segment stores the same bytes.
pub fn encode(
    payload: &[u8],
    codec: Codec,
    level: i32,
    keys: Option<&KeyRing>,
) -> io::Result<Vec<u8>> {
    // Room for the worst case up front (zstd's bound is under 1/256 more, age's under 1/4096):
    // the vector never regrows, which would hold the old and the new copy at once, and the
    // pages past what the output uses are never touched, so they cost no memory.
    let bound = payload.len() + payload.len() / 128 + 4096;
    let mut enc = Encoder::new(Vec::with_capacity(bound), codec, level, keys)?;
    if payload.len() >= PARALLEL_FROM {
        enc.parallel(workers())?;
    }
    enc.write_all(payload)?;
    enc.finish()
}

/// Worker threads for a large payload: one per core, at most four (the agent is a sidecar).
fn workers() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4) as u32)
}

/// A streaming encoder: plain bytes in, stored bytes out to `W`. Call [`Encoder::finish`].
pub enum Encoder<W: Write> {
    Raw(W),
    Zstd(zstd::stream::Encoder<'static, W>),
    RawAge(StreamWriter<W>),
    ZstdAge(zstd::stream::Encoder<'static, StreamWriter<W>>),
}

impl<W: Write> Encoder<W> {
    /// An encrypted codec needs `keys` with at least one recipient.
    pub fn new(sink: W, codec: Codec, level: i32, keys: Option<&KeyRing>) -> io::Result<Self> {
        let keys = || {
            keys.filter(|k| k.encrypts())
                .ok_or_else(|| io::Error::other("an encrypted codec needs encryption recipients"))
        };
        Ok(match codec {
            Codec::Raw => Encoder::Raw(sink),
            Codec::Zstd => Encoder::Zstd(zstd_encoder(sink, level)?),
            Codec::RawAge => Encoder::RawAge(keys()?.encrypt(sink)?),
            Codec::ZstdAge => Encoder::ZstdAge(zstd_encoder(keys()?.encrypt(sink)?, level)?),
        })
    }

    /// Compresses on `workers` threads besides the caller (zstd multithreading, jobs of
    /// [`PARALLEL_JOB`] bytes); nothing for an uncompressed codec or one worker.
    fn parallel(&mut self, workers: u32) -> io::Result<()> {
        if workers < 2 {
            return Ok(());
        }
        match self {
            Encoder::Zstd(z) => parallel_zstd(z, workers),
            Encoder::ZstdAge(z) => parallel_zstd(z, workers),
            Encoder::Raw(_) | Encoder::RawAge(_) => Ok(()),
        }
    }

    /// Ends the stream (zstd frame, last age chunk) and hands the sink back.
    pub fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Raw(w) => Ok(w),
            Encoder::Zstd(z) => z.finish(),
            Encoder::RawAge(a) => a.finish(),
            Encoder::ZstdAge(z) => z.finish()?.finish(),
        }
    }
}

fn parallel_zstd<W: Write>(
    z: &mut zstd::stream::Encoder<'static, W>,
    workers: u32,
) -> io::Result<()> {
    z.multithread(workers)?;
    z.set_parameter(zstd::stream::raw::CParameter::JobSize(PARALLEL_JOB as u32))
}

fn zstd_encoder<W: Write>(sink: W, level: i32) -> io::Result<zstd::stream::Encoder<'static, W>> {
    let mut enc = zstd::stream::Encoder::new(sink, level)?;
    enc.include_checksum(true)?;
    Ok(enc)
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Raw(w) => w.write(buf),
            Encoder::Zstd(z) => z.write(buf),
            Encoder::RawAge(a) => a.write(buf),
            Encoder::ZstdAge(z) => z.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Raw(w) => w.flush(),
            Encoder::Zstd(z) => z.flush(),
            Encoder::RawAge(a) => a.flush(),
            Encoder::ZstdAge(z) => z.flush(),
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
        Self {
            inner,
            crc: 0,
            len: 0,
        }
    }
    pub fn crc(&self) -> u32 {
        self.crc
    }
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
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
/// For an encrypted codec it undoes the compression only: decryption happens before.
pub enum Decoder<W: Write> {
    Raw(CrcWriter<W>),
    Zstd(Box<zstd::stream::write::Decoder<'static, CrcWriter<W>>>),
}

impl<W: Write> Decoder<W> {
    pub fn new(codec: Codec, out: W) -> io::Result<Self> {
        Ok(match codec.plain() {
            Codec::Raw | Codec::RawAge => Decoder::Raw(CrcWriter::new(out)),
            Codec::Zstd | Codec::ZstdAge => Decoder::Zstd(Box::new(
                zstd::stream::write::Decoder::new(CrcWriter::new(out))?,
            )),
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
        let payload: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for codec in [Codec::Zstd, Codec::Raw] {
            let enc = encode(&payload, codec, 3, None).unwrap();
            let mut d = Decoder::new(codec, Vec::new()).unwrap();
            for chunk in enc.chunks(777) {
                d.write_all(chunk).unwrap();
            }
            let (crc, len, out) = d.finish().unwrap();
            assert_eq!(out, payload);
            assert_eq!(len, payload.len() as u64);
            assert_eq!(crc, crc32c::crc32c(&payload));
        }
        let mut enc = encode(&payload, Codec::Zstd, 3, None).unwrap();
        let mid = enc.len() / 2;
        enc[mid] ^= 0x40;
        let mut d = Decoder::new(Codec::Zstd, Vec::new()).unwrap();
        let r = d.write_all(&enc).and_then(|_| d.finish().map(|_| ()));
        assert!(
            r.is_err(),
            "a flipped byte inside a zstd frame must not decode silently"
        );
    }

    #[test]
    fn a_large_payload_is_compressed_in_parallel_the_same_way_every_time() {
        // Above PARALLEL_FROM: zstd's workers compress it; a retry must store the same bytes.
        let payload: Vec<u8> = (0..(PARALLEL_FROM as u32 + 300_000) / 4)
            .flat_map(|i| (i.wrapping_mul(2_654_435_761) % 1000).to_le_bytes())
            .collect();
        let first = encode(&payload, Codec::Zstd, 3, None).unwrap();
        let again = encode(&payload, Codec::Zstd, 3, None).unwrap();
        assert_eq!(
            first, again,
            "the same segment must encode to the same object"
        );
        assert!(first.len() < payload.len() / 2, "{} bytes", first.len());
        let mut d = Decoder::new(Codec::Zstd, Vec::new()).unwrap();
        d.write_all(&first).unwrap();
        let (crc, len, out) = d.finish().unwrap();
        assert_eq!((len, crc), (payload.len() as u64, crc32c::crc32c(&payload)));
        assert_eq!(out, payload);
    }

    #[test]
    fn encrypted_codecs_hide_the_payload() {
        let id = age::x25519::Identity::generate();
        let keys = KeyRing::parse(&[("r".into(), id.to_public().to_string())], None).unwrap();
        let payload = b"*3\r\n$3\r\nSET\r\n$14\r\nvisible-secret\r\n$5\r\nvalue\r\n".repeat(50);
        for codec in [Codec::ZstdAge, Codec::RawAge] {
            let enc = encode(&payload, codec, 3, Some(&keys)).unwrap();
            assert!(enc.starts_with(b"age-encryption.org/v1\n"));
            assert!(
                !enc.windows(14).any(|w| w == b"visible-secret"),
                "{codec:?} leaks the payload"
            );
            assert!(
                encode(&payload, codec, 3, None).is_err(),
                "no recipients, no encrypted object"
            );
        }
    }
}
