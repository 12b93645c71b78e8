//! The cluster topology documents in the repository: what one node's agent saw, when.
//!
//! Each agent started with `--cluster NAME` writes a small document whenever its server's view
//! of the cluster changes (and once at start): `clusters/<NAME>/nodes/<node id>/<ms>.json`,
//! create-only, never rewritten. Nothing is shared between agents: each node writes under its
//! own id, so any number of agents (and of clusters) can share a bucket, and a reader merges
//! the documents by time ([`super::history`]).

use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::nodes::View;
use crate::repo::Repo;

/// Version of the document layout.
pub const FORMAT: u32 = 1;

/// One recorded view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologyDoc {
    pub format: u32,
    pub cluster: String,
    /// The node id of the agent's server.
    pub node: String,
    /// The repository instance the agent ships this node's history under.
    pub instance: String,
    /// The replication group (shard) the node belongs to: see [`super::group`].
    pub group: String,
    /// When the agent read the view (its own clock, unix ms).
    pub seen_ms: i64,
    /// How often the agent reads the view: a change is recorded at most this late.
    pub poll_ms: u64,
    /// The server's whole view (`CLUSTER NODES`).
    pub view: View,
}

/// Prefix of every document of cluster `name`.
pub fn cluster_prefix(name: &str) -> String {
    format!("clusters/{name}/nodes/")
}

/// The key of one document.
pub fn doc_key(name: &str, node: &str, seen_ms: i64) -> String {
    format!("{}{node}/{seen_ms:013}.json", cluster_prefix(name))
}

/// Documents read at once.
const PARALLEL_READS: usize = 16;

/// Every document of cluster `name`, oldest first.
pub async fn load(repo: &Repo, name: &str) -> anyhow::Result<Vec<TopologyDoc>> {
    let keys: Vec<String> = repo
        .list(&cluster_prefix(name))
        .await?
        .into_iter()
        .map(|l| l.key)
        .filter(|k| k.ends_with(".json"))
        .collect();
    let read: Vec<(String, crate::repo::Result<bytes::Bytes>)> = futures::stream::iter(keys)
        .map(|key| async move {
            let got = repo.get(&key).await;
            (key, got)
        })
        .buffered(PARALLEL_READS)
        .collect()
        .await;
    let mut docs = Vec::new();
    for (key, bytes) in read {
        match serde_json::from_slice::<TopologyDoc>(&bytes?) {
            Ok(d) if d.format == FORMAT => docs.push(d),
            Ok(d) => {
                tracing::warn!(key = %key, format = d.format, "a cluster document of an unknown format is skipped")
            }
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "an unreadable cluster document is skipped")
            }
        }
    }
    docs.sort_by(|a, b| (a.seen_ms, &a.node).cmp(&(b.seen_ms, &b.node)));
    Ok(docs)
}

/// Writes `doc` (create-only: a document that is already there is the same one).
pub async fn store(repo: &Repo, doc: &TopologyDoc) -> anyhow::Result<()> {
    let key = doc_key(&doc.cluster, &doc.node, doc.seen_ms);
    let body = serde_json::to_vec_pretty(doc)?;
    match repo.put_new(&key, body.into()).await {
        Ok(()) | Err(crate::repo::RepoError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
