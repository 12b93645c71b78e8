//! Streaming reader of `KEVYSNAP` snapshots, versions 2–4.
//!
//! Every length in the format is a `u32` that nothing else bounds, so the reader never trusts one
//! for an allocation: byte strings grow as their bytes actually arrive, and element vectors start
//! small. A 4 GiB length in a 100-byte file is a [`KevyError::Truncated`], not an allocation.

use std::io::{ErrorKind, Read};

use super::{op, KevyError, SNAPSHOT_MAGIC};
use crate::model::{
    Consumer, Entry, HashField, PendingEntry, Stream, StreamEntry, StreamGroup, StreamId, Value,
};

/// Versions whose TTLs are relative (remaining milliseconds at save time).
const RELATIVE_TTL_VERSION: u8 = 2;
/// First version carrying the stream consumer-group section.
const GROUPS_VERSION: u8 = 4;
/// Element vectors never pre-allocate more than this many slots.
const MAX_PREALLOC: usize = 1024;

/// Reads the entries of a kevy snapshot one by one.
pub struct KevySnapReader<R: Read> {
    r: R,
    offset: u64,
    version: u8,
    now_ms: i64,
    done: bool,
}

impl<R: Read> KevySnapReader<R> {
    /// Check the magic and the version. `now_ms` (unix ms) anchors the relative TTLs of version 2
    /// files, as kevy anchors them at load time; later versions store absolute deadlines.
    /// The reader issues many small reads: give it a `BufReader` over a file.
    pub fn new(r: R, now_ms: i64) -> Result<Self, KevyError> {
        let mut reader = KevySnapReader {
            r,
            offset: 0,
            version: 0,
            now_ms,
            done: false,
        };
        let mut magic = [0u8; 8];
        reader.fill(&mut magic, "magic")?;
        if &magic != SNAPSHOT_MAGIC {
            return Err(KevyError::Invalid {
                offset: 0,
                reason: format!("not a kevy snapshot: magic is {:?}", magic.escape_ascii()),
            });
        }
        let version = reader.u8("version")?;
        if !(RELATIVE_TTL_VERSION..=super::SNAPSHOT_VERSION).contains(&version) {
            return Err(KevyError::UnsupportedVersion { version });
        }
        reader.version = version;
        Ok(reader)
    }

    /// The snapshot's version byte (2, 3 or 4).
    pub fn version(&self) -> u8 {
        self.version
    }

    /// Bytes consumed so far; after an error, where the bad record started or the read stopped.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next entry, or `None` after the EOF record.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, KevyError> {
        if self.done {
            return Ok(None);
        }
        let op_offset = self.offset;
        let opcode = self.u8("record opcode")?;
        if opcode == op::EOF {
            self.done = true;
            return Ok(None);
        }
        if opcode > op::STREAM {
            return Err(KevyError::Invalid {
                offset: op_offset,
                reason: format!("unknown record opcode {opcode}"),
            });
        }
        let expire_at_ms = self.ttl()?;
        let key = self.bytes("key")?;
        let value = match opcode {
            op::STR => Value::String(self.bytes("string value")?),
            op::HASH => Value::Hash(self.hash()?),
            op::LIST => Value::List(self.byte_list("list")?),
            op::SET => Value::Set(self.byte_list("set")?),
            op::ZSET => Value::ZSet(self.zset()?),
            _ => Value::Stream(Box::new(self.stream()?)),
        };
        Ok(Some(Entry {
            db: 0,
            key,
            value,
            expire_at_ms,
        }))
    }

    fn ttl(&mut self) -> Result<Option<i64>, KevyError> {
        let flag_offset = self.offset;
        match self.u8("TTL flag")? {
            0 => Ok(None),
            1 => {
                let raw = self.u64("TTL")?;
                let raw = i64::try_from(raw).map_err(|_| KevyError::Invalid {
                    offset: flag_offset + 1,
                    reason: format!("TTL {raw} is out of range"),
                })?;
                Ok(Some(if self.version == RELATIVE_TTL_VERSION {
                    self.now_ms.saturating_add(raw)
                } else {
                    raw
                }))
            }
            flag => Err(KevyError::Invalid {
                offset: flag_offset,
                reason: format!("TTL flag is {flag}, expected 0 or 1"),
            }),
        }
    }

    fn hash(&mut self) -> Result<Vec<HashField>, KevyError> {
        let n = self.u32("hash length")?;
        let mut fields = Vec::with_capacity(prealloc(n));
        for _ in 0..n {
            let field = self.bytes("hash field")?;
            let value = self.bytes("hash value")?;
            fields.push(HashField {
                field,
                value,
                expire_at_ms: None,
            });
        }
        Ok(fields)
    }

    fn byte_list(&mut self, context: &'static str) -> Result<Vec<Vec<u8>>, KevyError> {
        let n = self.u32(context)?;
        let mut items = Vec::with_capacity(prealloc(n));
        for _ in 0..n {
            items.push(self.bytes(context)?);
        }
        Ok(items)
    }

    fn zset(&mut self) -> Result<Vec<(Vec<u8>, f64)>, KevyError> {
        let n = self.u32("zset length")?;
        let mut pairs = Vec::with_capacity(prealloc(n));
        for _ in 0..n {
            let member = self.bytes("zset member")?;
            let score = f64::from_bits(self.u64("zset score")?);
            pairs.push((member, score));
        }
        Ok(pairs)
    }

    fn stream(&mut self) -> Result<Stream, KevyError> {
        let last_id = self.stream_id("stream last id")?;
        let max_deleted_id = self.stream_id("stream max deleted id")?;
        let entries_added = self.u64("stream entries added")?;
        let n = self.u32("stream length")?;
        let mut entries = Vec::with_capacity(prealloc(n));
        for _ in 0..n {
            let id = self.stream_id("stream entry id")?;
            let nf = self.u32("stream entry field count")?;
            let mut fields = Vec::with_capacity(prealloc(nf));
            for _ in 0..nf {
                let field = self.bytes("stream entry field")?;
                let value = self.bytes("stream entry value")?;
                fields.push((field, value));
            }
            entries.push(StreamEntry { id, fields });
        }
        let groups = if self.version >= GROUPS_VERSION {
            self.groups()?
        } else {
            Vec::new()
        };
        Ok(Stream {
            first_id: entries.first().map(|e| e.id).unwrap_or_default(),
            entries,
            last_id,
            max_deleted_id,
            entries_added,
            groups,
        })
    }

    fn groups(&mut self) -> Result<Vec<StreamGroup>, KevyError> {
        let n = self.u32("consumer group count")?;
        let mut groups = Vec::with_capacity(prealloc(n));
        for _ in 0..n {
            let name = self.bytes("consumer group name")?;
            let last_delivered = self.stream_id("consumer group last delivered id")?;
            let nc = self.u32("consumer count")?;
            let mut consumers = Vec::with_capacity(prealloc(nc));
            for _ in 0..nc {
                let name = self.bytes("consumer name")?;
                let seen_time_ms = self.u64("consumer seen time")?;
                consumers.push(Consumer {
                    name,
                    seen_time_ms,
                    active_time_ms: None,
                });
            }
            let np = self.u32("pending entry count")?;
            let mut pending = Vec::with_capacity(prealloc(np));
            for _ in 0..np {
                let id = self.stream_id("pending entry id")?;
                let consumer = self.bytes("pending entry consumer")?;
                let delivery_time_ms = self.u64("pending entry delivery time")?;
                let delivery_count = u64::from(self.u32("pending entry delivery count")?);
                pending.push(PendingEntry {
                    id,
                    consumer,
                    delivery_time_ms,
                    delivery_count,
                });
            }
            groups.push(StreamGroup {
                name,
                last_delivered,
                entries_read: None,
                pending,
                consumers,
            });
        }
        Ok(groups)
    }

    fn stream_id(&mut self, context: &'static str) -> Result<StreamId, KevyError> {
        Ok(StreamId {
            ms: self.u64(context)?,
            seq: self.u64(context)?,
        })
    }

    /// A `u32le` length followed by that many bytes, read as they come (see the module doc).
    fn bytes(&mut self, context: &'static str) -> Result<Vec<u8>, KevyError> {
        let len = u64::from(self.u32(context)?);
        let mut out = Vec::with_capacity(prealloc_bytes(len));
        let got = (&mut self.r)
            .take(len)
            .read_to_end(&mut out)
            .map_err(|source| KevyError::Io {
                offset: self.offset,
                source,
            })?;
        self.offset += got as u64;
        if (got as u64) < len {
            return Err(KevyError::Truncated {
                offset: self.offset,
                context,
            });
        }
        Ok(out)
    }

    fn u8(&mut self, context: &'static str) -> Result<u8, KevyError> {
        let mut b = [0u8; 1];
        self.fill(&mut b, context)?;
        Ok(b[0])
    }

    fn u32(&mut self, context: &'static str) -> Result<u32, KevyError> {
        let mut b = [0u8; 4];
        self.fill(&mut b, context)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self, context: &'static str) -> Result<u64, KevyError> {
        let mut b = [0u8; 8];
        self.fill(&mut b, context)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Fill `buf` completely, counting the bytes that did arrive even when the input ends early.
    fn fill(&mut self, buf: &mut [u8], context: &'static str) -> Result<(), KevyError> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.r.read(&mut buf[filled..]) {
                Ok(0) => {
                    self.offset += filled as u64;
                    return Err(KevyError::Truncated {
                        offset: self.offset,
                        context,
                    });
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(KevyError::Io {
                        offset: self.offset + filled as u64,
                        source,
                    })
                }
            }
        }
        self.offset += filled as u64;
        Ok(())
    }
}

fn prealloc(n: u32) -> usize {
    (n as usize).min(MAX_PREALLOC)
}

fn prealloc_bytes(len: u64) -> usize {
    usize::try_from(len).unwrap_or(usize::MAX).min(64 * 1024)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::kevy::write_snapshot;

    /// The bytes kevy-persist 1.19 wrote in the probe of FORMATS.md §5.2, with `version` patched.
    fn probe(version: u8) -> Vec<u8> {
        let mut b = b"KEVYSNAP".to_vec();
        b.push(version);
        b.extend([1, 0, 1, 0, 0, 0, b'k', 1, 0, 0, 0, b'v']);
        b.extend([
            1, 1, 0x49, 0xcd, 0x50, 0x19, 0xa2, 0x01, 0, 0, 1, 0, 0, 0, b't', 1, 0, 0, 0, b'x',
        ]);
        b.extend([
            3, 0, 1, 0, 0, 0, b'L', 2, 0, 0, 0, 1, 0, 0, 0, b'a', 1, 0, 0, 0, b'b', 0,
        ]);
        b
    }

    fn read_all(bytes: &[u8], now_ms: i64) -> Result<Vec<Entry>, KevyError> {
        let mut r = KevySnapReader::new(bytes, now_ms)?;
        let mut out = Vec::new();
        while let Some(e) = r.next_entry()? {
            out.push(e);
        }
        assert_eq!(r.offset(), bytes.len() as u64);
        Ok(out)
    }

    #[test]
    fn observed_v4_bytes_decode_and_v3_reads_the_same() {
        for version in [3, 4] {
            let entries = read_all(&probe(version), 0).unwrap();
            assert_eq!(entries.len(), 3);
            assert_eq!(entries[0].value, Value::String(b"v".to_vec()));
            assert_eq!(entries[1].expire_at_ms, Some(1_795_721_055_561));
            assert_eq!(
                entries[2].value,
                Value::List(vec![b"a".to_vec(), b"b".to_vec()])
            );
            // The writer reproduces kevy's v4 bytes exactly.
            let mut again = Vec::new();
            write_snapshot(&mut again, &entries).unwrap();
            assert_eq!(again, probe(4));
        }
    }

    #[test]
    fn v2_ttls_are_relative_to_now() {
        let entries = read_all(&probe(2), 1_000).unwrap();
        assert_eq!(entries[1].expire_at_ms, Some(1_795_721_056_561));
    }

    #[test]
    fn v3_streams_have_no_group_section() {
        let stream = Entry {
            db: 0,
            key: b"s".to_vec(),
            value: Value::Stream(Box::new(Stream {
                entries: vec![StreamEntry {
                    id: StreamId { ms: 5, seq: 1 },
                    fields: vec![(b"f".to_vec(), b"v".to_vec())],
                }],
                last_id: StreamId { ms: 5, seq: 1 },
                entries_added: 1,
                first_id: StreamId { ms: 5, seq: 1 },
                ..Stream::default()
            })),
            expire_at_ms: None,
        };
        let mut v4 = Vec::new();
        write_snapshot(&mut v4, [&stream]).unwrap();
        // Drop the (empty) group section — a u32 zero before the EOF byte — and say version 3.
        let mut v3 = v4[..v4.len() - 5].to_vec();
        v3.push(0);
        v3[8] = 3;
        assert_eq!(read_all(&v3, 0).unwrap(), vec![stream.clone()]);
        assert_eq!(read_all(&v4, 0).unwrap(), vec![stream]);
    }

    #[test]
    fn bad_headers_opcodes_and_truncation_are_typed_errors() {
        assert!(matches!(
            read_all(b"KEVYSNAQ\x04\x00", 0),
            Err(KevyError::Invalid { offset: 0, .. })
        ));
        assert!(matches!(
            read_all(b"KEVYSNAP\x05\x00", 0),
            Err(KevyError::UnsupportedVersion { version: 5 })
        ));
        assert!(matches!(
            read_all(b"KEVYSNAP\x04\x09", 0),
            Err(KevyError::Invalid { offset: 9, .. })
        ));
        assert!(matches!(
            read_all(b"KEVYSNAP\x04\x01\x02", 0),
            Err(KevyError::Invalid { offset: 10, .. })
        ));
        let full = probe(4);
        for cut in 9..full.len() {
            let err = read_all(&full[..cut], 0).unwrap_err();
            assert!(
                matches!(err, KevyError::Truncated { offset, .. } if offset == cut as u64),
                "cut at {cut}: {err:?}"
            );
        }
    }
}
