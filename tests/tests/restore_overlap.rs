//! A live restore replays a shard while its later segments still download: a corrupt segment
//! late in a chain must stop the restore with an error naming it, and none of that segment's
//! commands may reach the target (its bytes never checked out), while the target may hold what
//! came before it.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aofvault_tests::{agent, workload, KevyServer, RedisServer};
use common::cli::kevy_sizes;

mod common;

struct Repo {
    tmp: tempfile::TempDir,
}

impl Repo {
    fn root(&self) -> PathBuf {
        self.tmp.path().join("repo")
    }

    fn global(&self) -> Vec<String> {
        let url = format!("file://{}", self.root().display());
        let state = self.tmp.path().join("state").display().to_string();
        ["--repo", &url, "--instance", "t", "--state-dir", &state]
            .map(String::from)
            .to_vec()
    }

    fn cmd(&self, args: &[&str]) -> agent::Output {
        let mut all = self.global();
        all.extend(args.iter().map(|a| a.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        agent::run(&all, &[]).unwrap()
    }

    fn plan(&self) -> serde_json::Value {
        self.cmd(&["restore", "--dry-run", "--json", "--to-dir", "/nonexistent"])
            .ok()
            .unwrap()
            .json()
            .unwrap()
    }

    /// Waits until the repository holds `sizes` for every shard; returns the plan.
    fn wait_shipped(&self, sizes: &[u64], agent: &agent::AgentProcess) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let plan = self.plan();
            let ends: Vec<u64> = plan["plan"]["shards"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["end"].as_u64().unwrap())
                .collect();
            if ends == sizes {
                return plan;
            }
            assert!(
                Instant::now() < deadline,
                "not shipped: {plan}\n{}",
                agent.logs()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

#[test]
fn a_corrupt_late_segment_fails_the_live_restore_and_none_of_its_commands_is_sent() {
    let kevy = KevyServer::start(1).unwrap();
    let mut conn = kevy.conn().unwrap();
    let repo = Repo {
        tmp: tempfile::tempdir().unwrap(),
    };
    let dir = kevy.dir().display().to_string();
    let server = kevy.url();
    let mut args = repo.global();
    args.extend(["--source", &dir, "--server", &server, "run"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut agent = agent::spawn(&args, &[]).unwrap();
    agent
        .wait_for_log("snapshot published", Duration::from_secs(60))
        .unwrap();
    // Several bursts, each shipped before the next: the chain gets several segments.
    for seed in 31..34 {
        workload::mixed(&mut conn, seed, 1500, 300).unwrap();
        kevy.wait_aof_flushed().unwrap();
        repo.wait_shipped(&kevy_sizes(&kevy), &agent);
    }
    let before = kevy_sizes(&kevy)[0];
    // The last segment: the only one holding this key.
    let _: () = redis::cmd("SET")
        .arg("only-in-the-last-segment")
        .arg("x")
        .query(&mut conn)
        .unwrap();
    kevy.wait_aof_flushed().unwrap();
    let plan = repo.wait_shipped(&kevy_sizes(&kevy), &agent);
    agent.terminate().unwrap();

    let segments = plan["plan"]["shards"][0]["segments"].as_array().unwrap();
    assert!(segments.len() >= 3, "several segments: {plan}");
    let last = segments.last().unwrap();
    assert!(
        last["start"].as_u64().unwrap() >= before,
        "the last segment holds only the last write: {plan}"
    );
    let chain = plan["plan"]["shards"][0]["chain"].as_str().unwrap();
    let key = format!(
        "instances/t/shards/0000/chains/{chain}/{}",
        last["object"].as_str().unwrap()
    );
    let path = repo.root().join(&key);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();

    let target = RedisServer::start().unwrap();
    let out = repo.cmd(&["restore", "--to", &target.url()]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains(&key),
        "the error names the corrupt segment {key}: {}",
        out.stderr
    );
    let mut t = target.conn().unwrap();
    let exists: u64 = redis::cmd("EXISTS")
        .arg("only-in-the-last-segment")
        .query(&mut t)
        .unwrap();
    assert_eq!(
        exists, 0,
        "a command of the corrupt segment reached the target"
    );

    // The target now holds part of the backup: the next restore refuses it without --force.
    let keys: u64 = redis::cmd("DBSIZE").query(&mut t).unwrap();
    if keys > 0 {
        let again = repo.cmd(&["restore", "--to", &target.url()]);
        assert_ne!(again.code(), Some(0), "{}", again.stderr);
    }
}
