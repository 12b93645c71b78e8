//! The end-to-end test harness of aofvault: real servers as RAII guards, and tools to drive
//! and check them.
//!
//! - Servers: [`RedisServer`] (redis-server 7, AOF on), [`KevyServer`] (kevy 1.19, N shards),
//!   [`S3Server`] (SeaweedFS' S3 gateway; one per test binary through [`shared_s3`]),
//!   [`AzuriteServer`] (Azurite's blob service, the Azure Storage emulator). Each runs
//!   on a free 127.0.0.1 port ([`free_port`]) in its own temp dir, logs to a file that failure
//!   messages quote, and is killed on drop — or by a watchdog if the test binary dies first
//!   (see `process`).
//! - [`Flavor`] names a server kind and version (redis 6.2/7.0/8.0, valkey 8.1, kevy) and
//!   [`AnyServer`] runs any of them, so one test body can loop over every kind.
//! - [`workload`] writes deterministic, seeded data; [`keyspace`] dumps a server's data and
//!   diffs two dumps, which is how a test proves a restore is faithful.
//! - [`vault`] is one test's repository (a folder, or S3 behind a fault proxy) and the
//!   `aofvault` commands on it: run the daemon, read `status --json`, wait until shipped, restore.
//! - [`cluster`] is a Redis Cluster of real nodes (create, reshard), a small cluster client for
//!   write loads, and a whole-cluster dump.
//! - [`agent`] finds (or builds) the `aofvault` binary and runs it, to completion or as a
//!   daemon with captured logs.
//! - [`proxy`] is a TCP proxy that injects faults (resets, stalls, slowness, HTTP 503s, outages)
//!   between the agent and a server or the object store.
//!
//! Data flows: a test starts servers → writes with `workload` → runs the agent against them →
//! restores into a fresh server → compares `keyspace::dump`s of both:
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use aofvault_tests::{agent, keyspace, workload, KevyServer};
//! let source = KevyServer::start(4)?;
//! workload::mixed(&mut source.conn()?, 1, 5_000, 500)?;
//! let repo = tempfile::tempdir()?;
//! let repo_url = format!("file://{}", repo.path().display());
//! let dir = source.dir().to_string_lossy().into_owned();
//! let mut daemon = agent::spawn(&["run", "--source", &dir, "--server", &source.url(),
//!                                 "--repo", &repo_url], &[])?;
//! // ... wait for it to catch up (a condition with a generous deadline), then:
//! daemon.terminate()?;
//! let restored = tempfile::tempdir()?;
//! let to = restored.path().to_string_lossy().into_owned();
//! agent::run(&["restore", "--repo", &repo_url, "--to-dir", &to], &[])?.ok()?;
//! let copy = KevyServer::start_on_dir(restored.path(), 4)?;
//! keyspace::assert_same(&keyspace::dump(&mut source.conn()?, &[0])?,
//!                       &keyspace::dump(&mut copy.conn()?, &[0])?);
//! # Ok(()) }
//! ```
//!
//! Each guard's start error includes the server's log tail; `log()` gives the whole log for
//! a test's own failure messages. Waiting is done with [`wait_until`] (a condition and a
//! generous deadline), never with a fixed sleep.

pub mod agent;
pub mod azurite;
pub mod cluster;
pub mod field_ttl;
pub mod flavor;
pub mod kevy;
pub mod keyspace;
pub mod ports;
pub mod process;
pub mod proxy;
pub mod redis_server;
pub mod s3;
mod server;
pub mod torn;
pub mod vault;
pub mod workload;

pub use azurite::AzuriteServer;
pub use cluster::RedisCluster;
pub use flavor::{AnyServer, Flavor};
pub use kevy::KevyServer;
pub use ports::free_port;
pub use process::wait_until;
pub use redis_server::RedisServer;
pub use s3::{shared_s3, S3Server};
pub use server::connect;

use std::path::PathBuf;

/// The cargo workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}
