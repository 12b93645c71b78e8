//! Opcodes of RDB 13+ (Redis 8.6+) and Valkey 9 that carry no key of their own:
//!
//! | byte | Redis (RDB ≥ 13) | Valkey (RDB ≥ 80) |
//! |---|---|---|
//! | 0xF3 | `KEY_META`: module metadata of the next key | `SLOT_IMPORT`: an atomic slot migration in progress |
//! | 0xF2 | `HASH_TEMPLATE`: one hash template (field names) | `UPDATE` (9.2): not decoded, an error |
//!
//! `KEY_META` (Redis `keymeta.c`, `rdbSaveKeyMetadata`): `num_classes:len`, then per class a
//! 32-bit class spec (4 raw bytes, little-endian: 24 bits of name — 4 characters of 6 bits from
//! the module-name alphabet —, 5 bits of version, 3 bits of flags), a value in the module
//! serialisation format (`opcode:len` + datum, until opcode 0). Flag bit 0, `ALLOW_IGNORE`,
//! lets a server without the class skip the value; Redis does so, and so does this reader. A
//! class without it makes Redis refuse the file unless its module is loaded, so it is an
//! error here too ([`RdbError::Unsupported`]).
//!
//! `HASH_TEMPLATE`: `template_id:len`, `count:len`, `count` field-name strings. Keys of types
//! 30 and 32 refer to the id (see [`super::template`]).
//!
//! `SLOT_IMPORT` (Valkey `cluster_migrateslots.c`): a job name string, `ranges:len`, then
//! `start:len end:len` per range. It is cluster state, not data: skipped.

use std::collections::HashMap;
use std::io::BufRead;

use crate::model::Bytes;

use super::error::RdbError;
use super::source::{capacity, Source};

/// The character set of key metadata class names (`keyMetaCharSet`; note `_-`, where module
/// type names use `-_`).
const NAME_CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
/// `KEY_META_FLAG_ALLOW_IGNORE`, bit 0 of the class spec's flags.
const ALLOW_IGNORE: u32 = 1;
/// Redis allows at most 7 metadata classes per key (ids 1..=7).
const MAX_META_CLASSES: u64 = 7;

/// Hash templates by id, as declared by `HASH_TEMPLATE` records so far.
pub(crate) type Templates = HashMap<u64, Vec<Bytes>>;

/// One key metadata class spec, decoded.
struct ClassSpec {
    name: String,
    version: u32,
    flags: u32,
}

fn decode_class_spec(raw: u32) -> ClassSpec {
    let flags = raw & 0x7;
    let version = (raw >> 3) & 0x1F;
    let mut bits = raw >> 8;
    let mut name = [0u8; 4];
    for slot in name.iter_mut().rev() {
        *slot = NAME_CHARS[(bits & 0x3F) as usize];
        bits >>= 6;
    }
    ClassSpec {
        name: String::from_utf8_lossy(&name).into_owned(),
        version,
        flags,
    }
}

/// Redis `KEY_META` (the opcode byte already read at `at`): skips ignorable classes, fails on
/// the others.
pub(crate) fn skip_key_meta<R: BufRead>(
    src: &mut Source<R>,
    at: u64,
    version: u32,
) -> Result<(), RdbError> {
    let classes = src.read_len("KEY_META class count")?;
    if classes > MAX_META_CLASSES {
        return Err(RdbError::Invalid {
            offset: at,
            reason: format!(
                "KEY_META declares {classes} classes, at most {MAX_META_CLASSES} exist"
            ),
        });
    }
    for _ in 0..classes {
        let spec_at = src.offset();
        let spec = decode_class_spec(u32::from_le_bytes(src.read_array("KEY_META class spec")?));
        if spec.flags & ALLOW_IGNORE == 0 {
            return Err(RdbError::Unsupported {
                offset: spec_at,
                version,
                what: format!(
                    "key metadata of class `META-{}` (version {}) that a server without its \
                     module refuses to load (opcode 0xF3, flag ALLOW_IGNORE not set)",
                    spec.name, spec.version
                ),
            });
        }
        skip_module_value(src)?;
    }
    Ok(())
}

/// A value in the module serialisation format, up to and including its EOF opcode (0).
pub(crate) fn skip_module_value<R: BufRead>(src: &mut Source<R>) -> Result<(), RdbError> {
    loop {
        let at = src.offset();
        match src.read_len("module value opcode")? {
            0 => return Ok(()),
            1 | 2 => {
                src.read_len("module integer")?;
            }
            3 => {
                src.read_array::<4>("module float")?;
            }
            4 => {
                src.read_array::<8>("module double")?;
            }
            5 => {
                src.with_string("module string", |_| ())?;
            }
            other => {
                return Err(RdbError::Invalid {
                    offset: at,
                    reason: format!("unknown module value opcode {other}"),
                })
            }
        }
    }
}

/// Redis `HASH_TEMPLATE`: adds one template to `templates`.
pub(crate) fn read_hash_template<R: BufRead>(
    src: &mut Source<R>,
    at: u64,
    templates: &mut Templates,
) -> Result<(), RdbError> {
    let id = src.read_len("hash template id")?;
    let count = src.read_len("hash template field count")?;
    let mut fields = Vec::with_capacity(capacity(count));
    for _ in 0..count {
        fields.push(src.read_string("hash template field")?);
    }
    if fields.is_empty() {
        return Err(RdbError::Invalid {
            offset: at,
            reason: format!("hash template {id} has no fields"),
        });
    }
    if templates.insert(id, fields).is_some() {
        return Err(RdbError::Invalid {
            offset: at,
            reason: format!("hash template {id} declared twice"),
        });
    }
    Ok(())
}

/// Valkey `SLOT_IMPORT`: skipped (cluster migration state).
pub(crate) fn skip_slot_import<R: BufRead>(src: &mut Source<R>) -> Result<(), RdbError> {
    src.with_string("SLOT_IMPORT job name", |_| ())?;
    let ranges = src.read_len("SLOT_IMPORT range count")?;
    for _ in 0..ranges {
        src.read_len("SLOT_IMPORT range start")?;
        src.read_len("SLOT_IMPORT range end")?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The encoding of `keyMetaClassEncode`: 4 characters of 6 bits, 5 bits of version, 3 of
    /// flags.
    pub(crate) fn encode_class_spec(name: &[u8; 4], version: u32, flags: u32) -> u32 {
        let mut bits = 0u32;
        for c in name {
            let index = NAME_CHARS.iter().position(|x| x == c).unwrap() as u32;
            bits = (bits << 6) | index;
        }
        ((bits << 5 | version) << 3) | flags
    }

    #[test]
    fn class_specs_round_trip() {
        let raw = encode_class_spec(b"BLES", 3, 1);
        let spec = decode_class_spec(raw);
        assert_eq!(spec.name, "BLES");
        assert_eq!(spec.version, 3);
        assert_eq!(spec.flags, 1);
    }
}
