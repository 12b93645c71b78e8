//! What the agent knows about itself, shared by the shippers, `status`, `/metrics` and sd_notify:
//! the live status here, and [`file`], the status document the daemon writes every second.

pub mod file;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// One shard, as `status --json` prints it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ShardStatus {
    pub shard: u32,
    pub file: String,
    /// following | waiting | missing | retrying | recovering | stopped
    pub state: String,
    /// Set while the shard waits for the server to rewrite its AOF (state `recovering`).
    #[serde(default)]
    pub recovery: Option<Recovery>,
    pub chain: Option<String>,
    pub chain_started_ms: Option<i64>,
    /// Logical offset up to which the stream is in the repository.
    pub shipped_offset: u64,
    /// Logical length of the stream on disk.
    pub stream_len: u64,
    pub lag_bytes: u64,
    pub lag_seconds: f64,
    pub last_upload_ms: Option<i64>,
    pub last_error: Option<String>,
    pub segments_shipped: u64,
    pub bytes_shipped: u64,
    pub chains_started: u64,
    /// Size of the chain's base plus its stream at the start: the compaction rule's base size.
    pub base_size: u64,
    /// Stream length when the chain was taken up (growth is measured from there).
    pub stream_start: u64,
}

/// Why a shard is recovering, and since when.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Recovery {
    /// Logical offset at which shipping stopped.
    pub offset: u64,
    pub reason: String,
    pub since_ms: i64,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    pub bytes_shipped: AtomicU64,
    pub bytes_stored: AtomicU64,
    pub objects_shipped: AtomicU64,
    pub upload_retries: AtomicU64,
    pub upload_errors: AtomicU64,
    pub upload_micros_total: AtomicU64,
    pub uploads_total: AtomicU64,
    pub rewrites_triggered: AtomicU64,
    pub rewrites_failed: AtomicU64,
    /// Rewrites asked of the server to recover a shard (invalid bytes, an unexplained cut).
    pub recovery_rewrites: AtomicU64,
    /// Torn frames (a crash's half-written command) stepped over.
    pub torn_frames: AtomicU64,
    pub snapshots_published: AtomicU64,
    pub last_snapshot_ms: AtomicU64,
    pub drift_keys: AtomicU64,
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// Everything shared: one entry per shard plus the counters.
#[derive(Debug, Default)]
pub struct Shared {
    pub shards: Vec<Mutex<ShardStatus>>,
    pub counters: Counters,
}

pub type SharedRef = Arc<Shared>;

impl Shared {
    pub fn new(shards: u32) -> SharedRef {
        Arc::new(Shared {
            shards: (0..shards)
                .map(|i| {
                    Mutex::new(ShardStatus {
                        shard: i,
                        ..Default::default()
                    })
                })
                .collect(),
            counters: Counters::default(),
        })
    }

    pub fn update(&self, shard: u32, f: impl FnOnce(&mut ShardStatus)) {
        if let Some(m) = self.shards.get(shard as usize) {
            let mut s = m.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut s);
        }
    }

    pub fn snapshot(&self) -> Vec<ShardStatus> {
        self.shards
            .iter()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .collect()
    }
}

/// This agent's place in its replication group (agents with one `instance`), as `status` and
/// `/metrics` show it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GroupStatus {
    /// This agent's name in the group (`[repository] node`).
    pub node: String,
    /// shipping | standby | stepping down
    pub state: String,
    /// What its server says: master | slave | unknown (unreachable).
    pub role: String,
    /// The primary its server replicates from (a replica), as `host:port`.
    #[serde(default)]
    pub primary: Option<String>,
    /// Whether the server answers (a primary) or its link to its primary is up (a replica).
    pub primary_reachable: bool,
    /// Who holds the lease (ships), as the lease document names it.
    #[serde(default)]
    pub lease_holder: Option<String>,
    /// Set while two servers of the group both say `role:master`.
    #[serde(default)]
    pub split_brain: Option<String>,
    /// Since when it is in `state` (unix ms).
    pub since_ms: i64,
    /// Times this agent took the lease over from another member.
    #[serde(default)]
    pub takeovers: u64,
    /// Times this agent stepped down.
    #[serde(default)]
    pub step_downs: u64,
}

/// What the agent reports across shard layouts and turns in its group: the shards of the
/// layout it follows now (none while it stands by) and its group status.
#[derive(Debug)]
pub struct Board {
    shared: Mutex<SharedRef>,
    group: Mutex<GroupStatus>,
}

pub type BoardRef = Arc<Board>;

impl Board {
    pub fn new(node: &str) -> BoardRef {
        Arc::new(Board {
            shared: Mutex::new(Shared::new(0)),
            group: Mutex::new(GroupStatus {
                node: node.to_string(),
                state: "starting".into(),
                role: "unknown".into(),
                ..Default::default()
            }),
        })
    }

    /// The shards now followed.
    pub fn shared(&self) -> SharedRef {
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_shared(&self, s: SharedRef) {
        *self.shared.lock().unwrap_or_else(|e| e.into_inner()) = s;
    }

    pub fn group(&self) -> GroupStatus {
        self.group.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn update_group(&self, f: impl FnOnce(&mut GroupStatus)) {
        f(&mut self.group.lock().unwrap_or_else(|e| e.into_inner()));
    }
}
