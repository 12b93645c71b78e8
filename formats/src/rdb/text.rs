//! Numbers as text: packed containers store small integers in binary, while the neutral form
//! (like the server's replies) carries them as decimal strings; scores may be stored as text.

/// The decimal text of `value`, as Redis prints it.
#[inline]
pub(crate) fn int(value: i64) -> Vec<u8> {
    // itoa writes two digits per step from a table, into a stack buffer; the vector is then
    // allocated at its exact size.
    itoa::Buffer::new().format(value).as_bytes().to_vec()
}

/// A score or other double stored as text (`"1.5"`, `"-inf"`, `"nan"`).
pub(crate) fn parse_f64(bytes: &[u8]) -> Option<f64> {
    if let Some(v) = short_decimal(bytes) {
        return Some(v);
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// Exact powers of ten (every one up to 10^22 is a double without rounding).
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// `[-]digits[.digits]` with at most 15 digits in all, the common shape of a zset score, as
/// `mantissa / 10^fraction_digits`: both are exact doubles and one IEEE division rounds
/// correctly, so the result is the one `str::parse` gives (Clinger's fast path). `None` for
/// anything else, which the caller then parses in full.
fn short_decimal(bytes: &[u8]) -> Option<f64> {
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let (mut mantissa, mut count, mut fraction) = (0u64, 0usize, None::<usize>);
    for (at, &b) in digits.iter().enumerate() {
        match b {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(b - b'0');
                count += 1;
            }
            // One point, with digits on both sides.
            b'.' if fraction.is_none() && at > 0 && at + 1 < digits.len() => {
                fraction = Some(digits.len() - at - 1);
            }
            _ => return None,
        }
    }
    if count > 15 {
        return None;
    }
    let value = mantissa as f64 / POW10[fraction.unwrap_or(0)];
    Some(if negative { -value } else { value })
}

/// An integer stored as text, as Redis's `string2ll` accepts it (stream fields written as
/// integers may also have been kept as strings).
pub(crate) fn parse_i64(bytes: &[u8]) -> Option<i64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_matches_std_formatting_at_the_edges() {
        for v in [
            0,
            1,
            -1,
            9,
            10,
            99,
            100,
            999,
            1000,
            9999,
            10_000,
            -10,
            12345,
            i64::from(i32::MIN),
            i64::MAX,
            i64::MIN,
        ] {
            assert_eq!(int(v), v.to_string().into_bytes());
        }
    }

    #[test]
    fn short_decimals_parse_exactly_as_std_does() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut texts: Vec<String> = [
            "0",
            "-0",
            "1.5",
            "-1.5",
            "0.1",
            "0.3",
            "123456789012345",
            "1234567890123456",
            "0.000000000000001",
            "9007199254740993",
            "1.",
            ".5",
            "1..5",
            "1e3",
            "-",
            "",
            "+1",
            "00012.50",
            "999999999999999.9",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        for _ in 0..20_000 {
            let digits = 1 + (next() % 17) as usize;
            let mut t: String = (0..digits)
                .map(|_| char::from(b'0' + (next() % 10) as u8))
                .collect();
            if next() % 2 == 0 {
                let at = (next() as usize) % (t.len() + 1);
                t.insert(at, '.');
            }
            if next() % 3 == 0 {
                t.insert(0, '-');
            }
            texts.push(t);
        }
        for t in &texts {
            let want = t.parse::<f64>().ok();
            let got = parse_f64(t.as_bytes());
            assert_eq!(
                got.map(f64::to_bits),
                want.map(f64::to_bits),
                "{t:?}: {got:?} vs {want:?}"
            );
        }
    }

    #[test]
    fn doubles_as_redis_writes_them() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"inf"), Some(f64::INFINITY));
        assert!(parse_f64(b"nan").is_some_and(f64::is_nan));
        assert_eq!(parse_f64(b"1e3x"), None);
    }
}
