//! `run` in-process against a real kevy (4 shards): under writes, every shard's stored segments
//! are contiguous and, concatenated, equal the AOF file byte for byte after the header.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use aofvault::repo::{Repo, RepoSpec, ShardId};
use aofvault_tests::{workload, KevyServer};
use tokio_util::sync::CancellationToken;

fn config(source: &std::path::Path, repo: &std::path::Path, state: &std::path::Path, url: &str) -> aofvault_config::Config {
    let toml = format!(
        "[source]\ndir = {:?}\nurl = {:?}\n[repository]\nurl = \"file://{}\"\ninstance = \"smoke\"\n[state]\ndir = {:?}\n[ship]\ninterval = \"200ms\"\n",
        source.display().to_string(),
        url,
        repo.display(),
        state.display().to_string()
    );
    aofvault_config::parse(&toml, "test").unwrap().validate(&aofvault_config::Env::empty()).unwrap()
}

async fn stored_stream(repo: &Repo, shard: u32) -> (u64, Vec<u8>) {
    let ids = repo.chain_ids("smoke", ShardId(shard)).await.unwrap();
    let id = ids.last().unwrap();
    let head = repo.chain_head("smoke", ShardId(shard), id).await.unwrap().unwrap();
    let segs = repo.segments("smoke", ShardId(shard), id).await.unwrap();
    let mut at = head.stream_start;
    let mut out = Vec::new();
    let dir = aofvault::repo::keys::chain_dir("smoke", ShardId(shard), id);
    for (s, _) in segs {
        assert_eq!(s.start, at, "segments of shard {shard} are contiguous");
        at = s.end;
        out = repo.download(&format!("{dir}{}", s.object), s.crc32c, Some(s.end - s.start), out).await.unwrap();
    }
    (head.stream_start, out)
}

#[test]
fn kevy_aof_is_shipped_byte_for_byte() {
    let kevy = KevyServer::start(4).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(kevy.dir(), &tmp.path().join("repo"), &tmp.path().join("state"), &kevy.url());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let token = CancellationToken::new();
    let (_hup_tx, hup_rx) = tokio::sync::mpsc::channel(1);
    let c2 = cfg.clone();
    let daemon = rt.spawn(aofvault::daemon::run(cfg, token.clone(), hup_rx, Box::new(move || Ok(c2.clone()))));

    let mut conn = kevy.conn().unwrap();
    workload::mixed(&mut conn, 7, 3000, 500).unwrap();
    kevy.wait_aof_flushed().unwrap();

    let repo = Repo::open(&RepoSpec::File(tmp.path().join("repo")), 3).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    for shard in 0..4u32 {
        let file = std::fs::read(kevy.dir().join(format!("aof-{shard}.aof"))).unwrap();
        loop {
            let (start, stored) = rt.block_on(stored_stream(&repo, shard));
            if stored == file[start as usize..] {
                break;
            }
            assert!(Instant::now() < deadline, "shard {shard}: stored {} of {} bytes", stored.len(), file.len() - start as usize);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    token.cancel();
    rt.block_on(daemon).unwrap().unwrap();
    // A snapshot names all four shards.
    let ids = rt.block_on(repo.snapshot_ids("smoke")).unwrap();
    assert!(!ids.is_empty(), "a snapshot was published");
    let m = rt.block_on(repo.snapshot("smoke", ids.last().unwrap())).unwrap();
    assert_eq!(m.shards.len(), 4);
}
