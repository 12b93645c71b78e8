//! The decision over the readable snapshots: the retention policy, plus the newest restorable
//! snapshot kept and dropped manifests younger than `gc_grace` spared; and what that leaves
//! needed.

use std::collections::{BTreeMap, BTreeSet};

use aofvault_formats::vault::SnapshotManifest;

use super::read::Manifests;
use super::{policy, Inventory, Policy, SnapshotFate, SnapshotLine, NEWEST_RESTORABLE, SPARED};
use crate::repo::Listed;

/// What happens to each readable snapshot, and what that leaves needed.
#[derive(Debug, Default)]
pub(super) struct Decision {
    /// Newest first.
    pub(super) lines: Vec<SnapshotLine>,
    /// Ids whose manifests go.
    pub(super) delete: Vec<String>,
    /// (shard, chain) named by the snapshots that stay.
    pub(super) needed: BTreeSet<(u32, String)>,
}

/// The policy, plus the two rules around it: the newest restorable snapshot stays, and a
/// dropped manifest younger than the grace (by its own time or the store's) is spared.
pub(super) fn decide(
    manifests: &Manifests,
    listed: &BTreeMap<String, Listed>,
    inv: &Inventory,
    policy: &Policy,
    now_ms: i64,
    grace_ms: i64,
) -> Decision {
    let times: Vec<(String, i64)> = manifests
        .values()
        .map(|m| (m.id.clone(), m.created_ms))
        .collect();
    let mut selection = policy::select(&times, policy, now_ms);
    if let Some((_, reasons)) = selection
        .iter_mut()
        .find(|(id, _)| manifests.get(id).is_some_and(|m| restorable(m, inv)))
    {
        if reasons.is_empty() {
            reasons.push(NEWEST_RESTORABLE);
        }
    }
    let young_after = now_ms.saturating_sub(grace_ms);
    let mut d = Decision::default();
    for (id, reasons) in selection {
        let Some(m) = manifests.get(&id) else {
            continue;
        };
        let stored_ms = listed.get(&id).map_or(i64::MIN, |l| l.last_modified_ms);
        let (fate, reasons) = if !reasons.is_empty() {
            (SnapshotFate::Keep, reasons)
        } else if m.created_ms > young_after || stored_ms > young_after {
            (SnapshotFate::Spare, vec![SPARED])
        } else {
            (SnapshotFate::Delete, Vec::new())
        };
        if fate == SnapshotFate::Delete {
            d.delete.push(id.clone());
        } else {
            d.needed.extend(chains_of(m));
        }
        d.lines.push(SnapshotLine {
            id,
            created_ms: Some(m.created_ms),
            fate,
            reasons,
        });
    }
    d
}

/// The (shard, chain) pairs a manifest names.
pub(super) fn chains_of(m: &SnapshotManifest) -> impl Iterator<Item = (u32, String)> + '_ {
    m.shards.iter().map(|c| (c.shard, c.chain.clone()))
}

/// Whether every object the manifest names is in the listing.
fn restorable(m: &SnapshotManifest, inv: &Inventory) -> bool {
    m.shards.iter().all(|cut| {
        inv.get(&(cut.shard, cut.chain.clone()))
            .is_some_and(|folder| {
                folder.head().is_some()
                    && cut.base.iter().all(|b| folder.has(&b.object))
                    && cut.segments.iter().all(|s| folder.has(&s.object))
            })
    })
}
