//! The repository lease under contention, on any store: rounds of claimants that read the same
//! free (or released) lease and write at once, and must never give two holders.

use std::time::Duration;

use aofvault::repo::lease::{Claimant, Found, Lease, LeaseError, Observer};
use aofvault::repo::Repo;

fn claimant(node: String) -> Claimant {
    Claimant::new(&node, Duration::from_secs(60), None)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

/// Eight rounds of 12 claimants that read the same free (or released) lease and write at once:
/// exactly one holder each round.
pub fn contend(repo: &Repo) {
    rt().block_on(async {
        for round in 0..8 {
            let mut tasks = Vec::new();
            for i in 0..12 {
                let repo = repo.clone();
                tasks.push(tokio::spawn(async move {
                    let mut obs = Observer::new("g");
                    let look = obs.look(&repo).await.unwrap();
                    if !matches!(look.found, Found::Free | Found::Released(_)) {
                        return None;
                    }
                    match Lease::take(&repo, "g", &claimant(format!("n{i}")), &look).await {
                        Ok(l) => Some(l),
                        Err(LeaseError::Contended { .. }) => None,
                        Err(e) => panic!("{e}"),
                    }
                }));
            }
            let mut holders = Vec::new();
            for t in tasks {
                holders.extend(t.await.unwrap());
            }
            assert_eq!(
                holders.len(),
                1,
                "round {round} on {}: {} holders",
                repo.url(),
                holders.len()
            );
            holders.pop().unwrap().release().await.unwrap();
        }
    });
}
