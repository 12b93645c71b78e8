//! `aofvault run` against a real S3-compatible server (SeaweedFS) on 127.0.0.1, including an
//! outage: lag grows and is reported, then everything is caught up, nothing lost.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use aofvault::repo::{Repo, RepoSpec, S3Spec};
use aofvault_tests::{agent, workload, KevyServer, S3Server};

fn s3_repo(s3: &S3Server, prefix: &str) -> Repo {
    Repo::open(
        &RepoSpec::S3(S3Spec {
            bucket: s3.bucket().to_string(),
            prefix: prefix.to_string(),
            endpoint: Some(s3.endpoint()),
            region: "us-east-1".into(),
            allow_http: true,
            access_key_id: Some(s3.access_key().to_string()),
            secret_access_key: Some(s3.secret_key().to_string()),
            max_retries: 1,
            retry_timeout: Duration::from_secs(5),
            ..Default::default()
        }),
        3,
    )
    .unwrap()
}

fn status(state: &std::path::Path) -> serde_json::Value {
    let out = agent::run(
        &[
            "--state-dir",
            &state.display().to_string(),
            "--instance",
            "t",
            "--repo",
            "file:///tmp/unused",
            "status",
            "--json",
        ],
        &[],
    )
    .unwrap();
    out.json().unwrap_or(serde_json::Value::Null)
}

#[test]
fn an_s3_outage_makes_the_agent_fall_behind_then_catch_up() {
    let mut s3 = S3Server::start().unwrap();
    let kevy = KevyServer::start(2).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    let repo_url = s3.repo_url("outage");
    let args = [
        "--source",
        &kevy.dir().display().to_string(),
        "--server",
        &kevy.url(),
        "--repo",
        &repo_url,
        "--instance",
        "t",
        "--state-dir",
        &state.display().to_string(),
        "run",
    ]
    .map(String::from);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut agent = agent::spawn(&a, &s3.env()).unwrap();
    agent
        .wait_for_log("snapshot published", Duration::from_secs(60))
        .unwrap();
    let mut conn = kevy.conn().unwrap();
    workload::mixed(&mut conn, 31, 500, 200).unwrap();

    s3.stop();
    let outage = Instant::now();
    workload::mixed(&mut conn, 32, 2000, 200).unwrap();
    kevy.wait_aof_flushed().unwrap();
    // The agent says it is behind: lag in bytes and an error, in `status`.
    let mut saw_lag = false;
    while outage.elapsed() < Duration::from_secs(20) {
        let st = status(&state);
        if let Some(shards) = st["shards"].as_array() {
            if shards
                .iter()
                .any(|s| s["lag_bytes"].as_u64().unwrap_or(0) > 0 && !s["last_error"].is_null())
            {
                saw_lag = true;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        saw_lag,
        "status never showed lag and an error during the outage:\n{}",
        agent.logs()
    );
    assert!(agent.is_running(), "the agent survives an outage");

    s3.start_again().unwrap();
    let repo = s3_repo(&s3, "outage");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = kevy.dir().to_path_buf();
    common::wait_synced_for(
        &rt,
        &repo,
        "t",
        2,
        |i| dir.join(format!("aof-{i}.aof")),
        Duration::from_secs(120),
    );
    // And `status` says it has caught up (its retry may still be waiting out a backoff).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = status(&state);
        let lags: Vec<u64> = st["shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["lag_bytes"].as_u64().unwrap())
            .collect();
        if lags.iter().all(|l| *l == 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "status never showed the catch-up: {st}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    agent.terminate().unwrap();
}
