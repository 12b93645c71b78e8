//! Member records: each agent of a replication group writes its own small document
//! (`instances/<instance>/members/<node>.json`) every few seconds — what its server says and
//! what the agent does. Nobody else writes it, so no write ever contends. The others read them
//! to know who is alive (a record that keeps changing, on the reader's own clock) and whether
//! another server also claims to be the primary.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::repo::keys;
use crate::repo::lease::ServerReport;
use crate::repo::{Repo, RepoError};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemberDoc {
    pub node: String,
    pub host: String,
    pub pid: u32,
    /// shipping | standby | stepping down
    pub state: String,
    pub server: ServerReport,
    /// Who holds the lease, as this member last saw it.
    #[serde(default)]
    pub lease_holder: Option<String>,
    pub updated_ms: i64,
}

impl MemberDoc {
    pub async fn publish(&self, repo: &Repo, instance: &str) -> Result<(), RepoError> {
        let body = Bytes::from(serde_json::to_vec_pretty(self).unwrap_or_default());
        repo.put_overwrite(&keys::member(instance, &self.node), body)
            .await
    }
}

/// Every member record of an instance (unreadable ones are skipped with a warning).
pub async fn read_all(repo: &Repo, instance: &str) -> Result<Vec<MemberDoc>, RepoError> {
    let mut out = Vec::new();
    for l in repo.list(&keys::members_prefix(instance)).await? {
        if !l.key.ends_with(".json") {
            continue;
        }
        let Some(bytes) = repo.get_opt(&l.key).await? else {
            continue;
        };
        match serde_json::from_slice::<MemberDoc>(&bytes) {
            Ok(d) => out.push(d),
            Err(e) => tracing::warn!(key = %l.key, error = %e, "unreadable member record"),
        }
    }
    Ok(out)
}

/// Which other members are alive: their records changed lately, as seen on this process's
/// clock (a first sighting counts as a change: a member that has just started is alive; a dead
/// member's last record stops counting after the window).
#[derive(Debug, Default)]
pub struct Liveness {
    /// node → (its last `updated_ms`, when this process saw that value appear).
    seen: HashMap<String, (i64, Instant)>,
}

impl Liveness {
    /// Notes what `docs` say now; returns the other members alive within `window`.
    pub fn observe<'a>(
        &mut self,
        me: &str,
        docs: &'a [MemberDoc],
        window: Duration,
    ) -> Vec<&'a MemberDoc> {
        let now = Instant::now();
        let mut alive = Vec::new();
        for d in docs.iter().filter(|d| d.node != me) {
            let entry = self
                .seen
                .entry(d.node.clone())
                .or_insert((d.updated_ms, now));
            if entry.0 != d.updated_ms {
                *entry = (d.updated_ms, now);
            }
            if now.duration_since(entry.1) < window {
                alive.push(d);
            }
        }
        alive
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn doc(node: &str, updated_ms: i64) -> MemberDoc {
        MemberDoc {
            node: node.into(),
            host: "h".into(),
            pid: 1,
            state: "standby".into(),
            server: ServerReport::default(),
            lease_holder: None,
            updated_ms,
        }
    }

    #[test]
    fn a_member_is_alive_while_its_record_changes() {
        let mut l = Liveness::default();
        let w = Duration::from_millis(300);
        let docs = [doc("me", 1), doc("b", 1)];
        assert_eq!(l.observe("me", &docs, w).len(), 1, "just seen");
        std::thread::sleep(Duration::from_millis(400));
        assert!(
            l.observe("me", &docs, w).is_empty(),
            "unchanged past the window"
        );
        let docs = [doc("me", 1), doc("b", 2)];
        assert_eq!(l.observe("me", &docs, w)[0].node, "b");
    }
}
