//! Listpacks: the packed encoding of small hashes, sets, zsets, list nodes (Redis ≥ 7) and
//! stream nodes (Redis ≥ 5), parsed from the bytes of one RDB string.
//!
//! Layout: `total_bytes:u32le num_elements:u16le entry* 0xFF`, each entry being an encoding
//! byte (+ length/integer bytes), the string bytes, and a 1–5 byte "backlen" that lets Redis walk
//! backwards. A forward reader only needs the backlen's size, which follows from the entry size.
//! Every step is bounds-checked; the header must agree with the string's length and the number
//! of elements found (unless it is 65535, "unknown").

use super::error::PackError;
use super::packed::{Item, Packed};

const HEADER: usize = 6;
const END: u8 = 0xFF;
const UNKNOWN_COUNT: u16 = u16::MAX;

/// A forward iterator over the elements of a listpack.
pub(crate) struct Listpack<'a> {
    data: &'a [u8],
    pos: usize,
    declared: Option<usize>,
    seen: usize,
}

impl<'a> Listpack<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Result<Self, PackError> {
        let header = data
            .get(..HEADER)
            .ok_or(PackError::new(0, "listpack shorter than its header"))?;
        let total = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        if total as usize != data.len() {
            return Err(PackError::new(
                0,
                "listpack total_bytes disagrees with the string length",
            ));
        }
        if data.last() != Some(&END) {
            return Err(PackError::new(
                data.len().saturating_sub(1),
                "listpack does not end with 0xFF",
            ));
        }
        let count = u16::from_le_bytes([header[4], header[5]]);
        let declared = (count != UNKNOWN_COUNT).then_some(usize::from(count));
        Ok(Listpack {
            data,
            pos: HEADER,
            declared,
            seen: 0,
        })
    }
}

impl<'a> Packed<'a> for Listpack<'a> {
    // Inlined into each caller's loop: returned through memory, the item's words were
    // stored separately and reloaded as one, a store-forwarding stall per element.
    #[inline(always)]
    fn next_item(&mut self) -> Result<Option<Item<'a>>, PackError> {
        let data = self.data;
        let at = self.pos;
        let b = *data
            .get(at)
            .ok_or(PackError::new(at, "listpack entry runs past the end"))?;
        if b == END {
            if at + 1 != data.len() {
                return Err(PackError::new(
                    at,
                    "listpack end marker before the end of the string",
                ));
            }
            if self.declared.is_some_and(|n| n != self.seen) {
                return Err(PackError::new(
                    at,
                    "listpack element count disagrees with its header",
                ));
            }
            return Ok(None);
        }
        let bytes = |from: usize, n: usize| -> Result<&'a [u8], PackError> {
            data.get(from..from + n)
                .ok_or(PackError::new(from, "listpack entry runs past the end"))
        };
        // (item, size of encoding + data)
        let (item, size) = if b & 0x80 == 0 {
            (Item::Int(i64::from(b)), 1)
        } else if b & 0xC0 == 0x80 {
            let len = usize::from(b & 0x3f);
            (Item::Str(bytes(at + 1, len)?), 1 + len)
        } else if b & 0xE0 == 0xC0 {
            let low = bytes(at + 1, 1)?[0];
            let u = (i64::from(b & 0x1f) << 8) | i64::from(low);
            (Item::Int(if u >= 1 << 12 { u - (1 << 13) } else { u }), 2)
        } else if b & 0xF0 == 0xE0 {
            let low = bytes(at + 1, 1)?[0];
            let len = (usize::from(b & 0x0f) << 8) | usize::from(low);
            (Item::Str(bytes(at + 2, len)?), 2 + len)
        } else {
            match b {
                0xF0 => {
                    let n = bytes(at + 1, 4)?;
                    let len = u32::from_le_bytes([n[0], n[1], n[2], n[3]]) as usize;
                    (Item::Str(bytes(at + 5, len)?), 5 + len)
                }
                0xF1 => {
                    let n = bytes(at + 1, 2)?;
                    (Item::Int(i64::from(i16::from_le_bytes([n[0], n[1]]))), 3)
                }
                0xF2 => {
                    let n = bytes(at + 1, 3)?;
                    // Sign-extend 24 bits by placing them in the top of an i32.
                    let v = i32::from_le_bytes([0, n[0], n[1], n[2]]) >> 8;
                    (Item::Int(i64::from(v)), 4)
                }
                0xF3 => {
                    let n = bytes(at + 1, 4)?;
                    (
                        Item::Int(i64::from(i32::from_le_bytes([n[0], n[1], n[2], n[3]]))),
                        5,
                    )
                }
                0xF4 => {
                    let n = bytes(at + 1, 8)?;
                    let mut w = [0u8; 8];
                    w.copy_from_slice(n);
                    (Item::Int(i64::from_le_bytes(w)), 9)
                }
                _ => return Err(PackError::new(at, "invalid listpack entry encoding")),
            }
        };
        let next = at + size + backlen_size(size);
        // The end marker must still follow.
        if next >= data.len() {
            return Err(PackError::new(at, "listpack entry runs past the end"));
        }
        self.pos = next;
        self.seen += 1;
        Ok(Some(item))
    }

    fn position(&self) -> usize {
        self.pos
    }

    fn expected(&self) -> usize {
        self.declared.unwrap_or(0).min(self.data.len() / 2)
    }
}

/// How many bytes the backlen of an entry of `size` bytes takes (7 bits per byte).
fn backlen_size(size: usize) -> usize {
    match size {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    }
}

/// Appends every element of a listpack to `out`, as bytes.
pub(crate) fn elements_into(data: &[u8], out: &mut Vec<Vec<u8>>) -> Result<(), PackError> {
    let mut items = Listpack::new(data)?;
    out.reserve(items.expected());
    while let Some(item) = items.next_item()? {
        out.push(item.to_bytes());
    }
    Ok(())
}

/// Every element of a listpack as bytes.
#[cfg(test)]
pub(crate) fn elements(data: &[u8]) -> Result<Vec<Vec<u8>>, PackError> {
    let mut out = Vec::new();
    elements_into(data, &mut out)?;
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests {
    use super::*;

    /// Builds a listpack the way Redis encodes it, for tests of the readers built on it.
    pub(crate) fn build(items: &[Item<'_>]) -> Vec<u8> {
        let mut body = Vec::new();
        for item in items {
            let start = body.len();
            match *item {
                Item::Int(v) if (0..=127).contains(&v) => body.push(v as u8),
                Item::Int(v) if (-4096..4096).contains(&v) => {
                    let u = if v < 0 { v + 8192 } else { v } as u16;
                    body.extend_from_slice(&[0xC0 | (u >> 8) as u8, u as u8]);
                }
                Item::Int(v) if i16::try_from(v).is_ok() => {
                    body.push(0xF1);
                    body.extend_from_slice(&(v as i16).to_le_bytes());
                }
                Item::Int(v) if (-(1 << 23)..(1 << 23)).contains(&v) => {
                    body.push(0xF2);
                    body.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
                }
                Item::Int(v) if i32::try_from(v).is_ok() => {
                    body.push(0xF3);
                    body.extend_from_slice(&(v as i32).to_le_bytes());
                }
                Item::Int(v) => {
                    body.push(0xF4);
                    body.extend_from_slice(&v.to_le_bytes());
                }
                Item::Str(s) if s.len() < 64 => {
                    body.push(0x80 | s.len() as u8);
                    body.extend_from_slice(s);
                }
                Item::Str(s) if s.len() < 4096 => {
                    body.extend_from_slice(&[0xE0 | (s.len() >> 8) as u8, s.len() as u8]);
                    body.extend_from_slice(s);
                }
                Item::Str(s) => {
                    body.push(0xF0);
                    body.extend_from_slice(&(s.len() as u32).to_le_bytes());
                    body.extend_from_slice(s);
                }
            }
            let size = body.len() - start;
            body.extend(std::iter::repeat_n(0u8, backlen_size(size)));
        }
        let mut out = Vec::new();
        out.extend_from_slice(&((body.len() + HEADER + 1) as u32).to_le_bytes());
        out.extend_from_slice(&(items.len() as u16).to_le_bytes());
        out.extend_from_slice(&body);
        out.push(END);
        out
    }

    #[test]
    fn every_encoding_round_trips() {
        let long = vec![b'x'; 5000];
        let mid = vec![b'y'; 300];
        let items = [
            Item::Int(0),
            Item::Int(127),
            Item::Int(-1),
            Item::Int(-4096),
            Item::Int(4095),
            Item::Int(-30000),
            Item::Int(-8_000_000),
            Item::Int(2_000_000_000),
            Item::Int(i64::MIN),
            Item::Str(b""),
            Item::Str(b"abc"),
            Item::Str(&mid),
            Item::Str(&long),
        ];
        let lp = build(&items);
        let mut it = Listpack::new(&lp).unwrap();
        for want in items {
            assert_eq!(it.next_item().unwrap(), Some(want));
        }
        assert_eq!(it.next_item().unwrap(), None);
    }

    #[test]
    fn observed_redis_7_set_listpack() {
        // The 16-byte listpack of a Redis 7.0 list a, b, c (FORMATS.md §2.8).
        let lp = [
            0x10, 0, 0, 0, 3, 0, 0x81, b'a', 2, 0x81, b'b', 2, 0x81, b'c', 2, 0xFF,
        ];
        assert_eq!(
            elements(&lp).unwrap(),
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
    }

    #[test]
    fn rejects_lies() {
        let mut lp = build(&[Item::Str(b"abc")]);
        lp[4] = 2; // claims two elements
        assert!(elements(&lp).is_err());
        let mut lp = build(&[Item::Str(b"abc")]);
        lp[0] += 1; // total bytes wrong
        assert!(elements(&lp).is_err());
        let lp = build(&[Item::Str(b"abc")]);
        assert!(elements(&lp[..lp.len() - 1]).is_err());
        let mut lp = build(&[Item::Str(b"abc")]);
        lp[6] = 0xF5; // invalid encoding
        assert!(elements(&lp).is_err());
    }
}
