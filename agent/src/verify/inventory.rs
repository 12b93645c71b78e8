//! What the repository holds for an instance, read from listings rather than from manifests:
//! every chain of every shard, its head (read, missing or damaged) and its objects by kind.
//!
//! Why listings: a damaged manifest must not hide the chains behind it, and a damaged chain head
//! must not hide the chain's objects. Segment names carry their range and CRC-32C
//! ([`keys::parse_segment`]), so a chain's segments can be checked with no document at all.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;

use aofvault_formats::vault::{ChainHead, SegmentRef, SnapshotManifest};

use super::finding::{as_finding, finding, Finding};
use crate::repo::{keys, Repo, RepoError, ShardId};

/// A chain's head, as read.
#[derive(Debug, Clone)]
pub(super) enum Head {
    Good(Box<ChainHead>),
    /// No `chain.json`: a writer that stopped before writing it (abandoned), or a lost head.
    Missing,
    /// Present but unreadable or not describing this chain (already a finding).
    Damaged,
}

/// One chain as the repository lists it.
#[derive(Debug, Clone)]
pub(super) struct Chain {
    /// Key prefix of its objects (`instances/<i>/shards/<s>/chains/<chain>/`).
    pub dir: String,
    pub head: Head,
    /// Base part names (`base-<n>.<codec>`).
    pub bases: Vec<String>,
    /// Segments, parsed from their names, sorted by range.
    pub segments: Vec<SegmentRef>,
    /// Names that are none of the above.
    pub others: Vec<String>,
}

impl Chain {
    pub fn head_key(&self) -> String {
        format!("{}chain.json", self.dir)
    }

    /// True when the folder held nothing at all.
    pub fn is_empty(&self) -> bool {
        matches!(self.head, Head::Missing)
            && self.bases.is_empty()
            && self.segments.is_empty()
            && self.others.is_empty()
    }
}

/// Chains by (shard, chain id).
pub(super) type Chains = BTreeMap<(ShardId, String), Chain>;

/// Every chain of every shard of `instance`, found by listing the repository.
pub(super) async fn list_all(
    repo: &Repo,
    instance: &str,
    findings: &mut Vec<Finding>,
) -> anyhow::Result<Chains> {
    let mut chains = Chains::new();
    for shard in repo.shard_ids(instance).await? {
        for id in repo.chain_ids(instance, shard).await? {
            let chain = read_chain(repo, instance, shard, &id, findings).await?;
            chains.insert((shard, id), chain);
        }
    }
    Ok(chains)
}

/// The chains `manifests` name (listed the same way; a chain with no object is still returned,
/// empty, so the manifest naming it can be told about).
pub(super) async fn list_named(
    repo: &Repo,
    instance: &str,
    manifests: &[SnapshotManifest],
    findings: &mut Vec<Finding>,
) -> anyhow::Result<Chains> {
    let mut chains = Chains::new();
    for m in manifests {
        for cut in &m.shards {
            let shard = ShardId(cut.shard);
            if let Entry::Vacant(slot) = chains.entry((shard, cut.chain.clone())) {
                slot.insert(read_chain(repo, instance, shard, &cut.chain, findings).await?);
            }
        }
    }
    Ok(chains)
}

/// Lists one chain's folder and reads its head. A damaged head is a finding here.
async fn read_chain(
    repo: &Repo,
    instance: &str,
    shard: ShardId,
    id: &str,
    findings: &mut Vec<Finding>,
) -> anyhow::Result<Chain> {
    let dir = keys::chain_dir(instance, shard, id);
    let mut chain = Chain {
        dir: dir.clone(),
        head: Head::Missing,
        bases: Vec::new(),
        segments: Vec::new(),
        others: Vec::new(),
    };
    let head_key = keys::chain_head(instance, shard, id);
    let mut has_head = false;
    for l in repo.chain_objects(instance, shard, id).await? {
        let full = format!("{dir}{}", l.key);
        if full == head_key {
            has_head = true;
        } else if let Some(s) = keys::parse_segment(&l.key) {
            chain.segments.push(s);
        } else if keys::parse_base(&l.key).is_some() {
            chain.bases.push(l.key);
        } else {
            chain.others.push(l.key);
        }
    }
    chain.segments.sort_by_key(|s| (s.start, s.end));
    if has_head {
        chain.head = match repo.chain_head(instance, shard, id).await {
            Ok(Some(h)) => {
                if h.instance != instance || h.shard != shard.0 || h.chain != id {
                    findings.push(finding(
                        &head_key,
                        format!(
                            "describes instance {:?}, shard {}, chain {:?}: not the chain it is stored in",
                            h.instance, h.shard, h.chain
                        ),
                    ));
                    Head::Damaged
                } else {
                    Head::Good(Box::new(h))
                }
            }
            // Deleted between the listing and the read: as if never listed.
            Ok(None) => Head::Missing,
            Err(e @ RepoError::Unreachable { .. }) => return Err(e.into()),
            Err(e) => {
                findings.push(as_finding(&head_key, e)?);
                Head::Damaged
            }
        };
    }
    Ok(chain)
}
