//! What the tests' `Vault`s (a repository, a state directory, and the agent's command line
//! against them) have in common: reading the latest restore's plan and the status, and waiting
//! on them; and what they are compared with — the servers' AOF stream lengths and key dumps.

use std::time::{Duration, Instant};

use aofvault_tests::keyspace::{self, Keyspace};
use aofvault_tests::{agent, KevyServer, RedisServer};

/// The agent's command line against one test repository. A `Vault` says how to run a command;
/// the reads and waits come with it.
pub trait Cli {
    /// Runs `aofvault <the vault's global options> args` to its end.
    fn cmd(&self, args: &[&str]) -> agent::Output;

    /// How often the waits below look again.
    fn poll(&self) -> Duration {
        Duration::from_millis(300)
    }

    /// `status --json` (the status file the daemon writes every second).
    fn status(&self) -> serde_json::Value {
        self.cmd(&["status", "--json"])
            .json()
            .unwrap_or(serde_json::Value::Null)
    }

    /// The end offset of every shard in a latest restore's plan (`None`: no snapshot yet).
    fn plan_ends(&self) -> Option<Vec<u64>> {
        let out = self.cmd(&["restore", "--dry-run", "--json", "--to-dir", "/nonexistent"]);
        if !out.success() {
            return None;
        }
        out.json().ok()?["plan"]["shards"]
            .as_array()?
            .iter()
            .map(|s| s["end"].as_u64())
            .collect()
    }

    /// Waits (≤ 120 s) until a latest restore reaches `sizes()` on every shard.
    fn wait_shipped(&self, sizes: &dyn Fn() -> Vec<u64>, agent: &agent::AgentProcess) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ends = self.plan_ends();
            let want = sizes();
            if ends.as_ref() == Some(&want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not shipped: plan ends {ends:?}, files {want:?}\nagent log:\n{}",
                agent.logs()
            );
            std::thread::sleep(self.poll());
        }
    }

    /// Waits (≤ 90 s) until the latest restore's plan satisfies `done(ends)`.
    fn wait_plan(&self, what: &str, done: &dyn Fn(&[u64]) -> bool, logs: &dyn Fn() -> String) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let ends = self.plan_ends();
            if ends.as_deref().is_some_and(done) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: plan ends {ends:?}\nagent log:\n{}",
                logs()
            );
            std::thread::sleep(self.poll());
        }
    }

    /// Waits (≤ 90 s) until `done(status)` holds.
    fn wait_status(
        &self,
        what: &str,
        done: &dyn Fn(&serde_json::Value) -> bool,
        logs: &dyn Fn() -> String,
    ) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let st = self.status();
            if done(&st) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {st}\nagent log:\n{}",
                logs()
            );
            std::thread::sleep(self.poll());
        }
    }
}

/// A number from the environment (the soak script scales the tests with these), or `default`.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The length of each kevy shard's AOF (0 for one not there yet).
pub fn kevy_sizes(k: &KevyServer) -> Vec<u64> {
    aofvault_tests::vault::file_sizes(&k.aof_paths())
}

/// The logical stream length of a Redis ≥ 7 AOF: the incr files the manifest lists, summed.
pub fn redis_sizes(r: &RedisServer) -> Vec<u64> {
    let dir = r.dir().join("appendonlydir");
    let manifest = std::fs::read_to_string(dir.join("appendonly.aof.manifest")).unwrap();
    let total = manifest
        .lines()
        .filter(|l| l.ends_with("type i"))
        .filter_map(|l| l.split(' ').nth(1))
        .map(|name| std::fs::metadata(dir.join(name)).unwrap().len())
        .sum();
    vec![total]
}

/// Database 0 of the server at `url`.
pub fn dump(url: &str) -> Keyspace {
    keyspace::dump(&mut aofvault_tests::connect(url).unwrap(), &[0]).unwrap()
}

/// Sends a command whose failure is fine (a rewrite already running, ...).
pub fn try_cmd(url: &str, name: &str) -> bool {
    match aofvault_tests::connect(url) {
        Ok(mut c) => redis::cmd(name).query::<redis::Value>(&mut c).is_ok(),
        Err(_) => false,
    }
}
