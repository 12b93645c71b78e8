//! Routing a replay into a Redis Cluster target: every command goes to the primary that owns
//! its key's hash slot in the *target* (`aofvault_formats::slot`), whatever shape the source had.
//!
//! - [`TargetMap`] is the target's slot map (`CLUSTER SLOTS`): its primaries and which one
//!   serves each slot.
//! - [`Router`] is the [`Sink`] a decoder writes into: one [`BatchSink`] per target primary.
//!   Multi-key commands whose keys hash to several slots are split by slot (`DEL`, `UNLINK`,
//!   `EXISTS`, `TOUCH`, `MSET`); `MULTI`/`EXEC` are dropped (a transaction cannot span nodes,
//!   and a replay has no concurrent client to isolate it from); `FLUSHALL`, `FLUSHDB`,
//!   `FUNCTION` and `SCRIPT` go to every primary. Another command whose keys are in several
//!   slots — possible only from a source that is not a cluster — cannot be sent: it is counted
//!   as lossy and named in the report. (`RENAME`s never get here: for such a source they are
//!   replayed as their effect, `crate::restore::translate::renames`.)
//! - [`SlotFilter`] keeps only the commands of some slots (a cluster source's phases, see
//!   `crate::cluster::history`); it sits in front of either a [`Router`] or a plain sink.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use aofvault_formats::slot::{key_slot, SLOTS};
use redis::aio::MultiplexedConnection;

use super::send::BatchSink;
use crate::cluster::history::SlotSet;
use crate::restore::feed::Sink;
use crate::restore::translate::key_positions::key_positions;
use crate::restore::translate::label;

/// Why a command was not replayed into a cluster.
pub const CROSS_SLOT: &str =
    "a command over keys of several hash slots (SMOVE, LMOVE, *STORE…) cannot be sent to a cluster: it was left out";

/// The slot map of a cluster target.
#[derive(Debug, Clone)]
pub struct TargetMap {
    /// `host:port` of each primary.
    pub nodes: Vec<String>,
    /// slot → index into `nodes`.
    pub owner: Vec<u16>,
}

impl TargetMap {
    /// Reads `CLUSTER SLOTS`; every slot must be served.
    pub async fn read(conn: &mut MultiplexedConnection) -> anyhow::Result<TargetMap> {
        let ranges: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(conn)
            .await
            .context("CLUSTER SLOTS")?;
        let mut nodes: Vec<String> = Vec::new();
        let mut owner = vec![u16::MAX; usize::from(SLOTS)];
        for r in &ranges {
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
            let host: String = node
                .first()
                .map(redis::from_redis_value_ref)
                .transpose()?
                .unwrap_or_default();
            let port: u16 = node
                .get(1)
                .map(redis::from_redis_value_ref)
                .transpose()?
                .unwrap_or_default();
            let addr = format!("{host}:{port}");
            let i = match nodes.iter().position(|n| *n == addr) {
                Some(i) => i,
                None => {
                    nodes.push(addr);
                    nodes.len() - 1
                }
            };
            for s in owner
                .iter_mut()
                .take((b + 1).min(usize::from(SLOTS)))
                .skip(a)
            {
                *s = i as u16;
            }
        }
        if let Some(slot) = owner.iter().position(|&o| o == u16::MAX) {
            anyhow::bail!(
                "the target cluster serves no node for slot {slot}: it must cover all 16384 slots"
            );
        }
        Ok(TargetMap { nodes, owner })
    }

    /// The primary serving `key`.
    pub fn node_for(&self, key: &[u8]) -> usize {
        usize::from(self.owner[usize::from(key_slot(key))])
    }
}

/// Commands counted as lossy by a [`Router`], with the first one.
#[derive(Debug, Default, Clone)]
pub struct Dropped {
    pub count: u64,
    pub first: Option<String>,
}

/// Routes commands to the primaries of a cluster target (see the module doc).
pub struct Router {
    sinks: Vec<BatchSink>,
    map: Arc<TargetMap>,
    pub dropped: Dropped,
}

fn is(name: &[u8], names: &[&str]) -> bool {
    names
        .iter()
        .any(|n| name.eq_ignore_ascii_case(n.as_bytes()))
}

impl Router {
    /// `sinks[i]` sends to `map.nodes[i]`.
    pub fn new(sinks: Vec<BatchSink>, map: Arc<TargetMap>) -> Router {
        Router {
            sinks,
            map,
            dropped: Dropped::default(),
        }
    }

    /// Sends what every sink holds (call at the end).
    pub fn flush(&mut self) -> anyhow::Result<()> {
        for s in &mut self.sinks {
            s.flush()?;
        }
        Ok(())
    }

    fn send_to(&mut self, node: usize, args: &[&[u8]]) -> anyhow::Result<()> {
        self.sinks
            .get_mut(node)
            .context("a slot map names a node it has no connection for")?
            .command(args)
    }

    /// Sends `name` + `groups` of arguments, one command per target slot (keys of one slot
    /// stay in one command, in their order).
    fn split(&mut self, name: &[u8], units: Vec<Vec<&[u8]>>) -> anyhow::Result<()> {
        let mut by_slot: BTreeMap<u16, Vec<&[u8]>> = BTreeMap::new();
        for unit in units {
            let Some(key) = unit.first() else { continue };
            by_slot.entry(key_slot(key)).or_default().extend(unit);
        }
        for (slot, rest) in by_slot {
            let mut cmd = vec![name];
            cmd.extend(rest);
            let node = usize::from(self.map.owner[usize::from(slot)]);
            self.send_to(node, &cmd)?;
        }
        Ok(())
    }
}

impl Sink for Router {
    fn command(&mut self, args: &[&[u8]]) -> anyhow::Result<()> {
        let Some(&name) = args.first() else {
            return Ok(());
        };
        if is(name, &["MULTI", "EXEC", "DISCARD"]) {
            return Ok(());
        }
        if is(name, &["SELECT"]) {
            if args.get(1).is_some_and(|db| *db != b"0") {
                anyhow::bail!("`{}`: a cluster has database 0 only", label(args));
            }
            return Ok(());
        }
        if is(name, &["FLUSHALL", "FLUSHDB", "FUNCTION", "SCRIPT"]) {
            for node in 0..self.sinks.len() {
                self.send_to(node, args)?;
            }
            return Ok(());
        }
        if is(name, &["DEL", "UNLINK", "EXISTS", "TOUCH"]) {
            return self.split(name, args[1..].iter().map(|k| vec![*k]).collect());
        }
        if is(name, &["MSET", "MSETNX"]) {
            return self.split(name, args[1..].chunks(2).map(<[&[u8]]>::to_vec).collect());
        }
        let positions = key_positions(args);
        let mut slots = positions
            .iter()
            .filter_map(|&i| args.get(i))
            .map(|k| key_slot(k));
        let node = match slots.next() {
            None => 0,
            Some(first) => {
                if slots.any(|s| s != first) {
                    self.dropped.count += 1;
                    self.dropped.first.get_or_insert_with(|| label(args));
                    return Ok(());
                }
                usize::from(self.map.owner[usize::from(first)])
            }
        };
        self.send_to(node, args)
    }

    fn consumed(&mut self, n: u64) {
        if let Some(s) = self.sinks.first_mut() {
            s.consumed(n);
        }
    }
}

/// Passes on the commands of the slots in `keep` (and every command without a key).
pub struct SlotFilter<'a> {
    pub inner: &'a mut dyn Sink,
    pub keep: Arc<SlotSet>,
}

impl Sink for SlotFilter<'_> {
    fn command(&mut self, args: &[&[u8]]) -> anyhow::Result<()> {
        let positions = key_positions(args);
        match positions.first().and_then(|&i| args.get(i)) {
            // A cluster source's commands never span slots: the first key decides.
            Some(key) if !self.keep.contains(key_slot(key)) => Ok(()),
            _ => self.inner.command(args),
        }
    }

    fn consumed(&mut self, n: u64) {
        self.inner.consumed(n);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::restore::progress::Progress;
    use tokio::sync::mpsc;

    /// Two nodes: slots below 8192 on node 0, the rest on node 1.
    fn map() -> Arc<TargetMap> {
        let owner = (0..SLOTS).map(|s| u16::from(s >= 8192)).collect();
        Arc::new(TargetMap {
            nodes: vec!["a:1".into(), "b:2".into()],
            owner,
        })
    }

    /// Routes `commands` and returns what each node got, as text.
    fn route(commands: &[&[&str]]) -> (Vec<Vec<String>>, Dropped) {
        let mut rxs = Vec::new();
        let mut sinks = Vec::new();
        for _ in 0..2 {
            let (tx, rx) = mpsc::channel(64);
            sinks.push(BatchSink::new(tx, 0, Progress::new("test", 0)));
            rxs.push(rx);
        }
        let mut router = Router::new(sinks, map());
        for c in commands {
            let args: Vec<&[u8]> = c.iter().map(|a| a.as_bytes()).collect();
            router.command(&args).unwrap();
        }
        router.flush().unwrap();
        let dropped = router.dropped.clone();
        drop(router);
        let got = rxs
            .into_iter()
            .map(|mut rx| {
                let mut out = Vec::new();
                while let Ok(batch) = rx.try_recv() {
                    for i in 0..batch.len() {
                        let words: Vec<String> = batch
                            .args(i)
                            .iter()
                            .map(|a| String::from_utf8_lossy(a).into_owned())
                            .collect();
                        out.push(words.join(" "));
                    }
                }
                out
            })
            .collect();
        (got, dropped)
    }

    #[test]
    fn commands_go_to_the_owner_of_their_slot_and_multi_key_ones_are_split() {
        // foo → 12182 (node 1), bar → 5061 (node 0), {bar}x → 5061 (node 0).
        let (got, dropped) = route(&[
            &["SET", "foo", "1"],
            &["MULTI"],
            &["SET", "bar", "2"],
            &["EXEC"],
            &["DEL", "foo", "bar", "{bar}x"],
            &["MSET", "foo", "3", "bar", "4"],
            &["RENAME", "bar", "{bar}y"],
            &["RENAME", "bar", "foo"],
            &["SELECT", "0"],
            &["FLUSHALL"],
        ]);
        assert_eq!(
            got[0],
            vec![
                "SET bar 2",
                "DEL bar {bar}x",
                "MSET bar 4",
                "RENAME bar {bar}y",
                "FLUSHALL"
            ]
        );
        assert_eq!(
            got[1],
            vec!["SET foo 1", "DEL foo", "MSET foo 3", "FLUSHALL"]
        );
        assert_eq!(dropped.count, 1, "the cross-slot RENAME");
    }
}
