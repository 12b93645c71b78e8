//! Intsets (type 11): a sorted array of 16-, 32- or 64-bit little-endian integers behind an
//! 8-byte header `encoding:u32le length:u32le`. Members come out as decimal text.

use super::error::PackError;
use super::text;

/// Every member of an intset as bytes.
#[cfg(test)]
pub(crate) fn members(data: &[u8]) -> Result<Vec<Vec<u8>>, PackError> {
    let mut out = Vec::new();
    members_into(data, &mut out)?;
    Ok(out)
}

/// Appends every member of an intset to `out`, as decimal text.
pub(crate) fn members_into(data: &[u8], out: &mut Vec<Vec<u8>>) -> Result<(), PackError> {
    let header = data
        .get(..8)
        .ok_or(PackError::new(0, "intset shorter than its header"))?;
    let width = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let count = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
    if !matches!(width, 2 | 4 | 8) {
        return Err(PackError::new(0, "intset encoding is not 2, 4 or 8"));
    }
    let body = &data[8..];
    if count.checked_mul(width) != Some(body.len()) {
        return Err(PackError::new(
            4,
            "intset length disagrees with the string length",
        ));
    }
    out.reserve(count);
    out.extend(body.chunks_exact(width).map(|c| {
        let v = match *c {
            [a, b] => i64::from(i16::from_le_bytes([a, b])),
            [a, b, c, d] => i64::from(i32::from_le_bytes([a, b, c, d])),
            [a, b, c, d, e, f, g, h] => i64::from_le_bytes([a, b, c, d, e, f, g, h]),
            _ => 0, // unreachable: chunks_exact yields `width`-sized chunks
        };
        text::int(v)
    }));
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::members;

    #[test]
    fn observed_redis_7_intset() {
        let data = [2, 0, 0, 0, 3, 0, 0, 0, 1, 0, 2, 0, 3, 0];
        assert_eq!(
            members(&data).unwrap(),
            vec![b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]
        );
    }

    #[test]
    fn wide_and_negative() {
        let mut data = vec![8, 0, 0, 0, 2, 0, 0, 0];
        data.extend_from_slice(&i64::MIN.to_le_bytes());
        data.extend_from_slice(&(-5i64).to_le_bytes());
        assert_eq!(
            members(&data).unwrap(),
            vec![i64::MIN.to_string().into_bytes(), b"-5".to_vec()]
        );
    }

    #[test]
    fn rejects_bad_headers() {
        assert!(members(&[3, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(members(&[2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 1, 0]).is_err());
        assert!(members(&[2, 0, 0]).is_err());
    }
}
