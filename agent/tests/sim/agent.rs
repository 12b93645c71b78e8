//! The agent side of a seed: one real [`Tailer`] per shard, built as the daemon builds them,
//! and what the daemon's loop keeps about them (chain heads, whether a snapshot is owed).

use std::time::Duration;

use aofvault::repo::Repo;
use aofvault::ship::tailer::{ShipSettings, Tailer};
use aofvault::ship::Event;
use aofvault::status::{Shared, SharedRef};
use aofvault_formats::vault::{ChainHead, ServerLayout};
use tokio::sync::mpsc;

use super::driver::INSTANCE;
use super::server::Server;

/// The agent side: one tailer per shard and what the daemon's loop keeps about them.
pub struct Agent {
    pub tailers: Vec<Tailer>,
    pub events: mpsc::Receiver<Event>,
    pub shared: SharedRef,
    pub heads: Vec<Option<ChainHead>>,
    pub published_start: bool,
    pub snapshot_due: Option<String>,
    /// Each tailer's last step error (`None` after a step that succeeded).
    pub last_error: Vec<Option<String>>,
}

impl Agent {
    pub fn start(server: &dyn Server, repo: &Repo, segment_max: usize) -> Agent {
        let layout = server.layout();
        let record: ServerLayout = layout.record();
        let shards = server.shard_count();
        let shared = Shared::new(shards as u32);
        let (tx, events) = mpsc::channel(1024);
        let settings = ShipSettings {
            interval: Duration::from_secs(1),
            segment_max,
            poll: Duration::from_secs(1),
        };
        let tailers = (0..shards as u32)
            .map(|shard| {
                Tailer::new(
                    shard,
                    layout.follower(shard),
                    repo.clone(),
                    INSTANCE.to_string(),
                    record.clone(),
                    None,
                    settings.clone(),
                    shared.clone(),
                    tx.clone(),
                )
            })
            .collect();
        Agent {
            tailers,
            events,
            shared,
            heads: vec![None; shards],
            published_start: false,
            snapshot_due: None,
            last_error: vec![None; shards],
        }
    }

    pub fn starting(&self) -> bool {
        self.tailers.iter().any(|t| t.head().is_none())
    }
}
