//! Reading the instance's snapshot manifests: which keys are manifests, and their contents.

use std::collections::BTreeMap;

use aofvault_formats::vault::SnapshotManifest;
use futures::StreamExt;

use super::{PruneError, PARALLEL};
use crate::repo::{keys, Listed, Repo, RepoError};

/// Snapshot manifests in a listing, by id (only keys exactly as [`keys::snapshot`] builds them).
pub(super) fn snapshot_objects(instance: &str, listing: &[Listed]) -> BTreeMap<String, Listed> {
    let prefix = keys::snapshots_prefix(instance);
    listing
        .iter()
        .filter_map(|l| {
            let id = l.key.strip_prefix(&prefix)?.strip_suffix(".json")?;
            (!id.is_empty() && !id.contains('/') && keys::snapshot(instance, id) == l.key)
                .then(|| (id.to_string(), l.clone()))
        })
        .collect()
}

pub(super) type Manifests = BTreeMap<String, SnapshotManifest>;

/// Reads manifests, a few at a time. Vanished ones (another prune) are skipped; unparsable ones
/// are returned apart with the reason; any other failure (unreachable store) stops the prune.
pub(super) async fn read_manifests(
    repo: &Repo,
    instance: &str,
    ids: Vec<String>,
) -> Result<(Manifests, Vec<(String, String)>), PruneError> {
    let results: Vec<(String, Result<SnapshotManifest, RepoError>)> = futures::stream::iter(ids)
        .map(|id| async move {
            let r = repo.snapshot(instance, &id).await;
            (id, r)
        })
        .buffer_unordered(PARALLEL)
        .collect()
        .await;
    let mut ok = Manifests::new();
    let mut bad = Vec::new();
    for (id, r) in results {
        match r {
            Ok(m) if m.id == id && m.instance == instance => {
                ok.insert(id, m);
            }
            Ok(m) => bad.push((
                id,
                format!("it says it is snapshot {} of instance {}", m.id, m.instance),
            )),
            Err(RepoError::NotFound { .. }) => {}
            Err(RepoError::Corrupt { reason, .. }) => bad.push((id, reason)),
            Err(RepoError::Format { source, .. }) => bad.push((id, source.to_string())),
            Err(source) => {
                return Err(PruneError::Manifest {
                    key: keys::snapshot(instance, &id),
                    source,
                })
            }
        }
    }
    bad.sort();
    Ok((ok, bad))
}
