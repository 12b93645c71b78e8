//! LZF decompression (liblzf's format, which Redis uses for strings longer than 20 bytes).
//!
//! The stream is a sequence of runs, each opened by a control byte `c`: below 32 it is a literal
//! of `c + 1` bytes copied from the input; otherwise a back-reference of `(c >> 5) + 2` bytes
//! (7 in the top bits means "add the next byte to the length") copied from `distance` bytes back
//! in the output, where the distance is the low 5 bits of `c` and the following byte, plus one.
//! Back-references may overlap the bytes they produce (a run of one repeated byte is a
//! back-reference at distance 1).

use super::error::PackError;

/// The most output one input byte can produce: a 3-byte back-reference yields at most 264
/// bytes. A claimed length above `input × MAX_EXPANSION` is a lie, caught before allocating.
pub(crate) const MAX_EXPANSION: usize = 88;

/// Decompresses `input`, which must expand to exactly `out_len` bytes.
#[cfg(test)]
pub(crate) fn decompress(input: &[u8], out_len: usize) -> Result<Vec<u8>, PackError> {
    let mut out = Vec::new();
    decompress_into(input, out_len, &mut out)?;
    Ok(out)
}

/// Decompresses `input` into `out` (replacing its contents), reusing its allocation. On an
/// error, `out` holds unspecified bytes.
pub(crate) fn decompress_into(
    input: &[u8],
    out_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), PackError> {
    if out_len > input.len().saturating_mul(MAX_EXPANSION) {
        return Err(PackError::new(
            0,
            "LZF uncompressed length exceeds what the compressed bytes can produce",
        ));
    }
    // Every byte of `out[..out_len]` is written before a successful return (the output must
    // come out exactly `out_len` long and is produced in order), so a reused buffer's old
    // bytes need not be zeroed first: only growth is.
    if out.len() >= out_len {
        out.truncate(out_len);
    } else {
        out.resize(out_len, 0);
    }
    let out = out.as_mut_slice();
    // The slice's own length, so that the checks below also prove its indexing in bounds.
    let out_len = out.len();
    let mut i = 0; // next input byte
    let mut o = 0; // next output byte
    while let Some(&ctrl) = input.get(i) {
        i += 1;
        if ctrl < 32 {
            let run = usize::from(ctrl) + 1;
            if i + 32 <= input.len() && o + 32 <= out_len {
                // Fast path: a fixed-size copy (inlined); bytes past `run` are overwritten later.
                out[o..o + 32].copy_from_slice(&input[i..i + 32]);
                i += run;
                o += run;
                continue;
            }
            let literal = input
                .get(i..i + run)
                .ok_or(PackError::new(i, "LZF literal runs past the end"))?;
            let dest = out
                .get_mut(o..o + run)
                .ok_or(PackError::new(i, "LZF output longer than announced"))?;
            dest.copy_from_slice(literal);
            i += run;
            o += run;
        } else {
            let mut len = usize::from(ctrl >> 5);
            if len == 7 {
                len += usize::from(
                    *input
                        .get(i)
                        .ok_or(PackError::new(i, "LZF length byte missing"))?,
                );
                i += 1;
            }
            len += 2;
            let low = *input
                .get(i)
                .ok_or(PackError::new(i, "LZF distance byte missing"))?;
            i += 1;
            let distance = ((usize::from(ctrl & 0x1f) << 8) | usize::from(low)) + 1;
            let from = o.checked_sub(distance).ok_or(PackError::new(
                i,
                "LZF back-reference before the start of the output",
            ))?;
            if o + len > out_len {
                return Err(PackError::new(i, "LZF output longer than announced"));
            }
            if distance >= len && len <= 16 && o + 16 <= out_len {
                // Fast path as for literals: the first `len` bytes are right, the rest is
                // overwritten later.
                out.copy_within(from..from + 16, o);
            } else if distance >= len {
                out.copy_within(from..from + len, o);
            } else if distance == 1 {
                // A run of one repeated byte (zero padding, mostly).
                let byte = out[from];
                out[o..o + len].fill(byte);
            } else {
                copy_overlapping(out, from, o, len);
            }
            o += len;
        }
    }
    if o != out_len {
        return Err(PackError::new(
            input.len(),
            "LZF output shorter than announced",
        ));
    }
    Ok(())
}

/// Copies `len` bytes to `to` from `from`, where the ranges overlap (`to - from < len`): each
/// output byte equals the one `to - from` bytes before it, so the output is that pattern
/// repeated. Copied in chunks that double, each reading only bytes already in place: after
/// copying `done` bytes (a multiple of the distance), the `distance + done` bytes before the
/// next one are the pattern, whole periods of it.
fn copy_overlapping(out: &mut [u8], from: usize, to: usize, len: usize) {
    if len <= 16 {
        // Short references are common and a byte loop beats a few tiny `memmove`s.
        for k in to..to + len {
            out[k] = out[k - (to - from)];
        }
        return;
    }
    let mut done = 0;
    while done < len {
        let chunk = (to + done - from).min(len - done);
        out.copy_within(from..from + chunk, to + done);
        done += chunk;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::{decompress, decompress_into};

    #[test]
    fn forty_a_observed_on_redis_7() {
        // `c3 09 28 | 01 61 61 e0 1b 00 01 61 61`: literal "aa", 36 bytes at distance 1, "aa".
        let out = decompress(&[0x01, 0x61, 0x61, 0xe0, 0x1b, 0x00, 0x01, 0x61, 0x61], 40).unwrap();
        assert_eq!(out, vec![b'a'; 40]);
    }

    #[test]
    fn overlapping_pattern_repeats() {
        // literal "abc", then 7 bytes at distance 3 -> "abcabcabca"
        let out = decompress(&[0x02, b'a', b'b', b'c', 0xa0, 0x02], 10).unwrap();
        assert_eq!(out, b"abcabcabca");
    }

    #[test]
    fn rejects_lies_and_bad_references() {
        assert!(decompress(&[0x00, b'a'], 2).is_err()); // shorter than announced
        assert!(decompress(&[0x00, b'a'], 0).is_err()); // longer than announced
        assert!(decompress(&[0x20, 0x05], 2).is_err()); // reference before start
        assert!(decompress(&[0x05, b'a'], 6).is_err()); // literal past end
        assert!(decompress(&[0x00, b'a'], 1 << 40).is_err()); // impossible expansion
    }
    /// The format as written down, one byte at a time, to check the fast paths against.
    fn reference(input: &[u8]) -> Option<Vec<u8>> {
        let (mut i, mut out) = (0, Vec::new());
        while i < input.len() {
            let ctrl = usize::from(input[i]);
            i += 1;
            if ctrl < 32 {
                out.extend_from_slice(input.get(i..i + ctrl + 1)?);
                i += ctrl + 1;
            } else {
                let mut len = ctrl >> 5;
                if len == 7 {
                    len += usize::from(*input.get(i)?);
                    i += 1;
                }
                let distance = ((ctrl & 0x1f) << 8 | usize::from(*input.get(i)?)) + 1;
                i += 1;
                for _ in 0..len + 2 {
                    out.push(out[out.len().checked_sub(distance)?]);
                }
            }
        }
        Some(out)
    }

    #[test]
    fn fast_paths_agree_with_the_reference() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n) as usize
        };
        for _ in 0..2000 {
            // A random valid stream: literals of 1-32 bytes, back-references of 3-264 bytes at
            // distances up to what exists (often short, so copies overlap).
            let (mut input, mut produced) = (Vec::new(), 0usize);
            for _ in 0..1 + next(40) {
                if produced == 0 || next(3) == 0 {
                    let run = 1 + next(32);
                    input.push((run - 1) as u8);
                    input.extend((0..run).map(|_| next(256) as u8));
                    produced += run;
                } else {
                    let span = if next(2) == 0 { 8 } else { 262 };
                    let len = 3 + next(span);
                    let near = if next(2) == 0 { 20 } else { 8192 };
                    let distance = 1 + next(produced.min(near) as u64);
                    let l = len - 2;
                    let d = distance - 1;
                    if l < 7 {
                        input.push(((l as u8) << 5) | (d >> 8) as u8);
                    } else {
                        input.extend_from_slice(&[0xE0 | (d >> 8) as u8, (l - 7) as u8]);
                    }
                    input.push(d as u8);
                    produced += len;
                }
            }
            let want = reference(&input).unwrap();
            assert_eq!(want.len(), produced);
            assert_eq!(decompress(&input, want.len()).unwrap(), want);
            assert!(decompress(&input, want.len() + 1).is_err());
            if !want.is_empty() {
                assert!(decompress(&input, want.len() - 1).is_err());
            }
        }
    }

    /// A back-reference of `len` bytes at `distance`, as liblzf writes it.
    fn reference_op(len: usize, distance: usize) -> Vec<u8> {
        let (l, d) = (len - 2, distance - 1);
        if l < 7 {
            vec![((l as u8) << 5) | (d >> 8) as u8, d as u8]
        } else {
            vec![0xE0 | (d >> 8) as u8, (l - 7) as u8, d as u8]
        }
    }

    #[test]
    fn zero_padding_after_a_short_literal() {
        // DEBUG POPULATE's values: "value:7" and zeros up to 100 bytes, a literal ending in
        // one zero then one 92-byte reference at distance 1.
        let mut input = vec![7];
        input.extend_from_slice(b"value:7\0");
        input.extend(reference_op(92, 1));
        let mut want = b"value:7".to_vec();
        want.resize(100, 0);
        assert_eq!(decompress(&input, 100).unwrap(), want);
        assert_eq!(reference(&input).unwrap(), want);
    }

    #[test]
    fn every_overlapping_distance_and_length_agrees_with_the_reference() {
        // A 32-byte literal, then a reference of each length at each short distance (the
        // doubling copy's chunk boundaries fall differently for each pair).
        let literal: Vec<u8> = (0..32u8).map(|b| b.wrapping_mul(37) ^ 0x5a).collect();
        for distance in 1..=32 {
            for len in 3..=264 {
                let mut input = vec![31];
                input.extend_from_slice(&literal);
                input.extend(reference_op(len, distance));
                input.extend_from_slice(&[0, b'!']);
                let want = reference(&input).unwrap();
                assert_eq!(
                    decompress(&input, want.len()).unwrap(),
                    want,
                    "distance {distance}, length {len}"
                );
            }
        }
    }

    #[test]
    fn a_reused_buffer_keeps_none_of_its_old_bytes() {
        let mut input = vec![2, b'a', b'b', b'c'];
        input.extend(reference_op(40, 3));
        let want = reference(&input).unwrap();
        for stale in [0, 10, want.len(), 4096] {
            let mut out = vec![0xAA; stale];
            decompress_into(&input, want.len(), &mut out).unwrap();
            assert_eq!(out, want, "{stale} stale bytes");
        }
    }

    #[test]
    fn malformed_input_errors_name_the_offset() {
        let at = |input: &[u8], len: usize| decompress(input, len).unwrap_err().at;
        // A literal of 6 announced at byte 0, only one byte follows.
        assert_eq!(at(&[0x05, b'a'], 6), 1);
        // A reference to 1 byte back with nothing produced yet: after its two bytes.
        assert_eq!(at(&[0x20, 0x00], 3), 2);
        // A reference whose distance byte is missing.
        assert_eq!(at(&[0x00, b'a', 0x20], 4), 3);
        // A long reference whose length byte is missing.
        assert_eq!(at(&[0x00, b'a', 0xE0], 20), 3);
        // Output longer than announced: the reference starting at byte 2 overflows.
        assert_eq!(at(&[0x00, b'a', 0x20, 0x00], 2), 4);
        // Output shorter than announced: the error is at the end of the input.
        assert_eq!(at(&[0x01, b'a', b'b'], 3), 3);
    }
}
