//! Key values: the type byte that precedes a key selects one of the value encodings below, and
//! every encoding is reduced to the neutral [`Value`]. Hashes live in [`super::hash`], streams in
//! [`super::stream`]; the packed containers are parsed from the bytes of one RDB string.
//!
//! Empty lists, sets, zsets and hashes are dropped (`Ok(None)`), as the server's own loader does.

use std::io::BufRead;

use crate::model::{Bytes, Value};

use super::error::{PackError, RdbError};
use super::listpack::{self, Listpack};
use super::meta::Templates;
use super::packed::Packed;
use super::source::{capacity, packed, Source};
use super::ziplist::{self, Ziplist};
use super::{hash, intset, module, stream, template, text, Flavor};

/// What a value's type byte means depends on who wrote the file and which version.
pub(crate) struct Dialect<'a> {
    pub(crate) flavor: Flavor,
    pub(crate) version: u32,
    /// Hash templates declared so far (Redis RDB ≥ 14).
    pub(crate) templates: &'a Templates,
}

/// The first Redis RDB version with types 26 and up (Redis 8.6).
const FIRST_REDIS_13_TYPES: u32 = 13;

/// Runs `fill` on a new vector. The readers reserve room from the counts in the file as they
/// find them (capped: see [`super::source::capacity`] and [`Packed::expected`]), so that the
/// vector usually comes out exactly sized without being copied or regrown.
fn gathered<T>(fill: impl FnOnce(&mut Vec<T>) -> Result<(), RdbError>) -> Result<Vec<T>, RdbError> {
    let mut out = Vec::new();
    fill(&mut out)?;
    Ok(out)
}

/// Reads the value of type `type_id` for `key`, whose record starts (at its type byte) at
/// `record_at`. `Ok(None)` for an empty collection.
pub(crate) fn read_value<R: BufRead>(
    src: &mut Source<R>,
    record_at: u64,
    type_id: u8,
    dialect: &Dialect<'_>,
    key: &[u8],
) -> Result<Option<Value>, RdbError> {
    let flavor = dialect.flavor;
    refuse_unknown(record_at, type_id, dialect, key)?;
    let value = match type_id {
        0 => Value::String(src.read_string("string value")?),
        1 => Value::List(gathered(|out| read_strings(src, "list element", out))?),
        2 => Value::Set(gathered(|out| read_strings(src, "set member", out))?),
        3 => Value::ZSet(gathered(|out| read_zset_text_scores(src, key, out))?),
        4 | 9 | 13 | 16 | 22..=25 => Value::Hash(gathered(|out| {
            hash::read_hash(src, type_id, flavor, key, out)
        })?),
        5 => Value::ZSet(gathered(|out| read_zset_binary_scores(src, out))?),
        6 | 7 => {
            let id = src.read_len("module id")?;
            return Err(RdbError::Module {
                offset: record_at,
                key: String::from_utf8_lossy(key).into_owned(),
                module: module::module_name(id),
            });
        }
        10 => Value::List(gathered(|out| {
            packed(src, key, "ziplist of list", |data| {
                ziplist::elements_into(data, out)
            })
        })?),
        11 => Value::Set(gathered(|out| {
            packed(src, key, "intset", |data| intset::members_into(data, out))
        })?),
        12 => Value::ZSet(gathered(|out| {
            packed(src, key, "ziplist of zset", |data| {
                zset_pairs(Ziplist::new(data)?, out)
            })
        })?),
        14 => Value::List(gathered(|out| read_quicklist(src, key, out))?),
        15 | 19 | 21 | 26 | 27 => {
            return stream::read_stream(src, type_id, dialect.version, key)
                .map(|s| Some(Value::Stream(Box::new(s))))
        }
        template::HASH_TMPL_LP..=template::HASH_TMPL_ARRAY_REF => Value::Hash(gathered(|out| {
            template::read_template_hash(
                src,
                record_at,
                type_id,
                dialect.version,
                dialect.templates,
                key,
                out,
            )
        })?),
        17 => Value::ZSet(gathered(|out| {
            packed(src, key, "listpack of zset", |data| {
                zset_pairs(Listpack::new(data)?, out)
            })
        })?),
        18 => Value::List(gathered(|out| read_quicklist2(src, key, out))?),
        20 => Value::Set(gathered(|out| {
            packed(src, key, "listpack of set", |data| {
                listpack::elements_into(data, out)
            })
        })?),
        _ => {
            return Err(RdbError::Invalid {
                offset: record_at,
                reason: format!(
                    "key `{}`: unknown value type {type_id}",
                    super::error::display_key(key)
                ),
            })
        }
    };
    let empty = match &value {
        Value::String(_) | Value::Stream(_) => false,
        Value::List(v) | Value::Set(v) => v.is_empty(),
        Value::ZSet(v) => v.is_empty(),
        Value::Hash(v) => v.is_empty(),
    };
    Ok((!empty).then_some(value))
}

/// Fails, naming the type byte, the version and what the byte means there, on a type this
/// decoder does not read — before any of its bytes are consumed.
fn refuse_unknown(
    record_at: u64,
    type_id: u8,
    dialect: &Dialect<'_>,
    key: &[u8],
) -> Result<(), RdbError> {
    let meaning = match (dialect.flavor, type_id) {
        (_, 0..=7 | 9..=21) => return Ok(()),
        (Flavor::Redis, 22..=25) | (Flavor::Valkey, 22) => return Ok(()),
        (Flavor::Redis, 26..=32) if dialect.version >= FIRST_REDIS_13_TYPES => {
            if type_id != 28 {
                return Ok(());
            }
            "ARRAY (Redis 8.8): not decoded yet, its layout could not be confirmed from Redis's source"
        }
        (Flavor::Redis, 26..=32) => "a type of Redis RDB 13 and later, in an older file",
        (Flavor::Redis, 33) => "GCRA (Redis 8.8+ rate limiter state): not decoded",
        (Flavor::Valkey, 23) => {
            "PATH_HASH (Valkey 9.2): not decoded yet, its layout could not be confirmed"
        }
        _ => "an unknown value type",
    };
    Err(RdbError::Unsupported {
        offset: record_at,
        version: dialect.version,
        what: format!(
            "key `{}`: value type {type_id} = {meaning} ({:?} dialect)",
            super::error::display_key(key),
            dialect.flavor
        ),
    })
}

/// `count` then `count` strings (linked lists, hashtable sets).
fn read_strings<R: BufRead>(
    src: &mut Source<R>,
    what: &'static str,
    out: &mut Vec<Bytes>,
) -> Result<(), RdbError> {
    let count = src.read_len(what)?;
    out.reserve(capacity(count));
    for _ in 0..count {
        out.push(src.read_string(what)?);
    }
    Ok(())
}
/// Type 3: members with scores as length-prefixed text (253 = NaN, 254 = +inf, 255 = -inf).
fn read_zset_text_scores<R: BufRead>(
    src: &mut Source<R>,
    key: &[u8],
    out: &mut Vec<(Bytes, f64)>,
) -> Result<(), RdbError> {
    let count = src.read_len("zset length")?;
    out.reserve(capacity(count));
    for _ in 0..count {
        let member = src.read_string("zset member")?;
        let at = src.offset();
        let score = match src.read_u8("zset score")? {
            253 => f64::NAN,
            254 => f64::INFINITY,
            255 => f64::NEG_INFINITY,
            len => {
                let bytes = src.read_bytes(usize::from(len), "zset score")?;
                text::parse_f64(&bytes).ok_or_else(|| RdbError::Invalid {
                    offset: at,
                    reason: format!(
                        "key `{}`: zset score is not a number",
                        super::error::display_key(key)
                    ),
                })?
            }
        };
        out.push((member, score));
    }
    Ok(())
}

/// Type 5: members with 8-byte little-endian binary scores.
fn read_zset_binary_scores<R: BufRead>(
    src: &mut Source<R>,
    out: &mut Vec<(Bytes, f64)>,
) -> Result<(), RdbError> {
    let count = src.read_len("zset length")?;
    out.reserve(capacity(count));
    for _ in 0..count {
        let member = src.read_string("zset member")?;
        let score = f64::from_le_bytes(src.read_array("zset score")?);
        out.push((member, score));
    }
    Ok(())
}

/// (member, score) pairs from a listpack or ziplist, scores stored as integers or text.
fn zset_pairs<'a>(
    mut items: impl Packed<'a>,
    out: &mut Vec<(Bytes, f64)>,
) -> Result<(), PackError> {
    out.reserve(items.expected() / 2);
    while let Some(member) = items.next_item()? {
        let at = items.position();
        let score = items.expect_item("zset member without a score")?;
        let score = score
            .as_f64()
            .ok_or(PackError::new(at, "zset score is not a number"))?;
        out.push((member.to_bytes(), score));
    }
    Ok(())
}

/// Type 14 (Redis 3.2–6.2): nodes, each a ziplist of elements.
fn read_quicklist<R: BufRead>(
    src: &mut Source<R>,
    key: &[u8],
    out: &mut Vec<Bytes>,
) -> Result<(), RdbError> {
    let nodes = src.read_len("quicklist node count")?;
    for _ in 0..nodes {
        packed(src, key, "ziplist of quicklist node", |data| {
            ziplist::elements_into(data, out)
        })?;
    }
    Ok(())
}

const CONTAINER_PLAIN: u64 = 1;
const CONTAINER_PACKED: u64 = 2;

/// Type 18 (Redis ≥ 7): nodes, each a listpack of elements or one plain (large) element.
fn read_quicklist2<R: BufRead>(
    src: &mut Source<R>,
    key: &[u8],
    out: &mut Vec<Bytes>,
) -> Result<(), RdbError> {
    let nodes = src.read_len("quicklist node count")?;
    for _ in 0..nodes {
        let at = src.offset();
        match src.read_len("quicklist container")? {
            CONTAINER_PLAIN => out.push(src.read_string("quicklist plain node")?),
            CONTAINER_PACKED => packed(src, key, "listpack of quicklist node", |data| {
                listpack::elements_into(data, out)
            })?,
            other => {
                return Err(RdbError::Invalid {
                    offset: at,
                    reason: format!(
                        "key `{}`: quicklist container {other} is neither 1 (plain) nor 2 (packed)",
                        super::error::display_key(key)
                    ),
                })
            }
        }
    }
    Ok(())
}
