//! [`Vault`]: one test's repository (a local folder, or a prefix of the shared S3 server behind
//! a [`FaultProxy`]), its state directory, and the `aofvault` commands that use them.
//!
//! The data-loss and server-crash tests all need the same few things: run the daemon, read
//! `status --json`, wait until a latest restore reaches the files on disk, restore into a
//! fresh server and verify. Keeping them here keeps each test about its scenario.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

use crate::agent::{self, AgentProcess, Output};
use crate::proxy::FaultProxy;
use crate::s3::{shared_s3, S3Server};

/// Where the repository lives.
#[derive(Debug)]
enum Store {
    /// `file://<tmp>/repo`
    File,
    /// A prefix of the shared S3 server; the daemon reaches it through the proxy.
    S3 {
        s3: &'static S3Server,
        prefix: String,
        proxy: FaultProxy,
    },
}

/// A repository, a state dir and the commands that use them. See the module docs.
#[derive(Debug)]
pub struct Vault {
    tmp: TempDir,
    store: Store,
    instance: String,
}

impl Vault {
    /// A repository in a local folder.
    pub fn file() -> Result<Vault> {
        Ok(Vault {
            tmp: tempfile::tempdir().context("temp dir for a vault")?,
            store: Store::File,
            instance: "t".into(),
        })
    }

    /// A repository under its own prefix of the shared S3 server, with a fault proxy in front
    /// that [`Vault::spawn`] sends the daemon through.
    pub fn s3(name: &str) -> Result<Vault> {
        let s3 = shared_s3();
        let prefix = format!(
            "{name}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        Ok(Vault {
            tmp: tempfile::tempdir().context("temp dir for a vault")?,
            store: Store::S3 {
                s3,
                prefix,
                proxy: FaultProxy::start(s3.addr())?,
            },
            instance: "t".into(),
        })
    }

    /// A path inside the vault's temp dir (restore targets, config files).
    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The folder of a `file://` repository (`None` for S3).
    pub fn repo_dir(&self) -> Option<PathBuf> {
        match self.store {
            Store::File => Some(self.path("repo")),
            Store::S3 { .. } => None,
        }
    }

    /// The fault proxy in front of an S3 store (`None` for a file repository).
    pub fn proxy(&self) -> Option<&FaultProxy> {
        match &self.store {
            Store::File => None,
            Store::S3 { proxy, .. } => Some(proxy),
        }
    }

    pub fn repo_url(&self) -> String {
        match &self.store {
            Store::File => format!("file://{}", self.path("repo").display()),
            Store::S3 { s3, prefix, .. } => s3.repo_url(prefix),
        }
    }

    /// `--repo … --instance … --state-dir …` followed by `args`.
    fn args(&self, args: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = vec![
            "--repo".into(),
            self.repo_url(),
            "--instance".into(),
            self.instance.clone(),
            "--state-dir".into(),
            self.path("state").display().to_string(),
        ];
        all.extend(args.iter().map(|s| s.to_string()));
        all
    }

    /// Env for a command straight to the store (no faults).
    fn env_direct(&self) -> Vec<(String, String)> {
        match &self.store {
            Store::File => Vec::new(),
            Store::S3 { s3, .. } => s3.env(),
        }
    }

    /// Env for the daemon: through the proxy when there is one.
    fn env_daemon(&self) -> Vec<(String, String)> {
        match &self.store {
            Store::File => Vec::new(),
            Store::S3 { s3, proxy, .. } => s3.env_via(&proxy.http_url()),
        }
    }

    /// Runs `aofvault <global> <args>` to completion, straight to the store.
    pub fn cmd(&self, args: &[&str]) -> Result<Output> {
        let all = self.args(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        agent::run(&all, &self.env_direct())
    }

    /// Starts `aofvault <global> <args>` as a daemon (through the proxy for S3).
    pub fn spawn(&self, args: &[&str]) -> Result<AgentProcess> {
        let all = self.args(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        agent::spawn(&all, &self.env_daemon())
    }

    /// Starts `aofvault run` on a server's directory, with an optional config file (for the
    /// `[compact]` and `[ship]` settings a test needs).
    pub fn run_agent(
        &self,
        source: &Path,
        server: &str,
        config: Option<&Path>,
    ) -> Result<AgentProcess> {
        let dir = source.display().to_string();
        let cfg = config.map(|c| c.display().to_string());
        let mut args: Vec<&str> = Vec::new();
        if let Some(cfg) = cfg.as_deref() {
            args.extend(["--config", cfg]);
        }
        args.extend(["--source", &dir, "--server", server, "run"]);
        self.spawn(&args)
    }

    /// Writes a config file holding `body` (TOML sections other than source/repository/state,
    /// which the flags give) and returns its path.
    pub fn config(&self, body: &str) -> Result<PathBuf> {
        let path = self.path("aofvault.toml");
        std::fs::write(&path, body).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// `status --json` (`Null` while there is no status file yet).
    pub fn status(&self) -> serde_json::Value {
        self.cmd(&["status", "--json"])
            .ok()
            .and_then(|o| o.json().ok())
            .unwrap_or(serde_json::Value::Null)
    }

    /// The end offset of every shard in a latest restore's plan (`None`: nothing to restore
    /// yet, or the plan could not be made).
    pub fn plan_ends(&self) -> Option<Vec<u64>> {
        let out = self
            .cmd(&["restore", "--dry-run", "--json", "--to-dir", "/nonexistent"])
            .ok()?;
        if !out.success() {
            return None;
        }
        out.json().ok()?["plan"]["shards"]
            .as_array()?
            .iter()
            .map(|s| s["end"].as_u64())
            .collect()
    }

    /// Waits (≤ `limit`) until a latest restore reaches `sizes()` on every shard.
    pub fn wait_shipped(
        &self,
        sizes: &dyn Fn() -> Vec<u64>,
        agent: &AgentProcess,
        limit: Duration,
    ) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let ends = self.plan_ends();
            let want = sizes();
            if ends.as_ref() == Some(&want) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "not shipped within {limit:?}: plan ends {ends:?}, files {want:?}\nstatus: {}\nagent log tail:\n{}",
                    self.status(),
                    tail(&agent.logs(), 60)
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// `restore --to-dir <vault>/<name>` of the latest state; returns the directory.
    pub fn restore_dir(&self, name: &str, extra: &[&str]) -> Result<PathBuf> {
        let to = self.path(name);
        let to_s = to.display().to_string();
        let mut args = vec!["restore", "--to-dir", &to_s];
        args.extend(extra);
        self.cmd(&args)?.ok()?;
        Ok(to)
    }
}

/// The last `lines` lines of a log.
pub fn tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Sizes of a kevy's `aof-{i}.aof` files (0 for a missing one).
pub fn file_sizes(paths: &[PathBuf]) -> Vec<u64> {
    paths
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .collect()
}

/// The logical stream length of a Redis ≥ 7 AOF: the incr files its manifest lists, summed
/// (0 while there is no manifest). A line is `file NAME seq N type i`, to which Redis 8 adds
/// `startoffset N` (and `endoffset N`).
pub fn redis_stream_len(dir: &Path) -> u64 {
    let dir = dir.join("appendonlydir");
    let Ok(manifest) = std::fs::read_to_string(dir.join("appendonly.aof.manifest")) else {
        return 0;
    };
    manifest
        .lines()
        .filter(|l| {
            let words: Vec<&str> = l.split(' ').collect();
            words.windows(2).any(|w| w == ["type", "i"])
        })
        .filter_map(|l| l.split(' ').nth(1))
        .map(|name| {
            std::fs::metadata(dir.join(name))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum()
}
