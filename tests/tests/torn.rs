//! The agent heals itself: a crash's torn command is stepped over (recorded in the chain as a
//! torn range) and the commands the restarted server wrote after it are shipped; invalid bytes
//! that are not a crash make the agent ask the server for a rewrite (state `recovering`) and
//! ship again from it — nobody sends `BGREWRITEAOF` by hand.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aofvault_tests::keyspace::{self, Keyspace};
use aofvault_tests::{agent, KevyServer, RedisServer};

struct Vault {
    tmp: tempfile::TempDir,
}

impl Vault {
    fn new() -> Vault {
        Vault {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn args(&self, args: &[&str]) -> Vec<String> {
        let repo = format!("file://{}", self.path("repo").display());
        let state = self.path("state").display().to_string();
        let mut all: Vec<String> = ["--repo", &repo, "--instance", "t", "--state-dir", &state]
            .map(String::from)
            .to_vec();
        all.extend(args.iter().map(|s| s.to_string()));
        all
    }

    fn cmd(&self, args: &[&str]) -> agent::Output {
        let all = self.args(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        agent::run(&all, &[]).unwrap()
    }

    fn run_agent(&self, source: &Path, server: Option<&str>) -> agent::AgentProcess {
        let dir = source.display().to_string();
        let mut a = vec!["--source", &dir];
        if let Some(url) = server {
            a.extend(["--server", url]);
        }
        a.push("run");
        let all = self.args(&a);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        agent::spawn(&all, &[]).unwrap()
    }

    fn status(&self) -> serde_json::Value {
        self.cmd(&["status", "--json"])
            .json()
            .unwrap_or(serde_json::Value::Null)
    }

    /// Waits until `done(status)` holds.
    fn wait_status(
        &self,
        what: &str,
        done: &dyn Fn(&serde_json::Value) -> bool,
        logs: &dyn Fn() -> String,
    ) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let st = self.status();
            if done(&st) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {st}\nagent log:\n{}",
                logs()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

fn cmd(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

fn dump(url: &str) -> Keyspace {
    keyspace::dump(&mut aofvault_tests::connect(url).unwrap(), &[0]).unwrap()
}

fn shard_ships_all(st: &serde_json::Value, len: u64) -> bool {
    let s = &st["shards"][0];
    s["state"] == "following" && s["shipped_offset"].as_u64() == Some(len)
}

#[test]
fn a_torn_command_is_stepped_over_and_what_follows_it_is_restored() {
    // A kevy AOF as a crash and a restart leave it: whole commands, the beginning of one, then
    // whole commands the restarted server appended after it.
    let mut kevy = KevyServer::start(1).unwrap();
    let mut conn = kevy.conn().unwrap();
    for i in 0..300 {
        let _: () = redis::cmd("SET")
            .arg(format!("before:{i}"))
            .arg(i)
            .query(&mut conn)
            .unwrap();
    }
    kevy.wait_aof_flushed().unwrap();
    kevy.stop();
    let aof = kevy.dir().join("aof-0.aof");
    let whole = cmd(&["SET", "torn", "a value the crash cut short"]);
    let torn_at = std::fs::metadata(&aof).unwrap().len();
    let mut f = std::fs::OpenOptions::new().append(true).open(&aof).unwrap();
    f.write_all(&whole[..whole.len() / 2]).unwrap();
    for i in 0..200 {
        f.write_all(&cmd(&["SET", &format!("after:{i}"), &i.to_string()]))
            .unwrap();
    }
    f.write_all(&cmd(&["INCR", "counter"])).unwrap();
    drop(f);
    let len = std::fs::metadata(&aof).unwrap().len();

    // kevy's own start-up replay of these files, for comparison.
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(&aof, copy.path().join("aof-0.aof")).unwrap();
    std::fs::write(copy.path().join("shards.meta"), "1\nkevyhash\n").unwrap();
    let own = dump(&KevyServer::start_on_dir(copy.path(), 1).unwrap().url());

    // The agent follows the files alone (no server to ask): nothing stops.
    let v = Vault::new();
    let mut a = v.run_agent(kevy.dir(), None);
    v.wait_status(
        "the shard ships past the torn command",
        &|st| shard_ships_all(st, len),
        &|| a.logs(),
    );
    assert!(
        a.logs().contains("torn by a crash") && a.logs().contains(&format!("from={torn_at}")),
        "the log names the torn range: {}",
        a.logs()
    );
    a.terminate().unwrap();

    // The chain records the torn range, verify calls it intentional, and a restore holds
    // everything but the torn command.
    let chain_dir = std::fs::read_dir(v.path("repo/instances/t/shards/0000/chains"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let torn: Vec<String> = std::fs::read_dir(&chain_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("torn-"))
        .collect();
    assert_eq!(
        torn.len(),
        1,
        "one torn range in {}: {torn:?}",
        chain_dir.display()
    );
    assert!(
        torn[0].starts_with(&format!("torn-{torn_at:016x}-")),
        "{torn:?}"
    );
    let out = v.cmd(&["verify"]);
    assert!(out.success(), "verify: {}\n{}", out.stdout, out.stderr);

    let to = v.path("restored");
    v.cmd(&["restore", "--to-dir", &to.display().to_string()])
        .ok()
        .unwrap();
    let restored = dump(&KevyServer::start_on_dir(&to, 1).unwrap().url());
    assert_eq!(
        restored.len(),
        300 + 200 + 1,
        "every whole command, before and after the torn one"
    );
    assert!(
        !restored.0.keys().any(|(_, k)| k == b"torn"),
        "the torn command is not replayed"
    );
    println!(
        "SOAK-SUMMARY torn-frame kevy_own_restart_keys={} restore_keys={} (of 501 whole commands' keys)",
        own.len(),
        restored.len()
    );
    assert!(
        restored.len() >= own.len(),
        "at least as faithful as kevy's own restart"
    );
}

#[test]
fn invalid_bytes_make_the_agent_ask_the_server_for_a_rewrite_and_ship_again() {
    let mut redis = RedisServer::start().unwrap();
    let mut conn = redis.conn().unwrap();
    for i in 0..200 {
        let _: () = redis::cmd("SET")
            .arg(format!("k:{i}"))
            .arg(i)
            .query(&mut conn)
            .unwrap();
    }
    let v = Vault::new();
    let mut a = v.run_agent(redis.dir(), Some(&redis.url()));
    v.wait_status(
        "following",
        &|st| st["shards"][0]["state"] == "following",
        &|| a.logs(),
    );
    let rewrites_before = aof_rewrites(&mut conn);

    // Garbage lands in the AOF (a bad disk, a stray write); the server appends after it.
    let dir = redis.dir().join("appendonlydir");
    let incr = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".incr.aof"))
        .unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&incr)
        .unwrap()
        .write_all(b"GARBAGE!\r\n")
        .unwrap();
    for i in 200..400 {
        let _: () = redis::cmd("SET")
            .arg(format!("k:{i}"))
            .arg(i)
            .query(&mut conn)
            .unwrap();
    }

    // Nobody sends BGREWRITEAOF: the agent does, and the shard ships again on a new chain.
    v.wait_status(
        "back to following on a new chain",
        &|st| {
            st["shards"][0]["state"] == "following"
                && st["shards"][0]["chains_started"].as_u64() >= Some(2)
        },
        &|| a.logs(),
    );
    let logs = a.logs();
    assert!(logs.contains("shard recovering"), "{logs}");
    assert!(logs.contains("recovered"), "{logs}");
    assert!(
        aof_rewrites(&mut conn) > rewrites_before,
        "the agent asked for the rewrite"
    );
    for i in 400..450 {
        let _: () = redis::cmd("SET")
            .arg(format!("k:{i}"))
            .arg(i)
            .query(&mut conn)
            .unwrap();
    }
    std::thread::sleep(Duration::from_secs(3));
    a.terminate().unwrap();

    let to = v.path("restored");
    v.cmd(&["restore", "--to-dir", &to.display().to_string()])
        .ok()
        .unwrap();
    let copy = RedisServer::start_on_dir(&to, &[]).unwrap();
    keyspace::assert_same(&dump(&redis.url()), &dump(&copy.url()));
    redis.stop();
}

fn aof_rewrites(conn: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("persistence").query(conn).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("aof_rewrites:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}
