//! Crash safety: `kill -9` of the agent at random (seeded) moments while a server takes a
//! continuous write load with `BGREWRITEAOF`s and `SAVE`s thrown in — on a 4-shard kevy and on
//! redis-server — restarting it each time; at the end the repository verifies clean and a
//! restore equals the server. And `kill -9` of `restore` itself (`--to-dir` and `--to`): the
//! killed run never leaves a target that looks complete, and running it again succeeds.
//!
//! CI runs a short version; `scripts/soak.sh` runs the same tests with more kills
//! (`AOFVAULT_CRASH_KILLS`, `AOFVAULT_RESTORE_KILLS`) and a new seed (`AOFVAULT_SEED`) each
//! round. Every test prints one `SOAK-SUMMARY` line the soak script collects.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aofvault_tests::keyspace::{self, Keyspace};
use aofvault_tests::workload::{self, Rng};
use aofvault_tests::{agent, KevyServer, RedisServer};
use common::cli::{dump, env_num, kevy_sizes, redis_sizes, try_cmd, Cli};

mod common;

/// A file repository, a state dir, and the commands that use them.
struct Vault {
    tmp: tempfile::TempDir,
    repo_url: String,
}

impl Vault {
    fn new() -> Vault {
        let tmp = tempfile::tempdir().unwrap();
        let repo_url = format!("file://{}", tmp.path().join("repo").display());
        Vault { tmp, repo_url }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn global(&self) -> Vec<String> {
        let state = self.path("state").display().to_string();
        [
            "--repo",
            &self.repo_url,
            "--instance",
            "t",
            "--state-dir",
            &state,
        ]
        .map(String::from)
        .to_vec()
    }

    fn spawn(&self, args: &[&str]) -> agent::AgentProcess {
        let mut all = self.global();
        all.extend(args.iter().map(|s| s.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        agent::spawn(&all, &[]).unwrap()
    }

    fn run_agent(&self, source: &Path, server: &str) -> agent::AgentProcess {
        let dir = source.display().to_string();
        self.spawn(&["--source", &dir, "--server", server, "run"])
    }

    /// `aofvault verify` must find nothing (exit 0).
    fn assert_verify_clean(&self) {
        let out = self.cmd(&["verify"]);
        assert!(
            out.success(),
            "verify found problems:\n{}\n{}",
            out.stdout,
            out.stderr
        );
    }

    /// Every `snapshots/*.json` of the repository, parsed.
    fn manifests(&self) -> Vec<serde_json::Value> {
        let dir = self.path("repo/instances/t/snapshots");
        let mut out = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            out.push(serde_json::from_slice(&bytes).unwrap());
        }
        out
    }

    /// Chain folders (with a `chain.json`) per shard.
    fn chains(&self, shard: u32) -> usize {
        let dir = self.path(&format!("repo/instances/t/shards/{shard:04}/chains"));
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().join("chain.json").is_file())
                    .count()
            })
            .unwrap_or(0)
    }
}

impl Cli for Vault {
    fn cmd(&self, args: &[&str]) -> agent::Output {
        let mut all = self.global();
        all.extend(args.iter().map(|s| s.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        agent::run(&all, &[]).unwrap()
    }
}

/// Waits until the server reports no rewrite and no background save in progress.
fn wait_persistence_idle(url: &str) {
    let mut conn = aofvault_tests::connect(url).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query(&mut conn)
            .unwrap();
        let busy = info.lines().any(|l| {
            let l = l.trim();
            (l.starts_with("aof_rewrite_in_progress:")
                || l.starts_with("aof_rewrite_scheduled:")
                || l.starts_with("rdb_bgsave_in_progress:"))
                && !l.ends_with(":0")
        });
        if !busy {
            return;
        }
        assert!(Instant::now() < deadline, "persistence stayed busy: {info}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What happened in a kill loop.
#[derive(Debug, Default)]
struct KillStats {
    kills: u64,
    before_first_snapshot: u64,
    rewrites: u64,
    saves: u64,
    bgsaves: u64,
}

/// The kill loop: start the agent, let it run a random while (sometimes less than its start-up),
/// maybe ask the server for a rewrite or a save at a random moment, `kill -9` it; `kills` times.
fn kill_loop(v: &Vault, dir: &Path, url: &str, kills: u64, rng: &mut Rng, kevy: bool) -> KillStats {
    let mut st = KillStats::default();
    for round in 0..kills {
        let mut a = v.run_agent(dir, url);
        let life = Duration::from_millis(200 + rng.below(3000));
        let poke = Duration::from_millis(rng.below(life.as_millis() as u64));
        let action = rng.below(6);
        let born = Instant::now();
        std::thread::sleep(poke);
        match action {
            0 | 1 => st.rewrites += u64::from(try_cmd(url, "BGREWRITEAOF")),
            2 => st.saves += u64::from(try_cmd(url, "SAVE")),
            3 if kevy => st.bgsaves += u64::from(try_cmd(url, "BGSAVE")),
            _ => {}
        }
        if let Some(rest) = life.checked_sub(born.elapsed()) {
            std::thread::sleep(rest);
        }
        assert!(
            a.is_running(),
            "round {round}: the agent exited by itself:\n{}",
            a.logs()
        );
        if !a.logs().contains("snapshot published") {
            st.before_first_snapshot += 1;
        }
        a.kill9();
        st.kills += 1;
    }
    st
}

#[test]
fn kill9_at_random_moments_on_kevy_4_shards_loses_nothing() {
    let seed = env_num("AOFVAULT_SEED", 0x5eed_0001);
    let kills = env_num("AOFVAULT_CRASH_KILLS", 10);
    let mut rng = Rng::new(seed);
    let kevy = KevyServer::start(4).unwrap();
    workload::mixed(&mut kevy.conn().unwrap(), seed, 3000, 600).unwrap();
    let v = Vault::new();
    let writer = workload::background(kevy.url(), seed ^ 1, 600);
    let st = kill_loop(&v, kevy.dir(), &kevy.url(), kills, &mut rng, true);
    let written = writer.stop();
    assert!(written > 1000, "the writer wrote {written} commands");

    // The last start catches up with everything; then the repository must be whole.
    let mut a = v.run_agent(kevy.dir(), &kevy.url());
    wait_persistence_idle(&kevy.url());
    kevy.wait_aof_flushed().unwrap();
    v.wait_shipped(&|| kevy_sizes(&kevy), &a);
    a.terminate().unwrap();
    v.assert_verify_clean();

    let expected = dump(&kevy.url());
    assert!(expected.len() > 300, "{} keys", expected.len());
    let to = v.path("restored");
    let to_s = to.display().to_string();
    v.cmd(&["restore", "--to-dir", &to_s]).ok().unwrap();
    let copy = KevyServer::start_on_dir(&to, 4).unwrap();
    keyspace::assert_same(&expected, &dump(&copy.url()));

    let chains: Vec<usize> = (0..4).map(|s| v.chains(s)).collect();
    println!(
        "SOAK-SUMMARY crash kevy4 seed={seed:#x} kills={} before_first_snapshot={} rewrites={} saves={} bgsaves={} writes={written} chains={chains:?} manifests={} keys={} restore=equal verify=clean",
        st.kills,
        st.before_first_snapshot,
        st.rewrites,
        st.saves,
        st.bgsaves,
        v.manifests().len(),
        expected.len()
    );
}

#[test]
fn kill9_at_random_moments_on_redis_loses_nothing() {
    let seed = env_num("AOFVAULT_SEED", 0x5eed_0002);
    let kills = env_num("AOFVAULT_CRASH_KILLS", 10);
    let mut rng = Rng::new(seed);
    let redis = RedisServer::start().unwrap();
    workload::mixed(&mut redis.conn().unwrap(), seed, 3000, 600).unwrap();
    let v = Vault::new();
    let writer = workload::background(redis.url(), seed ^ 1, 600);
    let st = kill_loop(&v, redis.dir(), &redis.url(), kills, &mut rng, false);
    let written = writer.stop();
    assert!(written > 1000, "the writer wrote {written} commands");

    let mut a = v.run_agent(redis.dir(), &redis.url());
    wait_persistence_idle(&redis.url());
    v.wait_shipped(&|| redis_sizes(&redis), &a);
    a.terminate().unwrap();
    v.assert_verify_clean();

    let expected = dump(&redis.url());
    assert!(expected.len() > 300, "{} keys", expected.len());
    let to = v.path("restored");
    let to_s = to.display().to_string();
    v.cmd(&["restore", "--to-dir", &to_s]).ok().unwrap();
    let copy = RedisServer::start_on_dir(&to, &[]).unwrap();
    keyspace::assert_same(&expected, &dump(&copy.url()));

    println!(
        "SOAK-SUMMARY crash redis seed={seed:#x} kills={} before_first_snapshot={} rewrites={} saves={} writes={written} chains={} manifests={} keys={} restore=equal verify=clean",
        st.kills,
        st.before_first_snapshot,
        st.rewrites,
        st.saves,
        v.chains(0),
        v.manifests().len(),
        expected.len()
    );
}

/// A repository holding a few MB of a 4-shard kevy, shipped completely, and its keyspace.
fn shipped_kevy(seed: u64) -> (Vault, KevyServer, Keyspace) {
    let kevy = KevyServer::start(4).unwrap();
    let mut conn = kevy.conn().unwrap();
    // Mostly ~1 KB values so the restore takes long enough to be killed in the middle.
    let value = "r".repeat(1000);
    for chunk in 0..40u64 {
        let mut p = redis::pipe();
        for i in 0..500u64 {
            p.cmd("SET")
                .arg(format!("big:{}", (chunk * 500 + i) % 15_000))
                .arg(format!("{value}{}", chunk * 500 + i))
                .ignore();
        }
        p.query::<()>(&mut conn).unwrap();
    }
    workload::mixed(&mut conn, seed, 20_000, 2000).unwrap();
    kevy.wait_aof_flushed().unwrap();
    let v = Vault::new();
    let mut a = v.run_agent(kevy.dir(), &kevy.url());
    v.wait_shipped(&|| kevy_sizes(&kevy), &a);
    a.terminate().unwrap();
    let expected = dump(&kevy.url());
    (v, kevy, expected)
}

/// Every key name `shipped_kevy` writes: `big:0..15000` and the workload's 2000 keys.
const SOURCE_KEY_NAMES: usize = 15_000 + 2000;

/// Whether `shipped_kevy`'s writes ever name `key`.
fn source_wrote(key: &[u8]) -> bool {
    let Ok(key) = std::str::from_utf8(key) else {
        return false;
    };
    if let Some(n) = key.strip_prefix("big:") {
        return n.parse::<u64>().is_ok_and(|n| n < 15_000);
    }
    (0..2000u64).any(|i| workload::key_name(i) == key)
}

/// What a killed `restore --to-dir` left: it may be empty or hold staging leftovers, but never
/// the file that makes a server take it for a whole data directory.
fn assert_not_complete(dir: &Path, marker: &str) {
    assert!(
        !dir.join(marker).exists(),
        "a killed restore left {} behind: the target looks complete",
        dir.join(marker).display()
    );
}

/// `kill -9`s a running restore: `true` if it was killed, `false` if it had already finished
/// successfully (a restore that failed by itself fails the test).
fn killed_or_done(r: &mut agent::AgentProcess) -> bool {
    let status = r.kill9();
    match status {
        Some(s) if s.success() => false,
        Some(s) if s.code().is_some() => {
            panic!("the restore failed by itself ({s}):\n{}", r.logs())
        }
        _ => true,
    }
}

fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

#[test]
fn kill9_during_restore_never_leaves_a_complete_looking_target_and_a_rerun_succeeds() {
    let seed = env_num("AOFVAULT_SEED", 0x5eed_0003);
    let rounds = env_num("AOFVAULT_RESTORE_KILLS", 4);
    let mut rng = Rng::new(seed);
    let (v, _kevy, expected) = shipped_kevy(seed);

    // How long a whole restore takes here, so the kills land inside it.
    let timing = v.path("timing");
    let t0 = Instant::now();
    v.cmd(&["restore", "--to-dir", &timing.display().to_string()])
        .ok()
        .unwrap();
    let full = t0.elapsed();

    let mut killed_mid = 0;
    let mut finished_first = 0;
    let mut complete_at_kill = 0;
    let mut reruns_refused = 0;
    for round in 0..rounds {
        // --to-dir, as kevy files and (every other round) converted to a Redis layout.
        let redis = round % 2 == 1;
        let to = v.path(&format!("dir-{round}"));
        let to_s = to.display().to_string();
        let mut args = vec!["restore", "--to-dir", &to_s];
        if redis {
            args.extend(["--format", "redis"]);
        }
        let marker = if redis {
            "appendonlydir/appendonly.aof.manifest"
        } else {
            "shards.meta"
        };
        let mut r = v.spawn(&args);
        let at = Duration::from_millis(rng.below(full.as_millis() as u64 + 1));
        std::thread::sleep(at);
        let killed = killed_or_done(&mut r);
        let load = |to: &Path| {
            if redis {
                dump(&RedisServer::start_on_dir(to, &[]).unwrap().url())
            } else {
                dump(&KevyServer::start_on_dir(to, 4).unwrap().url())
            }
        };
        if to.join(marker).exists() {
            // Finished, or killed after its last rename (only the exit was lost): then it is
            // whole, since the marker is renamed into place last.
            if killed {
                complete_at_kill += 1;
            } else {
                finished_first += 1;
            }
            keyspace::assert_same(&expected, &load(&to));
            continue;
        }
        killed_mid += 1;
        // Again: a non-empty target needs --force (its leftovers are moved aside, not used).
        let again = v.cmd(&args);
        if again.code() == Some(7) {
            reruns_refused += 1;
            assert!(!is_empty_dir(&to));
            assert_not_complete(&to, marker);
            let mut forced = args.clone();
            forced.push("--force");
            v.cmd(&forced).ok().unwrap();
        } else {
            again.ok().unwrap();
        }
        assert!(to.join(marker).is_file(), "round {round}: {marker}");
        keyspace::assert_same(&expected, &load(&to));
    }

    // --to a live server: a killed replay is not complete either; running it again into the
    // server it half filled is refused without --force (which would replay on top of the
    // half: counters and lists would double), so the operator empties it first. The target is
    // a redis-server (kevy targets: the test below).
    let target = RedisServer::start().unwrap();
    let url = target.url();
    let t0 = Instant::now();
    v.cmd(&["restore", "--to", &url]).ok().unwrap();
    let full_live = t0.elapsed();
    keyspace::assert_same(&expected, &dump(&url));
    let mut live_killed = 0;
    for _ in 0..rounds.div_ceil(2) {
        let _: () = redis::cmd("FLUSHALL")
            .query(&mut target.conn().unwrap())
            .unwrap();
        let mut r = v.spawn(&["restore", "--to", &url]);
        std::thread::sleep(Duration::from_millis(
            rng.below(full_live.as_millis() as u64 + 1),
        ));
        if !killed_or_done(&mut r) {
            keyspace::assert_same(&expected, &dump(&url));
            continue;
        }
        live_killed += 1;
        let partial = dump(&url);
        // A replay killed part-way holds the source's state at some earlier moment of its
        // history: a key the history later deletes may be there, but never a key the source
        // never wrote (a torn command, a mangled name).
        let strangers: Vec<_> = partial
            .0
            .keys()
            .filter(|k| !expected.0.contains_key(*k) && !source_wrote(&k.1))
            .collect();
        assert!(
            strangers.is_empty() && partial.len() <= SOURCE_KEY_NAMES,
            "a killed replay holds {} keys, {} of them not in the source: {:?}",
            partial.len(),
            strangers.len(),
            strangers.iter().take(5).collect::<Vec<_>>()
        );
        let again = v.cmd(&["restore", "--to", &url]);
        if !partial.is_empty() {
            assert_eq!(
                again.code(),
                Some(7),
                "a half-filled target is refused: {}",
                again.stderr
            );
            let _: () = redis::cmd("FLUSHALL")
                .query(&mut target.conn().unwrap())
                .unwrap();
            v.cmd(&["restore", "--to", &url]).ok().unwrap();
        } else {
            again.ok().unwrap();
        }
        keyspace::assert_same(&expected, &dump(&url));
    }
    println!(
        "SOAK-SUMMARY restore-kill seed={seed:#x} to_dir_rounds={rounds} killed_mid={killed_mid} finished_before_kill={finished_first} whole_when_killed={complete_at_kill} reruns_refused_without_force={reruns_refused} live_killed={live_killed} restore_ms={} live_ms={} keys={} restore=equal",
        full.as_millis(),
        full_live.as_millis(),
        expected.len()
    );
}

/// `restore --to` a kevy decides "the target is empty" from `DBSIZE` (kevy sums every shard),
/// not from `INFO keyspace` (published per shard on a tick: FLUSHALL does not reset it at
/// once). So a 4-shard kevy holding a key is refused without `--force`, and a flushed one is
/// accepted (see also tests/tests/restore_target.rs).
#[test]
fn live_restore_into_a_non_empty_kevy_is_refused_without_force() {
    let (v, _source, expected) = shipped_kevy(0x5eed_0004);
    for round in 0..4 {
        let target = KevyServer::start(4).unwrap();
        let mut conn = target.conn().unwrap();
        let _: () = redis::cmd("SET")
            .arg("precious")
            .arg(round)
            .query(&mut conn)
            .unwrap();
        let out = v.cmd(&["restore", "--to", &target.url()]);
        assert_eq!(
            out.code(),
            Some(7),
            "round {round}: a kevy holding a key was written into without --force; now {} keys:\n{}",
            dump(&target.url()).len(),
            out.stdout
        );
    }
    // And a flushed kevy is empty: no --force needed.
    let target = KevyServer::start(4).unwrap();
    v.cmd(&["restore", "--to", &target.url()]).ok().unwrap();
    let _: () = redis::cmd("FLUSHALL")
        .query(&mut target.conn().unwrap())
        .unwrap();
    let out = v.cmd(&["restore", "--to", &target.url()]);
    assert!(out.success(), "a flushed kevy is refused: {}", out.stderr);
    keyspace::assert_same(&expected, &dump(&target.url()));
}
