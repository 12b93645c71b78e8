//! Redis Cluster support: a cluster backed up as one dataset, restored at one moment into any
//! shape (docs/CLUSTERS.md).
//!
//! - [`nodes`] reads `CLUSTER NODES` into a view (roles, slot ranges, open migrations);
//! - [`group`] names the replication group (shard) a node's history belongs to, and keeps it;
//! - [`record`] is the agent's recorder: the view, stored on change as a per-node document
//!   ([`doc`]) — never one document many agents rewrite;
//! - [`history`] merges the documents into slot claims over time and decides, for a moment T,
//!   which group's writes count for each slot and in which order they are replayed;
//! - [`restore`] replays every group's history at T into any target (`restore --cluster`), and
//!   [`list`] shows the groups and the common restorable window (`list --cluster`).

pub mod doc;
pub mod group;
pub mod history;
pub mod list;
pub mod nodes;
pub mod record;
pub mod restore;
