//! [`RedisCluster`]: a throwaway Redis Cluster of real redis-server 7 nodes on 127.0.0.1, and
//! the tools a cluster test needs around it.
//!
//! - [`RedisCluster::start`] starts N primaries (and R replicas each), every node a
//!   [`RedisServer`] with `--cluster-enabled yes` and the AOF on, joins them with `redis-cli
//!   --cluster create … --cluster-yes` and waits until every node says `cluster_state:ok`.
//! - [`RedisCluster::reshard`] moves K slots from one primary to another with `redis-cli
//!   --cluster reshard` (MIGRATE, as operators do it); it works under a write load.
//! - [`ClusterClient`] (`client.rs`) is a small synchronous cluster client: it routes each
//!   command by its key's slot (`aofvault_formats::slot`), follows `MOVED` (refreshing the slot
//!   map) and `ASK` (`ASKING` first), and waits out `TRYAGAIN` — enough for a write load during
//!   a reshard.
//! - [`load`] / [`background_load`] send the deterministic [`crate::workload`] sequence through
//!   it; [`dump`] reads the whole cluster, key by key, as one [`Keyspace`] (the union of the
//!   primaries), to compare with a restore.

mod client;

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

pub use client::{background_load, load, BackgroundLoad, ClusterClient};

use crate::keyspace::{self, Keyspace};
use crate::{wait_until, RedisServer};

/// How long a cluster may take to agree on its slots after `create` or a reshard.
const CLUSTER_READY: Duration = Duration::from_secs(60);

/// The `redis-cli` binary: `$REDIS_CLI_BIN` or `redis-cli` on the PATH.
pub fn redis_cli_bin() -> String {
    std::env::var("REDIS_CLI_BIN").unwrap_or_else(|_| "redis-cli".to_string())
}

/// A running cluster: `nodes[..primaries]` were created as primaries, the rest as their
/// replicas (roles may change later: ask [`RedisCluster::primaries`]).
#[derive(Debug)]
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
    created_primaries: usize,
}

impl RedisCluster {
    /// Starts `primaries` primaries with `replicas` replicas each and joins them.
    pub fn start(primaries: usize, replicas: usize) -> Result<Self> {
        Self::start_with(primaries, replicas, &[])
    }

    /// [`RedisCluster::start`] with extra redis-server arguments for every node.
    pub fn start_with(primaries: usize, replicas: usize, extra: &[&str]) -> Result<Self> {
        anyhow::ensure!(primaries >= 1, "a cluster needs a primary");
        let mut args = vec![
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "5000",
            // A test cluster of one primary must still serve when nothing covers a slot.
            "--cluster-require-full-coverage",
            "no",
        ];
        args.extend_from_slice(extra);
        let total = primaries * (1 + replicas);
        let mut nodes = Vec::with_capacity(total);
        for _ in 0..total {
            nodes.push(RedisServer::start_with(&args)?);
        }
        let cluster = RedisCluster {
            nodes,
            created_primaries: primaries,
        };
        cluster.create(replicas)?;
        cluster.wait_ok()?;
        Ok(cluster)
    }

    fn create(&self, replicas: usize) -> Result<()> {
        if replicas == 0 {
            return self.create_by_hand();
        }
        let mut cmd = Command::new(redis_cli_bin());
        cmd.arg("--cluster").arg("create");
        for n in &self.nodes {
            cmd.arg(format!("127.0.0.1:{}", n.port()));
        }
        cmd.args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"]);
        run_cli(cmd, "redis-cli --cluster create")
    }

    /// Primaries only: `redis-cli --cluster create` refuses fewer than three, so the slots are
    /// split evenly with `CLUSTER ADDSLOTSRANGE` and the nodes introduced with `CLUSTER MEET`.
    fn create_by_hand(&self) -> Result<()> {
        let n = self.nodes.len();
        for (i, node) in self.nodes.iter().enumerate() {
            let (start, end) = (16384 * i / n, 16384 * (i + 1) / n - 1);
            let mut c = node.conn()?;
            redis::cmd("CLUSTER")
                .arg("SET-CONFIG-EPOCH")
                .arg(i + 1)
                .query::<()>(&mut c)?;
            redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(start)
                .arg(end)
                .query::<()>(&mut c)
                .context("CLUSTER ADDSLOTSRANGE")?;
        }
        let mut first = self.nodes[0].conn()?;
        for node in &self.nodes[1..] {
            redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(node.port())
                .query::<()>(&mut first)
                .context("CLUSTER MEET")?;
        }
        Ok(())
    }

    /// Waits until every node reports `cluster_state:ok` with all 16384 slots assigned and
    /// every node knows every other one, and every replica's link to its primary is up.
    pub fn wait_ok(&self) -> Result<()> {
        let total = self.nodes.len();
        wait_until(
            CLUSTER_READY,
            "every cluster node to say cluster_state:ok",
            || {
                for n in &self.nodes {
                    let Ok(mut c) = n.conn() else {
                        return Ok(false);
                    };
                    let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut c)?;
                    let ok = info.contains("cluster_state:ok")
                        && info.contains("cluster_slots_assigned:16384")
                        && info.contains(&format!("cluster_known_nodes:{total}"));
                    if !ok {
                        return Ok(false);
                    }
                    // A replica still in its first sync is not ready to take over.
                    let repl: String = redis::cmd("INFO").arg("replication").query(&mut c)?;
                    if repl.contains("role:slave") && !repl.contains("master_link_status:up") {
                        return Ok(false);
                    }
                }
                Ok(true)
            },
        )
    }

    /// The nodes created as primaries.
    pub fn created_primaries(&self) -> &[RedisServer] {
        &self.nodes[..self.created_primaries]
    }

    /// The nodes that are primaries now (`role:master`).
    pub fn primaries(&self) -> Result<Vec<&RedisServer>> {
        let mut out = Vec::new();
        for n in &self.nodes {
            let info: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut n.conn()?)?;
            if info.contains("role:master") {
                out.push(n);
            }
        }
        Ok(out)
    }

    /// `redis://127.0.0.1:PORT` of the first node (any node serves as an entry point).
    pub fn url(&self) -> String {
        self.nodes[0].url()
    }

    /// The node id of `nodes[i]` (`CLUSTER MYID`).
    pub fn node_id(&self, i: usize) -> Result<String> {
        Ok(redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut self.nodes[i].conn()?)?)
    }

    /// How many slots `nodes[i]` serves (`CLUSTER COUNTKEYSINSLOT` would count keys; this
    /// counts the slots in `CLUSTER NODES`' line of the node).
    pub fn slot_count(&self, i: usize) -> Result<usize> {
        let id = self.node_id(i)?;
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(&mut self.nodes[i].conn()?)?;
        let line = nodes
            .lines()
            .find(|l| l.starts_with(&id))
            .context("the node's own line in CLUSTER NODES")?;
        let mut count = 0;
        for field in line.split_whitespace().skip(8) {
            if field.starts_with('[') {
                continue;
            }
            match field.split_once('-') {
                Some((a, b)) => count += b.parse::<usize>()? - a.parse::<usize>()? + 1,
                None => count += 1,
            }
        }
        Ok(count)
    }

    /// Whether `nodes[i]` serves `slot` (`CLUSTER SLOTS`).
    pub fn serves(&self, i: usize, slot: u16) -> Result<bool> {
        let client = ClusterClient::new(&self.nodes[i].url())?;
        Ok(client.node_of(slot) == format!("127.0.0.1:{}", self.nodes[i].port()))
    }

    /// Moves `slots` slots from `nodes[from]` to `nodes[to]` with `redis-cli --cluster
    /// reshard` (keys move with MIGRATE), then waits until the cluster agrees again.
    pub fn reshard(&self, from: usize, to: usize, slots: usize) -> Result<()> {
        let mut cmd = Command::new(redis_cli_bin());
        cmd.args(["--cluster", "reshard"])
            .arg(format!("127.0.0.1:{}", self.nodes[from].port()))
            .args(["--cluster-from", &self.node_id(from)?])
            .args(["--cluster-to", &self.node_id(to)?])
            .args(["--cluster-slots", &slots.to_string()])
            .args(["--cluster-yes", "--cluster-pipeline", "100"]);
        run_cli(cmd, "redis-cli --cluster reshard")?;
        self.wait_ok()
    }

    /// A cluster client on this cluster.
    pub fn client(&self) -> Result<ClusterClient> {
        ClusterClient::new(&self.url())
    }

    /// The whole cluster's data, key by key: the union of every primary's keys.
    pub fn dump(&self) -> Result<Keyspace> {
        let mut all = Keyspace::default();
        for n in self.primaries()? {
            let part = keyspace::dump(&mut n.conn()?, &[0])?;
            for (k, v) in part.0 {
                if all.0.insert(k.clone(), v).is_some() {
                    bail!("key {} is on two primaries", keyspace::show(&k.1));
                }
            }
        }
        Ok(all)
    }
}

fn run_cli(mut cmd: Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
