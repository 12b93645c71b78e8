//! The oracle: restores the repository with the library's own reading code (the latest
//! snapshot's plan, extended by every stored segment that continues it; fetched, checked and
//! fed as commands) into one [`Model`] per shard, and checks the repository's own shape.

use aofvault::repo::plan::{plan, Selection};
use aofvault::repo::{Repo, ShardId};
use aofvault::restore::feed::{feed_shard, FeedOptions, Sink};
use aofvault::restore::fetch::fetch;
use aofvault::restore::progress::Progress;
use aofvault::restore::retry::Retry;
use aofvault::restore::translate::Kind;

use super::model::Model;

/// Replays a restore's commands into a model.
struct ModelSink<'a> {
    model: &'a mut Model,
}

impl Sink for ModelSink<'_> {
    fn command(&mut self, args: &[&[u8]]) -> anyhow::Result<()> {
        self.model.apply(args).map_err(anyhow::Error::msg)
    }
}

/// What a restore of the latest snapshot holds, per shard; `None` before any snapshot.
pub async fn restore_latest(
    repo: &Repo,
    instance: &str,
    kind: Kind,
    shards: usize,
) -> Result<Option<Vec<Model>>, String> {
    if repo
        .snapshot_ids(instance)
        .await
        .map_err(|e| e.to_string())?
        .is_empty()
    {
        return Ok(None);
    }
    let p = plan(repo, instance, Selection::Latest)
        .await
        .map_err(|e| format!("restore plan: {e:#}"))?;
    let staging = tempfile::tempdir().map_err(|e| e.to_string())?;
    let progress = Progress::new("sim restore", p.total_bytes());
    // The oracle reads a healthy store: no retries (a fault here is the oracle's, not the agent's).
    let no_retry = Retry {
        deadline: std::time::Duration::ZERO,
    };
    let staged = fetch(repo, &p, staging.path(), b"", &progress, &no_retry)
        .await
        .map_err(|e| format!("restore fetch: {e:#}"))?;
    let mut models = vec![Model::default(); shards];
    let opts = FeedOptions::new(kind, kind, false, 0);
    for s in &staged {
        let Some(model) = models.get_mut(s.shard as usize) else {
            return Err(format!("the restore names shard {} of {shards}", s.shard));
        };
        let mut sink = ModelSink { model };
        feed_shard(s, &opts, &mut sink)
            .map_err(|e| format!("restore replay, shard {}: {e:#}", s.shard))?;
    }
    Ok(Some(models))
}

/// Segments are written once: a retry must store the object it tried before, so no two
/// segments of a chain may cover overlapping bytes (`[a,b)` beside `[a,c)` means a retry read
/// more and stored something else).
pub async fn check_segments(repo: &Repo, instance: &str, shards: usize) -> Result<(), String> {
    for shard in 0..shards as u32 {
        let ids = repo
            .chain_ids(instance, ShardId(shard))
            .await
            .map_err(|e| e.to_string())?;
        for id in ids {
            let segs = repo
                .segments(instance, ShardId(shard), &id)
                .await
                .map_err(|e| e.to_string())?;
            for pair in segs.windows(2) {
                let (a, b) = (&pair[0].0, &pair[1].0);
                // The same range twice (names differ only in their seen times) is one object
                // written again: harmless if the bytes agree.
                let same = a.start == b.start && a.end == b.end && a.crc32c == b.crc32c;
                if b.start < a.end && !same {
                    return Err(format!(
                        "shard {shard} chain {id}: overlapping segments [{}, {}) and [{}, {}) — a retry stored a different object",
                        a.start, a.end, b.start, b.end
                    ));
                }
            }
        }
    }
    Ok(())
}
