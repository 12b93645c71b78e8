//! Reading the commands of an AOF stream of any size through a fixed buffer.
//!
//! The reader itself is [`aofvault_formats::aof::stream`], which walks the bytes with the same
//! scanner as every other AOF reader; this module only fixes its error type to `anyhow` for the
//! restore, translate and verify paths (a [`StreamError`] stays reachable by `downcast`).

use std::io::Read;

pub use aofvault_formats::aof::stream::{Item, StreamEnd, StreamError};

/// Calls `f(item, end_offset)` for every command and `#TS:` annotation of `r`, whose first byte
/// is at logical offset `base`. A kevy header at offset 0 is skipped; other `#` lines are
/// skipped as Redis skips them. Stops at the first error (from the bytes or from `f`). A stream
/// that ends inside a command is [`StreamError::Truncated`] naming the offset — a stored segment
/// always holds whole commands, so that is damage, not a server still writing.
pub fn for_each_item<R: Read>(
    r: R,
    base: u64,
    f: impl FnMut(Item<'_>, u64) -> anyhow::Result<()>,
) -> anyhow::Result<StreamEnd> {
    aofvault_formats::aof::stream::for_each_item(r, base, f)
}

/// [`for_each_item`], also handing `f` each item's stored bytes (`f(item, end_offset, frame)`).
pub fn for_each_item_raw<R: Read>(
    r: R,
    base: u64,
    f: impl FnMut(Item<'_>, u64, &[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<StreamEnd> {
    aofvault_formats::aof::stream::for_each_item_raw(r, base, f)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use aofvault_formats::resp;

    #[test]
    fn errors_of_the_bytes_and_of_the_callback_both_come_through() {
        let mut s = Vec::new();
        resp::encode_command(&[&b"SET"[..], b"k", b"v"], &mut s);
        let end = for_each_item(&s[..], 0, |_, _| Ok(())).unwrap();
        assert_eq!(end.commands, 1);
        let err = for_each_item(&s[..s.len() - 1], 9, |_, _| Ok(())).unwrap_err();
        let err = err.downcast::<StreamError>().unwrap();
        assert!(matches!(err, StreamError::Truncated { offset: 9 }), "{err}");
        let err = for_each_item(&b"*1\r\n$3\r\nGETxx"[..], 1000, |_, _| Ok(())).unwrap_err();
        assert!(err.to_string().contains("byte 1011"), "{err}");
        let err = for_each_item(&s[..], 0, |_, _| anyhow::bail!("stop")).unwrap_err();
        assert_eq!(err.to_string(), "stop");
    }
}
