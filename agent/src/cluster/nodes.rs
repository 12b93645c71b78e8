//! `CLUSTER NODES` read into a [`View`]: every node the server knows, its role, its primary,
//! its slot ranges and the slots it is migrating or importing.
//!
//! `CLUSTER NODES` is used rather than `CLUSTER SHARDS` because every Redis Cluster version
//! (and Valkey, and kevy's cluster mode) answers it, and because only it shows the open
//! migrations (`[slot->-id]`, `[slot-<-id]`), which decide where a key lives during a
//! reshard. The shard id of Redis ≥ 7.2 comes from `CLUSTER MYSHARDID` ([`super::group`]).

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One node of the view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub id: String,
    /// `host:port` (the cluster bus port and hostname left out).
    pub addr: String,
    /// `master` or `replica`.
    pub role: Role,
    /// The primary a replica replicates from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// Whether the node is marked failed (`fail`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
    /// Inclusive slot ranges it serves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slots: Vec<(u16, u16)>,
    /// Slots it is handing over: (slot, node id receiving them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migrating: Vec<(u16, String)>,
    /// Slots it is receiving: (slot, node id handing them over).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub importing: Vec<(u16, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Master,
    Replica,
}

/// What one server says about the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// The id of the server that answered (`myself`).
    pub myself: String,
    /// Every node, sorted by id.
    pub nodes: Vec<Node>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NodesError {
    #[error("CLUSTER NODES line {line}: {what}")]
    Malformed { line: usize, what: &'static str },
    #[error("CLUSTER NODES names no node as `myself`")]
    NoMyself,
}

impl View {
    /// Parses the text `CLUSTER NODES` answers.
    pub fn parse(text: &str) -> Result<View, NodesError> {
        let mut nodes = Vec::new();
        let mut myself = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let bad = |what| NodesError::Malformed { line: n + 1, what };
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 {
                return Err(bad("fewer than 8 fields"));
            }
            let flags: Vec<&str> = f[2].split(',').collect();
            let role = if flags.contains(&"master") {
                Role::Master
            } else if flags.contains(&"slave") || flags.contains(&"replica") {
                Role::Replica
            } else {
                // A node in handshake or without an address has no role yet: not a member.
                continue;
            };
            if flags.contains(&"myself") {
                myself = Some(f[0].to_string());
            }
            // `ip:port@cport[,hostname]`
            let addr = f[1]
                .split(['@', ','])
                .next()
                .unwrap_or_default()
                .to_string();
            let mut node = Node {
                id: f[0].to_string(),
                addr,
                role,
                master: Some(f[3]).filter(|m| *m != "-").map(str::to_string),
                failed: flags.contains(&"fail"),
                slots: Vec::new(),
                migrating: Vec::new(),
                importing: Vec::new(),
            };
            for field in &f[8..] {
                parse_slot_field(field, &mut node).ok_or_else(|| bad("a slot field"))?;
            }
            nodes.push(node);
        }
        nodes.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(View {
            myself: myself.ok_or(NodesError::NoMyself)?,
            nodes,
        })
    }

    /// The node that answered.
    pub fn me(&self) -> Option<&Node> {
        self.node(&self.myself)
    }

    pub fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

fn slot(text: &str) -> Option<u16> {
    text.parse()
        .ok()
        .filter(|&s| s < aofvault_formats::slot::SLOTS)
}

/// `0-5460`, `5461`, `[93->-id]` (migrating), `[93-<-id]` (importing).
fn parse_slot_field(field: &str, node: &mut Node) -> Option<()> {
    if let Some(inner) = field.strip_prefix('[').and_then(|f| f.strip_suffix(']')) {
        if let Some((s, to)) = inner.split_once("->-") {
            node.migrating.push((slot(s)?, to.to_string()));
        } else if let Some((s, from)) = inner.split_once("-<-") {
            node.importing.push((slot(s)?, from.to_string()));
        } else {
            return None;
        }
        return Some(());
    }
    let (a, b) = match field.split_once('-') {
        Some((a, b)) => (slot(a)?, slot(b)?),
        None => {
            let s = slot(field)?;
            (s, s)
        }
    };
    (a <= b).then_some(())?;
    node.slots.push((a, b));
    Some(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // As redis-server 7.0 prints it during a reshard (ids shortened).
    const NODES: &str = "\
aaa 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460 [5461->-bbb]
bbb 127.0.0.1:7001@17001,host-b master - 0 1700000000000 2 connected 5461-10922 [5461-<-aaa]
ccc 127.0.0.1:7002@17002 master,fail - 0 0 3 connected 10923-16383
ddd 127.0.0.1:7003@17003 slave aaa 0 0 1 connected
eee :0@0 handshake - 0 0 0 connected
";

    #[test]
    fn nodes_are_read_with_slots_and_migrations() {
        let v = View::parse(NODES).unwrap();
        assert_eq!(v.myself, "aaa");
        assert_eq!(v.nodes.len(), 4, "the node in handshake is not a member");
        let a = v.me().unwrap();
        assert_eq!(a.slots, vec![(0, 5460)]);
        assert_eq!(a.migrating, vec![(5461, "bbb".to_string())]);
        let b = v.node("bbb").unwrap();
        assert_eq!(b.addr, "127.0.0.1:7001");
        assert_eq!(b.importing, vec![(5461, "aaa".to_string())]);
        assert!(v.node("ccc").unwrap().failed);
        let d = v.node("ddd").unwrap();
        assert_eq!((d.role, d.master.as_deref()), (Role::Replica, Some("aaa")));
    }

    #[test]
    fn bad_text_is_an_error() {
        assert_eq!(
            View::parse("aaa 1:1@2 master - 0 0 1 connected 0-99999\n").unwrap_err(),
            NodesError::Malformed {
                line: 1,
                what: "a slot field"
            }
        );
        assert_eq!(
            View::parse("aaa 1:1@2 master - 0 0 1 connected\n").unwrap_err(),
            NodesError::NoMyself
        );
    }
}
