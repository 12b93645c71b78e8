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

#[test]
fn metrics_and_status_show_what_was_shipped() {
    let kevy = KevyServer::start(2).unwrap();
    let s = Setup::new();
    let port = aofvault_tests::free_port();
    let cfg = s.tmp.path().join("m.toml");
    std::fs::write(&cfg, format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n")).unwrap();
    let mut args = s.args(kevy.dir(), &kevy.url(), "state");
    args.extend(["--config".to_string(), cfg.display().to_string()]);
    let mut a = spawn(&args);
    a.wait_for_log("snapshot published", Duration::from_secs(30))
        .unwrap();
    workload::mixed(&mut kevy.conn().unwrap(), 51, 500, 100).unwrap();
    kevy.wait_aof_flushed().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = kevy.dir().to_path_buf();
    wait_synced(&rt, &file_repo(&s.repo_path()), "t", 2, |i| {
        dir.join(format!("aof-{i}.aof"))
    });
    std::thread::sleep(Duration::from_millis(1500));

    use std::io::{Read, Write};
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    sock.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    let value = |name: &str| -> f64 {
        body.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
            .unwrap_or_else(|| panic!("no {name} in {body}"))
    };
    assert!(value("aofvault_shipped_bytes_total ") > 0.0);
    assert!(value("aofvault_shipped_objects_total ") >= 2.0);
    assert_eq!(value("aofvault_lag_bytes{shard=\"0\"} "), 0.0);
    assert!(value("aofvault_last_snapshot_timestamp_seconds ") > 1.7e9);

    let mut st = s.args(kevy.dir(), &kevy.url(), "state");
    st.extend(["status".to_string(), "--json".to_string()]);
    let st: Vec<&str> = st.iter().map(String::as_str).collect();
    let status = agent::run(&st, &[]).unwrap().ok().unwrap().json().unwrap();
    assert_eq!(status["running"], true);
    for shard in status["shards"].as_array().unwrap() {
        assert_eq!(shard["state"], "following");
        assert_eq!(shard["lag_bytes"], 0);
        assert!(shard["chain"].is_string());
        assert!(shard["shipped_offset"].as_u64().unwrap() > 9);
    }
    assert!(status["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|j| j["job"] == "snapshot" && j["next"].is_string()));
    a.terminate().unwrap();
}
