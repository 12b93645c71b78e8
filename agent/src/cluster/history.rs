//! Which group's history counts for which slot at a moment T, from the recorded topology.
//!
//! A reshard moves a slot's keys with `MIGRATE`: the receiving node's AOF gets a `RESTORE` of
//! each key, then the giving node's AOF a `DEL`. Replayed independently into one keyspace, the
//! giving node's `DEL` may land after the receiving node's `RESTORE` and lose the key. The rule
//! that avoids it ([`SlotOwners`]):
//!
//! - a group *claims* a slot from the moment its node is recorded serving or importing it; a
//!   node's first document claims from the beginning of time (nothing moved before the
//!   recording started: docs/CLUSTERS.md says so);
//! - for a restore at T, the claimants of a slot are the groups with a claim starting at or
//!   before `T + slack` (a change is recorded up to one poll late: `slack` is twice the longest
//!   poll interval), ordered by the start of their latest such claim;
//! - each group's stream is replayed in *phases*: phase `p` replays, of every group, the
//!   commands of the slots where that group is the `p`-th claimant. The slot's last claimant
//!   is replayed last, so its writes — the key's state at T, if the key had moved to it by T —
//!   win; an earlier claimant still holding the key at T (not migrated yet) leaves it in place
//!   since the later one never wrote it;
//! - commands of a group for a slot it never claimed are left out (the cluster deleted them);
//!   a slot nobody claimed keeps every group's commands, in one phase.

use std::collections::{BTreeMap, HashMap};

use super::doc::TopologyDoc;
use super::nodes::Role;

const SLOTS: usize = aofvault_formats::slot::SLOTS as usize;

/// A set of slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotSet(Vec<bool>);

impl Default for SlotSet {
    fn default() -> Self {
        SlotSet(vec![false; SLOTS])
    }
}

impl SlotSet {
    pub fn all() -> SlotSet {
        SlotSet(vec![true; SLOTS])
    }

    pub fn insert(&mut self, slot: u16) {
        if let Some(s) = self.0.get_mut(usize::from(slot)) {
            *s = true;
        }
    }

    pub fn contains(&self, slot: u16) -> bool {
        self.0.get(usize::from(slot)).copied().unwrap_or(false)
    }

    pub fn len(&self) -> usize {
        self.0.iter().filter(|s| **s).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What is known about one group.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Group {
    /// The repository instance holding its history (the one its primary's agent ships).
    pub instance: String,
    /// Its nodes as last recorded: id → (address, role).
    pub nodes: BTreeMap<String, (String, Role)>,
    /// Slots its primary served in the latest documents.
    pub slots: usize,
}

/// The groups of a cluster and their claims on slots over time.
#[derive(Debug, Default)]
pub struct SlotOwners {
    pub groups: BTreeMap<String, Group>,
    /// (group, slot) → the times its claims started (`i64::MIN`: from the first document).
    claims: HashMap<(String, u16), Vec<i64>>,
    /// See the module doc.
    pub slack_ms: i64,
}

/// One phase of a restore at T: per group, the slots whose commands it replays now.
pub type Phase = BTreeMap<String, SlotSet>;

impl SlotOwners {
    /// Reads the documents (any order).
    pub fn from_docs(docs: &[TopologyDoc]) -> SlotOwners {
        let mut docs: Vec<&TopologyDoc> = docs.iter().collect();
        docs.sort_by_key(|d| d.seen_ms);
        let mut owners = SlotOwners::default();
        let mut previous: HashMap<&str, SlotSet> = HashMap::new();
        let mut masters: HashMap<String, i64> = HashMap::new();
        for d in &docs {
            owners.slack_ms = owners.slack_ms.max(2 * d.poll_ms as i64);
            let me = d.view.me();
            let group = owners.groups.entry(d.group.clone()).or_default();
            if let Some(me) = me {
                group
                    .nodes
                    .insert(me.id.clone(), (me.addr.clone(), me.role));
            }
            let is_master = me.is_some_and(|m| m.role == Role::Master);
            // The instance of the group's primary is where its history is.
            if is_master || group.instance.is_empty() {
                let newest = masters.entry(d.group.clone()).or_insert(i64::MIN);
                if is_master && d.seen_ms >= *newest {
                    *newest = d.seen_ms;
                    group.instance = d.instance.clone();
                } else if group.instance.is_empty() {
                    group.instance = d.instance.clone();
                }
            }
            let mut now = SlotSet::default();
            if let Some(me) = me.filter(|_| is_master) {
                for &(a, b) in &me.slots {
                    for s in a..=b {
                        now.insert(s);
                    }
                }
                for (s, _) in &me.importing {
                    now.insert(*s);
                }
                group.slots = now.len() - me.importing.len().min(now.len());
            }
            let before = previous.get(d.node.as_str());
            for s in 0..SLOTS as u16 {
                if now.contains(s) && !before.is_some_and(|b| b.contains(s)) {
                    let start = if before.is_none() {
                        i64::MIN
                    } else {
                        d.seen_ms
                    };
                    owners
                        .claims
                        .entry((d.group.clone(), s))
                        .or_default()
                        .push(start);
                }
            }
            previous.insert(d.node.as_str(), now);
        }
        owners
    }

    /// The claimants of `slot` for a restore at `at_ms`, earliest first.
    pub fn claimants(&self, slot: u16, at_ms: i64) -> Vec<&str> {
        let limit = at_ms.saturating_add(self.slack_ms);
        let mut found: Vec<(i64, &str)> = self
            .groups
            .keys()
            .filter_map(|g| {
                let starts = self.claims.get(&(g.clone(), slot))?;
                let latest = starts.iter().copied().filter(|&t| t <= limit).max()?;
                Some((latest, g.as_str()))
            })
            .collect();
        found.sort();
        found.into_iter().map(|(_, g)| g).collect()
    }

    /// The replay phases of a restore at `at_ms` (see the module doc); groups without a
    /// slot in a phase are left out of it.
    pub fn phases(&self, at_ms: i64) -> Vec<Phase> {
        let mut phases: Vec<Phase> = Vec::new();
        for slot in 0..SLOTS as u16 {
            let claimants = self.claimants(slot, at_ms);
            if claimants.is_empty() {
                // Nobody claimed it: every group's commands count, together.
                if phases.is_empty() {
                    phases.push(Phase::new());
                }
                for g in self.groups.keys() {
                    phases[0].entry(g.clone()).or_default().insert(slot);
                }
                continue;
            }
            for (p, g) in claimants.iter().enumerate() {
                while phases.len() <= p {
                    phases.push(Phase::new());
                }
                phases[p].entry(g.to_string()).or_default().insert(slot);
            }
        }
        phases
    }

    /// Slots with more than one claimant at `at_ms`: moved (or moving) during the history.
    pub fn moved_slots(&self, at_ms: i64) -> usize {
        (0..SLOTS as u16)
            .filter(|&s| self.claimants(s, at_ms).len() > 1)
            .count()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cluster::nodes::View;

    fn doc(node: &str, group: &str, at: i64, nodes: &str) -> TopologyDoc {
        TopologyDoc {
            format: 1,
            cluster: "c".into(),
            node: node.into(),
            instance: format!("i-{group}"),
            group: group.into(),
            seen_ms: at,
            poll_ms: 100,
            view: View::parse(nodes).unwrap(),
        }
    }

    fn line(id: &str, me: bool, slots: &str) -> String {
        let flags = if me { "myself,master" } else { "master" };
        format!("{id} 127.0.0.1:1@2 {flags} - 0 0 1 connected {slots}\n")
    }

    #[test]
    fn a_moved_slot_is_replayed_from_its_old_owner_then_its_new_one() {
        // a serves 0-99, b 100-199; at 1000 slot 5 moves from a to b (importing seen at 500).
        let docs = vec![
            doc(
                "a",
                "A",
                0,
                &(line("a", true, "0-99") + &line("b", false, "100-199")),
            ),
            doc(
                "b",
                "B",
                0,
                &(line("b", true, "100-199") + &line("a", false, "0-99")),
            ),
            doc(
                "b",
                "B",
                500,
                &(line("b", true, "100-199 [5-<-a]") + &line("a", false, "0-99")),
            ),
            doc(
                "a",
                "A",
                1000,
                &(line("a", true, "0-4 6-99") + &line("b", false, "5 100-199")),
            ),
            doc(
                "b",
                "B",
                1000,
                &(line("b", true, "5 100-199") + &line("a", false, "0-4 6-99")),
            ),
        ];
        let owners = SlotOwners::from_docs(&docs);
        assert_eq!(owners.slack_ms, 200);
        assert_eq!(owners.claimants(5, 100), vec!["A"], "before the move");
        assert_eq!(owners.claimants(5, 400), vec!["A", "B"], "within the slack");
        assert_eq!(owners.claimants(5, 2000), vec!["A", "B"]);
        assert_eq!(owners.claimants(6, 2000), vec!["A"]);
        assert_eq!(owners.claimants(150, 2000), vec!["B"]);
        assert_eq!(owners.claimants(9000, 2000), Vec::<&str>::new());
        let phases = owners.phases(2000);
        assert_eq!(phases.len(), 2);
        assert!(phases[0]["A"].contains(5) && phases[1]["B"].contains(5));
        assert!(
            !phases[0]["B"].contains(5),
            "B's slot-5 writes come after A's"
        );
        assert!(phases[0]["B"].contains(150) && !phases[0]["A"].contains(150));
        assert!(phases[0]["A"].contains(9000) && phases[0]["B"].contains(9000));
        assert_eq!(owners.moved_slots(2000), 1);
        assert_eq!(owners.groups["A"].instance, "i-A");
        assert_eq!(owners.groups["A"].slots, 99);
    }

    #[test]
    fn a_slot_moved_back_is_replayed_from_its_latest_owner_last() {
        let docs = vec![
            doc("a", "A", 0, &line("a", true, "0-9")),
            doc("b", "B", 0, &line("b", true, "10-19")),
            doc("a", "A", 1000, &line("a", true, "1-9")),
            doc("b", "B", 1000, &line("b", true, "0 10-19")),
            doc("b", "B", 5000, &line("b", true, "10-19")),
            doc("a", "A", 5000, &line("a", true, "0-9")),
        ];
        let owners = SlotOwners::from_docs(&docs);
        assert_eq!(owners.claimants(0, 3000), vec!["A", "B"]);
        assert_eq!(owners.claimants(0, 9000), vec!["B", "A"]);
    }
}
