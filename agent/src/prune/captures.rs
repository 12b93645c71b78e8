//! Which captured server configurations (`server-config/<captured_ms>-<hash>.json[.age]`) prune
//! deletes: those no snapshot that stays would restore with.
//!
//! A snapshot restores with the newest capture at or before its `created_ms` (the publisher
//! captures just before each manifest; see docs/REPOSITORY-FORMAT.md). So a capture stays when
//! it is that capture for a snapshot that stays, when it is the newest capture of all (the
//! agent compares each new capture with it, and the next snapshot will use it), or when its
//! object is younger than `gc_grace` (a capture stored while prune ran, for a manifest not yet
//! published). Everything else goes. The folder only grows when the configuration changes, so
//! this matters for instances whose ACLs or config change often.

use crate::repo::{keys, Listed};

/// Why a capture is deleted.
pub const UNUSED_CAPTURE: &str =
    "server configuration no snapshot that stays restores with, older than gc_grace";

/// The captures of `listing` (one instance's objects) to delete, given the `created_ms` of every
/// snapshot that stays. Objects in the folder whose name is not a capture's are left alone.
pub fn unused(
    instance: &str,
    listing: &[Listed],
    kept_snapshots_ms: &[i64],
    now_ms: i64,
    grace_ms: i64,
) -> Vec<Listed> {
    let prefix = keys::server_config_prefix(instance);
    let mut captures: Vec<(i64, &Listed)> = listing
        .iter()
        .filter_map(|l| {
            let name = l.key.strip_prefix(&prefix)?;
            let (ms, _, _) = keys::parse_server_config(name)?;
            Some((ms, l))
        })
        .collect();
    // Newest first; equal times (two hashes in one millisecond) keep their name order.
    captures.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.key.cmp(&a.1.key)));
    let mut used = vec![false; captures.len()];
    if let Some(u) = used.first_mut() {
        *u = true;
    }
    for &t in kept_snapshots_ms {
        if let Some(i) = captures.iter().position(|(ms, _)| *ms <= t) {
            used[i] = true;
        }
    }
    captures
        .into_iter()
        .zip(used)
        .filter(|((_, l), used)| !used && now_ms - l.last_modified_ms >= grace_ms)
        .map(|((_, l), _)| l.clone())
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn capture(ms: i64, stored_ms: i64) -> Listed {
        Listed {
            key: keys::server_config("i", ms, &format!("{ms:08x}"), false),
            size: 100,
            last_modified_ms: stored_ms,
        }
    }

    fn names(v: &[Listed]) -> Vec<i64> {
        let prefix = keys::server_config_prefix("i");
        v.iter()
            .map(|l| {
                keys::parse_server_config(l.key.strip_prefix(&prefix).unwrap())
                    .unwrap()
                    .0
            })
            .collect()
    }

    #[test]
    fn each_kept_snapshot_keeps_the_capture_it_restores_with_and_the_newest_stays() {
        let hour = 3_600_000;
        let now = 100 * hour;
        let listing: Vec<Listed> = [10, 20, 30, 40, 50]
            .iter()
            .map(|h| capture(h * hour, h * hour))
            .collect();
        // Snapshots at 25 h and 41 h stay: they use the captures of 20 h and 40 h; 50 h is the
        // newest. 10 h and 30 h go.
        let gone = unused("i", &listing, &[25 * hour, 41 * hour], now, hour);
        assert_eq!(names(&gone), vec![30 * hour, 10 * hour]);
        // No snapshot stays: only the newest capture is kept.
        let gone = unused("i", &listing, &[], now, hour);
        assert_eq!(names(&gone).len(), 4);
        assert!(!names(&gone).contains(&(50 * hour)));
        // A snapshot taken before any capture uses none, and keeps none.
        let gone = unused("i", &listing, &[5 * hour], now, hour);
        assert_eq!(names(&gone).len(), 4);
    }

    #[test]
    fn young_captures_and_foreign_names_stay() {
        let hour = 3_600_000;
        let now = 100 * hour;
        let mut listing = vec![capture(hour, now - 10), capture(2 * hour, 2 * hour)];
        listing.push(Listed {
            key: "instances/i/server-config/notes.txt".into(),
            size: 1,
            last_modified_ms: 0,
        });
        listing.push(Listed {
            key: "instances/i/snapshots/0001.json".into(),
            size: 1,
            last_modified_ms: 0,
        });
        // The 1 h capture is unused but was stored 10 ms ago: it stays.
        assert!(unused("i", &listing, &[], now, hour).is_empty());
        // With no grace it goes; nothing that is not a capture ever does.
        assert_eq!(names(&unused("i", &listing, &[], now, 0)), vec![hour]);
    }
}
