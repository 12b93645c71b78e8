//! Zipmaps (type 9, Redis ≤ 2.4 small hashes): `zmlen:u8` then `len key len free value
//! <free bytes>` pairs until 0xFF. A length is one byte below 254, or 254 and a u32 in host
//! order (little-endian on every machine Redis ran on); `free` counts unused bytes to skip.

use super::error::PackError;

const BIG_LEN: u8 = 254;
const END: u8 = 0xFF;

/// (field, value) pairs in zipmap order.
pub(crate) type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

pub(crate) fn pairs(data: &[u8]) -> Result<Pairs, PackError> {
    let mut pos = 1; // zmlen is only a hint
    if data.is_empty() {
        return Err(PackError::new(0, "empty zipmap"));
    }
    let mut out = Vec::new();
    loop {
        let first = *data
            .get(pos)
            .ok_or(PackError::new(pos, "zipmap has no end marker"))?;
        if first == END {
            if pos + 1 != data.len() {
                return Err(PackError::new(
                    pos,
                    "zipmap end marker before the end of the string",
                ));
            }
            return Ok(out);
        }
        let (key_len, p) = read_len(data, pos)?;
        let key = slice(data, p, key_len)?;
        let (value_len, p) = read_len(data, p + key_len)?;
        let free = usize::from(
            *data
                .get(p)
                .ok_or(PackError::new(p, "zipmap entry runs past the end"))?,
        );
        let value = slice(data, p + 1, value_len)?;
        pos = p + 1 + value_len + free;
        out.push((key.to_vec(), value.to_vec()));
    }
}

fn read_len(data: &[u8], pos: usize) -> Result<(usize, usize), PackError> {
    match *data
        .get(pos)
        .ok_or(PackError::new(pos, "zipmap entry runs past the end"))?
    {
        BIG_LEN => {
            let n = slice(data, pos + 1, 4)?;
            Ok((
                u32::from_le_bytes([n[0], n[1], n[2], n[3]]) as usize,
                pos + 5,
            ))
        }
        END => Err(PackError::new(pos, "zipmap value length is the end marker")),
        n => Ok((usize::from(n), pos + 1)),
    }
}

fn slice(data: &[u8], from: usize, n: usize) -> Result<&[u8], PackError> {
    data.get(from..from.saturating_add(n))
        .ok_or(PackError::new(from, "zipmap entry runs past the end"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::pairs;

    #[test]
    fn pairs_with_free_space() {
        let data = [2, 1, b'a', 2, 1, b'x', b'y', 0, 2, b'b', b'c', 0, 0, 0xFF];
        assert_eq!(
            pairs(&data).unwrap(),
            vec![
                (b"a".to_vec(), b"xy".to_vec()),
                (b"bc".to_vec(), Vec::new())
            ]
        );
    }

    #[test]
    fn rejects_overruns() {
        assert!(pairs(&[1, 5, b'a']).is_err());
        assert!(pairs(&[1, 1, b'a', 0xFF]).is_err());
        assert!(pairs(&[1, 0xFF, 0]).is_err());
    }
}
