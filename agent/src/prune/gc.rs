//! Garbage collection of chain objects, planned from one listing: which chain folders stay and
//! which go, and in which order their objects are deleted. Pure, so it is property-tested.
//!
//! Per shard, a chain folder is **kept** when any of these holds:
//!
//! - a snapshot that stays names it (the caller passes those as `needed`). Whole chains are
//!   kept, not just the segments up to the snapshot's cut: "latest" and point-in-time restores
//!   read the later segments of the same chain too;
//! - it is the shard's open chain: the newest chain with a `chain.json`, by id (creation time on
//!   the agent's clock) and also by the store's time of its `chain.json` (so a clock that jumped
//!   back on the agent cannot expose the chain it appends to);
//! - it is a folder without `chain.json` newer (by id) than the open chain: possibly a chain
//!   whose base is still uploading (on S3 a multipart object is dated from the start of its
//!   upload, so its age alone does not prove it abandoned). The next chain supersedes it;
//!
//! (these two only for shards the server still has: a shard a kevy shard-count shrink removed
//! has no open chain, see [`super::shards`]; its chains stay while a snapshot names them or
//! while young, like any other)
//! - any of its objects is younger than `gc_grace`: a chain being started right now.
//!
//! Every other folder is deleted whole: a chain nothing names, or an abandoned start (no
//! `chain.json`). Its `chain.json` is deleted **first**: from that moment readers and a
//! restarting agent see an abandoned start that they ignore, never a chain that looks complete
//! but lacks a base or the head of its segments; if prune stops half way, the next run removes
//! the rest (its objects are all older than the grace).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::repo::{keys, Listed, ShardId};

/// The name of a chain's head object inside its folder.
pub const HEAD: &str = "chain.json";

/// Keep reason: a snapshot that stays names the chain.
pub const NAMED: &str = "named by a snapshot that stays";
/// Keep reason: the shard's open chain.
pub const OPEN: &str = "newest chain of its shard (the open chain)";
/// Keep reason: a head-less folder newer than the open chain.
pub const STARTING: &str =
    "newest folder of its shard, no chain.json yet (a base may be uploading)";
/// Keep reason: an object younger than the grace period.
pub const RECENT: &str = "has objects younger than gc_grace";
/// Delete reason: a complete chain nothing needs.
pub const UNNAMED: &str = "chain named by no snapshot that stays, not the open chain";
/// Delete reason: a chain of a shard the server no longer has, that nothing needs.
pub const REMOVED_SHARD: &str =
    "chain of a shard the server no longer has (shard count shrank), named by no snapshot that stays";
/// Delete reason: a folder without `chain.json`, older than the grace.
pub const ABANDONED: &str = "abandoned chain start (no chain.json)";

/// One chain folder as a listing shows it.
#[derive(Debug, Clone)]
pub struct ChainFolder {
    pub shard: u32,
    pub chain: String,
    /// Every object in the folder (keys relative to the repository), sorted by key.
    pub objects: Vec<Listed>,
}

impl ChainFolder {
    pub fn head(&self) -> Option<&Listed> {
        self.objects
            .iter()
            .find(|o| o.key.ends_with(&format!("/{HEAD}")))
    }

    /// Whether the folder holds an object with this name (relative to the folder).
    pub fn has(&self, name: &str) -> bool {
        self.objects
            .iter()
            .any(|o| o.key.rsplit_once('/').is_some_and(|(_, n)| n == name))
    }

    pub fn bytes(&self) -> u64 {
        self.objects.iter().map(|o| o.size).sum()
    }

    fn newest_ms(&self) -> i64 {
        self.objects
            .iter()
            .map(|o| o.last_modified_ms)
            .max()
            .unwrap_or(i64::MIN)
    }
}

/// The chain folders of one instance, keyed by (shard, chain id).
pub type Inventory = BTreeMap<(u32, String), ChainFolder>;

/// Sorts a listing of `instances/<instance>/` into chain folders. KeyRing that are not exactly
/// `keys::chain_dir(instance, shard, chain)` + a plain name (snapshots, the lease, anything
/// unknown) are left out: prune never touches what it does not understand.
pub fn inventory(instance: &str, listing: &[Listed]) -> Inventory {
    let root = format!("{}shards/", keys::instance_prefix(instance));
    let mut inv = Inventory::new();
    for l in listing {
        let Some(rest) = l.key.strip_prefix(&root) else {
            continue;
        };
        let mut parts = rest.split('/');
        let (Some(shard), Some("chains"), Some(chain), Some(name), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            continue;
        };
        let Ok(shard) = shard.parse::<u32>() else {
            continue;
        };
        if chain.is_empty() || name.is_empty() {
            continue;
        }
        // Only names the keys module itself would build (e.g. the shard's zero padding).
        if l.key != keys::chain_object(instance, ShardId(shard), chain, name) {
            continue;
        }
        inv.entry((shard, chain.to_string()))
            .or_insert_with(|| ChainFolder {
                shard,
                chain: chain.to_string(),
                objects: Vec::new(),
            })
            .objects
            .push(l.clone());
    }
    for folder in inv.values_mut() {
        folder.objects.sort_by(|a, b| a.key.cmp(&b.key));
    }
    inv
}

/// What happens to a chain folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fate {
    Keep,
    Delete,
}

/// The decision for one chain folder.
#[derive(Debug, Clone, Serialize)]
pub struct ChainPlan {
    pub shard: u32,
    pub chain: String,
    pub fate: Fate,
    pub reason: &'static str,
    pub objects: usize,
    pub bytes: u64,
    /// For `Delete`: the keys in deletion order, `chain.json` first.
    #[serde(skip)]
    pub delete_order: Vec<Listed>,
}

/// Decides every folder of `inv`. `needed` holds the (shard, chain) pairs named by the
/// snapshots that stay; `removed` the shards the server no longer has (no open chain there);
/// `now_ms - grace_ms` is the age limit below which objects are young.
pub fn plan(
    inv: &Inventory,
    needed: &BTreeSet<(u32, String)>,
    removed: &BTreeSet<u32>,
    now_ms: i64,
    grace_ms: i64,
) -> Vec<ChainPlan> {
    let young_after = now_ms.saturating_sub(grace_ms);
    // Per shard: the open chain by id and by the store's time of its head.
    let mut open_by_id: BTreeMap<u32, &str> = BTreeMap::new();
    let mut open_by_time: BTreeMap<u32, (i64, &str)> = BTreeMap::new();
    for ((shard, chain), folder) in inv {
        if removed.contains(shard) {
            continue;
        }
        if let Some(head) = folder.head() {
            // The inventory is sorted by (shard, chain): the last seen is the newest id.
            open_by_id.insert(*shard, chain);
            let cand = (head.last_modified_ms, chain.as_str());
            if open_by_time.get(shard).is_none_or(|cur| cand > *cur) {
                open_by_time.insert(*shard, cand);
            }
        }
    }
    inv.iter()
        .map(|((shard, chain), folder)| {
            let has_head = folder.head().is_some();
            let is_open = open_by_id.get(shard) == Some(&chain.as_str())
                || open_by_time.get(shard).map(|(_, c)| *c) == Some(chain.as_str());
            let newer_than_open = !removed.contains(shard)
                && open_by_id
                    .get(shard)
                    .is_none_or(|open| chain.as_str() > *open);
            let reason = if needed.contains(&(*shard, chain.clone())) {
                Some(NAMED)
            } else if is_open {
                Some(OPEN)
            } else if !has_head && newer_than_open {
                Some(STARTING)
            } else if folder.newest_ms() > young_after {
                Some(RECENT)
            } else {
                None
            };
            let (fate, reason, delete_order) = match reason {
                Some(r) => (Fate::Keep, r, Vec::new()),
                None => {
                    let mut order: Vec<Listed> = folder.head().into_iter().cloned().collect();
                    order.extend(
                        folder
                            .objects
                            .iter()
                            .filter(|o| !o.key.ends_with(&format!("/{HEAD}")))
                            .cloned(),
                    );
                    (
                        Fate::Delete,
                        match (has_head, removed.contains(shard)) {
                            (false, _) => ABANDONED,
                            (true, true) => REMOVED_SHARD,
                            (true, false) => UNNAMED,
                        },
                        order,
                    )
                }
            };
            ChainPlan {
                shard: *shard,
                chain: chain.clone(),
                fate,
                reason,
                objects: folder.objects.len(),
                bytes: folder.bytes(),
                delete_order,
            }
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const NOW: i64 = 1_800_000_000_000;
    const HOUR: i64 = 3_600_000;

    fn obj(shard: u32, chain: &str, name: &str, age_ms: i64) -> Listed {
        Listed {
            key: keys::chain_object("db", ShardId(shard), chain, name),
            size: 100,
            last_modified_ms: NOW - age_ms,
        }
    }

    fn chain(shard: u32, id: &str, head: bool, segs: usize, age_ms: i64) -> Vec<Listed> {
        let mut v = vec![obj(shard, id, "base-0.zst", age_ms)];
        if head {
            v.push(obj(shard, id, HEAD, age_ms));
        }
        for i in 0..segs {
            let name = keys::segment_object(
                i as u64 * 10,
                i as u64 * 10 + 10,
                1,
                2,
                3,
                keys::Codec::Zstd,
            );
            v.push(obj(shard, id, &name, age_ms));
        }
        v
    }

    fn fate_of<'a>(p: &'a [ChainPlan], shard: u32, id: &str) -> &'a ChainPlan {
        p.iter()
            .find(|c| c.shard == shard && c.chain == id)
            .unwrap()
    }

    #[test]
    fn synthetic_listing() {
        let mut listing = Vec::new();
        listing.extend(chain(0, "1000000000000-aaaaaaaa", true, 3, 10 * HOUR)); // named by a kept snapshot
        listing.extend(chain(0, "1000000000001-bbbbbbbb", true, 2, 9 * HOUR)); // orphan
        listing.extend(chain(0, "1000000000002-cccccccc", false, 0, 8 * HOUR)); // abandoned start
        listing.extend(chain(0, "1000000000003-dddddddd", true, 1, 7 * HOUR)); // orphan, old
        listing.extend(chain(0, "1000000000004-eeeeeeee", true, 5, 6 * HOUR)); // open chain, old
        listing.extend(chain(1, "1000000000000-ffffffff", true, 1, 9 * HOUR)); // orphan, but a young segment:
        listing.push(obj(1, "1000000000000-ffffffff", "seg-young.zst", 10));
        listing.extend(chain(1, "1000000000005-00000000", true, 1, 2 * HOUR)); // open chain of shard 1
        listing.extend(chain(1, "1000000000006-11111111", false, 0, 5 * HOUR)); // head-less, newer than open
                                                                                // Not chain objects: never planned.
        listing.push(Listed {
            key: "instances/db/snapshots/x.json".into(),
            size: 1,
            last_modified_ms: 0,
        });
        listing.push(Listed {
            key: "instances/db/lease.json".into(),
            size: 1,
            last_modified_ms: 0,
        });
        listing.push(Listed {
            key: "instances/db/shards/1/chains/x/chain.json".into(),
            size: 1,
            last_modified_ms: 0,
        });
        listing.push(Listed {
            key: "instances/other/shards/0000/chains/y/chain.json".into(),
            size: 1,
            last_modified_ms: 0,
        });
        let inv = inventory("db", &listing);
        assert_eq!(inv.len(), 8);
        let needed = BTreeSet::from([(0, "1000000000000-aaaaaaaa".to_string())]);
        let p = plan(&inv, &needed, &BTreeSet::new(), NOW, HOUR);
        let keep = |s, id: &str, reason| {
            let c = fate_of(&p, s, id);
            assert_eq!((c.fate, c.reason), (Fate::Keep, reason), "{id}");
            assert!(c.delete_order.is_empty());
        };
        keep(0, "1000000000000-aaaaaaaa", NAMED);
        keep(0, "1000000000004-eeeeeeee", OPEN);
        keep(1, "1000000000000-ffffffff", RECENT);
        keep(1, "1000000000005-00000000", OPEN);
        keep(1, "1000000000006-11111111", STARTING);
        let gone = fate_of(&p, 0, "1000000000001-bbbbbbbb");
        assert_eq!(
            (gone.fate, gone.reason, gone.objects, gone.bytes),
            (Fate::Delete, UNNAMED, 4, 400)
        );
        assert!(
            gone.delete_order[0].key.ends_with("/chain.json"),
            "head first: {:?}",
            gone.delete_order
        );
        assert_eq!(gone.delete_order.len(), 4);
        assert_eq!(fate_of(&p, 0, "1000000000002-cccccccc").reason, ABANDONED);
        assert_eq!(fate_of(&p, 0, "1000000000003-dddddddd").fate, Fate::Delete);
        // A longer grace spares the orphans too.
        let p = plan(&inv, &needed, &BTreeSet::new(), NOW, 11 * HOUR);
        assert!(p.iter().all(|c| c.fate == Fate::Keep), "{p:?}");
    }

    #[test]
    fn the_open_chain_by_store_time_is_kept_even_with_a_smaller_id() {
        // The agent's clock jumped back: its current chain has the smaller id but the newer head.
        let mut listing = chain(0, "2000000000000-aaaaaaaa", true, 1, 5 * HOUR);
        listing.extend(chain(0, "1000000000000-bbbbbbbb", true, 1, 2 * HOUR));
        let p = plan(
            &inventory("db", &listing),
            &BTreeSet::new(),
            &BTreeSet::new(),
            NOW,
            HOUR,
        );
        assert!(
            p.iter().all(|c| c.fate == Fate::Keep && c.reason == OPEN),
            "{p:?}"
        );
    }

    proptest! {
        #[test]
        fn never_deletes_what_is_needed_open_or_young(
            chains in prop::collection::vec((0u32..3, 0u64..40, any::<bool>(), 0usize..4, 0i64..20 * HOUR), 0..20),
            named in prop::collection::vec(any::<bool>(), 20),
            grace in 0i64..10 * HOUR,
            removed in prop::collection::btree_set(0u32..3, 0..2),
        ) {
            let mut listing = Vec::new();
            let mut needed = BTreeSet::new();
            for (i, (shard, id, head, segs, age)) in chains.iter().enumerate() {
                let id = format!("{:013}-{i:08x}", 1_000_000_000_000 + id);
                listing.extend(chain(*shard, &id, *head, *segs, *age));
                if named[i] {
                    needed.insert((*shard, id));
                }
            }
            let inv = inventory("db", &listing);
            let p = plan(&inv, &needed, &removed, NOW, grace);
            prop_assert_eq!(p.len(), inv.len());
            let mut deleted = 0;
            for c in &p {
                let folder = &inv[&(c.shard, c.chain.clone())];
                let newest_with_head = inv.iter().filter(|((s, _), f)| *s == c.shard && f.head().is_some()).map(|((_, id), _)| id).max();
                match c.fate {
                    Fate::Keep => prop_assert!(c.delete_order.is_empty()),
                    Fate::Delete => {
                        prop_assert!(!needed.contains(&(c.shard, c.chain.clone())));
                        // The open chain goes only with its shard.
                        prop_assert!(newest_with_head != Some(&c.chain) || removed.contains(&c.shard));
                        prop_assert!(folder.objects.iter().all(|o| o.last_modified_ms <= NOW - grace));
                        prop_assert_eq!(c.delete_order.len(), folder.objects.len());
                        if folder.head().is_some() {
                            prop_assert!(c.delete_order[0].key.ends_with("/chain.json"));
                        }
                        deleted += 1;
                    }
                }
                // An old orphan that is neither open nor newer than the open chain goes.
                let old = folder.objects.iter().all(|o| o.last_modified_ms <= NOW - grace);
                let unnamed = !needed.contains(&(c.shard, c.chain.clone()));
                let older_than_open = newest_with_head.is_some_and(|n| c.chain < *n);
                let head_is_newest_by_time = folder.head().is_some_and(|h| inv.iter()
                    .filter(|((s, _), f)| *s == c.shard && f.head().is_some())
                    .all(|(_, f)| f.head().is_some_and(|o| (o.last_modified_ms, &o.key) <= (h.last_modified_ms, &h.key))));
                if old && unnamed && older_than_open && !head_is_newest_by_time {
                    prop_assert_eq!(c.fate, Fate::Delete, "{:?}", c);
                }
                // In a removed shard nothing is open or starting: old and unnamed is enough.
                if old && unnamed && removed.contains(&c.shard) {
                    prop_assert_eq!(c.fate, Fate::Delete, "{:?}", c);
                }
            }
            prop_assert!(deleted <= p.len());
        }
    }
}
