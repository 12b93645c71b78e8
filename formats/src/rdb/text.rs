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
    std::str::from_utf8(bytes).ok()?.parse().ok()
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
    fn doubles_as_redis_writes_them() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"inf"), Some(f64::INFINITY));
        assert!(parse_f64(b"nan").is_some_and(f64::is_nan));
        assert_eq!(parse_f64(b"1e3x"), None);
    }
}
