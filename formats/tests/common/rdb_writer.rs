//! A test-only RDB writer for the formats no server here writes: Redis RDB 13–15 (key metadata,
//! hash templates, streams of types 26/27) and Valkey 80/81 (slot imports, `HASH_2`), and
//! Valkey 9.2's compressed envelope. It follows the servers' writers as far as their layouts
//! are known (the decoder's module docs say where each comes from): the same opcodes in the
//! same order, lengths in the smallest form, listpack integers where the server stores numbers.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write;

/// The alphabet of key metadata class names (`keyMetaCharSet`).
const CLASS_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

/// CRC-64/Jones as Redis computes it (reflected, init 0, no final xor).
pub fn crc64(bytes: &[u8]) -> u64 {
    const POLY: u64 = 0x95ac_9329_ac4b_c9b5;
    let mut crc = 0u64;
    for &b in bytes {
        crc ^= u64::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// One listpack element.
#[derive(Debug, Clone)]
pub enum Lp {
    Int(i64),
    Str(Vec<u8>),
}

/// A listpack: header, entries (each with its back-length), end byte.
pub fn listpack(items: &[Lp]) -> Vec<u8> {
    let mut body = Vec::new();
    for item in items {
        let start = body.len();
        match item {
            Lp::Int(v @ 0..=127) => body.push(*v as u8),
            Lp::Int(v @ -4096..=4095) => {
                let u = (*v as u16) & 0x1FFF;
                body.extend_from_slice(&[0xC0 | (u >> 8) as u8, u as u8]);
            }
            Lp::Int(v) => {
                body.push(0xF4);
                body.extend_from_slice(&v.to_le_bytes());
            }
            Lp::Str(s) if s.len() < 64 => {
                body.push(0x80 | s.len() as u8);
                body.extend_from_slice(s);
            }
            Lp::Str(s) if s.len() < 4096 => {
                body.extend_from_slice(&[0xE0 | (s.len() >> 8) as u8, s.len() as u8]);
                body.extend_from_slice(s);
            }
            Lp::Str(s) => {
                body.push(0xF0);
                body.extend_from_slice(&(s.len() as u32).to_le_bytes());
                body.extend_from_slice(s);
            }
        }
        let entry_len = body.len() - start;
        // Back-length: 7-bit groups, most significant first, continuation bit on all but the
        // first byte written.
        let mut groups = Vec::new();
        let mut v = entry_len;
        loop {
            groups.push((v & 0x7F) as u8);
            v >>= 7;
            if v == 0 {
                break;
            }
        }
        for (i, g) in groups.iter().rev().enumerate() {
            body.push(if i == 0 { *g } else { g | 0x80 });
        }
    }
    let mut out = ((body.len() + 7) as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&(items.len().min(65535) as u16).to_le_bytes());
    out.extend_from_slice(&body);
    out.push(0xFF);
    out
}

/// A stream entry for [`Writer::stream`]: its id (ms, seq) and its fields.
pub type StreamEntryIn = ((u64, u64), Vec<(Vec<u8>, Vec<u8>)>);

/// Bytes of an RDB under construction.
pub struct Writer(pub Vec<u8>);

impl Writer {
    pub fn redis(version: u32) -> Self {
        Writer(format!("REDIS{version:04}").into_bytes())
    }
    pub fn valkey(version: u32) -> Self {
        Writer(format!("VALKEY{version:03}").into_bytes())
    }
    pub fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }
    /// `rdbSaveLen`: 6-bit, 14-bit, 32-bit or 64-bit form (big-endian).
    pub fn len(&mut self, n: u64) -> &mut Self {
        match n {
            0..=63 => self.0.push(n as u8),
            64..=16383 => self.0.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]),
            16384..=0xFFFF_FFFF => {
                self.0.push(0x80);
                self.0.extend_from_slice(&(n as u32).to_be_bytes());
            }
            _ => {
                self.0.push(0x81);
                self.0.extend_from_slice(&n.to_be_bytes());
            }
        }
        self
    }
    /// `rdbSaveRawString` without the integer and LZF forms (both optional for a writer).
    pub fn string(&mut self, s: &[u8]) -> &mut Self {
        self.len(s.len() as u64).raw(s)
    }
    pub fn select_db(&mut self, db: u64) -> &mut Self {
        self.raw(&[0xFE]).len(db)
    }
    pub fn expire_ms(&mut self, at: i64) -> &mut Self {
        self.raw(&[0xFC]).raw(&at.to_le_bytes())
    }
    pub fn key(&mut self, type_id: u8, key: &[u8]) -> &mut Self {
        self.raw(&[type_id]).string(key)
    }
    /// Redis `KEY_META` with one class per `(name, allow_ignore)`, each carrying an unsigned
    /// integer and a string in the module format, then the module EOF opcode.
    pub fn key_meta(&mut self, classes: &[([u8; 4], bool)]) -> &mut Self {
        self.raw(&[0xF3]).len(classes.len() as u64);
        for (name, ignorable) in classes {
            let mut bits = 0u32;
            for c in name {
                bits = (bits << 6) | CLASS_CHARS.iter().position(|x| x == c).unwrap() as u32;
            }
            let spec = ((bits << 5) << 3) | u32::from(*ignorable);
            self.raw(&spec.to_le_bytes())
                .len(2)
                .len(7)
                .len(5)
                .string(b"m")
                .len(0);
        }
        self
    }
    /// Redis `HASH_TEMPLATE`.
    pub fn hash_template(&mut self, id: u64, fields: &[Vec<u8>]) -> &mut Self {
        self.raw(&[0xF2]).len(id).len(fields.len() as u64);
        for f in fields {
            self.string(f);
        }
        self
    }
    /// Type 30: a listpack of the template id and the values.
    pub fn template_lp_ref(&mut self, key: &[u8], id: u64, values: &[Vec<u8>]) -> &mut Self {
        let mut items = vec![Lp::Int(id as i64)];
        items.extend(values.iter().map(|v| Lp::Str(v.clone())));
        let lp = listpack(&items);
        self.key(30, key).string(&lp)
    }
    /// Type 32: the template id, then the values.
    pub fn template_array_ref(&mut self, key: &[u8], id: u64, values: &[Vec<u8>]) -> &mut Self {
        self.key(32, key).len(id);
        for v in values {
            self.string(v);
        }
        self
    }
    /// Type 31: self-contained field, value pairs.
    pub fn template_array(&mut self, key: &[u8], pairs: &[(Vec<u8>, Vec<u8>)]) -> &mut Self {
        self.key(31, key).len(pairs.len() as u64);
        for (f, v) in pairs {
            self.string(f).string(v);
        }
        self
    }
    /// A stream of `entries` (ids strictly increasing, ms ≥ 1) in one node, no groups; type 21,
    /// 26 or 27 (the later ones with their empty NACK-free, producer-free trailers).
    pub fn stream(&mut self, type_id: u8, key: &[u8], entries: &[StreamEntryIn]) -> &mut Self {
        self.key(type_id, key);
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            // An empty stream: no nodes.
            self.len(0)
                .len(0)
                .len(0)
                .len(0)
                .len(0)
                .len(0)
                .len(0)
                .len(0)
                .len(0)
                .len(0);
            return self.stream_trailer(type_id);
        };
        let master = first.0;
        let mut items = vec![
            Lp::Int(entries.len() as i64),
            Lp::Int(0),
            Lp::Int(0), // no master fields: every entry lists its own
            Lp::Int(0),
        ];
        for ((ms, seq), fields) in entries {
            items.push(Lp::Int(0)); // flags
            items.push(Lp::Int((ms - master.0) as i64));
            items.push(Lp::Int(seq.wrapping_sub(master.1) as i64));
            items.push(Lp::Int(fields.len() as i64));
            for (f, v) in fields {
                items.push(Lp::Str(f.clone()));
                items.push(Lp::Str(v.clone()));
            }
            items.push(Lp::Int(3 + 1 + 2 * fields.len() as i64));
        }
        let mut node_id = master.0.to_be_bytes().to_vec();
        node_id.extend_from_slice(&master.1.to_be_bytes());
        self.len(1).string(&node_id).string(&listpack(&items));
        self.len(entries.len() as u64)
            .len(last.0 .0)
            .len(last.0 .1)
            .len(first.0 .0)
            .len(first.0 .1)
            .len(0)
            .len(0)
            .len(entries.len() as u64)
            .len(0); // groups
        self.stream_trailer(type_id)
    }
    fn stream_trailer(&mut self, type_id: u8) -> &mut Self {
        if type_id >= 26 {
            // IDMP: duration, max size, no producers, ids added, duplicates.
            self.len(100).len(100).len(0).len(0).len(0);
        }
        self
    }
    /// Valkey `SLOT_IMPORT`.
    pub fn slot_import(&mut self, job: &[u8], ranges: &[(u64, u64)]) -> &mut Self {
        self.raw(&[0xF3]).string(job).len(ranges.len() as u64);
        for (a, b) in ranges {
            self.len(*a).len(*b);
        }
        self
    }
    /// EOF and the CRC-64 trailer.
    pub fn finish(&mut self) -> Vec<u8> {
        self.0.push(0xFF);
        let crc = crc64(&self.0);
        self.0.extend_from_slice(&crc.to_le_bytes());
        std::mem::take(&mut self.0)
    }
}

/// Valkey's compressed-stream envelope around a whole RDB: 8 header bytes, one LZ4 frame.
pub fn envelope(rdb: &[u8]) -> Vec<u8> {
    let mut out = b"VCS\x01\x01\x01\x00\x00".to_vec();
    let mut encoder = lz4_flex::frame::FrameEncoder::new(&mut out);
    encoder.write_all(rdb).unwrap();
    encoder.finish().unwrap();
    out
}
