//! The end-to-end test harness of aofvault: real servers as RAII guards, and tools to drive
//! and check them.
//!
//! - Servers: [`RedisServer`] (redis-server 7, AOF on), [`KevyServer`] (kevy 1.19, N shards),
//!   [`S3Server`] (SeaweedFS' S3 gateway; one per test binary through [`shared_s3`]). Each runs
//!   on a free 127.0.0.1 port ([`free_port`]) in its own temp dir, logs to a file that failure
//!   messages quote, and is killed on drop — or by a watchdog if the test binary dies first
//!   (see `process`).
//! - [`workload`] writes deterministic, seeded data; [`keyspace`] dumps a server's data and
//!   diffs two dumps, which is how a test proves a restore is faithful.
//! - [`agent`] finds (or builds) the `aofvault` binary and runs it, to completion or as a
//!   daemon with captured logs.
//! - [`proxy`] is a TCP proxy that injects faults (resets, stalls, slowness, HTTP 503s, outages)
//!   between the agent and a server or the object store.
//!
//! Data flows: a test starts servers → writes with `workload` → runs the agent against them →
//! restores into a fresh server → compares `keyspace::dump`s of both.

pub mod agent;
pub mod kevy;
pub mod keyspace;
pub mod ports;
pub mod process;
pub mod proxy;
pub mod redis_server;
pub mod s3;
mod server;
pub mod workload;

pub use kevy::KevyServer;
pub use ports::free_port;
pub use redis_server::RedisServer;
pub use s3::{shared_s3, S3Server};
pub use server::connect;

use std::path::PathBuf;

/// The cargo workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}
