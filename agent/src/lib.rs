//! aofvault — a sidecar backup agent for Redis-protocol servers (kevy, Redis, Valkey).
//!
//! The parts, and how data flows between them:
//!
//! - [`source`] finds the server's files and follows each shard's AOF as a logical stream,
//!   saying when continuity is lost (rewrite, `SAVE`, new base) and pinning the files a new
//!   chain starts from.
//! - [`ship`] runs one tailer per shard: it reads the stream, cuts it at safe points into
//!   segments of whole commands and stores them; [`snapshot`] publishes manifests naming, per
//!   shard, a chain's base and segments up to a cut, with the server's ACL users and config
//!   file captured beside it ([`server_config`]).
//! - [`repo`] is the repository: object names ([`repo::keys`]), payload codec, the lease, typed
//!   create-only writes and checked reads over `object_store`.
//! - [`daemon`] ties them together for `aofvault run`, with [`compact`] (the `BGREWRITEAOF`
//!   trigger), [`schedule`] (snapshots, verify, prune, drift checks on the agent's own clock),
//!   [`metrics`], [`status`] (the agent's live status and its status file) and sd_notify
//!   ([`notify`]).
//! - [`restore`], [`verify`], [`prune`], [`drift`], `cmd::list` and the incident tools
//!   (`cmd::log`, `cmd::diff`, `restore --keys`, on [`restore::history`]) read the repository back,
//!   through the shared services of [`context`] (open it, pick the instance) and
//!   [`repo::plan`] (what a moment needs).
//! - [`inspect`] decodes a server file with the `aofvault-formats` crate.
//! - [`cli`] (with its man page and completions), [`settings`], [`logging`], [`exit`] and
//!   [`outcome`] (the one place that maps errors to exit codes) are the command-line surface;
//!   [`cmd`] only dispatches, one file per subcommand without a folder of its own (`run`,
//!   `backup`, `status`, `list`, `config`); `main.rs` only parses, sets up logging and the
//!   runtime, and maps errors to exit codes.

pub mod cli;
pub mod cluster;
pub mod cmd;
pub mod compact;
pub mod context;
pub mod daemon;
pub mod drift;
pub mod exit;
pub mod group;
pub mod inspect;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod outcome;
pub mod prune;
pub mod repo;
pub mod restore;
pub mod schedule;
pub mod server;
pub mod server_config;
pub mod settings;
pub mod ship;
pub mod snapshot;
pub mod source;
pub mod status;
pub mod verify;
