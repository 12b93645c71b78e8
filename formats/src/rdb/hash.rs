//! Hash values in every encoding, including the per-field expiries of Redis 7.4+ and Valkey 9.
//!
//! | type | encoding |
//! |---|---|
//! | 4 | `count`, then field, value strings (hashtable) |
//! | 9 | a zipmap (Redis ≤ 2.4) |
//! | 13 | a ziplist of field, value (Redis < 7) |
//! | 16 | a listpack of field, value (Redis ≥ 7) |
//! | 22 (Redis) | 7.4 release candidates: `count`, then `ttl:len` (absolute ms, 0 = none), field, value |
//! | 22 (Valkey) | `count`, then field, value, `expiry:i64le` (-1 = none) |
//! | 23 (Redis) | 7.4 release candidates: a listpack of field, value, expiry (0 = none) triplets |
//! | 24 (Redis) | `min_expire:i64le`, `count`, then `ttl:len` (0 = none, else `ttl + min_expire - 1`), field, value |
//! | 25 (Redis) | `min_expire:i64le`, then a listpack of field, value, expiry (0 = none) triplets |
//!
//! Type 22 means different things in Redis and Valkey files, hence the [`Flavor`]. Fields whose
//! expiry has passed are kept, with that expiry: dropping them is the replayer's decision.

use std::io::BufRead;

use crate::model::HashField;

use super::error::{display_key, PackError, RdbError};
use super::listpack::Listpack;
use super::packed::Packed;
use super::source::{capacity, packed, Source};
use super::ziplist::Ziplist;
use super::{zipmap, Flavor};

/// Redis's largest valid field expiry (`EB_EXPIRE_TIME_MAX`, 2^48 - 1 ms).
const MAX_FIELD_EXPIRE: u64 = (1 << 48) - 1;

pub(crate) fn read_hash<R: BufRead>(
    src: &mut Source<R>,
    type_id: u8,
    flavor: Flavor,
    key: &[u8],
    out: &mut Vec<HashField>,
) -> Result<(), RdbError> {
    match (type_id, flavor) {
        (4, _) => hashtable(src, out),
        (9, _) => packed(src, key, "zipmap of hash", |data| {
            let pairs = zipmap::pairs(data)?.into_iter();
            out.extend(pairs.map(|(field, value)| HashField {
                field,
                value,
                expire_at_ms: None,
            }));
            Ok(())
        }),
        (13, _) => packed(src, key, "ziplist of hash", |data| {
            pairs(Ziplist::new(data)?, out)
        }),
        (16, _) => packed(src, key, "listpack of hash", |data| {
            pairs(Listpack::new(data)?, out)
        }),
        (22, Flavor::Valkey) => valkey_expiring(src, key, out),
        (22 | 24, Flavor::Redis) => redis_expiring(src, type_id, key, out),
        (23 | 25, Flavor::Redis) => {
            if type_id == 25 {
                // The smallest field expiry: informational, the triplets carry absolute times.
                src.read_i64_le("hash minimum expiry")?;
            }
            packed(src, key, "listpack of hash with field expiries", |data| {
                triplets(Listpack::new(data)?, out)
            })
        }
        _ => Err(RdbError::Invalid {
            offset: src.offset().saturating_sub(1),
            reason: format!(
                "key `{}`: value type {type_id} is not defined in {flavor:?} files",
                display_key(key)
            ),
        }),
    }
}

/// Type 4: `count`, then field, value strings.
fn hashtable<R: BufRead>(src: &mut Source<R>, out: &mut Vec<HashField>) -> Result<(), RdbError> {
    let count = src.read_len("hash length")?;
    out.reserve(capacity(count));
    for _ in 0..count {
        let field = src.read_string("hash field")?;
        let value = src.read_string("hash value")?;
        out.push(HashField {
            field,
            value,
            expire_at_ms: None,
        });
    }
    Ok(())
}

/// Valkey's type 22: `count`, then field, value, `expiry:i64le` (-1 = none).
fn valkey_expiring<R: BufRead>(
    src: &mut Source<R>,
    key: &[u8],
    out: &mut Vec<HashField>,
) -> Result<(), RdbError> {
    let count = src.read_len("hash length")?;
    out.reserve(capacity(count));
    for _ in 0..count {
        let field = src.read_string("hash field")?;
        let value = src.read_string("hash value")?;
        let at = src.offset();
        let expiry = src.read_i64_le("hash field expiry")?;
        let expire_at_ms = match expiry {
            -1 => None,
            ms if ms >= 0 => Some(ms),
            _ => return Err(bad_expiry(at, key)),
        };
        out.push(HashField {
            field,
            value,
            expire_at_ms,
        });
    }
    Ok(())
}

/// Redis's types 22 and 24: `ttl:len`, field, value per field, the TTL absolute (22) or
/// relative to a leading minimum (24).
fn redis_expiring<R: BufRead>(
    src: &mut Source<R>,
    type_id: u8,
    key: &[u8],
    out: &mut Vec<HashField>,
) -> Result<(), RdbError> {
    // Type 24 stores field TTLs relative to the smallest one; 22 stores them absolute.
    let base = if type_id == 24 {
        let at = src.offset();
        let min = src.read_i64_le("hash minimum expiry")?;
        Some(u64::try_from(min).map_err(|_| bad_expiry(at, key))?)
    } else {
        None
    };
    let count = src.read_len("hash length")?;
    out.reserve(capacity(count));
    for _ in 0..count {
        let at = src.offset();
        let ttl = src.read_len("hash field ttl")?;
        let expire = match (ttl, base) {
            (0, _) => None,
            (ttl, Some(min)) => Some(ttl.checked_add(min).and_then(|t| t.checked_sub(1))),
            (ttl, None) => Some(Some(ttl)),
        };
        let expire_at_ms = match expire {
            None => None,
            Some(Some(ms)) if ms <= MAX_FIELD_EXPIRE => Some(ms as i64),
            Some(_) => return Err(bad_expiry(at, key)),
        };
        let field = src.read_string("hash field")?;
        let value = src.read_string("hash value")?;
        out.push(HashField {
            field,
            value,
            expire_at_ms,
        });
    }
    Ok(())
}

fn bad_expiry(at: u64, key: &[u8]) -> RdbError {
    RdbError::Invalid {
        offset: at,
        reason: format!("key `{}`: invalid hash field expiry", display_key(key)),
    }
}

/// field, value pairs.
fn pairs<'a>(mut items: impl Packed<'a>, out: &mut Vec<HashField>) -> Result<(), PackError> {
    out.reserve(items.expected() / 2);
    while let Some(field) = items.next_item()? {
        let value = items.expect_item("hash field without a value")?;
        out.push(HashField {
            field: field.to_bytes(),
            value: value.to_bytes(),
            expire_at_ms: None,
        });
    }
    Ok(())
}

/// field, value, expiry triplets (expiry 0 = none).
fn triplets<'a>(mut items: impl Packed<'a>, out: &mut Vec<HashField>) -> Result<(), PackError> {
    out.reserve(items.expected() / 3);
    while let Some(field) = items.next_item()? {
        let value = items.expect_item("hash field without a value")?;
        let at = items.position();
        let expiry = items.expect_item("hash field without an expiry")?;
        let expire_at_ms = match expiry.as_i64() {
            Some(0) => None,
            Some(ms) if ms > 0 && ms as u64 <= MAX_FIELD_EXPIRE => Some(ms),
            _ => return Err(PackError::new(at, "invalid hash field expiry")),
        };
        out.push(HashField {
            field: field.to_bytes(),
            value: value.to_bytes(),
            expire_at_ms,
        });
    }
    Ok(())
}
