//! [`RedisCluster`]: a throwaway Redis Cluster of real redis-server 7 nodes on 127.0.0.1, and
//! the tools a cluster test needs around it.
//!
//! - [`RedisCluster::start`] starts N primaries (and R replicas each), every node a
//!   [`RedisServer`] with `--cluster-enabled yes` and the AOF on, joins them with `redis-cli
//!   --cluster create … --cluster-yes` and waits until every node says `cluster_state:ok`.
//! - [`RedisCluster::reshard`] moves K slots from one primary to another with `redis-cli
//!   --cluster reshard` (MIGRATE, as operators do it); it works under a write load.
//! - [`ClusterClient`] is a small synchronous cluster client: it routes each command by its
//!   key's slot (`aofvault_formats::slot`), follows `MOVED` (refreshing the slot map) and `ASK`
//!   (`ASKING` first), and waits out `TRYAGAIN` — enough for a write load during a reshard.
//! - [`load`] / [`background_load`] send the deterministic [`crate::workload`] sequence through
//!   it; [`dump`] reads the whole cluster, key by key, as one [`Keyspace`] (the union of the
//!   primaries), to compare with a restore.

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use aofvault_formats::slot::key_slot;

use crate::keyspace::{self, Keyspace};
use crate::{connect, wait_until, RedisServer};

/// How long a cluster may take to agree on its slots after `create` or a reshard.
const CLUSTER_READY: Duration = Duration::from_secs(60);
/// Redirections one command may follow before the client gives up.
const MAX_REDIRECTS: usize = 50;

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
        Ok(client.slots[usize::from(slot)] == format!("127.0.0.1:{}", self.nodes[i].port()))
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

/// A synchronous cluster client: see the module docs.
pub struct ClusterClient {
    entry: String,
    /// slot → `host:port` of its primary.
    slots: Vec<String>,
    conns: HashMap<String, redis::Connection>,
}

impl ClusterClient {
    /// Connects through `url` (any node) and reads the slot map.
    pub fn new(url: &str) -> Result<Self> {
        let mut c = ClusterClient {
            entry: url.to_string(),
            slots: Vec::new(),
            conns: HashMap::new(),
        };
        c.refresh()?;
        Ok(c)
    }

    /// Reads the slot map again (`CLUSTER SLOTS`).
    pub fn refresh(&mut self) -> Result<()> {
        let mut conn = connect(&self.entry)?;
        let ranges: Vec<redis::Value> = redis::cmd("CLUSTER").arg("SLOTS").query(&mut conn)?;
        let mut slots = vec![String::new(); 16384];
        for r in ranges {
            let redis::Value::Array(items) = r else {
                continue;
            };
            let (Some(a), Some(b), Some(redis::Value::Array(node))) =
                (items.first(), items.get(1), items.get(2))
            else {
                continue;
            };
            let a: usize = redis::from_redis_value_ref(a)?;
            let b: usize = redis::from_redis_value_ref(b)?;
            let host: String = redis::from_redis_value_ref(&node[0])?;
            let port: u16 = redis::from_redis_value_ref(&node[1])?;
            for s in slots.iter_mut().take(b + 1).skip(a) {
                *s = format!("{host}:{port}");
            }
        }
        self.slots = slots;
        Ok(())
    }

    fn conn(&mut self, addr: &str) -> Result<&mut redis::Connection> {
        if !self.conns.contains_key(addr) {
            let c = connect(&format!("redis://{addr}"))?;
            self.conns.insert(addr.to_string(), c);
        }
        self.conns.get_mut(addr).context("connection")
    }

    /// Sends one command (its key is its first argument), following redirections.
    pub fn query(&mut self, cmd: &redis::Cmd) -> Result<redis::Value> {
        let key = match cmd.args_iter().nth(1) {
            Some(redis::Arg::Simple(k)) => k.to_vec(),
            _ => Vec::new(),
        };
        let mut addr = self.slots[usize::from(key_slot(&key))].clone();
        let mut asking = false;
        for _ in 0..MAX_REDIRECTS {
            let c = self.conn(&addr)?;
            let result = if asking {
                let mut pipe = redis::pipe();
                pipe.cmd("ASKING").ignore().add_command(cmd.clone());
                pipe.query::<Vec<redis::Value>>(c)
                    .map(|mut v| v.pop().unwrap_or(redis::Value::Nil))
            } else {
                cmd.query::<redis::Value>(c)
            };
            asking = false;
            match result {
                Ok(v) => return Ok(v),
                Err(e) => {
                    if let Some((to, _)) = e.redirect_node() {
                        let to = to.to_string();
                        if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::Ask) {
                            asking = true;
                        } else {
                            self.refresh()?;
                        }
                        addr = to;
                    } else if e.is_cluster_error() {
                        // TRYAGAIN (a multi-key command met a slot half migrated) or CLUSTERDOWN.
                        std::thread::sleep(Duration::from_millis(20));
                    } else {
                        return Err(e.into());
                    }
                }
            }
        }
        bail!("a command was redirected more than {MAX_REDIRECTS} times")
    }
}

/// Sends the first `n` commands of the workload sequence `seed` over `keys` keys.
pub fn load(client: &mut ClusterClient, seed: u64, n: usize, keys: usize) -> Result<()> {
    for (i, cmd) in crate::workload::commands(seed, n, keys).iter().enumerate() {
        client
            .query(cmd)
            .with_context(|| format!("cluster load seed {seed}: command {i}"))?;
    }
    Ok(())
}

/// A cluster writer thread started by [`background_load`].
pub struct BackgroundLoad {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicUsize>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl BackgroundLoad {
    /// Commands acknowledged so far.
    pub fn written(&self) -> usize {
        self.written.load(Ordering::SeqCst)
    }

    /// Stops the writer; returns the commands acknowledged, or the error that stopped it.
    pub fn stop(mut self) -> Result<usize> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r?,
            Some(Err(_)) => bail!("the cluster writer panicked"),
            None => {}
        }
        Ok(self.written())
    }
}

impl Drop for BackgroundLoad {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Writes the workload sequence `seed` (up to `max` commands) through a cluster client until
/// stopped. An error (other than a redirection, which the client follows) stops the writer and
/// is returned by [`BackgroundLoad::stop`].
pub fn background_load(url: &str, seed: u64, keys: usize, max: usize) -> BackgroundLoad {
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let url = url.to_string();
    let thread = {
        let (stop, written) = (stop.clone(), written.clone());
        std::thread::spawn(move || -> Result<()> {
            let mut client = ClusterClient::new(&url)?;
            for cmd in crate::workload::commands(seed, max, keys) {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                client.query(&cmd)?;
                written.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        })
    };
    BackgroundLoad {
        stop,
        written,
        thread: Some(thread),
    }
}
