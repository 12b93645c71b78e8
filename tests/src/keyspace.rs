//! A logical dump of a server's keyspace, and a comparer that says what differs.
//!
//! [`dump`] walks the keys with SCAN (kevy 1.19 and Redis 7 both page through every shard with
//! it), asks TYPE, reads each value with the read command of its type and PTTL, all pipelined in
//! batches. Values are normalized so that two servers holding the same data compare equal
//! whatever order they return unordered collections in: sets and hash fields are sorted, sorted
//! set scores are re-printed from their float value. TTLs are compared as "has one or not",
//! since their exact remaining time differs by when each server was read. [`diff`] lists the
//! differences as lines a person can read; [`assert_same`] panics with them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use anyhow::{bail, Context, Result};
use redis::Value;

/// KeyRing read per pipelined batch.
const BATCH: usize = 500;
/// Lines [`diff`] returns at most (the last one says how many were left out).
const MAX_DIFF_LINES: usize = 50;

/// A stream entry: its id and its field/value pairs in order.
pub type StreamEntry = (String, Vec<(Vec<u8>, Vec<u8>)>);

/// A value in a form that compares equal across servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NormalizedValue {
    String(Vec<u8>),
    List(Vec<Vec<u8>>),
    Set(BTreeSet<Vec<u8>>),
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    /// member → score, printed by Rust from the parsed float (so "1.50" and "1.5" agree).
    ZSet(BTreeMap<Vec<u8>, String>),
    Stream(Vec<StreamEntry>),
    /// A type this dumper does not read (modules, ...): only the type is compared.
    Unread,
}

/// One key: its TYPE, its value and whether it has a TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub kind: String,
    pub value: NormalizedValue,
    pub has_ttl: bool,
}

/// Every key of the dumped databases: (db, key) → value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyspace(pub BTreeMap<(u32, Vec<u8>), KeyValue>);

impl Keyspace {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of `key` in `db`.
    pub fn get(&self, db: u32, key: &[u8]) -> Option<&KeyValue> {
        self.0.get(&(db, key.to_vec()))
    }

    /// Number of keys per kind (`"string"`, `"list"`, ...).
    pub fn kinds(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for kv in self.0.values() {
            *out.entry(kv.kind.clone()).or_insert(0) += 1;
        }
        out
    }
}

/// Dumps databases `dbs` (kevy has only db 0). Each is SELECTed first (kevy accepts
/// `SELECT 0`), and the connection is left on db 0.
pub fn dump(conn: &mut redis::Connection, dbs: &[u32]) -> Result<Keyspace> {
    let mut out = Keyspace::default();
    for &db in dbs {
        redis::cmd("SELECT")
            .arg(db)
            .query::<()>(conn)
            .with_context(|| format!("SELECT {db}"))?;
        let keys = scan_all(conn).with_context(|| format!("scanning db {db}"))?;
        for chunk in keys.chunks(BATCH) {
            for (key, kv) in read_batch(conn, chunk).with_context(|| format!("reading db {db}"))? {
                out.0.insert((db, key), kv);
            }
        }
    }
    if dbs.last().is_some_and(|&db| db != 0) {
        redis::cmd("SELECT")
            .arg(0)
            .query::<()>(conn)
            .context("SELECT 0")?;
    }
    Ok(out)
}

fn scan_all(conn: &mut redis::Connection) -> Result<Vec<Vec<u8>>> {
    let mut seen = BTreeSet::new();
    let mut cursor: String = "0".to_string();
    loop {
        let (next, batch): (String, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(&cursor)
            .arg("COUNT")
            .arg(1000)
            .query(conn)
            .context("SCAN")?;
        seen.extend(batch);
        if next == "0" {
            break;
        }
        cursor = next;
    }
    Ok(seen.into_iter().collect())
}

/// TYPE of each key, then its value and PTTL; keys that vanished meanwhile are left out.
fn read_batch(conn: &mut redis::Connection, keys: &[Vec<u8>]) -> Result<Vec<(Vec<u8>, KeyValue)>> {
    let mut pipe = redis::pipe();
    for key in keys {
        pipe.cmd("TYPE").arg(key);
    }
    let kinds: Vec<String> = pipe.query(conn).context("TYPE")?;
    let mut pipe = redis::pipe();
    for (key, kind) in keys.iter().zip(&kinds) {
        match kind.as_str() {
            "string" => pipe.cmd("GET").arg(key),
            "list" => pipe.cmd("LRANGE").arg(key).arg(0).arg(-1),
            "set" => pipe.cmd("SMEMBERS").arg(key),
            "zset" => pipe.cmd("ZRANGE").arg(key).arg(0).arg(-1).arg("WITHSCORES"),
            "hash" => pipe.cmd("HGETALL").arg(key),
            "stream" => pipe.cmd("XRANGE").arg(key).arg("-").arg("+"),
            _ => pipe.cmd("EXISTS").arg(key),
        };
        pipe.cmd("PTTL").arg(key);
    }
    let replies: Vec<Value> = pipe.query(conn).context("reading values")?;
    if replies.len() != keys.len() * 2 {
        bail!("expected {} replies, got {}", keys.len() * 2, replies.len());
    }
    let mut out = Vec::with_capacity(keys.len());
    for ((key, kind), pair) in keys.iter().zip(kinds).zip(replies.chunks(2)) {
        if kind == "none" {
            continue;
        }
        let pttl = match &pair[1] {
            Value::Int(n) => *n,
            other => bail!("PTTL {}: unexpected reply {other:?}", show(key)),
        };
        if pttl == -2 || matches!(pair[0], Value::Nil) {
            continue; // expired or deleted between SCAN and now
        }
        let value =
            normalize(&kind, &pair[0]).with_context(|| format!("key {} ({kind})", show(key)))?;
        out.push((
            key.clone(),
            KeyValue {
                kind,
                value,
                has_ttl: pttl >= 0,
            },
        ));
    }
    Ok(out)
}

fn bytes(v: &Value) -> Result<Vec<u8>> {
    match v {
        Value::BulkString(b) => Ok(b.clone()),
        Value::SimpleString(s) => Ok(s.clone().into_bytes()),
        Value::Int(n) => Ok(n.to_string().into_bytes()),
        Value::Okay => Ok(b"OK".to_vec()),
        Value::Double(d) => Ok(d.to_string().into_bytes()),
        Value::VerbatimString { text, .. } => Ok(text.clone().into_bytes()),
        other => bail!("expected a string, got {other:?}"),
    }
}

fn items(v: &Value) -> Result<&[Value]> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        other => bail!("expected an array, got {other:?}"),
    }
}

fn pairs(v: &Value) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    match v {
        Value::Map(map) => map
            .iter()
            .map(|(k, v)| Ok((bytes(k)?, bytes(v)?)))
            .collect(),
        _ => {
            let flat = items(v)?;
            if flat.len() % 2 != 0 {
                bail!("odd number of items in a field/value list");
            }
            flat.chunks(2)
                .map(|c| Ok((bytes(&c[0])?, bytes(&c[1])?)))
                .collect()
        }
    }
}

fn normalize(kind: &str, v: &Value) -> Result<NormalizedValue> {
    Ok(match kind {
        "string" => NormalizedValue::String(bytes(v)?),
        "list" => NormalizedValue::List(items(v)?.iter().map(bytes).collect::<Result<_>>()?),
        "set" => NormalizedValue::Set(items(v)?.iter().map(bytes).collect::<Result<_>>()?),
        "hash" => NormalizedValue::Hash(pairs(v)?.into_iter().collect()),
        "zset" => {
            let mut map = BTreeMap::new();
            for (member, score) in pairs(v)? {
                let text = String::from_utf8_lossy(&score).into_owned();
                let parsed: f64 = text
                    .trim()
                    .parse()
                    .with_context(|| format!("score {text:?} is not a number"))?;
                map.insert(member, format!("{parsed}"));
            }
            NormalizedValue::ZSet(map)
        }
        "stream" => {
            let mut entries = Vec::new();
            for entry in items(v)? {
                let parts = items(entry)?;
                if parts.len() != 2 {
                    bail!("stream entry with {} parts", parts.len());
                }
                let id = String::from_utf8_lossy(&bytes(&parts[0])?).into_owned();
                entries.push((id, pairs(&parts[1])?));
            }
            NormalizedValue::Stream(entries)
        }
        _ => NormalizedValue::Unread,
    })
}

/// A key or value for people: printable ASCII as is, other bytes escaped, long ones cut.
pub fn show(bytes: &[u8]) -> String {
    let text = bytes.escape_ascii().to_string();
    if text.len() > 60 {
        let cut: String = text.chars().take(57).collect();
        format!("\"{cut}...\" ({} bytes)", bytes.len())
    } else {
        format!("\"{text}\"")
    }
}

fn describe(v: &NormalizedValue) -> String {
    let mut s = String::new();
    match v {
        NormalizedValue::String(b) => s.push_str(&show(b)),
        NormalizedValue::List(items) => {
            let _ = write!(s, "list of {}: [", items.len());
            join(&mut s, items.iter().map(|i| show(i)), ']');
        }
        NormalizedValue::Set(items) => {
            let _ = write!(s, "set of {}: {{", items.len());
            join(&mut s, items.iter().map(|i| show(i)), '}');
        }
        NormalizedValue::Hash(map) => {
            let _ = write!(s, "hash of {}: {{", map.len());
            join(
                &mut s,
                map.iter().map(|(k, v)| format!("{}={}", show(k), show(v))),
                '}',
            );
        }
        NormalizedValue::ZSet(map) => {
            let _ = write!(s, "zset of {}: {{", map.len());
            join(
                &mut s,
                map.iter().map(|(k, v)| format!("{}:{v}", show(k))),
                '}',
            );
        }
        NormalizedValue::Stream(entries) => {
            let _ = write!(s, "stream of {}: [", entries.len());
            join(
                &mut s,
                entries
                    .iter()
                    .map(|(id, f)| format!("{id}({} fields)", f.len())),
                ']',
            );
        }
        NormalizedValue::Unread => s.push_str("(not read)"),
    }
    if s.len() > 200 {
        let cut: String = s.chars().take(197).collect();
        s = format!("{cut}...");
    }
    s
}

/// Appends the first few parts, "..." if there were more, and the closing bracket.
fn join(s: &mut String, mut parts: impl Iterator<Item = String>, close: char) {
    let shown: Vec<String> = parts.by_ref().take(8).collect();
    s.push_str(&shown.join(", "));
    if parts.next().is_some() {
        s.push_str(", ...");
    }
    s.push(close);
}

/// Human-readable differences between two dumps, empty when they are equal; at most 50 lines.
pub fn diff(expected: &Keyspace, actual: &Keyspace) -> Vec<String> {
    let mut lines = Vec::new();
    let mut total = 0usize;
    let mut push = |line: String| {
        total += 1;
        if lines.len() < MAX_DIFF_LINES - 1 {
            lines.push(line);
        }
    };
    for ((db, key), want) in &expected.0 {
        let name = format!("db{db} {}", show(key));
        match actual.0.get(&(*db, key.clone())) {
            None => push(format!(
                "missing: {name} ({} {})",
                want.kind,
                describe(&want.value)
            )),
            Some(got) => {
                if got.kind != want.kind {
                    push(format!(
                        "type: {name}: expected {}, got {}",
                        want.kind, got.kind
                    ));
                } else if got.value != want.value {
                    push(format!(
                        "value: {name}: expected {}, got {}",
                        describe(&want.value),
                        describe(&got.value)
                    ));
                }
                if got.has_ttl != want.has_ttl {
                    let says = |t: bool| if t { "a TTL" } else { "no TTL" };
                    push(format!(
                        "ttl: {name}: expected {}, got {}",
                        says(want.has_ttl),
                        says(got.has_ttl)
                    ));
                }
            }
        }
    }
    for ((db, key), got) in &actual.0 {
        if !expected.0.contains_key(&(*db, key.clone())) {
            push(format!(
                "extra: db{db} {} ({} {})",
                show(key),
                got.kind,
                describe(&got.value)
            ));
        }
    }
    if total > lines.len() {
        lines.push(format!(
            "... {} differences in all ({} shown)",
            total,
            lines.len()
        ));
    }
    lines
}

/// Panics with the differences (and the key counts) unless the dumps are equal.
pub fn assert_same(expected: &Keyspace, actual: &Keyspace) {
    let lines = diff(expected, actual);
    if !lines.is_empty() {
        panic!(
            "keyspaces differ (expected {} keys, got {}):\n  {}",
            expected.len(),
            actual.len(),
            lines.join("\n  ")
        );
    }
}
