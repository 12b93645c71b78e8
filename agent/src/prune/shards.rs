//! Which shards the server no longer has: after a kevy shard-count shrink (say 4 → 2), the
//! chains of shards 2 and 3 are nobody's open chain any more, and [`gc::plan`] must not keep
//! them as if they were.
//!
//! The current layout is read from the newest chain head: on a layout change the agent starts
//! a new chain for every shard, each head recording the new layout, and it does so before it
//! publishes the manifest that names them — so heads are never older news than manifests. A
//! shard is **removed** when that layout has no such shard *and* nothing in the shard is newer
//! than that head, by chain id (the agent's clock) and by the store's time of every object
//! (the store's clock): a shard that came back (the count grew again) has a newer chain or a
//! newer head-less folder, and stays an ordinary shard.
//!
//! When the two clocks disagree about which head is the newest (a clock jumped), or that head
//! cannot be read, no shard is counted removed: prune then keeps what it kept before.
//!
//! [`gc::plan`]: super::gc::plan

use std::collections::BTreeSet;

use super::gc::Inventory;
use crate::repo::{Repo, RepoError, ShardId};

/// The server's shard count as the newest chain head tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentLayout {
    pub shards: u32,
    /// The chain whose head says so, and the store's time of that head.
    pub chain: String,
    pub head_ms: i64,
}

/// The newest chain with a head: (shard, chain id, store time of its head) — newest by id and
/// also by the store's time; `None` if there is no head or the two orders disagree.
pub fn newest_head(inv: &Inventory) -> Option<(u32, String, i64)> {
    let heads: Vec<(u32, &str, i64)> = inv
        .iter()
        .filter_map(|((shard, chain), f)| {
            f.head()
                .map(|h| (*shard, chain.as_str(), h.last_modified_ms))
        })
        .collect();
    let &(shard, chain, head_ms) = heads.iter().max_by(|a, b| a.1.cmp(b.1))?;
    heads
        .iter()
        .all(|(_, _, ms)| *ms <= head_ms)
        .then(|| (shard, chain.to_string(), head_ms))
}

/// The shards `current` no longer has and that saw nothing since (see the module doc).
pub fn removed(inv: &Inventory, current: &CurrentLayout) -> BTreeSet<u32> {
    let mut gone: BTreeSet<u32> = inv
        .keys()
        .map(|(shard, _)| *shard)
        .filter(|shard| *shard >= current.shards)
        .collect();
    for ((shard, chain), folder) in inv {
        let since = chain.as_str() >= current.chain.as_str()
            || folder
                .objects
                .iter()
                .any(|o| o.last_modified_ms > current.head_ms);
        if since {
            gone.remove(shard);
        }
    }
    gone
}

/// Reads the newest head's layout and returns the removed shards; an unreadable or vanished
/// head means none (only an unreachable store is an error).
pub async fn removed_shards(
    repo: &Repo,
    instance: &str,
    inv: &Inventory,
) -> Result<BTreeSet<u32>, RepoError> {
    let Some((shard, chain, head_ms)) = newest_head(inv) else {
        return Ok(BTreeSet::new());
    };
    let head = match repo.chain_head(instance, ShardId(shard), &chain).await {
        Ok(Some(head)) => head,
        Ok(None) => return Ok(BTreeSet::new()),
        Err(e) if e.is_transient() => return Err(e),
        Err(_) => return Ok(BTreeSet::new()),
    };
    Ok(removed(
        inv,
        &CurrentLayout {
            shards: head.layout.shards(),
            chain,
            head_ms,
        },
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::gc::{inventory, HEAD};
    use super::*;
    use crate::repo::{keys, Listed};

    fn obj(shard: u32, chain: &str, name: &str, ms: i64) -> Listed {
        Listed {
            key: format!("{}{name}", keys::chain_dir("db", ShardId(shard), chain)),
            size: 1,
            last_modified_ms: ms,
        }
    }

    fn headed(shard: u32, chain: &str, ms: i64) -> Vec<Listed> {
        vec![
            obj(shard, chain, "base-0.zst", ms),
            obj(shard, chain, HEAD, ms),
        ]
    }

    /// Four shards, then two: shards 0 and 1 got new chains (id 2…, stored at 2000).
    fn shrunk() -> Vec<Listed> {
        let mut l = Vec::new();
        for s in 0..4 {
            l.extend(headed(s, "1000000000000-aaaaaaaa", 1000));
        }
        for s in 0..2 {
            l.extend(headed(
                s,
                &format!("200000000000{s}-bbbbbbbb"),
                2000 + s as i64,
            ));
        }
        l
    }

    fn layout(shards: u32) -> CurrentLayout {
        CurrentLayout {
            shards,
            chain: "2000000000001-bbbbbbbb".into(),
            head_ms: 2001,
        }
    }

    #[test]
    fn the_shards_a_shrink_dropped_are_removed() {
        let inv = inventory("db", &shrunk());
        assert_eq!(
            newest_head(&inv),
            Some((1, "2000000000001-bbbbbbbb".into(), 2001))
        );
        assert_eq!(removed(&inv, &layout(2)), BTreeSet::from([2, 3]));
        assert!(removed(&inv, &layout(4)).is_empty());
    }

    #[test]
    fn a_shard_that_came_back_or_saw_anything_since_is_not_removed() {
        let mut l = shrunk();
        // Shard 2 is back: a head-less folder newer than the layout's head.
        l.push(obj(2, "3000000000000-cccccccc", "base-0.zst", 3000));
        // Shard 3 got an object after the layout's head (by the store's clock).
        l.push(obj(3, "1000000000000-aaaaaaaa", "late.zst", 5000));
        let inv = inventory("db", &l);
        assert!(removed(&inv, &layout(2)).is_empty());
    }

    #[test]
    fn clocks_that_disagree_about_the_newest_head_decide_nothing() {
        let mut l = shrunk();
        // The newest id's head is older, by the store, than another head.
        l.extend(headed(3, "0900000000000-dddddddd", 9000));
        assert_eq!(newest_head(&inventory("db", &l)), None);
        assert_eq!(newest_head(&Inventory::new()), None);
    }
}
