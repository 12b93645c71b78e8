//! RDB lengths and strings, read from the [`Source`].
//!
//! A length is 1, 2, 5 or 9 bytes (6-bit, 14-bit big-endian, 32-bit big-endian, 64-bit
//! big-endian); a first byte `11xxxxxx` instead announces a "special" string encoding: an 8-,
//! 16- or 32-bit little-endian integer (decoded to its decimal text) or an LZF-compressed string.

use std::io::BufRead;

use super::error::RdbError;
use super::lzf;
use super::source::Source;
use super::text;

const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;

/// What a length field holds.
pub(crate) enum Len {
    Plain(u64),
    /// `11xxxxxx`: the special string encoding number in the low 6 bits.
    Special(u8),
}

impl<R: BufRead> Source<R> {
    pub(crate) fn read_len_or_special(&mut self, what: &'static str) -> Result<Len, RdbError> {
        let first = self.read_u8(what)?;
        Ok(match first >> 6 {
            0 => Len::Plain(u64::from(first & 0x3f)),
            1 => Len::Plain((u64::from(first & 0x3f) << 8) | u64::from(self.read_u8(what)?)),
            3 => Len::Special(first & 0x3f),
            _ => match first {
                0x80 => Len::Plain(u64::from(u32::from_be_bytes(self.read_array(what)?))),
                0x81 => Len::Plain(u64::from_be_bytes(self.read_array(what)?)),
                _ => {
                    return Err(RdbError::Invalid {
                        offset: self.offset() - 1,
                        reason: format!("bad length byte {first:#04x} in {what}"),
                    })
                }
            },
        })
    }

    /// A length (or plain integer) field.
    pub(crate) fn read_len(&mut self, what: &'static str) -> Result<u64, RdbError> {
        let at = self.offset();
        match self.read_len_or_special(what)? {
            Len::Plain(n) => Ok(n),
            Len::Special(enc) => Err(RdbError::Invalid {
                offset: at,
                reason: format!("{what}: expected a length, found string encoding {enc}"),
            }),
        }
    }

    /// A length that counts bytes in memory.
    pub(crate) fn read_size(&mut self, what: &'static str) -> Result<usize, RdbError> {
        let at = self.offset();
        let n = self.read_len(what)?;
        usize::try_from(n).map_err(|_| RdbError::Invalid {
            offset: at,
            reason: format!("{what}: length {n} too large"),
        })
    }

    /// A string in any encoding, as its bytes.
    // The common short string is read inline in the caller's loop; returned through memory,
    // the vector's words were stored one by one and reloaded as a pair, a store-forwarding
    // stall per string.
    #[inline(always)]
    pub(crate) fn read_string(&mut self, what: &'static str) -> Result<Vec<u8>, RdbError> {
        if let Some(short) = self.try_short_string() {
            return Ok(short);
        }
        self.read_string_slow(what)
    }

    /// [`Self::read_string`] for anything but a short raw string in the buffer.
    #[inline(never)]
    fn read_string_slow(&mut self, what: &'static str) -> Result<Vec<u8>, RdbError> {
        let at = self.offset();
        match self.read_len_or_special(what)? {
            Len::Plain(n) => {
                let n = usize::try_from(n).map_err(|_| too_long(at, what, n))?;
                self.read_bytes(n, what)
            }
            Len::Special(ENC_LZF) => self.read_lzf(at, what),
            Len::Special(enc) => self.read_int_string(at, enc, what),
        }
    }

    /// Calls `f` on the bytes of the next string, without copying them when they are raw and
    /// wholly in the reader's buffer (the common case for listpacks and other packed values).
    pub(crate) fn with_string<T>(
        &mut self,
        what: &'static str,
        f: impl FnOnce(&[u8]) -> T,
    ) -> Result<T, RdbError> {
        let at = self.offset();
        let owned = match self.read_len_or_special(what)? {
            Len::Plain(n) => {
                let n = usize::try_from(n).map_err(|_| too_long(at, what, n))?;
                return self.with_bytes(n, what, f);
            }
            Len::Special(ENC_LZF) => {
                // Decompress into a reused buffer: the caller only parses the bytes.
                let mut buf = self.take_lzf_buffer();
                let result = self.read_lzf_into(at, what, &mut buf).map(|()| f(&buf));
                self.put_lzf_buffer(buf);
                return result;
            }
            Len::Special(enc) => self.read_int_string(at, enc, what)?,
        };
        Ok(f(&owned))
    }

    /// The decimal text of an integer-encoded string.
    fn read_int_string(
        &mut self,
        at: u64,
        enc: u8,
        what: &'static str,
    ) -> Result<Vec<u8>, RdbError> {
        let value = match enc {
            ENC_INT8 => i64::from(i8::from_le_bytes(self.read_array(what)?)),
            ENC_INT16 => i64::from(i16::from_le_bytes(self.read_array(what)?)),
            ENC_INT32 => i64::from(i32::from_le_bytes(self.read_array(what)?)),
            _ => return Err(bad_encoding(at, what, enc)),
        };
        Ok(text::int(value))
    }

    fn read_lzf(&mut self, at: u64, what: &'static str) -> Result<Vec<u8>, RdbError> {
        let mut out = Vec::new();
        self.read_lzf_into(at, what, &mut out)?;
        Ok(out)
    }

    fn read_lzf_into(
        &mut self,
        at: u64,
        what: &'static str,
        out: &mut Vec<u8>,
    ) -> Result<(), RdbError> {
        let compressed = self.read_size(what)?;
        let plain = self.read_size(what)?;
        if plain > compressed.saturating_mul(lzf::MAX_EXPANSION) {
            return Err(RdbError::Invalid {
                offset: at,
                reason: format!(
                    "{what}: LZF string claims {plain} bytes from {compressed} compressed bytes"
                ),
            });
        }
        self.with_bytes(compressed, what, |input| {
            lzf::decompress_into(input, plain, out)
        })?
        .map_err(|e| RdbError::Invalid {
            offset: at,
            reason: format!(
                "{what}: {} (at byte {} of the compressed data)",
                e.reason, e.at
            ),
        })
    }

    /// A little-endian signed 64-bit integer (millisecond times).
    pub(crate) fn read_i64_le(&mut self, what: &'static str) -> Result<i64, RdbError> {
        Ok(i64::from_le_bytes(self.read_array(what)?))
    }
}

fn too_long(at: u64, what: &str, n: u64) -> RdbError {
    RdbError::Invalid {
        offset: at,
        reason: format!("{what}: length {n} too large"),
    }
}

fn bad_encoding(at: u64, what: &str, enc: u8) -> RdbError {
    RdbError::Invalid {
        offset: at,
        reason: format!("{what}: unknown string encoding {enc}"),
    }
}
