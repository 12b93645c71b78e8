//! A streaming RDB decoder for Redis RDB versions 1–15 (Redis 1.x–8.10, Valkey ≤ 8) and Valkey's
//! `VALKEY080`/`VALKEY081`, producing the neutral [`Record`]s of [`crate::model`].
//!
//! Parts, in the order bytes flow through them:
//! - `input`: the caller's reader, or the LZ4 frame inside Valkey 9.2's compressed-stream
//!   (`VCS`) envelope, found from the first bytes;
//! - `source`: the [`BufRead`] wrapper that tracks the byte offset and the running CRC-64
//!   (`crc64`) and never allocates on a length's word alone;
//! - `strings`: length fields and strings (integer-encoded, LZF-compressed via `lzf`);
//! - this file: the magic, the opcode loop (AUX, FUNCTION2, SELECTDB, expiries, …) and the
//!   trailer check;
//! - `value`, `hash`, `stream`: one key's value by type byte, with the packed containers
//!   (`listpack`, `ziplist`, `intset`, `zipmap`; elements as `packed::Item`) parsed in place
//!   from the bytes of one string, integers turned into decimal text by `text`;
//! - `module`: the module type name inside a module id, for [`RdbError::Module`];
//! - `meta`: the keyless opcodes of RDB 13+ and Valkey 9 (key metadata, hash template
//!   records, slot imports), and `template`: the hash template value types;
//! - `error`: [`RdbError`], every variant with its byte offset;
//! - `readahead`: [`ReadAhead`], an optional reader for whole files that reads on a helper
//!   thread, one block ahead of the decoder.
//!
//! Decisions worth knowing:
//! - Module values (type 7) **and module aux data** (opcode 0xF7) are errors
//!   ([`RdbError::Module`], naming the module type): their bytes are opaque without the module,
//!   and silently dropping module aux data would make a backup look complete when it is not
//!   (the server itself refuses to load such a file without the module).
//! - Empty lists/sets/zsets/hashes are skipped, as the server's loader does; streams are kept.
//! - IDLE, FREQ, RESIZEDB and SLOT_INFO are hints and are skipped.
//! - Bytes after the checksum are not read: an RDB preamble in an AOF is followed by commands,
//!   and [`RdbReader::into_inner`] hands the reader back positioned right after the trailer.
//! - Type 22 is a Redis 7.4 pre-release hash with field TTLs in `REDIS` files and Valkey 9's
//!   `HASH_2` in `VALKEY` files, opcode 0xF3 is Redis's `KEY_META` or Valkey's `SLOT_IMPORT`,
//!   0xF2 Redis's `HASH_TEMPLATE` or Valkey's `UPDATE`: the magic decides (`Flavor`), before any
//!   type byte is read.
//! - Anything this decoder does not read — a value type or opcode newer than it, or one whose
//!   layout could not be confirmed — is an error naming the version, the byte and its offset
//!   ([`RdbError::Unsupported`]), never skipped. What is skipped on purpose: IDLE, FREQ,
//!   RESIZEDB, SLOT_INFO, Valkey's SLOT_IMPORT (cluster state), and key metadata whose class
//!   allows it (`ALLOW_IGNORE`, which a server without the class also skips).
//! - A stream's pending entry must be owned by one of its group's consumers (else `Invalid`);
//!   the stream's stored length field is not kept: the model counts the live entries.
//! - After an error the reader is spent: further calls return an error.

mod checksum;
mod crc64;
mod error;
mod hash;
mod input;
mod intset;
mod listpack;
mod lzf;
mod meta;
mod module;
mod packed;
mod readahead;
mod source;
mod stream;
mod strings;
mod template;
mod text;
mod value;
mod ziplist;
mod zipmap;

use std::io::BufRead;

use crate::model::{Entry, Record};

pub use error::RdbError;
use input::Input;
pub use input::{Envelope, ENVELOPE_LEN, ENVELOPE_PREFIX};
use meta::Templates;
pub use readahead::ReadAhead;
use source::Source;

const OP_FUNCTION2: u8 = 0xF5;
const OP_FUNCTION_PRE_GA: u8 = 0xF6;
const OP_MODULE_AUX: u8 = 0xF7;
const OP_IDLE: u8 = 0xF8;
const OP_FREQ: u8 = 0xF9;
const OP_AUX: u8 = 0xFA;
const OP_RESIZEDB: u8 = 0xFB;
const OP_EXPIRETIME_MS: u8 = 0xFC;
const OP_EXPIRETIME: u8 = 0xFD;
const OP_SELECTDB: u8 = 0xFE;
const OP_EOF: u8 = 0xFF;
const OP_SLOT_INFO: u8 = 0xF4;
/// Redis RDB ≥ 13 `KEY_META`; Valkey RDB ≥ 80 `SLOT_IMPORT`.
const OP_KEY_META_OR_SLOT_IMPORT: u8 = 0xF3;
/// Redis RDB ≥ 14 `HASH_TEMPLATE`; Valkey RDB 81 `UPDATE`.
const OP_HASH_TEMPLATE_OR_UPDATE: u8 = 0xF2;
/// The first Redis RDB version with opcodes 0xF3 and 0xF2.
const FIRST_REDIS_KEY_META_VERSION: u32 = 13;

/// The first version with a CRC-64 trailer.
const FIRST_CHECKSUMMED_VERSION: u32 = 5;
const MAX_REDIS_VERSION: u32 = 15;
const VALKEY_VERSIONS: std::ops::RangeInclusive<u32> = 80..=81;

/// Which server family wrote the file: a few type ids mean different things in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    Redis,
    Valkey,
}

/// Whether the CRC-64 trailer was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumStatus {
    /// The end of the file has not been reached yet.
    Pending,
    /// The trailer matched the bytes.
    Verified,
    /// No checksum to check: version < 5, or an all-zero trailer (`rdbchecksum no`).
    NotPresent,
}

/// Reads an RDB record by record from a [`BufRead`].
pub struct RdbReader<R: BufRead> {
    src: Source<Input<R>>,
    version: u32,
    flavor: Flavor,
    envelope: Option<Envelope>,
    /// Hash templates declared by `HASH_TEMPLATE` records so far.
    templates: Templates,
    db: u32,
    /// An expiry opcode applies to the next key only.
    pending_expire: Option<i64>,
    checksum: ChecksumStatus,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Reading,
    Done,
    Failed,
}

impl<R: BufRead> RdbReader<R> {
    /// Reads and checks the 9-byte magic (`REDIS0001`..`REDIS0015`, `VALKEY080`/`VALKEY081`),
    /// first unwrapping Valkey's compressed-stream envelope when the file starts with one.
    pub fn new(reader: R) -> Result<Self, RdbError> {
        let (input, envelope) = Input::open(reader)?;
        let mut src = Source::new(input);
        let magic: [u8; 9] = src.read_array("the 9-byte magic")?;
        let (flavor, digits) = if magic.starts_with(b"REDIS") {
            (Flavor::Redis, &magic[5..])
        } else if magic.starts_with(b"VALKEY") {
            (Flavor::Valkey, &magic[6..])
        } else {
            return Err(RdbError::Invalid {
                offset: 0,
                reason: format!(
                    "not an RDB file: magic {:?}",
                    String::from_utf8_lossy(&magic)
                ),
            });
        };
        let version = std::str::from_utf8(digits)
            .ok()
            .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse::<u32>().ok())
            .ok_or_else(|| RdbError::Invalid {
                offset: 0,
                reason: format!(
                    "RDB version {:?} is not a number",
                    String::from_utf8_lossy(digits)
                ),
            })?;
        let supported = match flavor {
            Flavor::Redis => (1..=MAX_REDIS_VERSION).contains(&version),
            Flavor::Valkey => VALKEY_VERSIONS.contains(&version),
        };
        if !supported {
            return Err(RdbError::UnsupportedVersion { version });
        }
        Ok(RdbReader {
            src,
            version,
            flavor,
            envelope,
            templates: Templates::new(),
            db: 0,
            pending_expire: None,
            checksum: ChecksumStatus::Pending,
            state: State::Reading,
        })
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    /// The compressed-stream envelope the RDB was read from, if any.
    pub fn envelope(&self) -> Option<Envelope> {
        self.envelope
    }

    /// Bytes consumed from the start of the file (of the decompressed RDB, inside an envelope).
    pub fn offset(&self) -> u64 {
        self.src.offset()
    }

    pub fn checksum(&self) -> ChecksumStatus {
        self.checksum
    }

    /// The inner reader, positioned exactly after the last byte decoded (after the 8-byte
    /// checksum once [`next_record`](Self::next_record) has returned `Ok(None)`) — except
    /// inside a compressed envelope, where it is wherever the LZ4 decoder stopped.
    pub fn into_inner(self) -> R {
        self.src.into_inner().into_inner()
    }

    /// Next record in file order; `Ok(None)` after the EOF opcode and the checksum were read
    /// and verified.
    pub fn next_record(&mut self) -> Result<Option<Record>, RdbError> {
        match self.state {
            State::Done => return Ok(None),
            State::Failed => {
                return Err(RdbError::Invalid {
                    offset: self.src.offset(),
                    reason: "the decoder already failed on this input".to_owned(),
                })
            }
            State::Reading => {}
        }
        match self.read_record() {
            Ok(record) => {
                if record.is_none() {
                    self.state = State::Done;
                }
                Ok(record)
            }
            Err(e) => {
                self.state = State::Failed;
                Err(e)
            }
        }
    }

    fn read_record(&mut self) -> Result<Option<Record>, RdbError> {
        loop {
            self.src.checkpoint()?;
            let at = self.src.offset();
            let op = self.src.read_u8("an opcode or value type")?;
            match op {
                OP_EOF => return self.read_trailer().map(|()| None),
                OP_SELECTDB => {
                    let db = self.src.read_len("SELECTDB database number")?;
                    self.db = u32::try_from(db).map_err(|_| RdbError::Invalid {
                        offset: at,
                        reason: format!("database number {db} out of range"),
                    })?;
                }
                OP_EXPIRETIME => {
                    let seconds = i32::from_le_bytes(self.src.read_array("EXPIRETIME seconds")?);
                    self.pending_expire = Some(i64::from(seconds) * 1000);
                }
                OP_EXPIRETIME_MS => self.pending_expire = Some(self.src.read_i64_le("EXPIRETIME_MS")?),
                OP_RESIZEDB => {
                    self.src.read_len("RESIZEDB database size")?;
                    self.src.read_len("RESIZEDB expires size")?;
                }
                OP_SLOT_INFO => {
                    for _ in 0..3 {
                        self.src.read_len("SLOT_INFO field")?;
                    }
                }
                OP_IDLE => {
                    self.src.read_len("IDLE seconds")?;
                }
                OP_FREQ => {
                    self.src.read_u8("FREQ counter")?;
                }
                OP_AUX => {
                    let key = self.src.read_string("AUX key")?;
                    let value = self.src.read_string("AUX value")?;
                    return Ok(Some(Record::Aux { key, value }));
                }
                OP_FUNCTION2 => {
                    let code = self.src.read_string("FUNCTION2 library code")?;
                    return Ok(Some(Record::Function { code }));
                }
                OP_FUNCTION_PRE_GA => {
                    return Err(RdbError::Invalid {
                        offset: at,
                        reason: "functions in the Redis 7.0 release-candidate format (opcode 0xF6) are not supported"
                            .to_owned(),
                    })
                }
                OP_MODULE_AUX => {
                    let id = self.src.read_len("module aux id")?;
                    return Err(RdbError::Module { offset: at, key: String::new(), module: module::module_name(id) });
                }
                OP_KEY_META_OR_SLOT_IMPORT | OP_HASH_TEMPLATE_OR_UPDATE => self.read_dialect_opcode(op, at)?,
                0xF0..=0xF1 => return Err(self.unsupported_opcode(op, at, "an unknown opcode")),
                type_id => {
                    let key = self.src.read_string("key")?;
                    let expire_at_ms = self.pending_expire.take();
                    let dialect = value::Dialect { flavor: self.flavor, version: self.version, templates: &self.templates };
                    if let Some(value) = value::read_value(&mut self.src, at, type_id, &dialect, &key)? {
                        return Ok(Some(Record::Entry(Entry { db: self.db, key, value, expire_at_ms })));
                    }
                }
            }
        }
    }

    /// Opcodes 0xF3 and 0xF2, whose meaning depends on who wrote the file.
    fn read_dialect_opcode(&mut self, op: u8, at: u64) -> Result<(), RdbError> {
        match (self.flavor, op) {
            (Flavor::Redis, _) if self.version < FIRST_REDIS_KEY_META_VERSION => {
                Err(self.unsupported_opcode(op, at, "not defined before RDB 13"))
            }
            (Flavor::Redis, OP_KEY_META_OR_SLOT_IMPORT) => {
                meta::skip_key_meta(&mut self.src, at, self.version)
            }
            (Flavor::Redis, _) => meta::read_hash_template(&mut self.src, at, &mut self.templates),
            (Flavor::Valkey, OP_KEY_META_OR_SLOT_IMPORT) => meta::skip_slot_import(&mut self.src),
            (Flavor::Valkey, _) => Err(self.unsupported_opcode(
                op,
                at,
                "Valkey UPDATE (an inline command of a forkless save): not decoded",
            )),
        }
    }

    fn unsupported_opcode(&self, op: u8, at: u64, meaning: &str) -> RdbError {
        RdbError::Unsupported {
            offset: at,
            version: self.version,
            what: format!("opcode {op:#04x} ({meaning}, {:?} dialect)", self.flavor),
        }
    }

    /// After the EOF opcode: the 8-byte little-endian CRC-64 of everything before it, from
    /// version 5 on.
    fn read_trailer(&mut self) -> Result<(), RdbError> {
        if self.version < FIRST_CHECKSUMMED_VERSION {
            self.checksum = ChecksumStatus::NotPresent;
            return Ok(());
        }
        let actual = self.src.crc()?;
        let at = self.src.offset();
        let expected = u64::from_le_bytes(self.src.read_array("the 8-byte checksum")?);
        if expected == 0 {
            self.checksum = ChecksumStatus::NotPresent;
        } else if expected == actual {
            self.checksum = ChecksumStatus::Verified;
        } else {
            return Err(RdbError::ChecksumMismatch {
                offset: at,
                expected,
                actual,
            });
        }
        Ok(())
    }
}

/// Decodes a whole in-memory RDB. Bytes after the trailer are ignored.
pub fn decode_all(bytes: &[u8]) -> Result<Vec<Record>, RdbError> {
    let mut reader = RdbReader::new(bytes)?;
    let mut out = Vec::new();
    while let Some(record) = reader.next_record()? {
        out.push(record);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
