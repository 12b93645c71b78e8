//! `run` in-process against a real kevy (4 shards): under writes, every shard's stored segments
//! are contiguous and, concatenated, equal the AOF file byte for byte after the header.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

mod common;

use aofvault::repo::{Repo, RepoSpec, ShardId};
use aofvault_tests::{workload, KevyServer};
use common::wait_synced;
use tokio_util::sync::CancellationToken;

fn config(
    source: &std::path::Path,
    repo: &std::path::Path,
    state: &std::path::Path,
    url: &str,
) -> aofvault_config::Config {
    let toml = format!(
        "[source]\ndir = {:?}\nurl = {:?}\n[repository]\nurl = \"file://{}\"\ninstance = \"smoke\"\n[state]\ndir = {:?}\n[ship]\ninterval = \"200ms\"\n",
        source.display().to_string(),
        url,
        repo.display(),
        state.display().to_string()
    );
    aofvault_config::parse(&toml, "test")
        .unwrap()
        .validate(&aofvault_config::Env::empty())
        .unwrap()
}

/// The daemon, in-process.
struct Daemon {
    token: CancellationToken,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
    _hup: tokio::sync::mpsc::Sender<()>,
}

impl Daemon {
    fn start(rt: &tokio::runtime::Runtime, cfg: aofvault_config::Config) -> Daemon {
        let token = CancellationToken::new();
        let (hup, hup_rx) = tokio::sync::mpsc::channel(1);
        let reload = cfg.clone();
        let run = aofvault::daemon::run(
            cfg,
            token.clone(),
            hup_rx,
            Box::new(move || Ok(reload.clone())),
        );
        Daemon {
            token,
            handle: rt.spawn(run),
            _hup: hup,
        }
    }

    /// Cancels and waits for a clean stop.
    fn stop(self, rt: &tokio::runtime::Runtime) {
        self.token.cancel();
        rt.block_on(self.handle).unwrap().unwrap();
    }
}

#[test]
fn kevy_aof_is_shipped_byte_for_byte() {
    let kevy = KevyServer::start(4).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(
        kevy.dir(),
        &tmp.path().join("repo"),
        &tmp.path().join("state"),
        &kevy.url(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let d = Daemon::start(&rt, cfg);

    let mut conn = kevy.conn().unwrap();
    workload::mixed(&mut conn, 7, 3000, 500).unwrap();
    kevy.wait_aof_flushed().unwrap();

    let repo = Repo::open(&RepoSpec::File(tmp.path().join("repo")), 3).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    for shard in 0..4u32 {
        let file = std::fs::read(kevy.dir().join(format!("aof-{shard}.aof"))).unwrap();
        loop {
            let (_, start, stored) = rt
                .block_on(common::stored_stream(&repo, "smoke", shard))
                .unwrap();
            if stored == file[start as usize..] {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "shard {shard}: stored {} of {} bytes",
                stored.len(),
                file.len() - start as usize
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    d.stop(&rt);
    // A snapshot names all four shards.
    let ids = rt.block_on(repo.snapshot_ids("smoke")).unwrap();
    assert!(!ids.is_empty(), "a snapshot was published");
    let m = rt
        .block_on(repo.snapshot("smoke", ids.last().unwrap()))
        .unwrap();
    assert_eq!(m.shards.len(), 4);
}

#[test]
fn kevy_rewrite_and_save_start_new_chains() {
    let kevy = KevyServer::start(2).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(
        kevy.dir(),
        &tmp.path().join("repo"),
        &tmp.path().join("state"),
        &kevy.url(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let d = Daemon::start(&rt, cfg);
    let repo = Repo::open(&RepoSpec::File(tmp.path().join("repo")), 3).unwrap();
    let aof = |s: u32| kevy.dir().join(format!("aof-{s}.aof"));
    let mut conn = kevy.conn().unwrap();
    workload::mixed(&mut conn, 1, 1000, 200).unwrap();
    kevy.wait_aof_flushed().unwrap();
    wait_synced(&rt, &repo, "smoke", 2, aof);
    let chains_before = rt
        .block_on(repo.chain_ids("smoke", ShardId(0)))
        .unwrap()
        .len();

    let _: () = redis::cmd("BGREWRITEAOF").query(&mut conn).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    workload::mixed(&mut conn, 2, 500, 200).unwrap();
    kevy.wait_aof_flushed().unwrap();
    wait_synced(&rt, &repo, "smoke", 2, aof);
    let ids = rt.block_on(repo.chain_ids("smoke", ShardId(0))).unwrap();
    assert_eq!(
        ids.len(),
        chains_before + 1,
        "a rewrite starts one new chain"
    );
    let head = rt
        .block_on(repo.chain_head("smoke", ShardId(0), ids.last().unwrap()))
        .unwrap()
        .unwrap();
    assert!(
        head.base.is_empty(),
        "a rewritten kevy AOF is a full image: no base"
    );
    assert_eq!(head.reason, "rewrite");

    let _: () = redis::cmd("SAVE").query(&mut conn).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    workload::mixed(&mut conn, 3, 500, 200).unwrap();
    kevy.wait_aof_flushed().unwrap();
    wait_synced(&rt, &repo, "smoke", 2, aof);
    for shard in 0..2 {
        let ids = rt
            .block_on(repo.chain_ids("smoke", ShardId(shard)))
            .unwrap();
        let head = rt
            .block_on(repo.chain_head("smoke", ShardId(shard), ids.last().unwrap()))
            .unwrap()
            .unwrap();
        assert_eq!(head.reason, "save", "shard {shard}");
        assert_eq!(head.base.len(), 1);
        let dump = std::fs::read(kevy.dir().join(format!("dump-{shard}.rdb"))).unwrap();
        assert_eq!(
            head.base[0].crc32c,
            crc32c::crc32c(&dump),
            "the base is the dump written by SAVE"
        );
    }
    d.stop(&rt);
}

fn redis_files(dir: &std::path::Path) -> (String, Vec<String>) {
    let text = std::fs::read(dir.join("appendonlydir/appendonly.aof.manifest")).unwrap();
    let m = aofvault_formats::aof_manifest::AofManifest::parse(&text).unwrap();
    (
        m.base().unwrap().name.clone(),
        m.incrs().map(|i| i.name.clone()).collect(),
    )
}

#[test]
fn redis_incr_is_shipped_and_a_rewrite_starts_a_chain_on_the_new_base() {
    let redis = aofvault_tests::RedisServer::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(
        redis.dir(),
        &tmp.path().join("repo"),
        &tmp.path().join("state"),
        &redis.url(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let d = Daemon::start(&rt, cfg);
    let repo = Repo::open(&RepoSpec::File(tmp.path().join("repo")), 3).unwrap();
    let mut conn = redis.conn().unwrap();
    workload::mixed(&mut conn, 5, 2000, 300).unwrap();
    let incr = |dir: &std::path::Path| {
        dir.join("appendonlydir")
            .join(redis_files(dir).1.last().unwrap())
    };
    wait_synced(&rt, &repo, "smoke", 1, |_| incr(redis.dir()));

    let _: String = redis::cmd("BGREWRITEAOF").query(&mut conn).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query(&mut conn)
            .unwrap();
        if info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrites:1") {
            break;
        }
        assert!(Instant::now() < deadline, "rewrite did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
    workload::mixed(&mut conn, 6, 500, 300).unwrap();
    wait_synced(&rt, &repo, "smoke", 1, |_| incr(redis.dir()));
    let ids = rt.block_on(repo.chain_ids("smoke", ShardId(0))).unwrap();
    assert_eq!(ids.len(), 2, "the rewrite started a second chain");
    let head = rt
        .block_on(repo.chain_head("smoke", ShardId(0), ids.last().unwrap()))
        .unwrap()
        .unwrap();
    let (base, _) = redis_files(redis.dir());
    assert_eq!(head.base[0].file_name, base);
    let bytes = std::fs::read(redis.dir().join("appendonlydir").join(&base)).unwrap();
    assert_eq!(head.base[0].crc32c, crc32c::crc32c(&bytes));
    d.stop(&rt);
}
