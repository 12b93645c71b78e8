//! `aofvault run` as operators run it (the real binary) against real servers: the lease,
//! kill -9 and restart, server restarts — each proven on the stored bytes.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use aofvault_tests::{agent, workload, KevyServer};
use common::{chain_count, file_repo, wait_synced};

struct Setup {
    tmp: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        Setup {
            tmp: tempfile::tempdir().unwrap(),
        }
    }
    fn repo_path(&self) -> std::path::PathBuf {
        self.tmp.path().join("repo")
    }
    fn args(&self, source: &std::path::Path, server: &str, state: &str) -> Vec<String> {
        vec![
            "--source".into(),
            source.display().to_string(),
            "--server".into(),
            server.into(),
            "--repo".into(),
            format!("file://{}", self.repo_path().display()),
            "--instance".into(),
            "t".into(),
            "--state-dir".into(),
            self.tmp.path().join(state).display().to_string(),
        ]
    }
}

fn spawn(args: &[String]) -> agent::AgentProcess {
    let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
    a.push("run");
    agent::spawn(&a, &[]).unwrap()
}

#[test]
fn a_second_agent_on_the_same_instance_exits_with_the_lease_error() {
    let kevy = KevyServer::start(2).unwrap();
    let s = Setup::new();
    let mut first = spawn(&s.args(kevy.dir(), &kevy.url(), "state1"));
    first
        .wait_for_log("snapshot published", Duration::from_secs(30))
        .unwrap();
    let mut a: Vec<String> = s.args(kevy.dir(), &kevy.url(), "state2");
    a.push("run".into());
    let args: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = agent::run_with_timeout(&args, &[], Duration::from_secs(30)).unwrap();
    assert_eq!(
        out.code(),
        Some(6),
        "exit code 6 (lease held); stderr: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("already served by another agent"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!("pid {}", first.pid())),
        "the holder is named: {}",
        out.stderr
    );
    assert!(first.is_running(), "the first agent is undisturbed");
    first.terminate().unwrap();
}

#[test]
fn kill9_and_restart_continue_the_same_chains_without_gap() {
    let kevy = KevyServer::start(4).unwrap();
    let s = Setup::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let repo = file_repo(&s.repo_path());
    let aof = |i: u32| kevy.dir().join(format!("aof-{i}.aof"));
    let args = s.args(kevy.dir(), &kevy.url(), "state");
    let writer = workload::background(kevy.url(), 11, 300);
    for round in 0..3 {
        let mut a = spawn(&args);
        a.wait_for_log("snapshot published", Duration::from_secs(30))
            .unwrap();
        std::thread::sleep(Duration::from_millis(700 + 300 * round));
        a.kill9();
    }
    let written = writer.stop();
    assert!(written > 0);
    kevy.wait_aof_flushed().unwrap();
    let mut a = spawn(&args);
    let ids = wait_synced(&rt, &repo, "t", 4, aof);
    for shard in 0..4 {
        assert_eq!(
            chain_count(&rt, &repo, "t", shard),
            1,
            "shard {shard}: every restart continued the one chain"
        );
    }
    assert_eq!(ids.len(), 4);
    a.terminate().unwrap();
}

#[test]
fn a_server_restart_keeps_the_chain_and_ships_what_follows() {
    let mut kevy = KevyServer::start(2).unwrap();
    let s = Setup::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let repo = file_repo(&s.repo_path());
    let mut a = spawn(&s.args(kevy.dir(), &kevy.url(), "state"));
    a.wait_for_log("snapshot published", Duration::from_secs(30))
        .unwrap();
    workload::mixed(&mut kevy.conn().unwrap(), 21, 1000, 200).unwrap();
    kevy.restart().unwrap();
    workload::mixed(&mut kevy.conn().unwrap(), 22, 1000, 200).unwrap();
    kevy.wait_aof_flushed().unwrap();
    let dir = kevy.dir().to_path_buf();
    wait_synced(&rt, &repo, "t", 2, |i| dir.join(format!("aof-{i}.aof")));
    assert!(
        a.is_running(),
        "the agent rode through the server restart:\n{}",
        a.logs()
    );
    a.terminate().unwrap();
}

#[test]
fn a_changed_shard_layout_starts_new_chains_on_every_shard() {
    let mut kevy = KevyServer::start(2).unwrap();
    let s = Setup::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let repo = file_repo(&s.repo_path());
    let mut a = spawn(&s.args(kevy.dir(), &kevy.url(), "state"));
    a.wait_for_log("snapshot published", Duration::from_secs(30))
        .unwrap();
    workload::mixed(&mut kevy.conn().unwrap(), 41, 500, 100).unwrap();
    kevy.stop();
    let dir = kevy.dir().to_path_buf();
    // The same data directory, now served by 4 shards: kevy reshards its files.
    let kevy4 = KevyServer::start_on_dir(&dir, 4).unwrap();
    workload::mixed(&mut kevy4.conn().unwrap(), 42, 500, 100).unwrap();
    kevy4.wait_aof_flushed().unwrap();
    a.wait_for_log("shard layout changed", Duration::from_secs(30))
        .unwrap();
    wait_synced(&rt, &repo, "t", 4, |i| dir.join(format!("aof-{i}.aof")));
    for shard in 2..4 {
        assert!(
            chain_count(&rt, &repo, "t", shard) >= 1,
            "shard {shard} is followed after the change"
        );
    }
    assert!(a.is_running());
    a.terminate().unwrap();
    drop(kevy);
}
