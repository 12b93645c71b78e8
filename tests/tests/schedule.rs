//! The daemon's own clock: `[schedule] snapshot = "every 2s"` produces snapshots at that pace,
//! and a restart after missed runs produces exactly one catch-up snapshot.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use aofvault_tests::{agent, RedisServer};

fn scheduled_snapshots(rt: &tokio::runtime::Runtime, repo: &aofvault::repo::Repo) -> Vec<i64> {
    let ids = rt.block_on(repo.snapshot_ids("s")).unwrap();
    let mut times: Vec<i64> = ids
        .iter()
        .map(|id| rt.block_on(repo.snapshot("s", id)).unwrap())
        .filter(|m| m.reason == "scheduled")
        .map(|m| m.created_ms)
        .collect();
    times.sort();
    times
}

#[test]
fn snapshots_follow_the_schedule_and_missed_runs_are_caught_up_once() {
    let redis = RedisServer::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("aofvault.toml");
    let write = |every: &str| {
        std::fs::write(
            &cfg,
            format!(
                "[source]\ndir = \"{}\"\n[repository]\nurl = \"file://{}/repo\"\ninstance = \"s\"\n[state]\ndir = \"{}/state\"\n[schedule]\nsnapshot = \"{every}\"\n",
                redis.dir().display(),
                tmp.path().display(),
                tmp.path().display()
            ),
        )
        .unwrap()
    };
    write("every 2s");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let repo = common::file_repo(&tmp.path().join("repo"));
    let mut a = agent::spawn(&["--config", &cfg.display().to_string(), "run"], &[]).unwrap();
    a.wait_for_log("snapshot published", Duration::from_secs(30))
        .unwrap();
    std::thread::sleep(Duration::from_secs(9));
    let stopping = chrono::Utc::now().timestamp_millis();
    a.terminate().unwrap();
    // A run that fell due in the last second is published at shutdown (a snapshot owed is
    // never dropped): its spacing is the shutdown's, not the schedule's.
    let times: Vec<i64> = scheduled_snapshots(&rt, &repo)
        .into_iter()
        .filter(|t| *t < stopping)
        .collect();
    assert!(times.len() >= 3, "every 2s for 9 s: {times:?}");
    for w in times.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            (1900..=3500).contains(&gap),
            "snapshots 2 s apart, got {gap} ms: {times:?}"
        );
    }

    // Down for 12 s with an every-5s schedule: two runs missed → one catch-up at start.
    write("every 5s");
    std::thread::sleep(Duration::from_secs(12));
    let before = scheduled_snapshots(&rt, &repo).len();
    let restarted = chrono::Utc::now().timestamp_millis();
    let mut a = agent::spawn(&["--config", &cfg.display().to_string(), "run"], &[]).unwrap();
    a.wait_for_log("snapshot published", Duration::from_secs(30))
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    a.terminate().unwrap();
    let after = scheduled_snapshots(&rt, &repo);
    let caught_up: Vec<&i64> = after.iter().filter(|t| **t >= restarted).collect();
    assert_eq!(
        after.len(),
        before + 1,
        "exactly one catch-up snapshot: {after:?}"
    );
    assert_eq!(caught_up.len(), 1);
}
