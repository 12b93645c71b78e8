//! Ziplists: the packed encoding of small lists, hashes and zsets before Redis 7 (types 10, 12,
//! 13) and of quicklist nodes in Redis 3.2–6.2 (type 14), parsed from one RDB string.
//!
//! Layout: `zlbytes:u32le zltail:u32le zllen:u16le entry* 0xFF`; an entry is the previous
//! entry's length (1 byte, or 0xFE + u32le), an encoding (string lengths big-endian in 6, 14 or
//! 32 bits; integers of 8/16/24/32/64 bits little-endian; or an immediate 0–12), and its data.

use super::error::PackError;
use super::packed::{Item, Packed};

const HEADER: usize = 10;
const END: u8 = 0xFF;
const UNKNOWN_COUNT: u16 = u16::MAX;

/// A forward iterator over the elements of a ziplist.
pub(crate) struct Ziplist<'a> {
    data: &'a [u8],
    pos: usize,
    declared: Option<usize>,
    seen: usize,
}

impl<'a> Ziplist<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Result<Self, PackError> {
        let header = data
            .get(..HEADER)
            .ok_or(PackError::new(0, "ziplist shorter than its header"))?;
        let total = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        if total as usize != data.len() {
            return Err(PackError::new(
                0,
                "ziplist zlbytes disagrees with the string length",
            ));
        }
        if data.last() != Some(&END) {
            return Err(PackError::new(
                data.len().saturating_sub(1),
                "ziplist does not end with 0xFF",
            ));
        }
        let count = u16::from_le_bytes([header[8], header[9]]);
        let declared = (count != UNKNOWN_COUNT).then_some(usize::from(count));
        Ok(Ziplist {
            data,
            pos: HEADER,
            declared,
            seen: 0,
        })
    }
}

impl<'a> Packed<'a> for Ziplist<'a> {
    fn position(&self) -> usize {
        self.pos
    }

    fn expected(&self) -> usize {
        self.declared.unwrap_or(0).min(self.data.len() / 2)
    }

    // Inlined into each caller's loop: returned through memory, the item's words were
    // stored separately and reloaded as one, a store-forwarding stall per element.
    #[inline(always)]
    fn next_item(&mut self) -> Result<Option<Item<'a>>, PackError> {
        let data = self.data;
        let mut at = self.pos;
        let first = *data
            .get(at)
            .ok_or(PackError::new(at, "ziplist entry runs past the end"))?;
        if first == END {
            if at + 1 != data.len() {
                return Err(PackError::new(
                    at,
                    "ziplist end marker before the end of the string",
                ));
            }
            if self.declared.is_some_and(|n| n != self.seen) {
                return Err(PackError::new(
                    at,
                    "ziplist element count disagrees with its header",
                ));
            }
            return Ok(None);
        }
        let bytes = |from: usize, n: usize| -> Result<&'a [u8], PackError> {
            data.get(from..from + n)
                .ok_or(PackError::new(from, "ziplist entry runs past the end"))
        };
        // prevlen: one byte below 254, else 0xFE and four bytes.
        at += if first == 0xFE { 5 } else { 1 };
        let enc = bytes(at, 1)?[0];
        let (item, size) = match enc >> 6 {
            0 => {
                let len = usize::from(enc & 0x3f);
                (Item::Str(bytes(at + 1, len)?), 1 + len)
            }
            1 => {
                let len = (usize::from(enc & 0x3f) << 8) | usize::from(bytes(at + 1, 1)?[0]);
                (Item::Str(bytes(at + 2, len)?), 2 + len)
            }
            2 => {
                let n = bytes(at + 1, 4)?;
                let len = u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize;
                (Item::Str(bytes(at + 5, len)?), 5 + len)
            }
            _ => match enc {
                0xC0 => {
                    let n = bytes(at + 1, 2)?;
                    (Item::Int(i64::from(i16::from_le_bytes([n[0], n[1]]))), 3)
                }
                0xD0 => {
                    let n = bytes(at + 1, 4)?;
                    (
                        Item::Int(i64::from(i32::from_le_bytes([n[0], n[1], n[2], n[3]]))),
                        5,
                    )
                }
                0xE0 => {
                    let n = bytes(at + 1, 8)?;
                    let mut w = [0u8; 8];
                    w.copy_from_slice(n);
                    (Item::Int(i64::from_le_bytes(w)), 9)
                }
                0xF0 => {
                    let n = bytes(at + 1, 3)?;
                    (
                        Item::Int(i64::from(i32::from_le_bytes([0, n[0], n[1], n[2]]) >> 8)),
                        4,
                    )
                }
                0xFE => (Item::Int(i64::from(bytes(at + 1, 1)?[0] as i8)), 2),
                0xF1..=0xFD => (Item::Int(i64::from(enc & 0x0f) - 1), 1),
                _ => return Err(PackError::new(at, "invalid ziplist entry encoding")),
            },
        };
        let next = at + size;
        if next >= data.len() {
            return Err(PackError::new(at, "ziplist entry runs past the end"));
        }
        self.pos = next;
        self.seen += 1;
        Ok(Some(item))
    }
}

/// Appends every element of a ziplist to `out`, as bytes.
pub(crate) fn elements_into(data: &[u8], out: &mut Vec<Vec<u8>>) -> Result<(), PackError> {
    let mut items = Ziplist::new(data)?;
    out.reserve(items.expected());
    while let Some(item) = items.next_item()? {
        out.push(item.to_bytes());
    }
    Ok(())
}

/// Every element of a ziplist as bytes.
#[cfg(test)]
pub(crate) fn elements(data: &[u8]) -> Result<Vec<Vec<u8>>, PackError> {
    let mut out = Vec::new();
    elements_into(data, &mut out)?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ziplist(entries: &[&[u8]]) -> Vec<u8> {
        let mut body = Vec::new();
        for e in entries {
            body.push(0); // prevlen, not checked by the reader
            body.extend_from_slice(e);
        }
        let mut out = Vec::new();
        out.extend_from_slice(&((body.len() + HEADER + 1) as u32).to_le_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&body);
        out.push(END);
        out
    }

    #[test]
    fn every_encoding() {
        let zl = ziplist(&[
            &[0x03, b'a', b'b', b'c'],
            &[0x40, 0x02, b'x', b'y'],
            &[0x80, 0, 0, 0, 1, b'z'],
            &[0xC0, 0xFF, 0x7F],
            &[0xD0, 0x00, 0x00, 0x00, 0x80],
            &[0xE0, 1, 0, 0, 0, 0, 0, 0, 0],
            &[0xF0, 0xFF, 0xFF, 0xFF],
            &[0xFE, 0x80],
            &[0xF1],
            &[0xFD],
        ]);
        let got: Vec<String> = elements(&zl)
            .unwrap()
            .into_iter()
            .map(|b| String::from_utf8(b).unwrap())
            .collect();
        assert_eq!(
            got,
            [
                "abc",
                "xy",
                "z",
                "32767",
                "-2147483648",
                "1",
                "-1",
                "-128",
                "0",
                "12"
            ]
        );
    }

    #[test]
    fn rejects_bad_encodings_and_overruns() {
        assert!(elements(&ziplist(&[&[0xC1]])).is_err());
        assert!(elements(&ziplist(&[&[0x05, b'a']])).is_err());
        let mut zl = ziplist(&[&[0xF1]]);
        zl[8] = 3;
        assert!(elements(&zl).is_err());
    }
}
