//! One element of a packed container (listpack or ziplist): both store an element either as a
//! byte string or as a binary integer, and readers usually want it as bytes or as a number.

use super::text;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Item<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl Item<'_> {
    /// The element as the server returns it: integers as decimal text.
    #[inline(always)]
    pub(crate) fn to_bytes(self) -> Vec<u8> {
        match self {
            Item::Int(v) => text::int(v),
            Item::Str(s) => s.to_vec(),
        }
    }

    /// The element as an integer, if it is one (or a string holding one).
    pub(crate) fn as_i64(self) -> Option<i64> {
        match self {
            Item::Int(v) => Some(v),
            Item::Str(s) => text::parse_i64(s),
        }
    }

    /// The element as a double (zset scores).
    pub(crate) fn as_f64(self) -> Option<f64> {
        match self {
            Item::Int(v) => Some(v as f64),
            Item::Str(s) => text::parse_f64(s),
        }
    }
}

/// A forward walk over a packed container's elements.
pub(crate) trait Packed<'a> {
    /// The next element; `None` at the end.
    fn next_item(&mut self) -> Result<Option<Item<'a>>, super::error::PackError>;
    /// Position inside the container, for error reports.
    fn position(&self) -> usize;

    /// How many elements the header announces, bounded by what the bytes can hold (every
    /// element takes at least two bytes), so a lying header cannot reserve much: a capacity
    /// hint, never trusted for anything else. 0 when the header says "unknown".
    fn expected(&self) -> usize;

    /// The next element, which must exist (the second or third of a pair or triplet).
    #[inline(always)]
    fn expect_item(&mut self, what: &'static str) -> Result<Item<'a>, super::error::PackError> {
        let at = self.position();
        self.next_item()?
            .ok_or(super::error::PackError::new(at, what))
    }
}
