//! Carrying out deletions, a few at a time: a list of objects, or one chain folder with its
//! `chain.json` first.

use futures::StreamExt;

use super::{ChainPlan, Deletion, PARALLEL};
use crate::repo::{Listed, Repo};

/// Deletes one chain folder: its `chain.json` alone first (from then on every reader sees an
/// abandoned start), then the rest; if the head cannot be deleted, nothing else is tried.
pub(super) async fn delete_chain(repo: &Repo, p: &ChainPlan, dry_run: bool) -> Vec<Deletion> {
    let reason = format!("{} (shard {}, chain {})", p.reason, p.shard, p.chain);
    let mut objects = p.delete_order.iter();
    let mut out = Vec::new();
    if let Some(first) = objects.next() {
        out = delete_all(repo, vec![(first.clone(), reason.clone())], dry_run).await;
        if out.iter().any(|d| d.error.is_some()) {
            return out;
        }
    }
    let rest = objects.map(|o| (o.clone(), reason.clone())).collect();
    out.extend(delete_all(repo, rest, dry_run).await);
    out
}

/// Deletes `objects` (nothing with `dry_run`), a few at a time, and reports each.
pub(super) async fn delete_all(
    repo: &Repo,
    objects: Vec<(Listed, String)>,
    dry_run: bool,
) -> Vec<Deletion> {
    futures::stream::iter(objects)
        .map(|(obj, reason)| async move {
            let result = if dry_run {
                Ok(())
            } else {
                repo.delete(&obj.key).await
            };
            Deletion {
                deleted: !dry_run && result.is_ok(),
                error: result.err().map(|e| e.to_string()),
                key: obj.key,
                size: obj.size,
                reason,
            }
        })
        .buffered(PARALLEL)
        .collect()
        .await
}
