//! Replication groups on real servers: a redis-server primary with a replica (both with the AOF
//! on), an agent beside each with the same `--instance`. The agent beside the primary ships, the
//! other stands by; when the replica is promoted (by the test, or by a real Sentinel) its agent
//! takes the lease and ships a `failover` chain, and restores of the latest state and of a
//! moment before the failover give each its server's keys.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aofvault_tests::keyspace::{self, Keyspace};
use aofvault_tests::{agent, wait_until, RedisServer};
use common::cli::{dump, redis_sizes, Cli};

/// The longest a takeover may take by design: the old holder's step-down (`step_down_after`,
/// 5 s, plus a renewal period) or, with the old agent gone too, the lease's TTL (15 s) — plus
/// the new chain's base upload. Figures measured are printed and kept in BENCHMARKS.md.
const TAKEOVER_BOUND: Duration = Duration::from_secs(40);

/// One repository, one instance (`g`), and a state directory per agent.
struct GroupVault {
    tmp: tempfile::TempDir,
}

impl Cli for GroupVault {
    fn cmd(&self, args: &[&str]) -> agent::Output {
        let mut all = self.global("cli");
        all.extend(args.iter().map(|s| s.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        agent::run(&all, &[]).unwrap()
    }
}

impl GroupVault {
    fn new() -> GroupVault {
        GroupVault {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn global(&self, state: &str) -> Vec<String> {
        vec![
            "--repo".into(),
            format!("file://{}", self.path("repo").display()),
            "--instance".into(),
            "g".into(),
            "--state-dir".into(),
            self.path(&format!("state-{state}")).display().to_string(),
        ]
    }

    /// `aofvault run` beside `server`, its state in `state-<name>`.
    fn agent(&self, name: &str, server: &RedisServer, config: Option<&str>) -> agent::AgentProcess {
        let mut all = self.global(name);
        if let Some(body) = config {
            let path = self.path(&format!("{name}.toml"));
            std::fs::write(&path, body).unwrap();
            all.extend(["--config".into(), path.display().to_string()]);
        }
        all.extend([
            "--source".into(),
            server.dir().display().to_string(),
            "--server".into(),
            server.url(),
            "run".into(),
        ]);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        agent::spawn(&all, &[]).unwrap()
    }

    /// The group part of one agent's `status --json`.
    fn group_status(&self, name: &str) -> serde_json::Value {
        let mut all = self.global(name);
        all.extend(["status".into(), "--json".into()]);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        agent::run(&all, &[])
            .ok()
            .and_then(|o| o.json().ok())
            .map(|j| j["group"].clone())
            .unwrap_or(serde_json::Value::Null)
    }

    /// Waits until agent `name` reports `state`; returns how long that took.
    fn wait_state(
        &self,
        name: &str,
        state: &str,
        a: &agent::AgentProcess,
        limit: Duration,
    ) -> Duration {
        let t0 = Instant::now();
        wait_until(limit, &format!("agent {name} {state}"), || {
            Ok(self.group_status(name)["state"] == state)
        })
        .unwrap_or_else(|e| {
            panic!(
                "{e}\nstatus: {}\nlog:\n{}",
                self.group_status(name),
                a.logs()
            )
        });
        t0.elapsed()
    }

    /// `restore --to-dir` (of the latest state, or `--at`), loaded by a fresh redis-server.
    fn restored(&self, name: &str, extra: &[&str]) -> Keyspace {
        let to = self.path(name);
        let to_s = to.display().to_string();
        let mut args = vec!["restore", "--to-dir", &to_s];
        args.extend(extra);
        let out = self.cmd(&args);
        assert!(out.success(), "restore {extra:?}: {}", out.stderr);
        let server = RedisServer::start_on_dir(&to, &[]).unwrap();
        dump(&server.url())
    }

    fn chain_heads(&self) -> Vec<serde_json::Value> {
        let dir = self.path("repo/instances/g/shards/0000/chains");
        let mut heads: Vec<serde_json::Value> = std::fs::read_dir(&dir)
            .map(|d| d.flatten().collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| std::fs::read(e.path().join("chain.json")).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect();
        heads.sort_by_key(|h| h["created_ms"].as_i64());
        heads
    }
}

/// A primary, its replica and an agent beside each with one instance (an optional config
/// file's body for both): `a` (the primary's) ships, `b` stands by.
fn group_of_two(
    config: Option<&str>,
) -> (
    RedisServer,
    RedisServer,
    GroupVault,
    agent::AgentProcess,
    agent::AgentProcess,
) {
    let p = RedisServer::start().unwrap();
    let r = replica_of(&p);
    let v = GroupVault::new();
    let a = v.agent("a", &p, config);
    v.wait_state("a", "shipping", &a, Duration::from_secs(60));
    let b = v.agent("b", &r, config);
    v.wait_state("b", "standby", &b, Duration::from_secs(60));
    (p, r, v, a, b)
}

fn replica_of(primary: &RedisServer) -> RedisServer {
    let port = primary.port().to_string();
    let r = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]).unwrap();
    wait_link(&r);
    r
}

fn info(url: &str, section: &str) -> String {
    let mut c = aofvault_tests::connect(url).unwrap();
    redis::cmd("INFO").arg(section).query(&mut c).unwrap()
}

fn wait_link(r: &RedisServer) {
    wait_until(
        Duration::from_secs(30),
        "the replica's link to its primary",
        || Ok(info(&r.url(), "replication").contains("master_link_status:up")),
    )
    .unwrap();
}

fn replicaof(url: &str, primary: Option<&RedisServer>) {
    let mut c = aofvault_tests::connect(url).unwrap();
    let mut cmd = redis::cmd("REPLICAOF");
    match primary {
        Some(p) => cmd.arg("127.0.0.1").arg(p.port()),
        None => cmd.arg("NO").arg("ONE"),
    };
    let _: () = cmd.query(&mut c).unwrap();
}

/// Writes `SET w:<n> <n>` and `INCR writes` to whichever server `target` names, until stopped;
/// failed writes (the primary just killed) are retried on the next target.
struct Writer {
    target: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Writer {
    fn start(url: &str) -> Writer {
        let target = Arc::new(Mutex::new(url.to_string()));
        let (stop, paused) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let acked = Arc::new(AtomicU64::new(0));
        let (t, s, p, a) = (target.clone(), stop.clone(), paused.clone(), acked.clone());
        let handle = std::thread::spawn(move || {
            let mut n = 0u64;
            while !s.load(Ordering::SeqCst) {
                if p.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                let url = t.lock().unwrap().clone();
                let Ok(mut c) = aofvault_tests::connect(&url) else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                while !s.load(Ordering::SeqCst)
                    && !p.load(Ordering::SeqCst)
                    && *t.lock().unwrap() == url
                {
                    let mut pipe = redis::pipe();
                    pipe.atomic();
                    pipe.cmd("SET").arg(format!("w:{n}")).arg(n).ignore();
                    pipe.cmd("INCR").arg("writes").ignore();
                    if pipe.query::<()>(&mut c).is_err() {
                        break;
                    }
                    a.fetch_add(1, Ordering::SeqCst);
                    n += 1;
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        });
        Writer {
            target,
            stop,
            paused,
            acked,
            handle: Some(handle),
        }
    }

    fn retarget(&self, url: &str) {
        *self.target.lock().unwrap() = url.to_string();
    }

    fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(100));
    }

    fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
    }
}

/// Pauses the writes, dumps `server` and returns its keys with the moment (unix ms, in the
/// middle of a quiet second) a restore `--at` should give them.
fn quiet_moment(w: &Writer, server: &RedisServer) -> (Keyspace, String) {
    w.pause();
    std::thread::sleep(Duration::from_millis(1100));
    let keys = dump(&server.url());
    let at = chrono::Utc::now();
    std::thread::sleep(Duration::from_millis(1100));
    w.resume();
    (keys, at.to_rfc3339())
}

fn wait_shipped_from(v: &GroupVault, server: &RedisServer, a: &agent::AgentProcess) {
    v.wait_shipped(&|| redis_sizes(server), a);
}

/// Waits until the latest restore's plan reaches `offset` on the (one) shard.
fn stored_within(v: &GroupVault, offset: u64, limit: Duration) {
    wait_until(limit, "the writes in the repository", || {
        Ok(v.plan_ends().is_some_and(|e| e[0] >= offset))
    })
    .unwrap();
}

fn is_dir(p: &Path) -> bool {
    p.is_dir()
}

/// Promote the replica, kill -9 the old primary, keep writing to the new one: its agent ships
/// within the bound, the latest restore equals it key by key, and a restore at a moment before
/// the failover equals the old primary then.
#[test]
fn promotion_and_kill9_of_the_primary_hand_the_backup_to_the_replicas_agent() {
    let (mut p, r, v, mut a, mut b) = group_of_two(None);
    let standby = v.group_status("b");
    assert_eq!(
        standby["primary"],
        format!("127.0.0.1:{}", p.port()),
        "{standby}"
    );
    assert!(
        standby["lease_holder"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("pid {}", a.pid())),
        "the standby names the holder: {standby}"
    );

    let mut w = Writer::start(&p.url());
    std::thread::sleep(Duration::from_secs(2));
    let (before, t_before) = quiet_moment(&w, &p);
    std::thread::sleep(Duration::from_secs(2));

    replicaof(&r.url(), None);
    p.kill();
    let t0 = Instant::now();
    w.retarget(&r.url());
    // The first writes the new primary acknowledges: how long until they are in the repository.
    std::thread::sleep(Duration::from_millis(300));
    let (first_writes, first_at) = (redis_sizes(&r)[0], Instant::now());
    v.wait_state("b", "shipping", &b, TAKEOVER_BOUND);
    let takeover = t0.elapsed();
    stored_within(&v, first_writes, TAKEOVER_BOUND);
    let first_stored = first_at.elapsed();
    // Once it ships: the lag of a write acknowledged now.
    let (steady_writes, steady_at) = (redis_sizes(&r)[0], Instant::now());
    stored_within(&v, steady_writes, TAKEOVER_BOUND);
    let steady = steady_at.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    w.stop();
    wait_shipped_from(&v, &r, &b);

    assert!(
        a.is_running(),
        "the old holder stands by, it does not exit:\n{}",
        a.logs()
    );
    assert!(a.logs().contains("stepped down"), "{}", a.logs());
    let heads = v.chain_heads();
    let last = heads.last().unwrap();
    assert_eq!(last["reason"], "failover", "{heads:?}");
    assert_ne!(last["node"], heads[0]["node"], "{heads:?}");

    keyspace::assert_same(&dump(&r.url()), &v.restored("latest", &[]));
    keyspace::assert_same(&before, &v.restored("before", &["--at", &t_before]));
    let list = v.cmd(&["list"]);
    assert!(
        list.stdout.contains("failover"),
        "list shows the failover:\n{}",
        list.stdout
    );
    println!(
        "GROUP-SUMMARY kill9 takeover_ms={} first_writes_stored_after_ms={} steady_write_stored_after_ms={} writes={}",
        takeover.as_millis(),
        first_stored.as_millis(),
        steady.as_millis(),
        w.acked.load(Ordering::SeqCst)
    );
    a.terminate().unwrap();
    b.terminate().unwrap();
}

/// Failover by demotion (`REPLICAOF` the new primary) and back again: two failovers, one
/// history; each restore gives the state of its moment.
#[test]
fn two_failovers_by_demotion_and_back_keep_one_history() {
    let (p, r, v, mut a, mut b) = group_of_two(None);
    let mut w = Writer::start(&p.url());
    std::thread::sleep(Duration::from_secs(2));
    let (first, t_first) = quiet_moment(&w, &p);

    // One: r becomes the primary, p its replica.
    w.pause();
    replicaof(&r.url(), None);
    replicaof(&p.url(), Some(&r));
    w.retarget(&r.url());
    w.resume();
    v.wait_state("b", "shipping", &b, TAKEOVER_BOUND);
    v.wait_state("a", "standby", &a, TAKEOVER_BOUND);
    wait_link(&p);
    std::thread::sleep(Duration::from_secs(2));
    let (second, t_second) = quiet_moment(&w, &r);

    // And back.
    w.pause();
    replicaof(&p.url(), None);
    replicaof(&r.url(), Some(&p));
    w.retarget(&p.url());
    w.resume();
    v.wait_state("a", "shipping", &a, TAKEOVER_BOUND);
    v.wait_state("b", "standby", &b, TAKEOVER_BOUND);
    std::thread::sleep(Duration::from_secs(2));
    w.stop();
    wait_shipped_from(&v, &p, &a);

    let reasons: Vec<String> = v
        .chain_heads()
        .iter()
        .map(|h| h["reason"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        reasons.iter().filter(|r| *r == "failover").count(),
        2,
        "two failover chains: {reasons:?}"
    );
    keyspace::assert_same(&dump(&p.url()), &v.restored("latest", &[]));
    keyspace::assert_same(&first, &v.restored("first", &["--at", &t_first]));
    keyspace::assert_same(&second, &v.restored("second", &["--at", &t_second]));
    assert!(is_dir(&v.path("latest")));
    a.terminate().unwrap();
    b.terminate().unwrap();
}

/// A real Sentinel promotes the replica after `kill -9` of the primary; nothing in the test
/// promotes anything.
#[test]
fn a_sentinel_promotion_after_kill9_hands_the_backup_over() {
    let (mut p, r, v, mut a, mut b) = group_of_two(None);
    let sentinel = Sentinel::start(&p);
    let mut w = Writer::start(&p.url());
    std::thread::sleep(Duration::from_secs(2));
    p.kill();
    let t0 = Instant::now();
    wait_until(
        Duration::from_secs(60),
        "Sentinel promotes the replica",
        || Ok(info(&r.url(), "replication").contains("role:master")),
    )
    .unwrap_or_else(|e| panic!("{e}\nsentinel log:\n{}", sentinel.log()));
    w.retarget(&r.url());
    v.wait_state("b", "shipping", &b, TAKEOVER_BOUND);
    println!(
        "GROUP-SUMMARY sentinel promoted+taken_over_ms={}",
        t0.elapsed().as_millis()
    );
    std::thread::sleep(Duration::from_secs(2));
    w.stop();
    wait_shipped_from(&v, &r, &b);
    keyspace::assert_same(&dump(&r.url()), &v.restored("latest", &[]));
    a.terminate().unwrap();
    b.terminate().unwrap();
}

/// Both servers say `role:master` (a partition healed the wrong way): the holder keeps
/// shipping, the other agent stands by and says "split brain" at error level, and the lease
/// never has two holders.
#[test]
fn a_split_brain_is_reported_and_only_the_lease_holder_ships() {
    let fast = "[repository]\nlease_ttl = \"4s\"\nstep_down_after = \"2s\"\n";
    let (p, r, v, mut a, mut b) = group_of_two(Some(fast));
    replicaof(&r.url(), None);
    b.wait_for_log("split brain", Duration::from_secs(60))
        .unwrap();
    wait_until(
        Duration::from_secs(30),
        "both agents report the split brain",
        || {
            Ok(!v.group_status("a")["split_brain"].is_null()
                && !v.group_status("b")["split_brain"].is_null())
        },
    )
    .unwrap_or_else(|e| panic!("{e}\na:\n{}\nb:\n{}", a.logs(), b.logs()));
    for _ in 0..10 {
        assert_eq!(v.group_status("a")["state"], "shipping");
        assert_eq!(v.group_status("b")["state"], "standby");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(b.logs().contains("ERROR"), "at error level: {}", b.logs());
    let lease: serde_json::Value =
        serde_json::from_slice(&std::fs::read(v.path("repo/instances/g/lease.json")).unwrap())
            .unwrap();
    assert!(
        lease["holder"]
            .as_str()
            .unwrap()
            .contains(&format!("pid {}", a.pid())),
        "{lease}"
    );
    // Healed: b's server is demoted again; the report ends.
    replicaof(&r.url(), Some(&p));
    wait_until(
        Duration::from_secs(30),
        "the split brain report ends",
        || {
            Ok(v.group_status("b")["split_brain"].is_null()
                && v.group_status("a")["split_brain"].is_null())
        },
    )
    .unwrap();
    a.terminate().unwrap();
    b.terminate().unwrap();
}

/// A primary that merely restarts (same server, same files) keeps its agent's lease and chain.
#[test]
fn a_primary_restart_is_not_a_failover() {
    let (mut p, r, v, mut a, mut b) = group_of_two(None);
    let mut w = Writer::start(&p.url());
    std::thread::sleep(Duration::from_secs(1));
    p.kill();
    p.restart().unwrap();
    std::thread::sleep(Duration::from_secs(8));
    w.stop();
    wait_link(&r);
    wait_shipped_from(&v, &p, &a);
    assert_eq!(v.group_status("a")["state"], "shipping");
    assert_eq!(v.group_status("b")["state"], "standby");
    assert!(!a.logs().contains("stepped down"), "{}", a.logs());
    assert!(
        v.chain_heads().iter().all(|h| h["reason"] != "failover"),
        "{:?}",
        v.chain_heads()
    );
    keyspace::assert_same(&dump(&p.url()), &v.restored("latest", &[]));
    a.terminate().unwrap();
    b.terminate().unwrap();
}

/// A Sentinel process (`redis-sentinel`, or `redis-server --sentinel`) watching one primary.
struct Sentinel {
    _dir: tempfile::TempDir,
    child: std::process::Child,
    log: PathBuf,
}

impl Sentinel {
    fn start(primary: &RedisServer) -> Sentinel {
        let dir = tempfile::tempdir().unwrap();
        let port = aofvault_tests::free_port();
        let conf = dir.path().join("sentinel.conf");
        let log = dir.path().join("sentinel.log");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nlogfile {}\n\
                 sentinel monitor m 127.0.0.1 {} 1\n\
                 sentinel down-after-milliseconds m 1000\n\
                 sentinel failover-timeout m 10000\n\
                 sentinel parallel-syncs m 1\n",
                dir.path().display(),
                log.display(),
                primary.port()
            ),
        )
        .unwrap();
        let child = if Path::new("/usr/bin/redis-sentinel").exists() {
            std::process::Command::new("redis-sentinel")
                .arg(&conf)
                .spawn()
        } else {
            std::process::Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .spawn()
        }
        .unwrap();
        let s = Sentinel {
            _dir: dir,
            child,
            log,
        };
        wait_until(
            Duration::from_secs(30),
            "the sentinel watches the primary",
            || {
                Ok(std::fs::read_to_string(&s.log)
                    .unwrap_or_default()
                    .contains("+monitor"))
            },
        )
        .unwrap();
        s
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
