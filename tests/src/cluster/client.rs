//! [`ClusterClient`]: a small synchronous Redis Cluster client for test write loads — each
//! command routed by its key's slot (`aofvault_formats::slot`), `MOVED` followed (the slot map
//! read again), `ASK` followed (`ASKING` first), `TRYAGAIN` waited out — and the loads that use
//! it: [`load`] (a fixed number of commands) and [`background_load`] (a writer thread).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use aofvault_formats::slot::key_slot;

use crate::connect;

/// Redirections one command may follow before the client gives up.
const MAX_REDIRECTS: usize = 50;

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

    /// `host:port` of the primary serving `slot`, as the client's map says.
    pub fn node_of(&self, slot: u16) -> &str {
        self.slots.get(usize::from(slot)).map_or("", String::as_str)
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
