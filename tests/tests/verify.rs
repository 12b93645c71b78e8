//! `aofvault verify` and a damaged repository: a flipped byte in a segment, a deleted segment
//! and a truncated base are each named by `verify` (exit 3), while a restore refuses, names the
//! object, and leaves nothing behind that looks complete. An intact repository verifies, and
//! `--deep` replays it into a scratch server with the source's key counts.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aofvault_tests::keyspace;
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

    fn cmd(&self, args: &[&str]) -> agent::Output {
        let url = format!("file://{}", self.root().display());
        let state = self.tmp.path().join("state").display().to_string();
        let mut all = vec!["--repo", &url, "--instance", "t", "--state-dir", &state];
        all.extend_from_slice(args);
        agent::run(&all, &[]).unwrap()
    }

    fn plan(&self) -> serde_json::Value {
        self.cmd(&["restore", "--dry-run", "--json", "--to-dir", "/nonexistent"])
            .ok()
            .unwrap()
            .json()
            .unwrap()
    }

    /// Repository key → file path, for an object of `shard` in the plan.
    fn object(&self, plan: &serde_json::Value, shard: usize, object: &str) -> (String, PathBuf) {
        let chain = plan["plan"]["shards"][shard]["chain"].as_str().unwrap();
        let key = format!("instances/t/shards/{shard:04}/chains/{chain}/{object}");
        let path = self.root().join(&key);
        assert!(path.is_file(), "{} exists", path.display());
        (key, path)
    }
}

#[test]
fn verify_names_every_damaged_object_and_restore_refuses_leaving_nothing_complete() {
    let kevy = KevyServer::start(2).unwrap();
    let mut conn = kevy.conn().unwrap();
    let repo = Repo {
        tmp: tempfile::tempdir().unwrap(),
    };
    let url = format!("file://{}", repo.root().display());
    let state = repo.tmp.path().join("state").display().to_string();
    let dir = kevy.dir().display().to_string();
    let server = kevy.url();
    let args = [
        "--repo",
        &url,
        "--instance",
        "t",
        "--state-dir",
        &state,
        "--source",
        &dir,
        "--server",
        &server,
        "run",
    ];
    let mut agent = agent::spawn(&args, &[]).unwrap();
    agent
        .wait_for_log("snapshot published", Duration::from_secs(60))
        .unwrap();
    workload::mixed(&mut conn, 21, 2000, 300).unwrap();
    // BGSAVE: every shard gets a KEVYSNAP base and a new chain; more writes follow. (Not SAVE:
    // with writes right after it, `run` stops the shard; see the report of issue 6.)
    let _: () = redis::cmd("BGSAVE").query(&mut conn).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    workload::mixed(&mut conn, 22, 1000, 300).unwrap();
    // Two bursts a few ship intervals apart: the new chains get several segments.
    std::thread::sleep(Duration::from_millis(2500));
    workload::mixed(&mut conn, 23, 1000, 300).unwrap();
    kevy.wait_aof_flushed().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let plan = loop {
        let plan = repo.plan();
        let ends: Vec<u64> = plan["plan"]["shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["end"].as_u64().unwrap())
            .collect();
        let based = plan["plan"]["shards"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| !s["base"].as_array().unwrap().is_empty());
        if based && ends == kevy_sizes(&kevy) {
            break plan;
        }
        assert!(
            Instant::now() < deadline,
            "not shipped: {plan}\n{}",
            agent.logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    agent.terminate().unwrap();
    let expected = keyspace::dump(&mut conn, &[0]).unwrap();

    // Intact: no problems; --deep replays the latest state into a scratch redis-server.
    let out = repo.cmd(&["verify", "--deep", "--json"]);
    let doc = out.json().unwrap();
    assert_eq!(out.code(), Some(0), "{doc}\n{}", out.stderr);
    assert!(
        doc["snapshots"].as_array().unwrap().len() >= 2,
        "every snapshot is checked: {doc}"
    );
    assert_eq!(doc["deep"]["ran"], true, "{doc}");
    let kinds = expected.kinds();
    for (kind, n) in &kinds {
        assert_eq!(
            doc["deep"]["types"][kind].as_u64(),
            Some(*n as u64),
            "{kind} keys after a deep replay: {doc}"
        );
    }
    let first_snapshot = doc["snapshots"][0].as_str().unwrap().to_string();

    // Damage three objects of the latest chains.
    let seg0 = plan["plan"]["shards"][0]["segments"][0]["object"]
        .as_str()
        .unwrap();
    let (flipped_key, flipped) = repo.object(&plan, 0, seg0);
    let mut bytes = std::fs::read(&flipped).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&flipped, bytes).unwrap();
    // The first of several segments: named by a manifest, or followed by the others (a gap).
    let segs1 = plan["plan"]["shards"][1]["segments"].as_array().unwrap();
    assert!(
        segs1.len() >= 2,
        "shard 1's chain has several segments: {plan}"
    );
    let seg1 = segs1[0]["object"].as_str().unwrap();
    let (deleted_key, deleted) = repo.object(&plan, 1, seg1);
    std::fs::remove_file(&deleted).unwrap();
    // "<chain>/seg-<start>-<end>": how a finding names a deleted segment either way.
    let deleted_range = deleted_key[..deleted_key.find("seg-").unwrap() + 4 + 33].to_string();
    let base0 = plan["plan"]["shards"][0]["base"][0]["object"]
        .as_str()
        .unwrap();
    let (truncated_key, truncated) = repo.object(&plan, 0, base0);
    let len = std::fs::metadata(&truncated).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&truncated)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    let out = repo.cmd(&["verify"]);
    assert_eq!(
        out.code(),
        Some(3),
        "verify exits 3 on problems:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    for key in [&flipped_key, &deleted_range, &truncated_key] {
        assert!(
            out.stdout.contains(&format!("PROBLEM {key}")),
            "verify names {key}:\n{}",
            out.stdout
        );
    }
    assert!(out.stdout.contains("missing"), "{}", out.stdout);
    let doc = repo.cmd(&["verify", "--json"]).json().unwrap();
    assert_eq!(
        doc["findings"].as_array().unwrap().len(),
        3,
        "exactly the three damaged objects: {doc}"
    );
    // The first snapshot's chains were not touched.
    let out = repo.cmd(&["verify", "--snapshot", &first_snapshot]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);

    // Restore refuses and leaves nothing behind that looks complete.
    let target = repo.tmp.path().join("target");
    let out = repo.cmd(&["restore", "--to-dir", target.to_str().unwrap()]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        [&flipped_key, &deleted_key, &truncated_key]
            .iter()
            .any(|k| out.stderr.contains(k.as_str())),
        "the error names a damaged object: {}",
        out.stderr
    );
    let left: Vec<_> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "nothing left in the target: {left:?}");
    let live = RedisServer::start().unwrap();
    let out = repo.cmd(&["restore", "--to", &live.url()]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    let keys: u64 = redis::cmd("DBSIZE")
        .query(&mut live.conn().unwrap())
        .unwrap();
    assert_eq!(keys, 0, "nothing reached the live target");
}

#[test]
fn an_empty_repository_is_not_an_unreachable_one() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("file://{}", tmp.path().join("nothing-here").display());
    let state = tmp.path().join("state").display().to_string();
    for cmd in [
        &["verify"][..],
        &["restore", "--to-dir", "/nonexistent"][..],
        &["list"][..],
    ] {
        let mut args = vec!["--repo", &url, "--instance", "t", "--state-dir", &state];
        args.extend_from_slice(cmd);
        let out = agent::run(&args, &[]).unwrap();
        assert_eq!(
            out.code(),
            Some(5),
            "{cmd:?}: exit 5 (empty): {}",
            out.stderr
        );
    }
}
