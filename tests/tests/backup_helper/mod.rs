//! Shared by `fidelity.rs` and `drift.rs`: a `file://` repository with the real agent shipping
//! into it, waits that end when the repository holds what the server wrote, and the servers'
//! own benchmark tool.

#![allow(clippy::unwrap_used, dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aofvault_tests::keyspace::{self, Keyspace};
use aofvault_tests::{agent, KevyServer, RedisServer};

/// A repository, a state dir and (once started) the agent shipping into it.
pub struct Backup {
    pub tmp: tempfile::TempDir,
    pub repo_url: String,
    pub agent: Option<agent::AgentProcess>,
}

impl Backup {
    pub fn file() -> Backup {
        let tmp = tempfile::tempdir().unwrap();
        let repo_url = format!("file://{}", tmp.path().join("repo").display());
        Backup {
            tmp,
            repo_url,
            agent: None,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn global(&self) -> Vec<String> {
        let state = self.path("state").display().to_string();
        [
            "--repo",
            &self.repo_url,
            "--instance",
            "t",
            "--state-dir",
            &state,
        ]
        .map(String::from)
        .to_vec()
    }

    /// `aofvault <global> <args>`.
    pub fn cmd(&self, args: &[&str]) -> agent::Output {
        let mut all = self.global();
        all.extend(args.iter().map(|s| s.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        agent::run_with_timeout(&all, &[], Duration::from_secs(600)).unwrap()
    }

    /// Starts `aofvault run` on a server and waits for its first snapshot.
    pub fn start(&mut self, source: &Path, server: &str) {
        self.start_with(source, server, None)
    }

    /// [`Backup::start`] with a configuration file.
    pub fn start_with(&mut self, source: &Path, server: &str, config: Option<&Path>) {
        let mut args = self.global();
        if let Some(c) = config {
            args.extend(["--config".into(), c.display().to_string()]);
        }
        args.extend([
            "--source".into(),
            source.display().to_string(),
            "--server".into(),
            server.into(),
            "run".into(),
        ]);
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut agent = agent::spawn(&a, &[]).unwrap();
        agent
            .wait_for_log("snapshot published", Duration::from_secs(60))
            .unwrap();
        self.agent = Some(agent);
    }

    /// The plan of a latest restore, as `restore --dry-run --json` prints it.
    pub fn plan(&self) -> serde_json::Value {
        self.cmd(&["restore", "--dry-run", "--json", "--to-dir", "/nonexistent"])
            .ok()
            .unwrap()
            .json()
            .unwrap()
    }

    /// Waits (≤ 90 s) until a latest restore covers every shard up to `sizes()` (the stream
    /// length of each shard on the server).
    pub fn wait_shipped(&self, sizes: impl Fn() -> Vec<u64>) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let plan = self.plan();
            let ends: Vec<u64> = plan["plan"]["shards"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["end"].as_u64().unwrap())
                .collect();
            let want = sizes();
            if ends == want {
                return;
            }
            let log = self.agent.as_ref().map(|a| a.logs()).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "not shipped: plan ends {ends:?}, files {want:?}\nagent log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// The size of each kevy shard's AOF.
pub fn kevy_sizes(k: &KevyServer) -> impl Fn() -> Vec<u64> + '_ {
    move || {
        k.aof_paths()
            .iter()
            .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .collect()
    }
}

/// Size of the last incr file of a Redis ≥ 7 AOF dir.
pub fn redis_sizes(r: &RedisServer) -> impl Fn() -> Vec<u64> + '_ {
    move || {
        let dir = r.dir().join("appendonlydir");
        let manifest = std::fs::read_to_string(dir.join("appendonly.aof.manifest")).unwrap();
        let incr = manifest
            .lines()
            .rfind(|l| l.ends_with("type i"))
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .to_string();
        vec![std::fs::metadata(dir.join(incr)).unwrap().len()]
    }
}

pub fn dump(url: &str) -> Keyspace {
    keyspace::dump(&mut aofvault_tests::connect(url).unwrap(), &[0]).unwrap()
}

/// `redis-benchmark -p PORT -q <args>`; panics with its output if it fails.
pub fn benchmark(port: u16, args: &[&str]) {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q"])
        .args(args)
        .output()
        .expect("redis-benchmark runs");
    assert!(
        out.status.success(),
        "redis-benchmark {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.contains("ERR"),
        "redis-benchmark {args:?} got errors: {text}"
    );
}

/// Two keys `prefix…` that kevy routes to the same shard (`same`) or to different shards.
pub fn key_pair(prefix: &str, shards: u32, same: bool) -> (String, String) {
    use aofvault_formats::kevy::{shard_for_key, Routing};
    let a = format!("{prefix}-a");
    let sa = shard_for_key(a.as_bytes(), shards, Routing::KevyHash);
    let b = (0..1000)
        .map(|i| format!("{prefix}-b{i}"))
        .find(|b| (shard_for_key(b.as_bytes(), shards, Routing::KevyHash) == sa) == same)
        .unwrap();
    (a, b)
}

/// `n` keys `prefix-…` that kevy routes to one shard.
pub fn same_shard(prefix: &str, shards: u32, n: usize) -> Vec<String> {
    use aofvault_formats::kevy::{shard_for_key, Routing};
    let first = format!("{prefix}-0");
    let shard = shard_for_key(first.as_bytes(), shards, Routing::KevyHash);
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .filter(|k| shard_for_key(k.as_bytes(), shards, Routing::KevyHash) == shard)
        .take(n)
        .collect()
}
