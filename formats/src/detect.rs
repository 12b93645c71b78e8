//! Which format a server file is, from its first bytes (and, where bytes cannot tell, its name).
//!
//! | first bytes | format |
//! |---|---|
//! | `KEVYSNAP` + version byte | kevy snapshot |
//! | `KEVYAOF1\n` | kevy AOF |
//! | `REDIS` + 4 digits, `VALKEY` + 3 digits | RDB; a Redis AOF with an RDB preamble when the name ends in `.aof` |
//! | `VCS` (Valkey 9.2 compressed-stream envelope) | RDB, version 0 = not readable from the head (the RDB is inside an LZ4 frame); whatever the name |
//! | `*` or `#` | Redis AOF, or a kevy AOF without header when named `aof-<n>.aof` |
//! | `file ` or a name ending in `.manifest` | Redis AOF manifest |
//!
//! Pass at least the first 16 bytes; an empty file is an AOF when its name says so (an empty
//! incr file is normal), else unknown.

/// A detected file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// An RDB file (Redis `REDIS00vv` or Valkey `VALKEYvvv`), or one wrapped in Valkey's
    /// compressed-stream envelope, whose version cannot be seen in its first bytes: then
    /// `version` is 0. [`crate::rdb::RdbReader`] reads both.
    Rdb {
        version: u32,
    },
    /// A kevy `KEVYSNAP` snapshot (`dump-{i}.rdb`).
    KevySnap {
        version: u8,
    },
    /// A kevy AOF (`aof-{i}.aof`), with or without its `KEVYAOF1` header.
    KevyAof,
    /// A Redis AOF (an incr file, a RESP base, or a legacy single-file AOF).
    RedisAof {
        rdb_preamble: bool,
    },
    /// A Redis ≥ 7 multi-part AOF manifest.
    AofManifest,
    Unknown,
}

/// Detect the format of a file from its first bytes `head` and its name (no directory needed).
pub fn detect(head: &[u8], file_name: &str) -> FileFormat {
    if let Some(rest) = head.strip_prefix(b"KEVYSNAP") {
        return match rest.first() {
            Some(&version) => FileFormat::KevySnap { version },
            None => FileFormat::Unknown,
        };
    }
    if head.starts_with(crate::aof::KEVY_AOF_MAGIC) {
        return FileFormat::KevyAof;
    }
    if head.starts_with(crate::rdb::ENVELOPE_PREFIX) {
        // Valkey does not (yet) compress AOF preambles, so a `.aof` name does not make this an
        // AOF: the whole file is one compressed RDB.
        return FileFormat::Rdb { version: 0 };
    }
    if let Some(version) = rdb_version(head) {
        return if file_name.ends_with(".aof") {
            FileFormat::RedisAof { rdb_preamble: true }
        } else {
            FileFormat::Rdb { version }
        };
    }
    if file_name.ends_with(".manifest") || head.starts_with(b"file ") {
        return FileFormat::AofManifest;
    }
    let resp_like = matches!(head.first(), Some(b'*' | b'#'));
    if resp_like || (head.is_empty() && file_name.ends_with(".aof")) {
        return if is_kevy_aof_name(file_name) {
            FileFormat::KevyAof
        } else {
            FileFormat::RedisAof {
                rdb_preamble: false,
            }
        };
    }
    FileFormat::Unknown
}

/// Whether a file starting with `head` (at least 9 bytes when available) is an RDB for the
/// RDB decoder: `REDIS` or `VALKEY` magic, or Valkey's compressed-stream envelope. Meant for
/// callers that choose between RDB and RESP for an AOF base file.
pub fn is_rdb_head(head: &[u8]) -> bool {
    head.starts_with(crate::rdb::ENVELOPE_PREFIX) || rdb_version(head).is_some()
}

/// The version of an RDB header: `REDIS` + 4 digits or `VALKEY` + 3 digits.
fn rdb_version(head: &[u8]) -> Option<u32> {
    let digits = if let Some(d) = head.strip_prefix(b"REDIS") {
        d.get(..4)?
    } else {
        head.strip_prefix(b"VALKEY")?.get(..3)?
    };
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// `aof-<digits>.aof`, kevy's per-shard AOF name.
fn is_kevy_aof_name(name: &str) -> bool {
    name.strip_prefix("aof-")
        .and_then(|rest| rest.strip_suffix(".aof"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_is_told_apart() {
        assert_eq!(
            detect(b"KEVYSNAP\x04\x00", "dump-0.rdb"),
            FileFormat::KevySnap { version: 4 }
        );
        assert_eq!(detect(b"KEVYAOF1\n", "aof-0.aof"), FileFormat::KevyAof);
        assert_eq!(
            detect(b"*1\r\n$4\r\nPING\r\n", "aof-3.aof"),
            FileFormat::KevyAof
        );
        assert_eq!(
            detect(b"REDIS0010\xfa", "dump.rdb"),
            FileFormat::Rdb { version: 10 }
        );
        assert_eq!(
            detect(b"VALKEY080\xfa", "dump.rdb"),
            FileFormat::Rdb { version: 80 }
        );
        assert_eq!(
            detect(b"REDIS0009\xfa", "appendonly.aof"),
            FileFormat::RedisAof { rdb_preamble: true }
        );
        assert_eq!(
            detect(b"#TS:1\r\n", "appendonly.aof.1.incr.aof"),
            FileFormat::RedisAof {
                rdb_preamble: false
            }
        );
        assert_eq!(
            detect(b"", "appendonly.aof.2.incr.aof"),
            FileFormat::RedisAof {
                rdb_preamble: false
            }
        );
        assert_eq!(
            detect(b"file a seq 1 type b\n", "x"),
            FileFormat::AofManifest
        );
        assert_eq!(
            detect(b"", "appendonly.aof.manifest"),
            FileFormat::AofManifest
        );
        assert_eq!(
            detect(
                b"VCS\x01\x01\x01\x00\x00\x04\x22\x4d\x18",
                "appendonly.aof.1.base.rdb"
            ),
            FileFormat::Rdb { version: 0 }
        );
        assert!(is_rdb_head(b"VCS\x01\x01\x01\x00\x00"));
        assert!(is_rdb_head(b"VALKEY081"));
        assert!(!is_rdb_head(b"*1\r\n$4\r\n"));
        assert_eq!(detect(b"REDISxxxx", "dump.rdb"), FileFormat::Unknown);
        assert_eq!(detect(b"", "dump.rdb"), FileFormat::Unknown);
        assert_eq!(detect(b"hello", "notes.txt"), FileFormat::Unknown);
    }
}
