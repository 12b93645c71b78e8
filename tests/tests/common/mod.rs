//! Helpers shared by the end-to-end tests: reading a repository back with the agent's own
//! library (here), and the agent's command line against a test's repository, the servers'
//! stream lengths and the waits on them ([`cli`]).

#![allow(clippy::unwrap_used, dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aofvault::repo::{keys, Repo, RepoSpec, ShardId};

pub fn file_repo(path: &Path) -> Repo {
    Repo::open(&RepoSpec::File(path.to_path_buf()), 3).unwrap()
}

/// The newest chain of `shard`: its stream start and the concatenated stored segments (checked
/// to be contiguous).
pub async fn stored_stream(
    repo: &Repo,
    instance: &str,
    shard: u32,
) -> Option<(String, u64, Vec<u8>)> {
    let ids = repo.chain_ids(instance, ShardId(shard)).await.unwrap();
    let id = ids.last()?;
    let head = repo
        .chain_head(instance, ShardId(shard), id)
        .await
        .unwrap()?;
    let segs = repo.segments(instance, ShardId(shard), id).await.unwrap();
    let mut at = head.stream_start;
    let mut out = Vec::new();
    let dir = keys::chain_dir(instance, ShardId(shard), id);
    for (s, _) in segs {
        assert_eq!(s.start, at, "segments of shard {shard} are contiguous");
        at = s.end;
        out = repo
            .download(
                &format!("{dir}{}", s.object),
                s.crc32c,
                Some(s.end - s.start),
                out,
            )
            .await
            .unwrap();
    }
    Some((id.clone(), head.stream_start, out))
}

/// Waits (≤ 30 s) until the newest chain of every shard holds exactly the file's bytes after
/// its start; returns the chain ids.
pub fn wait_synced(
    rt: &tokio::runtime::Runtime,
    repo: &Repo,
    instance: &str,
    shards: u32,
    file_of: impl Fn(u32) -> PathBuf,
) -> Vec<String> {
    wait_synced_for(rt, repo, instance, shards, file_of, Duration::from_secs(30))
}

/// [`wait_synced`] with a deadline of your own.
pub fn wait_synced_for(
    rt: &tokio::runtime::Runtime,
    repo: &Repo,
    instance: &str,
    shards: u32,
    file_of: impl Fn(u32) -> PathBuf,
    limit: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut ids = Vec::new();
    for shard in 0..shards {
        loop {
            let file = std::fs::read(file_of(shard)).unwrap_or_default();
            if let Some((id, start, stored)) = rt.block_on(stored_stream(repo, instance, shard)) {
                if file.len() >= start as usize && stored == file[start as usize..] {
                    ids.push(id);
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "shard {shard}: stored {} of {} bytes",
                    stored.len(),
                    file.len()
                );
            }
            assert!(Instant::now() < deadline, "shard {shard}: no chain");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    ids
}

pub fn chain_count(rt: &tokio::runtime::Runtime, repo: &Repo, instance: &str, shard: u32) -> usize {
    rt.block_on(repo.chain_ids(instance, ShardId(shard)))
        .unwrap()
        .len()
}

pub mod cli;
pub mod lease;
