//! The decoder's error type. Every variant that can happen mid-file carries the byte offset
//! (from the start of the file) where the problem was found, so a caller can say "corrupt at
//! byte N" and a test can assert where a truncated file ends.

/// Why an RDB could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum RdbError {
    /// The underlying reader failed.
    #[error("I/O error at byte {offset}: {source}")]
    Io {
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    /// The input ended in the middle of something (`context` says what was being read).
    #[error("input ends at byte {offset} while reading {context}")]
    Truncated { offset: u64, context: String },
    /// The bytes are not a valid RDB.
    #[error("invalid RDB at byte {offset}: {reason}")]
    Invalid { offset: u64, reason: String },
    /// Something the file's version defines that this decoder does not read (a newer value
    /// type or opcode, or one whose layout could not be confirmed): `what` names the byte and
    /// its meaning, `offset` is where it starts.
    #[error("unsupported content at byte {offset} of an RDB version {version} file: {what}")]
    Unsupported {
        offset: u64,
        version: u32,
        what: String,
    },
    /// A magic/version this decoder does not read (Redis 1–15, Valkey 80–81 are read).
    #[error("unsupported RDB version {version}")]
    UnsupportedVersion { version: u32 },
    /// A module value (type 7) or module aux data (opcode 0xF7): its bytes are opaque without
    /// the module, so they cannot be turned into commands. `module` is the 9-character module
    /// type name decoded from the module id; `key` is the key (lossy UTF-8), empty for aux data.
    #[error(
        "module data at byte {offset}: key `{key}` holds a value of module type `{module}`, which \
         cannot be decoded without that module (an empty key means module aux data)"
    )]
    Module {
        offset: u64,
        key: String,
        module: String,
    },
    /// The CRC-64 trailer does not match the bytes: `expected` is the value stored in the file,
    /// `actual` the one computed over the bytes read; `offset` is where the trailer starts.
    #[error(
        "checksum mismatch at byte {offset}: the file says {expected:#018x}, its bytes give {actual:#018x}"
    )]
    ChecksumMismatch {
        offset: u64,
        expected: u64,
        actual: u64,
    },
}

impl RdbError {
    /// The byte offset the error refers to, when it has one.
    pub fn offset(&self) -> Option<u64> {
        match self {
            RdbError::Io { offset, .. }
            | RdbError::Truncated { offset, .. }
            | RdbError::Invalid { offset, .. }
            | RdbError::Module { offset, .. }
            | RdbError::Unsupported { offset, .. }
            | RdbError::ChecksumMismatch { offset, .. } => Some(*offset),
            RdbError::UnsupportedVersion { .. } => None,
        }
    }
}

/// A problem inside a packed container (listpack, ziplist, intset, zipmap, stream node) that is
/// parsed from an in-memory string. `at` is the position inside that string; the caller turns
/// it into an [`RdbError::Invalid`] at the offset of the enclosing string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PackError {
    pub(crate) at: usize,
    pub(crate) reason: &'static str,
}

impl PackError {
    pub(crate) fn new(at: usize, reason: &'static str) -> Self {
        PackError { at, reason }
    }

    /// The public error for this problem, inside a `what` (e.g. "listpack of hash") that starts
    /// at file offset `offset`, for key `key`.
    pub(crate) fn into_rdb(self, offset: u64, what: &str, key: &[u8]) -> RdbError {
        RdbError::Invalid {
            offset,
            reason: format!(
                "key `{}`: {what}: {} (at byte {} of the encoded value)",
                display_key(key),
                self.reason,
                self.at
            ),
        }
    }
}

/// A key for error messages: lossy UTF-8, shortened when long.
pub(crate) fn display_key(key: &[u8]) -> String {
    const MAX: usize = 80;
    if key.len() <= MAX {
        String::from_utf8_lossy(key).into_owned()
    } else {
        format!(
            "{}… ({} bytes)",
            String::from_utf8_lossy(&key[..MAX]),
            key.len()
        )
    }
}
