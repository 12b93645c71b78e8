//! Redis hash templates (RDB ≥ 14): hashes whose field names live once per file, in a
//! `HASH_TEMPLATE` record ([`super::meta`]), and whose keys store only their values, in the
//! template's field order. All of them decode to a plain [`crate::model::Value::Hash`].
//!
//! | type | payload |
//! |---|---|
//! | 30 `HASH_TMPL_LP_REF` | one string holding a listpack: the template id, then the values |
//! | 31 `HASH_TMPL_ARRAY` | `count`, then field, value strings (self-contained, used by DUMP) |
//! | 32 `HASH_TMPL_ARRAY_REF` | `template_id:len`, then one value string per template field |
//! | 29 `HASH_TMPL_LP` | self-contained listpack form (DUMP only): not decoded, an error |
//!
//! Source status: these layouts come from descriptions of Redis 8.8/8.10 `rdb.c` by third
//! parties that agree with each other (and with byte strings in a Redis test suite for 30 and
//! 32), not from Redis's own source, which was not available here. For type 29 those
//! descriptions disagree, so it is refused rather than guessed ([`RdbError::Unsupported`]).

use std::io::BufRead;

use crate::model::HashField;

use super::error::{display_key, PackError, RdbError};
use super::listpack::Listpack;
use super::meta::Templates;
use super::packed::Packed;
use super::source::{packed, Source};

pub(crate) const HASH_TMPL_LP: u8 = 29;
pub(crate) const HASH_TMPL_LP_REF: u8 = 30;
pub(crate) const HASH_TMPL_ARRAY: u8 = 31;
pub(crate) const HASH_TMPL_ARRAY_REF: u8 = 32;

pub(crate) fn read_template_hash<R: BufRead>(
    src: &mut Source<R>,
    record_at: u64,
    type_id: u8,
    version: u32,
    templates: &Templates,
    key: &[u8],
    out: &mut Vec<HashField>,
) -> Result<(), RdbError> {
    match type_id {
        HASH_TMPL_ARRAY => {
            let count = src.read_len("template hash length")?;
            for _ in 0..count {
                let field = src.read_string("template hash field")?;
                let value = src.read_string("template hash value")?;
                out.push(plain(field, value));
            }
            Ok(())
        }
        HASH_TMPL_ARRAY_REF => {
            let at = src.offset();
            let id = src.read_len("hash template id")?;
            let fields = lookup(templates, id, at, key)?;
            for field in fields {
                let value = src.read_string("template hash value")?;
                out.push(plain(field.clone(), value));
            }
            Ok(())
        }
        HASH_TMPL_LP_REF => packed(src, key, "listpack of template hash", |data| {
            let mut lp = Listpack::new(data)?;
            let at = lp.position();
            let id = lp
                .expect_item("template hash listpack without a template id")?
                .as_i64()
                .and_then(|id| u64::try_from(id).ok())
                .ok_or(PackError::new(at, "template hash id is not a number"))?;
            let fields = templates.get(&id).ok_or(PackError::new(
                at,
                "template hash refers to an undeclared template",
            ))?;
            for field in fields {
                let value = lp.expect_item("template hash has fewer values than its template")?;
                out.push(plain(field.clone(), value.to_bytes()));
            }
            if lp.next_item()?.is_some() {
                return Err(PackError::new(
                    lp.position(),
                    "template hash has more values than its template",
                ));
            }
            Ok(())
        }),
        _ => Err(RdbError::Unsupported {
            offset: record_at,
            version,
            what: format!(
                "key `{}`: value type {type_id} (HASH_TMPL_LP, a DUMP-only template hash) is not \
                 decoded: its layout could not be confirmed",
                display_key(key)
            ),
        }),
    }
}

fn lookup<'t>(
    templates: &'t Templates,
    id: u64,
    at: u64,
    key: &[u8],
) -> Result<&'t [Vec<u8>], RdbError> {
    templates
        .get(&id)
        .map(Vec::as_slice)
        .ok_or_else(|| RdbError::Invalid {
            offset: at,
            reason: format!(
                "key `{}`: refers to hash template {id}, which no HASH_TEMPLATE record declared",
                display_key(key)
            ),
        })
}

fn plain(field: Vec<u8>, value: Vec<u8>) -> HashField {
    HashField {
        field,
        value,
        expire_at_ms: None,
    }
}
