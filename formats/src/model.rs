//! The neutral form every snapshot decoder produces: one [`Entry`] per key (database, key, typed
//! value, expiry), plus the non-key [`Record`]s a snapshot can carry (aux fields, functions).
//!
//! Any snapshot (RDB, KEVYSNAP, a RESP base) is reduced to this form, so that any of them can be
//! rendered as commands ([`crate::render`]) and replayed into any server, or compared with a live
//! server key by key.

/// Raw bytes: keys, values, members and fields are binary-safe.
pub type Bytes = Vec<u8>;

/// One decoded item of a snapshot, in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A key with its value.
    Entry(Entry),
    /// An RDB auxiliary field (`redis-ver`, `ctime`, `aof-base`, ...).
    Aux { key: Bytes, value: Bytes },
    /// A function library (RDB `FUNCTION2`): its source code, `#!lua name=...`.
    Function { code: Bytes },
}

/// One key of one database.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Logical database (always 0 for kevy).
    pub db: u32,
    pub key: Bytes,
    pub value: Value,
    /// Absolute expiry, unix milliseconds.
    pub expire_at_ms: Option<i64>,
}

/// A typed value. Collections keep the order the file stored them in.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(Bytes),
    /// Head to tail.
    List(Vec<Bytes>),
    Set(Vec<Bytes>),
    /// (member, score).
    ZSet(Vec<(Bytes, f64)>),
    Hash(Vec<HashField>),
    Stream(Box<Stream>),
}

impl Value {
    /// The type name as `TYPE` answers it (`string`, `list`, `set`, `zset`, `hash`, `stream`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Hash(_) => "hash",
            Value::Stream(_) => "stream",
        }
    }
}

/// One field of a hash, with its own expiry (Redis 7.4+ hash field TTL).
#[derive(Debug, Clone, PartialEq)]
pub struct HashField {
    pub field: Bytes,
    pub value: Bytes,
    /// Absolute expiry of this field, unix milliseconds.
    pub expire_at_ms: Option<i64>,
}

/// A stream ID `ms-seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// A stream with its metadata, live entries and consumer groups.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stream {
    /// Live (not deleted) entries in ID order.
    pub entries: Vec<StreamEntry>,
    pub last_id: StreamId,
    /// RDB ≥ 10 / KEVYSNAP: the highest ID ever deleted, and how many entries were ever added.
    pub max_deleted_id: StreamId,
    pub entries_added: u64,
    pub first_id: StreamId,
    pub groups: Vec<StreamGroup>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntry {
    pub id: StreamId,
    /// (field, value) in entry order.
    pub fields: Vec<(Bytes, Bytes)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamGroup {
    pub name: Bytes,
    pub last_delivered: StreamId,
    /// RDB ≥ 10: the logical read counter (`ENTRIESREAD`); `None` when unknown.
    pub entries_read: Option<u64>,
    /// Pending entries list of the group.
    pub pending: Vec<PendingEntry>,
    pub consumers: Vec<Consumer>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PendingEntry {
    pub id: StreamId,
    /// Consumer that owns it (resolved from the consumer PELs).
    pub consumer: Bytes,
    pub delivery_time_ms: u64,
    pub delivery_count: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Consumer {
    pub name: Bytes,
    pub seen_time_ms: u64,
    /// RDB ≥ 11: last successful interaction; `None` when unknown.
    pub active_time_ms: Option<u64>,
}
