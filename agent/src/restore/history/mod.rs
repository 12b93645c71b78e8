//! The history of keys, from the repository alone (no scratch server): the service behind the
//! incident tools `aofvault log`, `aofvault diff` and `restore --keys`.
//!
//! - [`glob`]: key patterns in Redis `MATCH` syntax;
//! - [`walk`]: every write to the matching keys, in order, across chains and compactions
//!   (`log`);
//! - [`state`]: the matching keys' state at one moment — a restore plan fetched and replayed
//!   into [`model`], an in-process keyspace holding only the matching keys, whose commands
//!   [`apply`] and [`values`] evaluate (`diff`, `restore --keys`);
//! - [`show`]: bytes as text and JSON for the three commands;
//! - [`read`]: bases (RDB, KEVYSNAP, RESP) and AOF streams as the events both walk.
//!
//! It lives inside `restore/` (the commands layer), whose planning, checked downloads, stream
//! reader and key positions it reuses — and whose selective restore (`restore/selective/`) uses
//! it, so the two stay one room with no import running back up. `cmd/log.rs` and `cmd/diff.rs`
//! present it.

pub mod apply;
pub mod glob;
pub mod model;
pub mod read;
pub mod show;
pub mod state;
pub mod values;
pub mod walk;

pub use glob::Patterns;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
