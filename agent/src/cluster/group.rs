//! The replication group (shard) a cluster node belongs to, which names the node's history.
//!
//! A group is one shard: a primary and its replicas, whose agents share one instance in the
//! repository (issue 13's replication groups). Its name must not change when the shard fails
//! over, so it is chosen once and kept:
//!
//! - the shard id of `CLUSTER MYSHARDID` (Redis ≥ 7.2, Valkey), stable across failovers;
//! - else the node id of the primary the agent first saw: its own id when its server is a
//!   primary, its primary's id when it is a replica.
//!
//! The choice is written to the state directory (`cluster-<NAME>.json`) on first sight and
//! read back on every start, and every topology document carries it, so that agents started
//! later on other members of the shard, and restores, find the group by the node ids.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::nodes::{Role, View};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Stored {
    cluster: String,
    group: String,
    /// The node the group was first chosen on.
    node: String,
}

fn path(state_dir: &Path, cluster: &str) -> PathBuf {
    state_dir.join(format!("cluster-{cluster}.json"))
}

/// The group to use for a node that sees `view` (and says `shard_id`, when it has one),
/// before anything was kept.
pub fn choose(view: &View, shard_id: Option<&str>) -> Option<String> {
    if let Some(id) = shard_id.filter(|s| !s.is_empty()) {
        return Some(id.to_string());
    }
    let me = view.me()?;
    match me.role {
        Role::Master => Some(me.id.clone()),
        Role::Replica => me.master.clone(),
    }
}

/// The kept group of `cluster`, or the one [`choose`] gives, then kept.
pub fn resolve(
    state_dir: &Path,
    cluster: &str,
    view: &View,
    shard_id: Option<&str>,
) -> anyhow::Result<Option<String>> {
    let file = path(state_dir, cluster);
    if let Ok(bytes) = std::fs::read(&file) {
        match serde_json::from_slice::<Stored>(&bytes) {
            Ok(s) if s.cluster == cluster => return Ok(Some(s.group)),
            _ => {
                tracing::warn!(file = %file.display(), "the kept cluster group is unreadable: choosing again")
            }
        }
    }
    let Some(group) = choose(view, shard_id) else {
        return Ok(None);
    };
    let stored = Stored {
        cluster: cluster.to_string(),
        group: group.clone(),
        node: view.myself.clone(),
    };
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    let tmp = file.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&stored)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &file).with_context(|| format!("writing {}", file.display()))?;
    tracing::info!(cluster, group = %group, "cluster group chosen and kept");
    Ok(Some(group))
}

/// The group of the server `cfg` names (`[source] cluster` set), read from the server and
/// kept: what an agent's instance name can be derived from before it takes a lease. `None`
/// without `[source] cluster` or without a configured server.
pub async fn for_config(cfg: &aofvault_config::Config) -> anyhow::Result<Option<String>> {
    let Some(cluster) = &cfg.source.cluster else {
        return Ok(None);
    };
    let Some(mut server) = crate::server::Server::connect(cfg).await? else {
        return Ok(None);
    };
    let view = View::parse(&server.text(&["CLUSTER", "NODES"]).await?)?;
    // Redis < 7.2 does not know the command: no shard id then.
    let shard_id = server.text(&["CLUSTER", "MYSHARDID"]).await.ok();
    resolve(&cfg.state.dir, cluster, &view, shard_id.as_deref())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const PRIMARY: &str =
        "aaa 1:1@2 myself,master - 0 0 1 connected 0-10\nbbb 1:2@3 slave aaa 0 0 1 connected\n";
    const REPLICA: &str =
        "aaa 1:1@2 master - 0 0 1 connected 0-10\nbbb 1:2@3 myself,slave aaa 0 0 1 connected\n";
    const PROMOTED: &str =
        "aaa 1:1@2 slave bbb 0 0 1 connected\nbbb 1:2@3 myself,master - 0 0 2 connected 0-10\n";

    #[test]
    fn the_group_is_the_shard_id_or_the_first_primary_seen_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let primary = View::parse(PRIMARY).unwrap();
        let replica = View::parse(REPLICA).unwrap();
        assert_eq!(
            choose(&primary, Some("shard-1")).as_deref(),
            Some("shard-1")
        );
        assert_eq!(choose(&primary, None).as_deref(), Some("aaa"));
        assert_eq!(choose(&replica, None).as_deref(), Some("aaa"));
        let first = resolve(dir.path(), "c", &replica, None).unwrap();
        assert_eq!(first.as_deref(), Some("aaa"));
        // After a failover the replica is the primary: the group stays.
        let promoted = View::parse(PROMOTED).unwrap();
        let again = resolve(dir.path(), "c", &promoted, None).unwrap();
        assert_eq!(again.as_deref(), Some("aaa"));
    }
}
