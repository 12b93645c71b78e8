//! Unit tests of the decoder over RDB files built byte by byte with the small writer below:
//! `file` (opcodes, trailer, magic, limits), `values` (every value encoding), `streams`,
//! `newer` (RDB 13–15, Valkey 80/81 opcodes and types, the compressed envelope).
//! Files written by real servers are exercised in `formats/tests/rdb_*.rs`.
#![allow(clippy::unwrap_used)]

mod file;
mod newer;
mod streams;
mod values;

use super::crc64::Crc64;
use super::listpack::tests::build as listpack;
use super::packed::Item::{Int, Str};
use super::*;
use crate::model::{HashField, StreamId, Value};

/// Writes an RDB the way the server does.
struct Rdb(Vec<u8>);

impl Rdb {
    fn redis(version: u32) -> Self {
        Rdb(format!("REDIS{version:04}").into_bytes())
    }
    fn valkey(version: u32) -> Self {
        Rdb(format!("VALKEY{version:03}").into_bytes())
    }
    fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }
    fn len(mut self, n: u64) -> Self {
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
    fn string(self, s: &[u8]) -> Self {
        self.len(s.len() as u64).raw(s)
    }
    fn key(self, type_id: u8, key: &str) -> Self {
        self.raw(&[type_id]).string(key.as_bytes())
    }
    fn i64le(self, v: i64) -> Self {
        self.raw(&v.to_le_bytes())
    }
    fn stream_id(self, ms: u64, seq: u64) -> Self {
        self.raw(&ms.to_be_bytes()).raw(&seq.to_be_bytes())
    }
    /// EOF and the CRC-64 trailer.
    fn finish(mut self) -> Vec<u8> {
        self.0.push(0xFF);
        let mut crc = Crc64::new();
        crc.update(&self.0);
        self.0.extend_from_slice(&crc.value().to_le_bytes());
        self.0
    }
}

fn entries(bytes: &[u8]) -> Vec<Entry> {
    decode_all(bytes)
        .unwrap()
        .into_iter()
        .filter_map(|r| match r {
            Record::Entry(e) => Some(e),
            _ => None,
        })
        .collect()
}

fn only_value(bytes: &[u8]) -> Value {
    let mut all = entries(bytes);
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0).value
}

fn strs(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn field(f: &str, v: &str, expire: Option<i64>) -> HashField {
    HashField {
        field: f.into(),
        value: v.into(),
        expire_at_ms: expire,
    }
}

/// One ziplist entry per string (all short), with prevlen 0.
fn ziplist(items: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    for item in items {
        body.push(0);
        body.push(item.len() as u8);
        body.extend_from_slice(item);
    }
    let mut out = ((body.len() + 11) as u32).to_le_bytes().to_vec();
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(items.len() as u16).to_le_bytes());
    out.extend_from_slice(&body);
    out.push(0xFF);
    out
}
