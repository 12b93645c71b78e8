//! Object-store faults: a [`FaultProxy`] between the agent and a real S3 server (SeaweedFS)
//! resets connections, stalls, slows down, answers bursts of 503s, and goes away entirely,
//! while a server takes writes, rewrites and saves (so bases are uploaded under faults too).
//! The agent must retry, say in `status --json` that it is behind and why, never publish a
//! manifest naming an object that is not there, and catch up when the store comes back — and a
//! restore through the same proxy either completes correctly or fails cleanly (non-zero exit,
//! nothing that looks complete).
//!
//! `scripts/soak.sh` runs more fault cycles (`AOFVAULT_FAULT_CYCLES`) with a new seed
//! (`AOFVAULT_SEED`). Every test prints one `SOAK-SUMMARY` line.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aofvault_tests::keyspace::{self, Keyspace};
use aofvault_tests::proxy::{FaultProxy, Mode};
use aofvault_tests::workload::{self, Rng};
use aofvault_tests::{agent, shared_s3, KevyServer, RedisServer, S3Server};
use common::cli::{dump, env_num, kevy_sizes, try_cmd, Cli};

mod common;

/// A repository under its own prefix of the shared S3 server, a state dir, and a proxy in
/// front of the store.
struct Vault {
    tmp: tempfile::TempDir,
    s3: &'static S3Server,
    prefix: String,
    proxy: FaultProxy,
}

impl Vault {
    fn new(name: &str) -> Vault {
        let s3 = shared_s3();
        let prefix = format!(
            "{name}-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        Vault {
            tmp: tempfile::tempdir().unwrap(),
            s3,
            prefix,
            proxy: FaultProxy::start(s3.addr()).unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn global(&self) -> Vec<String> {
        let state = self.path("state").display().to_string();
        let url = self.s3.repo_url(&self.prefix);
        ["--repo", &url, "--instance", "t", "--state-dir", &state]
            .map(String::from)
            .to_vec()
    }

    fn args(&self, args: &[&str]) -> Vec<String> {
        let mut all = self.global();
        all.extend(args.iter().map(|s| s.to_string()));
        all
    }

    /// Runs a command through the proxy.
    fn cmd_via_proxy(&self, args: &[&str]) -> agent::Output {
        let all = self.args(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        let env = self.s3.env_via(&self.proxy.http_url());
        agent::run_with_timeout(&all, &env, Duration::from_secs(240)).unwrap()
    }

    /// Starts `aofvault run` through the proxy.
    fn run_agent(&self, source: &Path, server: &str) -> agent::AgentProcess {
        let dir = source.display().to_string();
        let all = self.args(&["--source", &dir, "--server", server, "run"]);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        agent::spawn(&all, &self.s3.env_via(&self.proxy.http_url())).unwrap()
    }

    /// Starts any command through the proxy, in the background.
    fn spawn_via_proxy(&self, args: &[&str]) -> agent::AgentProcess {
        let all = self.args(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        agent::spawn(&all, &self.s3.env_via(&self.proxy.http_url())).unwrap()
    }

    /// Reads every manifest straight from the store and checks that each object it names (the
    /// chain heads, bases and segments) is there. Returns (manifests, objects named).
    fn assert_manifests_name_only_stored_objects(&self) -> (usize, usize) {
        let root = format!("{}/instances/t/", self.prefix);
        let keys: std::collections::BTreeSet<String> =
            self.s3.list_keys(&root).unwrap().into_iter().collect();
        let manifests: Vec<&String> = keys
            .iter()
            .filter(|k| k.starts_with(&format!("{root}snapshots/")) && k.ends_with(".json"))
            .collect();
        assert!(!manifests.is_empty(), "no manifest at all under {root}");
        let mut named = 0;
        for key in &manifests {
            let body = self.s3.get_object(key).unwrap().unwrap();
            let m: serde_json::Value = serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("{key} is not a whole JSON document: {e}"));
            for shard in m["shards"].as_array().unwrap() {
                let dir = format!(
                    "{root}shards/{:04}/chains/{}/",
                    shard["shard"].as_u64().unwrap(),
                    shard["chain"].as_str().unwrap()
                );
                let mut objects = vec!["chain.json".to_string()];
                for part in shard["base"].as_array().unwrap() {
                    objects.push(part["object"].as_str().unwrap().to_string());
                }
                for seg in shard["segments"].as_array().unwrap() {
                    objects.push(seg["object"].as_str().unwrap().to_string());
                }
                for o in objects {
                    named += 1;
                    assert!(
                        keys.contains(&format!("{dir}{o}")),
                        "manifest {key} names {dir}{o}, which is not in the store"
                    );
                }
            }
        }
        (manifests.len(), named)
    }
}

impl Cli for Vault {
    /// Runs a command straight against the store (no faults).
    fn cmd(&self, args: &[&str]) -> agent::Output {
        let all = self.args(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        agent::run(&all, &self.s3.env()).unwrap()
    }

    /// Polls less often than the others: each look is a command against the S3 server.
    fn poll(&self) -> Duration {
        Duration::from_millis(500)
    }
}

fn wait_persistence_idle(url: &str) {
    let mut conn = aofvault_tests::connect(url).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query(&mut conn)
            .unwrap();
        if info.contains("aof_rewrite_in_progress:0") {
            return;
        }
        assert!(Instant::now() < deadline, "rewrite did not finish: {info}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether a shard of `status --json` reports lag and an error.
fn behind_with_error(st: &serde_json::Value) -> bool {
    st["shards"].as_array().is_some_and(|shards| {
        shards
            .iter()
            .any(|s| s["lag_bytes"].as_u64().unwrap_or(0) > 0 && !s["last_error"].is_null())
    })
}

/// The modes a fault cycle goes through, each for a while, with a rewrite or a save thrown in
/// so that bases are uploaded under faults too.
#[derive(Debug, Default)]
struct FaultStats {
    cycles: u64,
    outages_reported: u64,
    rewrites: u64,
    saves: u64,
}

fn fault_cycle(v: &Vault, url: &str, rng: &mut Rng, st: &mut FaultStats) {
    let p = &v.proxy;
    let poke = |rng: &mut Rng, st: &mut FaultStats| match rng.below(3) {
        0 => st.rewrites += u64::from(try_cmd(url, "BGREWRITEAOF")),
        1 => st.saves += u64::from(try_cmd(url, "BGSAVE")),
        _ => st.saves += u64::from(try_cmd(url, "SAVE")),
    };
    let pause = |ms: u64| std::thread::sleep(Duration::from_millis(ms));

    // Connection resets: every request fails to connect or loses its connection.
    p.set_mode(Mode::Reset);
    pause(1000);
    poke(rng, st);
    pause(2000 + rng.below(2000));
    p.set_mode(Mode::Pass);
    pause(1500);

    // A burst of 503 Slow Down answers.
    p.set_mode(Mode::Http503Burst(10 + rng.below(30) as u32));
    let deadline = Instant::now() + Duration::from_secs(20);
    while p.mode() != Mode::Http503Burst(0) && Instant::now() < deadline {
        pause(100);
    }
    p.set_mode(Mode::Pass);

    // Stalled connections (requests hang until the client's timeout or the end of the stall).
    p.set_mode(Mode::Stall);
    poke(rng, st);
    pause(3000 + rng.below(3000));
    p.set_mode(Mode::Pass);
    pause(1000);

    // A slow link.
    p.set_mode(Mode::Slow(20_000 + rng.below(50_000)));
    poke(rng, st);
    pause(3000 + rng.below(2000));
    p.set_mode(Mode::Pass);

    // A full outage: connection refused. The agent must say it is behind, and why.
    p.set_mode(Mode::Down);
    // A new base (BGSAVE: a KEVYSNAP dump) must wait for the store like any segment.
    st.saves += u64::from(try_cmd(url, "BGSAVE"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if behind_with_error(&v.status()) {
            st.outages_reported += 1;
            break;
        }
        assert!(
            Instant::now() < deadline,
            "status never showed lag and an error during the outage: {}",
            v.status()
        );
        pause(300);
    }
    // Long enough for the new chain's base upload to be tried (and fail) during the outage.
    pause(3000 + rng.below(3000));
    p.set_mode(Mode::Pass);
    st.cycles += 1;
}

#[test]
fn the_agent_rides_through_store_faults_and_never_names_a_missing_object() {
    let seed = env_num("AOFVAULT_SEED", 0xfa17_0001);
    let cycles = env_num("AOFVAULT_FAULT_CYCLES", 1);
    let mut rng = Rng::new(seed);
    let kevy = KevyServer::start(4).unwrap();
    workload::mixed(&mut kevy.conn().unwrap(), seed, 2000, 500).unwrap();
    let v = Vault::new("faults");
    let mut a = v.run_agent(kevy.dir(), &kevy.url());
    a.wait_for_log("snapshot published", Duration::from_secs(60))
        .unwrap();
    let writer = workload::background(kevy.url(), seed ^ 1, 500);
    let mut st = FaultStats::default();
    for _ in 0..cycles {
        fault_cycle(&v, &kevy.url(), &mut rng, &mut st);
        assert!(a.is_running(), "the agent died under faults:\n{}", a.logs());
    }
    let written = writer.stop();
    wait_persistence_idle(&kevy.url());
    kevy.wait_aof_flushed().unwrap();
    let caught_up = Instant::now();
    v.wait_shipped(&|| kevy_sizes(&kevy), &a);
    let catch_up = caught_up.elapsed();

    // `status` says so too, and no shard gave up along the way.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = v.status();
        let shards = s["shards"].as_array().cloned().unwrap_or_default();
        for sh in &shards {
            assert_ne!(sh["state"], "stopped", "a shard stopped: {s}\n{}", a.logs());
        }
        if shards.len() == 4 && shards.iter().all(|sh| sh["lag_bytes"] == 0) {
            break;
        }
        assert!(Instant::now() < deadline, "status never caught up: {s}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let logs = a.logs();
    assert!(
        logs.contains("shipping is behind; will retry"),
        "retries are logged:\n{logs}"
    );
    a.terminate().unwrap();
    if std::env::var_os("AOFVAULT_SHOW_LOG").is_some() {
        println!("{}", a.logs());
    }

    let stats = v.proxy.stats();
    assert!(stats.resets > 0 && stats.http_503s > 0, "{stats:?}");
    let (manifests, named) = v.assert_manifests_name_only_stored_objects();
    let out = v.cmd(&["verify"]);
    assert!(out.success(), "verify: {}\n{}", out.stdout, out.stderr);
    let expected = dump(&kevy.url());
    let to = v.path("restored");
    v.cmd(&["restore", "--to-dir", &to.display().to_string()])
        .ok()
        .unwrap();
    let copy = KevyServer::start_on_dir(&to, 4).unwrap();
    keyspace::assert_same(&expected, &dump(&copy.url()));
    println!(
        "SOAK-SUMMARY faults kevy4 seed={seed:#x} cycles={} outages_reported={} rewrites={} saves={} writes={written} proxy_resets={} proxy_503s={} proxy_connections={} manifests={manifests} objects_named={named} catch_up_ms={} keys={} restore=equal verify=clean",
        st.cycles,
        st.outages_reported,
        st.rewrites,
        st.saves,
        stats.resets,
        stats.http_503s,
        stats.connections,
        catch_up.as_millis(),
        expected.len()
    );
}

/// Runs `f` while the proxy flips between `fault` and Pass every `period`.
fn while_flapping<R>(
    proxy: &FaultProxy,
    fault: Mode,
    period: Duration,
    f: impl FnOnce() -> R,
) -> R {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut on = true;
            while !stop.load(Ordering::SeqCst) {
                proxy.set_mode(if on { fault } else { Mode::Pass });
                on = !on;
                std::thread::sleep(period);
            }
            proxy.set_mode(Mode::Pass);
        });
        let r = f();
        stop.store(true, Ordering::SeqCst);
        r
    })
}

/// What one restore through a faulty store did.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Completed,
    FailedCleanly(i32),
}

/// A `--to-dir` restore through the proxy: success and equal, or a non-zero exit and no marker.
fn restore_dir_through(v: &Vault, expected: &Keyspace, name: &str) -> Outcome {
    restore_dir_through_with(v, expected, name, &[])
}

/// [`restore_dir_through`] with more restore arguments.
fn restore_dir_through_with(v: &Vault, expected: &Keyspace, name: &str, extra: &[&str]) -> Outcome {
    let to = v.path(name);
    let to_arg = to.display().to_string();
    let mut args = vec!["restore", "--to-dir", &to_arg];
    args.extend_from_slice(extra);
    let out = v.cmd_via_proxy(&args);
    if out.success() {
        assert!(to.join("shards.meta").is_file());
        let copy = KevyServer::start_on_dir(&to, 2).unwrap();
        keyspace::assert_same(expected, &dump(&copy.url()));
        return Outcome::Completed;
    }
    let code = out.code().unwrap_or(-1);
    assert_ne!(code, 0);
    assert!(
        !to.join("shards.meta").exists(),
        "a failed restore ({code}) left shards.meta: {}",
        out.stderr
    );
    assert!(
        !out.stderr.trim().is_empty(),
        "a failed restore says why (exit {code})"
    );
    Outcome::FailedCleanly(code)
}

/// A live restore through the proxy into a fresh redis-server: success and equal, or a non-zero
/// exit — with an untouched (empty) target, or, when the objects gave up after the replay had
/// started (it overlaps the downloads), a target holding part of the backup and an error
/// saying so.
fn restore_live_through(v: &Vault, expected: &Keyspace) -> Outcome {
    let target = RedisServer::start().unwrap();
    let out = v.cmd_via_proxy(&["restore", "--to", &target.url()]);
    let got = dump(&target.url());
    if out.success() {
        keyspace::assert_same(expected, &got);
        return Outcome::Completed;
    }
    let code = out.code().unwrap_or(-1);
    assert!(
        got.is_empty()
            || out
                .stderr
                .contains("the target holds what was replayed before"),
        "a failed live restore ({code}) wrote {} keys without saying so: {}",
        got.len(),
        out.stderr
    );
    Outcome::FailedCleanly(code)
}

#[test]
fn a_restore_through_a_flaky_store_completes_or_fails_cleanly() {
    let seed = env_num("AOFVAULT_SEED", 0xfa17_0002);
    let kevy = KevyServer::start(2).unwrap();
    let mut conn = kevy.conn().unwrap();
    workload::mixed(&mut conn, seed, 8000, 1500).unwrap();
    let v = Vault::new("flaky-restore");
    let mut a = v.run_agent(kevy.dir(), &kevy.url());
    a.wait_for_log("snapshot published", Duration::from_secs(60))
        .unwrap();
    // A BGSAVE gives the chains a base: more objects per restore.
    let _: () = redis::cmd("BGSAVE").query(&mut conn).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    workload::mixed(&mut conn, seed ^ 1, 8000, 1500).unwrap();
    kevy.wait_aof_flushed().unwrap();
    v.wait_shipped(&|| kevy_sizes(&kevy), &a);
    a.terminate().unwrap();
    let expected = dump(&kevy.url());
    let p = &v.proxy;
    let mut outcomes = Vec::new();

    // A burst of 503s: the client's retries ride through it.
    p.set_mode(Mode::Http503Burst(4));
    let o = restore_dir_through(&v, &expected, "burst");
    outcomes.push(("503-burst dir", o));
    p.set_mode(Mode::Http503Burst(4));
    outcomes.push(("503-burst live", restore_live_through(&v, &expected)));

    // Connections reset every other 150 ms, while the restore runs.
    let o = while_flapping(p, Mode::Reset, Duration::from_millis(150), || {
        restore_dir_through(&v, &expected, "resets")
    });
    outcomes.push(("flapping resets dir", o));
    let o = while_flapping(p, Mode::Reset, Duration::from_millis(150), || {
        restore_live_through(&v, &expected)
    });
    outcomes.push(("flapping resets live", o));
    let o = while_flapping(p, Mode::Http503Burst(3), Duration::from_millis(100), || {
        restore_dir_through(&v, &expected, "bursts")
    });
    outcomes.push(("repeated 503 bursts dir", o));

    // The store is gone: "unreachable" (exit 4) once the retry deadline has passed, nothing
    // written.
    p.set_mode(Mode::Down);
    let down = restore_dir_through_with(&v, &expected, "down", &["--retry-deadline", "2s"]);
    assert_eq!(
        down,
        Outcome::FailedCleanly(4),
        "an unreachable store is exit 4"
    );
    assert!(
        std::fs::read_dir(v.path("down"))
            .map(|mut d| d.next().is_none())
            .unwrap_or(true),
        "nothing is written while the store is unreachable"
    );
    outcomes.push(("down dir", down));
    p.set_mode(Mode::Pass);
    // And once it is back, the same restore works.
    let again = restore_dir_through(&v, &expected, "back");
    assert_eq!(again, Outcome::Completed);
    outcomes.push(("back dir", again));
    let shown: Vec<String> = outcomes.iter().map(|(n, o)| format!("{n}={o:?}")).collect();
    println!(
        "SOAK-SUMMARY flaky-restore seed={seed:#x} keys={} proxy={:?} outcomes=[{}]",
        expected.len(),
        p.stats(),
        shown.join(", ")
    );
}

/// A new chain's base (a KEVYSNAP dump of a few MB) is being uploaded over a slow link when the
/// store goes away: the upload must be retried once it is back, like any segment, and the
/// shard must not give up.
#[test]
fn a_base_upload_cut_by_an_outage_is_retried() {
    let kevy = KevyServer::start(2).unwrap();
    let mut conn = kevy.conn().unwrap();
    // Incompressible values, so the dumps stay large once compressed.
    let mut rng = Rng::new(77);
    for chunk in 0..20u64 {
        let mut p = redis::pipe();
        for i in 0..200u64 {
            let value: Vec<u8> = (0..250)
                .flat_map(|_| rng.next_u64().to_le_bytes())
                .collect();
            p.cmd("SET")
                .arg(format!("base:{chunk}:{i}"))
                .arg(value)
                .ignore();
        }
        p.query::<()>(&mut conn).unwrap();
    }
    let v = Vault::new("base-outage");
    let mut a = v.run_agent(kevy.dir(), &kevy.url());
    a.wait_for_log("snapshot published", Duration::from_secs(60))
        .unwrap();
    v.wait_shipped(&|| kevy_sizes(&kevy), &a);
    // ~4 MB of dumps at 400 KB/s per connection: the upload lasts seconds.
    v.proxy.set_mode(Mode::Slow(400_000));
    let _: () = redis::cmd("BGSAVE").query(&mut conn).unwrap();
    // The follower waits a second for the AOF reset, then uploads the dumps: cut in the middle.
    std::thread::sleep(Duration::from_millis(3500));
    assert!(
        !a.logs().contains("reason=\"bgsave\""),
        "the base upload was over too soon"
    );
    v.proxy.set_mode(Mode::Down);
    std::thread::sleep(Duration::from_secs(5));
    v.proxy.set_mode(Mode::Pass);
    workload::mixed(&mut conn, 5, 500, 100).unwrap();
    kevy.wait_aof_flushed().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = v.status();
        let shards = s["shards"].as_array().cloned().unwrap_or_default();
        for sh in &shards {
            assert_ne!(
                sh["state"],
                "stopped",
                "a shard gave up on a transient store error: {s}\n{}",
                a.logs()
            );
        }
        if v.plan_ends() == Some(kevy_sizes(&kevy))
            && v.plan_ends().is_some()
            && shards
                .iter()
                .all(|sh| sh["chains_started"].as_u64() >= Some(2))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not caught up: {s}\n{}",
            a.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    a.terminate().unwrap();
    if std::env::var_os("AOFVAULT_SHOW_LOG").is_some() {
        println!("{}", a.logs());
    }
    v.assert_manifests_name_only_stored_objects();
    let expected = dump(&kevy.url());
    let to = v.path("restored");
    v.cmd(&["restore", "--to-dir", &to.display().to_string()])
        .ok()
        .unwrap();
    let copy = KevyServer::start_on_dir(&to, 2).unwrap();
    keyspace::assert_same(&expected, &dump(&copy.url()));
}

/// A kevy (2 shards) shipped through the proxy, with a base in every chain (a BGSAVE between
/// two phases of writes); `big` adds ~8 MB of incompressible values, so that downloads last
/// seconds over a slow link. Returns the vault and the server's keyspace.
fn shipped_for_restores(name: &str, seed: u64, big: bool) -> (Vault, KevyServer, Keyspace) {
    let kevy = KevyServer::start(2).unwrap();
    let mut conn = kevy.conn().unwrap();
    workload::mixed(&mut conn, seed, 5000, 1000).unwrap();
    if big {
        let mut rng = Rng::new(seed);
        for chunk in 0..20u64 {
            let mut p = redis::pipe();
            for i in 0..200u64 {
                let value: Vec<u8> = (0..250)
                    .flat_map(|_| rng.next_u64().to_le_bytes())
                    .collect();
                p.cmd("SET")
                    .arg(format!("big:{chunk}:{i}"))
                    .arg(value)
                    .ignore();
            }
            p.query::<()>(&mut conn).unwrap();
        }
    }
    let v = Vault::new(name);
    let mut a = v.run_agent(kevy.dir(), &kevy.url());
    a.wait_for_log("snapshot published", Duration::from_secs(60))
        .unwrap();
    let _: () = redis::cmd("BGSAVE").query(&mut conn).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    workload::mixed(&mut conn, seed ^ 1, 5000, 1000).unwrap();
    kevy.wait_aof_flushed().unwrap();
    v.wait_shipped(&|| kevy_sizes(&kevy), &a);
    a.terminate().unwrap();
    let expected = dump(&kevy.url());
    (v, kevy, expected)
}

/// Six `503 Slow Down`s in a row — more than the S3 client's own retries ride through (it
/// gives up after four requests) — then bursts of six re-armed every 200 ms while a restore
/// downloads: the restore tries the failed reads or objects again from the start and
/// completes, equal to the source, to files and live.
#[test]
fn a_restore_rides_out_six_503s_in_a_row() {
    let seed = env_num("AOFVAULT_SEED", 0xfa17_0006);
    let (v, _kevy, expected) = shipped_for_restores("six-503s", seed, false);
    let p = &v.proxy;
    let mut retried = Vec::new();

    let before = p.stats().http_503s;
    p.set_mode(Mode::Http503Burst(6));
    let to = v.path("six");
    let out = v.cmd_via_proxy(&["restore", "--to-dir", &to.display().to_string()]);
    assert!(
        out.success(),
        "six 503s failed the restore (exit {:?}):\n{}",
        out.code(),
        out.stderr
    );
    assert_eq!(p.stats().http_503s - before, 6, "the burst was served");
    assert!(
        out.stderr.contains("trying again from the start"),
        "the client's own retries were not beaten: the test shows nothing:\n{}",
        out.stderr
    );
    retried.push(out.stderr.matches("trying again from the start").count());
    let copy = KevyServer::start_on_dir(&to, 2).unwrap();
    keyspace::assert_same(&expected, &dump(&copy.url()));

    p.set_mode(Mode::Http503Burst(6));
    assert_eq!(
        restore_live_through(&v, &expected),
        Outcome::Completed,
        "six 503s failed the live restore"
    );

    let before = p.stats().http_503s;
    let o = while_flapping(p, Mode::Http503Burst(6), Duration::from_millis(200), || {
        restore_dir_through(&v, &expected, "six-repeated")
    });
    assert_eq!(o, Outcome::Completed, "repeated bursts of six 503s");
    let served = p.stats().http_503s - before;
    println!(
        "SOAK-SUMMARY six-503s seed={seed:#x} keys={} first_burst_retries={} repeated_bursts_503s={served} outcome=equal",
        expected.len(),
        retried[0],
    );
}

/// Waits until `to-dir` restore has planned and started to download (its staging directory
/// exists inside the target).
fn wait_fetching(to: &Path, r: &mut agent::AgentProcess) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let staging = std::fs::read_dir(to).ok().is_some_and(|d| {
            d.flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".aofvault-restore-")
            })
        });
        if staging {
            return;
        }
        assert!(r.is_running(), "the restore ended early:\n{}", r.logs());
        assert!(
            Instant::now() < deadline,
            "no download started:\n{}",
            r.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The store goes away in the middle of the downloads (the link is slow, so they last
/// seconds). Back after 4 s — longer than the S3 client's own retries last — the restore
/// fetches the broken-off objects again from their first byte and completes, equal. Gone for
/// good, the restore gives up once `--retry-deadline` has passed: exit 4, the object named,
/// and nothing in the target that looks complete (the staging directory removed).
#[test]
fn a_store_outage_during_the_downloads_is_ridden_out_until_the_retry_deadline() {
    let seed = env_num("AOFVAULT_SEED", 0xfa17_0007);
    let (v, _kevy, expected) = shipped_for_restores("fetch-outage", seed, true);
    let p = &v.proxy;

    // Back after 4 s: completes.
    p.set_mode(Mode::Slow(300_000));
    let to = v.path("outage");
    let to_arg = to.display().to_string();
    let mut r = v.spawn_via_proxy(&["restore", "--to-dir", &to_arg]);
    wait_fetching(&to, &mut r);
    std::thread::sleep(Duration::from_millis(500));
    p.set_mode(Mode::Down);
    std::thread::sleep(Duration::from_secs(4));
    p.set_mode(Mode::Pass);
    let status = r.wait_exit(Duration::from_secs(240)).unwrap();
    let logs = r.logs();
    assert!(
        status.success(),
        "an outage of 4 s failed the restore:\n{logs}"
    );
    let object_retries = logs
        .lines()
        .filter(|l| l.contains("trying again from the start") && l.contains("object "))
        .count();
    assert!(
        object_retries > 0,
        "no object was fetched again (the outage missed the downloads):\n{logs}"
    );
    let copy = KevyServer::start_on_dir(&to, 2).unwrap();
    keyspace::assert_same(&expected, &dump(&copy.url()));
    drop(copy);

    // Gone for good: exit 4 after the deadline, naming the object; nothing looks complete.
    p.set_mode(Mode::Slow(300_000));
    let to = v.path("gone");
    let to_arg = to.display().to_string();
    let mut r = v.spawn_via_proxy(&["restore", "--to-dir", &to_arg, "--retry-deadline", "3s"]);
    wait_fetching(&to, &mut r);
    std::thread::sleep(Duration::from_millis(500));
    p.set_mode(Mode::Down);
    let status = r.wait_exit(Duration::from_secs(240)).unwrap();
    let logs = r.logs();
    p.set_mode(Mode::Pass);
    assert_eq!(status.code(), Some(4), "exit 4 (unreachable):\n{logs}");
    let last = logs
        .lines()
        .rfind(|l| l.starts_with("aofvault:"))
        .unwrap_or_default();
    assert!(
        logs.contains("object ")
            && logs.contains("instances/t/shards/")
            && logs.contains("retry deadline 3s"),
        "the error names the object and the deadline:\n{logs}"
    );
    assert!(
        !to.join("shards.meta").exists(),
        "a failed restore looks complete"
    );
    let left: Vec<String> = std::fs::read_dir(&to)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "a failed restore left {left:?}");

    // And a live restore while the store is down: exit 4, the target untouched.
    p.set_mode(Mode::Down);
    let target = RedisServer::start().unwrap();
    let out = v.cmd_via_proxy(&["restore", "--to", &target.url(), "--retry-deadline", "2s"]);
    p.set_mode(Mode::Pass);
    assert_eq!(out.code(), Some(4), "{}", out.stderr);
    assert!(out.stderr.contains("unreachable"), "{}", out.stderr);
    assert!(dump(&target.url()).is_empty());
    println!(
        "SOAK-SUMMARY fetch-outage seed={seed:#x} keys={} objects_fetched_again={object_retries} gave_up=\"{last}\"",
        expected.len()
    );
}
