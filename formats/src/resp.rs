//! RESP multibulk commands, the unit every AOF is made of: `*<argc>\r\n` followed by `argc`
//! bulk strings `$<len>\r\n<bytes>\r\n`.
//!
//! The decoder works on a byte slice that may end anywhere — a server may be halfway through
//! writing a command — and so has three outcomes: a whole command (its arguments borrowed from
//! the buffer, no copy), *incomplete* (`Ok(None)`: every byte seen so far is a valid prefix of a
//! command, more bytes are needed), or *invalid* (an error naming the absolute offset of the first
//! byte that cannot belong to a command). Length fields are bounded ([`MAX_BULK_LEN`],
//! [`MAX_ARGS`]) and checked before anything is allocated, so a corrupt length is an error, never
//! a huge allocation.
//!
//! Unlike Redis's own loader, which skips the two bytes after a bulk payload unchecked, this
//! decoder requires them to be `\r\n`: a backup agent prefers to notice damage early.

/// Largest bulk string accepted (Redis's default `proto-max-bulk-len`, 512 MiB).
pub const MAX_BULK_LEN: usize = 512 * 1024 * 1024;
/// Largest argument count accepted.
pub const MAX_ARGS: usize = 1 << 24;
/// Longest run of digits in a length line (leading zeros included). Real writers use at most 9.
const MAX_DIGITS: usize = 20;

/// A byte sequence that is not a RESP multibulk command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RespError {
    /// `offset` is the absolute position of the first offending byte.
    #[error("invalid RESP at byte {offset}: {reason}")]
    Invalid { offset: u64, reason: String },
}

/// A decoded command: its arguments, borrowed from the input, and its length in bytes.
pub type Decoded<'a> = (Vec<&'a [u8]>, usize);

/// Decode one command at the start of `buf`; `base` is the absolute offset of `buf[0]`, used
/// only to make error offsets absolute.
///
/// Returns `Ok(None)` when `buf` is a (possibly empty) strict prefix of a valid command, and
/// `Ok(Some((args, consumed)))` for a whole command of `consumed` bytes.
pub fn decode_command(buf: &[u8], base: u64) -> Result<Option<Decoded<'_>>, RespError> {
    let mut args = Vec::new();
    let consumed = walk_command(buf, base, |_, arg| args.push(arg))?;
    Ok(consumed.map(|n| (args, n)))
}

/// Append the multibulk encoding of `args` to `out`.
pub fn encode_command<A: AsRef<[u8]>>(args: &[A], out: &mut Vec<u8>) {
    let payload: usize = args.iter().map(|a| a.as_ref().len() + 16).sum();
    out.reserve(payload + 16);
    push_len_line(out, b'*', args.len());
    for arg in args {
        let arg = arg.as_ref();
        push_len_line(out, b'$', arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

/// Walk one command at the start of `buf`, calling `on_arg(index, bytes)` for every argument as
/// it is recognised. Returns the command's length, or `None` if `buf` ends inside it (in which
/// case `on_arg` may already have seen some arguments). The scanners in [`crate::aof`] use this
/// to look at the command name without collecting the arguments.
pub(crate) fn walk_command<'a>(
    buf: &'a [u8],
    base: u64,
    mut on_arg: impl FnMut(usize, &'a [u8]),
) -> Result<Option<usize>, RespError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    if first != b'*' {
        return Err(invalid(
            base,
            0,
            format!("expected '*', found byte 0x{first:02x}"),
        ));
    }
    let Some((argc, mut pos)) = length_line(buf, 1, base, MAX_ARGS, "argument count")? else {
        return Ok(None);
    };
    if argc == 0 {
        return Err(invalid(
            base,
            1,
            "a command needs at least one argument".into(),
        ));
    }
    for index in 0..argc {
        let Some(&marker) = buf.get(pos) else {
            return Ok(None);
        };
        if marker != b'$' {
            return Err(invalid(
                base,
                pos,
                format!("expected '$' for argument {index}, found byte 0x{marker:02x}"),
            ));
        }
        let Some((len, start)) = length_line(buf, pos + 1, base, MAX_BULK_LEN, "bulk length")?
        else {
            return Ok(None);
        };
        let end = start + len;
        match buf.get(end..end + 2) {
            Some(b"\r\n") => {}
            Some(_) => return Err(bad_terminator(buf, end, base)),
            // Fewer than two bytes after the payload: a lone '\r' is still a valid prefix.
            None => {
                if buf.len() > end && buf[end] != b'\r' {
                    return Err(bad_terminator(buf, end, base));
                }
                return Ok(None);
            }
        }
        on_arg(index, &buf[start..end]);
        pos = end + 2;
    }
    Ok(Some(pos))
}

/// Parse the decimal digits at `buf[pos..]` up to `\r\n`. Returns the value and the position
/// after the line, or `None` if the buffer ends first.
fn length_line(
    buf: &[u8],
    pos: usize,
    base: u64,
    max: usize,
    what: &str,
) -> Result<Option<(usize, usize)>, RespError> {
    let mut value: usize = 0;
    let mut i = pos;
    loop {
        let Some(&b) = buf.get(i) else {
            return Ok(None);
        };
        if !b.is_ascii_digit() {
            break;
        }
        if i - pos >= MAX_DIGITS {
            return Err(invalid(base, i, format!("{what} has too many digits")));
        }
        value = value * 10 + usize::from(b - b'0');
        if value > max {
            return Err(invalid(
                base,
                pos,
                format!("{what} exceeds the limit of {max}"),
            ));
        }
        i += 1;
    }
    if i == pos {
        return Err(invalid(base, i, format!("{what} is not a decimal number")));
    }
    match buf.get(i) {
        Some(b'\r') => {}
        Some(&b) => {
            return Err(invalid(
                base,
                i,
                format!("{what} ends with byte 0x{b:02x} instead of \\r\\n"),
            ))
        }
        None => return Ok(None),
    }
    match buf.get(i + 1) {
        Some(b'\n') => Ok(Some((value, i + 2))),
        Some(_) => Err(invalid(
            base,
            i + 1,
            format!("{what}: '\\r' not followed by '\\n'"),
        )),
        None => Ok(None),
    }
}

fn bad_terminator(buf: &[u8], end: usize, base: u64) -> RespError {
    let at = if buf.get(end) == Some(&b'\r') {
        end + 1
    } else {
        end
    };
    invalid(base, at, "bulk string not followed by \\r\\n".into())
}

fn invalid(base: u64, pos: usize, reason: String) -> RespError {
    RespError::Invalid {
        offset: base + pos as u64,
        reason,
    }
}

/// `<marker><n>\r\n` without going through `fmt`.
fn push_len_line(out: &mut Vec<u8>, marker: u8, n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push(marker);
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_prefix_is_incomplete() {
        let mut buf = Vec::new();
        encode_command(&[&b"SET"[..], b"k", b"", b"a\r\nb"], &mut buf);
        let (args, n) = decode_command(&buf, 0).unwrap().unwrap();
        assert_eq!(n, buf.len());
        assert_eq!(args, vec![&b"SET"[..], b"k", b"", b"a\r\nb"]);
        for cut in 0..buf.len() {
            assert_eq!(
                decode_command(&buf[..cut], 0).unwrap(),
                None,
                "prefix {cut}"
            );
        }
    }

    #[test]
    fn errors_carry_absolute_offsets() {
        let err = decode_command(b"*1\r\n$3\r\nGETxx", 100).unwrap_err();
        assert_eq!(
            err,
            RespError::Invalid {
                offset: 111,
                reason: "bulk string not followed by \\r\\n".into()
            }
        );
        let RespError::Invalid { offset, .. } = decode_command(b"+OK\r\n", 7).unwrap_err();
        assert_eq!(offset, 7);
        let RespError::Invalid { offset, .. } = decode_command(b"*0\r\n", 0).unwrap_err();
        assert_eq!(offset, 1);
    }

    #[test]
    fn huge_lengths_are_invalid_before_any_allocation() {
        assert!(decode_command(b"*99999999999", 0).is_err());
        assert!(decode_command(b"*1\r\n$4294967296\r\n", 0).is_err());
        assert!(decode_command(b"*1\r\n$536870913", 0).is_err());
        // The limit itself is only a length: incomplete, not invalid.
        assert_eq!(decode_command(b"*1\r\n$536870912\r\n", 0).unwrap(), None);
    }
}
