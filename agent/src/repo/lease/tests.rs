//! The lease under contention, on a `file://` repository and an in-memory object store: many
//! claimants at once, never two holders.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use super::*;
use crate::repo::RepoSpec;

fn claimant(node: &str, ttl_ms: u64) -> Claimant {
    Claimant::new(node, Duration::from_millis(ttl_ms), None)
}

fn repos() -> Vec<(Repo, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let file = Repo::open(&RepoSpec::File(dir.path().to_path_buf()), 3).unwrap();
    let name = format!("lease-{:x}", rand::random::<u64>());
    let mem = Repo::open(&RepoSpec::Memory(name), 3).unwrap();
    vec![(file, Some(dir)), (mem, None)]
}

/// `n` claimants look at the lease, then all try to take it at once.
async fn contend(repo: &Repo, n: usize, ttl_ms: u64) -> Vec<Lease> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            let mut obs = Observer::new("g");
            let look = obs.look(&repo).await.unwrap();
            if !look.found.is_takeable() {
                return None;
            }
            match Lease::take(&repo, "g", &claimant(&format!("n{i}"), ttl_ms), &look).await {
                Ok(l) => Some(l),
                Err(LeaseError::Contended { .. }) => None,
                Err(e) => panic!("{e}"),
            }
        }));
    }
    let mut won = Vec::new();
    for t in tasks {
        if let Some(l) = t.await.unwrap() {
            won.push(l);
        }
    }
    won
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_claimants_of_a_free_or_released_lease_give_one_holder() {
    for (repo, _dir) in repos() {
        for round in 0..10 {
            let mut won = contend(&repo, 12, 60_000).await;
            assert_eq!(won.len(), 1, "round {round} on {}", repo.url());
            let lease = won.pop().unwrap();
            assert!(lease.fence().is_open());
            let fence = lease.fence();
            lease.release().await.unwrap();
            assert!(!fence.is_open(), "a released lease lets nothing through");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_renewed_lease_is_never_taken_and_a_silent_one_is_taken_once() {
    for (repo, _dir) in repos() {
        let mut holder = contend(&repo, 1, 800).await.pop().unwrap();
        // While the holder renews, a watcher never finds it stale, however long it watches.
        let mut obs = Observer::new("g");
        for _ in 0..8 {
            holder.renew(None).await.unwrap();
            let look = obs.look(&repo).await.unwrap();
            assert!(!look.found.is_takeable(), "{:?}", look.found);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        // Silent now: after the TTL on the watcher's clock, it is stale, and of many
        // claimants that saw it so, one takes it.
        let mut watchers: Vec<Observer> = (0..8).map(|_| Observer::new("g")).collect();
        for w in &mut watchers {
            w.look(&repo).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(900)).await;
        let mut looks = Vec::new();
        for w in &mut watchers {
            let look = w.look(&repo).await.unwrap();
            assert!(
                matches!(look.found, Found::Stale { .. }),
                "{:?}",
                look.found
            );
            looks.push(look);
        }
        let mut tasks = Vec::new();
        for (i, look) in looks.into_iter().enumerate() {
            let repo = repo.clone();
            tasks.push(tokio::spawn(async move {
                Lease::take(&repo, "g", &claimant(&format!("w{i}"), 800), &look)
                    .await
                    .ok()
            }));
        }
        let mut won = Vec::new();
        for t in tasks {
            won.extend(t.await.unwrap());
        }
        assert_eq!(won.len(), 1, "on {}", repo.url());
        assert_eq!(won[0].doc().handovers, 1);
        // The old holder learns it lost, and its fence closes.
        let fence = holder.fence();
        let err = holder.renew(None).await.unwrap_err();
        assert!(matches!(err, LeaseError::Lost { .. }), "{err}");
        assert!(!fence.is_open());
    }
}

/// A renewal whose write succeeded but whose reply was lost: the holder's next renewal is
/// refused (its version is old), reads the document back, finds its own token and goes on.
#[tokio::test]
async fn a_renewal_after_a_lost_reply_keeps_the_lease() {
    for (repo, _dir) in repos() {
        let mut lease = contend(&repo, 1, 60_000).await.pop().unwrap();
        let key = keys::lease("g");
        let mut doc = lease.doc().clone();
        doc.renewed_ms += 1;
        let (_, v) = repo.get_versioned(&key).await.unwrap().unwrap();
        repo.put_if(&key, body(&doc), &Expect::Version(v))
            .await
            .unwrap();
        lease.renew(None).await.unwrap();
        lease.renew(None).await.unwrap();
        assert!(lease.fence().is_open());
    }
}

/// A standalone start refuses a live holder at once, and takes a lease whose holder process on
/// this host is gone at once.
#[tokio::test]
async fn acquire_refuses_a_live_holder_and_takes_a_dead_local_one() {
    for (repo, _dir) in repos() {
        let lease = contend(&repo, 1, 60_000).await.pop().unwrap();
        let err = Lease::acquire(&repo, "g", &claimant("other", 60_000))
            .await
            .unwrap_err();
        assert!(matches!(err, LeaseError::Held { .. }), "{err}");
        // Pretend the holder was a process of this host that is gone.
        let key = keys::lease("g");
        let mut doc = lease.doc().clone();
        doc.pid = u32::MAX - 7;
        let (_, v) = repo.get_versioned(&key).await.unwrap().unwrap();
        repo.put_if(&key, body(&doc), &Expect::Version(v))
            .await
            .unwrap();
        let taken = Lease::acquire(&repo, "g", &claimant("other", 60_000))
            .await
            .unwrap();
        assert_eq!(taken.doc().node, "other");
    }
}
