//! Parsing the hash field expiration commands (`HPEXPIREAT`, `HSETEX`, `HGETEX`…) into one
//! shape: key, TTL, fields (and values).

/// A TTL as a command gives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Ttl {
    /// No TTL option: a set clears the field's TTL.
    Clear,
    Keep,
    Persist,
    /// Absolute unix ms.
    At(i64),
    /// Relative ms (never in a Redis AOF; its base time is unknown here).
    In(i64),
}

/// One hash-field-expiration command, parsed.
pub(super) struct Op<'a> {
    pub name: &'static str,
    pub key: &'a [u8],
    pub ttl: Ttl,
    pub fields: Vec<&'a [u8]>,
    /// `HSETEX` values, one per field.
    pub values: Vec<&'a [u8]>,
}

pub(super) fn eq(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

pub(super) fn num(a: &[u8]) -> Option<i64> {
    std::str::from_utf8(a).ok()?.trim().parse().ok()
}

/// Parses the field TTL commands; `None` for any other command (or a malformed one, which
/// then goes to the target unchanged and gets its own error reply there).
pub(super) fn parse<'a>(args: &[&'a [u8]]) -> Option<Op<'a>> {
    let name = *args.first()?;
    let key = *args.get(1)?;
    let (name, mut ttl, opts_from, pairs): (&'static str, Ttl, usize, bool) =
        if eq(name, "HPEXPIREAT") {
            ("HPEXPIREAT", Ttl::At(num(args.get(2)?)?), 3, false)
        } else if eq(name, "HEXPIREAT") {
            (
                "HEXPIREAT",
                Ttl::At(num(args.get(2)?)?.checked_mul(1000)?),
                3,
                false,
            )
        } else if eq(name, "HPEXPIRE") {
            ("HPEXPIRE", Ttl::In(num(args.get(2)?)?), 3, false)
        } else if eq(name, "HEXPIRE") {
            (
                "HEXPIRE",
                Ttl::In(num(args.get(2)?)?.checked_mul(1000)?),
                3,
                false,
            )
        } else if eq(name, "HPERSIST") {
            ("HPERSIST", Ttl::Persist, 2, false)
        } else if eq(name, "HSETEX") {
            ("HSETEX", Ttl::Clear, 2, true)
        } else if eq(name, "HGETEX") {
            ("HGETEX", Ttl::Keep, 2, false)
        } else if eq(name, "HGETDEL") {
            ("HGETDEL", Ttl::Keep, 2, false)
        } else {
            return None;
        };
    let mut i = opts_from;
    while i < args.len() && !eq(args[i], "FIELDS") {
        let a = args[i];
        let value = || args.get(i + 1).and_then(|v| num(v));
        if eq(a, "PXAT") {
            ttl = Ttl::At(value()?);
            i += 1;
        } else if eq(a, "EXAT") {
            ttl = Ttl::At(value()?.checked_mul(1000)?);
            i += 1;
        } else if eq(a, "PX") {
            ttl = Ttl::In(value()?);
            i += 1;
        } else if eq(a, "EX") {
            ttl = Ttl::In(value()?.checked_mul(1000)?);
            i += 1;
        } else if eq(a, "KEEPTTL") {
            ttl = Ttl::Keep;
        } else if eq(a, "PERSIST") {
            ttl = Ttl::Persist;
        }
        i += 1;
    }
    let n = usize::try_from(num(args.get(i + 1)?)?).ok()?;
    let rest = args.get(i + 2..)?;
    let (fields, values) = if pairs {
        if rest.len() != 2 * n {
            return None;
        }
        (
            rest.iter().step_by(2).copied().collect(),
            rest.iter().skip(1).step_by(2).copied().collect(),
        )
    } else {
        if rest.len() != n {
            return None;
        }
        (rest.to_vec(), Vec::new())
    };
    Some(Op {
        name,
        key,
        ttl,
        fields,
        values,
    })
}
