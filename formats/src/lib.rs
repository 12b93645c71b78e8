//! Pure readers and writers for every byte aofvault depends on. No async, no I/O beyond
//! `Read`/`Write` and byte slices; every decoder tells *incomplete* input (normal while a server
//! is still writing) from *invalid* input (an error naming the byte offset), and none panics on
//! bytes from disk.
//!
//! - [`resp`]: RESP multibulk commands — a zero-copy streaming decoder with absolute offsets, and
//!   an encoder.
//! - [`aof`]: command streams of kevy and Redis AOF files (kevy header, RDB preamble, `#TS:`
//!   annotations, `MULTI`/`EXEC`), their *safe cut points*, and [`aof::stream`], the `Read`-based
//!   reader of a whole stream — all on one scanner.
//! - [`aof_manifest`]: the Redis ≥ 7 multi-part AOF manifest.
//! - [`rdb`]: a streaming RDB decoder, Redis versions 1–15 and Valkey 80/81 (also inside Valkey's
//!   LZ4 compressed-stream envelope), CRC64 checked; what it does not read is an error naming
//!   version, byte and offset.
//! - [`kevy`]: KEVYSNAP snapshots (read v2–v4, write v4) and `shards.meta`.
//! - [`model`]: the neutral form (db, key, typed value, expiry) every snapshot decodes to, and
//!   [`render`]: that form as the RESP commands that recreate it.
//! - [`json`]: the neutral form as JSON, for `aofvault inspect --json`.
//! - [`vault`]: aofvault's own repository documents (format marker, chain head, snapshot manifest).
//! - [`detect`]: which of these formats a file is, from its first bytes.
//! - [`slot`]: Redis Cluster hash slots (CRC16, hash tags).
//!
//! Data flows one way: bytes → decoder → [`model::Record`] → renderer → commands.

pub mod aof;
pub mod aof_manifest;
pub mod detect;
pub mod json;
pub mod kevy;
pub mod model;
pub mod rdb;
pub mod render;
pub mod resp;
pub mod slot;
pub mod vault;
