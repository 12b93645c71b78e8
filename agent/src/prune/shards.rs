//! Which shards the server no longer has: after a kevy shard-count shrink (say 4 → 2), the
//! chains of shards 2 and 3 are nobody's open chain any more, and [`gc::plan`] must not keep
//! them as if they were.
//!
//! The current layout is the newest snapshot manifest's: the agent publishes one as soon as it
//! follows a new layout, naming every shard it has. (Chain heads are no guide: a kevy re-shard
//! first looks like a `BGSAVE` of the old layout, so the chains the new layout goes on with
//! may carry the old layout in their heads.) A shard is **removed** when that layout has no
//! such shard *and* nothing in the shard is newer than that manifest — no chain created after
//! it (by the agent's clock, which dates both) and no object stored after it (by the store's
//! clock, which dates both): a shard that came back (the count grew again) has a newer chain
//! or a newer head-less folder, and stays an ordinary shard.
//!
//! When the two clocks disagree about which manifest is the newest (a clock jumped), no shard
//! is counted removed: prune then keeps what it kept before.
//!
//! [`gc::plan`]: super::gc::plan

use std::collections::BTreeSet;

use aofvault_formats::vault::SnapshotManifest;

use super::gc::Inventory;
use crate::repo::keys;

/// The server's shard count as the newest manifest tells it, and when that was said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentLayout {
    pub shards: u32,
    /// The manifest's creation time (the agent's clock, like chain ids).
    pub created_ms: i64,
    /// The store's time of the manifest object.
    pub stored_ms: i64,
}

/// The layout of the newest manifest among `(manifest, store time)`: newest by creation time
/// and also by the store's time; `None` if there is none or the two orders disagree.
pub fn current_layout<'a>(
    manifests: impl IntoIterator<Item = (&'a SnapshotManifest, i64)>,
) -> Option<CurrentLayout> {
    let all: Vec<(&SnapshotManifest, i64)> = manifests.into_iter().collect();
    let &(newest, stored_ms) = all
        .iter()
        .max_by(|a, b| (a.0.created_ms, &a.0.id).cmp(&(b.0.created_ms, &b.0.id)))?;
    all.iter()
        .all(|(_, ms)| *ms <= stored_ms)
        .then(|| CurrentLayout {
            shards: newest.layout.shards(),
            created_ms: newest.created_ms,
            stored_ms,
        })
}

/// The shards `current` no longer has and that saw nothing since (see the module doc).
pub fn removed(inv: &Inventory, current: &CurrentLayout) -> BTreeSet<u32> {
    let mut gone: BTreeSet<u32> = inv
        .keys()
        .map(|(shard, _)| *shard)
        .filter(|shard| *shard >= current.shards)
        .collect();
    for ((shard, chain), folder) in inv {
        // A chain id we cannot date counts as new: nothing is removed on a guess.
        let since = keys::chain_created_ms(chain).is_none_or(|ms| ms >= current.created_ms)
            || folder
                .objects
                .iter()
                .any(|o| o.last_modified_ms > current.stored_ms);
        if since {
            gone.remove(shard);
        }
    }
    gone
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use aofvault_formats::vault::{ServerLayout, FORMAT_VERSION};

    use super::super::gc::{inventory, HEAD};
    use super::*;
    use crate::repo::{Listed, ShardId};

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

    /// Four shards (chains of time 1000), then two: shards 0 and 1 went on (chains of 2000).
    fn shrunk() -> Vec<Listed> {
        let mut l = Vec::new();
        for s in 0..4 {
            l.extend(headed(s, "0000000001000-aaaaaaaa", 1000));
        }
        for s in 0..2 {
            l.extend(headed(s, "0000000002000-bbbbbbbb", 2000));
        }
        l
    }

    /// The 2-shard manifest, created at 2500 and stored at 2600.
    fn layout(shards: u32) -> CurrentLayout {
        CurrentLayout {
            shards,
            created_ms: 2500,
            stored_ms: 2600,
        }
    }

    fn manifest(id: &str, created_ms: i64, shards: u32) -> SnapshotManifest {
        SnapshotManifest {
            format_version: FORMAT_VERSION,
            id: id.into(),
            instance: "db".into(),
            created_ms,
            layout: ServerLayout::Kevy {
                shards,
                shards_meta: None,
            },
            server_version: None,
            reason: "test".into(),
            shards: Vec::new(),
        }
    }

    #[test]
    fn the_shards_a_shrink_dropped_are_removed() {
        let inv = inventory("db", &shrunk());
        assert_eq!(removed(&inv, &layout(2)), BTreeSet::from([2, 3]));
        assert!(removed(&inv, &layout(4)).is_empty());
    }

    #[test]
    fn a_shard_that_came_back_or_saw_anything_since_is_not_removed() {
        let mut l = shrunk();
        // Shard 2 is back: a head-less folder created after the manifest.
        l.push(obj(2, "0000000003000-cccccccc", "base-0.zst", 2000));
        // Shard 3 got an object after the manifest was stored.
        l.push(obj(3, "0000000001000-aaaaaaaa", "late.zst", 5000));
        // Shard 4 holds a folder whose name dates nothing.
        l.push(obj(4, "not-a-chain-id", "base-0.zst", 100));
        let inv = inventory("db", &l);
        assert!(removed(&inv, &layout(2)).is_empty());
    }

    #[test]
    fn the_newest_manifest_says_the_layout_unless_the_clocks_disagree() {
        let (four, two) = (manifest("a", 1500, 4), manifest("b", 2500, 2));
        assert_eq!(
            current_layout([(&four, 1600), (&two, 2600)]),
            Some(layout(2))
        );
        // The newest by creation is older by the store's clock: no decision.
        assert_eq!(current_layout([(&four, 2700), (&two, 2600)]), None);
        assert_eq!(current_layout([]), None);
    }
}
