//! Sending less than the log, end to end: the randomized workloads of the suite
//! ([`workload::mixed`]) and a history that writes every key five times are backed up
//! (`aofvault backup`), then restored live (`restore --to`) into fresh redis-server 7.0 and
//! kevy (4 shards) targets twice — thinned (the default) and with `--exact-replay` — and each
//! target must equal the source key by key (`keyspace::assert_same`). The thinned restore must
//! actually leave commands out (its report's `thinned` count) and send fewer commands.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aofvault_tests::keyspace::{self, Keyspace};
use aofvault_tests::{agent, workload, KevyServer, RedisServer};
use serde_json::Value;

/// A repository, a state dir and a config file for one source server.
struct Setup {
    _tmp: tempfile::TempDir,
    config: PathBuf,
}

impl Setup {
    fn new(server_dir: &Path, url: &str) -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join("aofvault.toml");
        let text = format!(
            "[source]\ndir = {dir:?}\nurl = {url:?}\n\n[repository]\nurl = \"file://{repo}\"\ninstance = \"thin\"\n\n[state]\ndir = {state:?}\n",
            dir = server_dir.display().to_string(),
            repo = tmp.path().join("repo").display(),
            state = tmp.path().join("state").display().to_string(),
        );
        std::fs::write(&config, text).unwrap();
        Setup { _tmp: tmp, config }
    }

    fn run(&self, args: &[&str]) -> agent::Output {
        let mut all = vec!["--config", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        agent::run(&all, &[]).unwrap()
    }

    fn backup(&self) {
        self.run(&["backup", "--json"]).ok().unwrap();
    }

    /// `restore --json --to url` (with `--exact-replay` when `exact`): the report, after
    /// checking the target equals `expected` and answered no command with an error.
    fn restore_equal(&self, url: &str, exact: bool, expected: &Keyspace) -> Value {
        let mut args = vec!["restore", "--json", "--to", url];
        if exact {
            args.push("--exact-replay");
        }
        let out = self.run(&args).ok().unwrap();
        let doc = out.json().unwrap();
        let mut conn = aofvault_tests::connect(url).unwrap();
        keyspace::assert_same(expected, &keyspace::dump(&mut conn, &[0]).unwrap());
        assert_eq!(doc["report"]["errors"], 0, "{doc}");
        doc["report"].clone()
    }

    /// Restores into fresh redis-server and kevy (4 shards) targets, thinned and exact; every
    /// target must equal `expected`. Returns the (thinned, exact) reports of each target.
    fn restore_both_ways(&self, expected: &Keyspace) -> Vec<(Value, Value)> {
        let mut reports = Vec::new();
        for target in ["redis", "kevy"] {
            let mut pair = Vec::new();
            for exact in [false, true] {
                let report = if target == "redis" {
                    let server = RedisServer::start().unwrap();
                    self.restore_equal(&server.url(), exact, expected)
                } else {
                    let server = KevyServer::start(4).unwrap();
                    self.restore_equal(&server.url(), exact, expected)
                };
                pair.push(report);
            }
            let exact = pair.pop().unwrap();
            let thin = pair.pop().unwrap();
            assert_eq!(
                exact["thinned"], 0,
                "--exact-replay sends everything: {exact}"
            );
            eprintln!(
                "into {target}: thinned {} commands sent (left out {}), exact {}",
                thin["commands"], thin["thinned"], exact["commands"]
            );
            reports.push((thin, exact));
        }
        reports
    }
}

fn wait_redis_rewrite(conn: &mut redis::Connection) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info: String = redis::cmd("INFO").arg("persistence").query(conn).unwrap();
        if info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrite_scheduled:0") {
            return;
        }
        assert!(Instant::now() < deadline, "rewrite did not finish: {info}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn thinned(report: &Value) -> u64 {
    report["thinned"].as_u64().unwrap()
}

#[test]
fn redis_workloads_restore_equal_thinned_and_exact() {
    let redis = RedisServer::start().unwrap();
    let mut conn = redis.conn().unwrap();
    workload::mixed(&mut conn, 31, 4000, 300).unwrap();
    // A rewrite: the chain's base is an RDB, the stream overwrites keys it holds.
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut conn).unwrap();
    wait_redis_rewrite(&mut conn);
    workload::mixed(&mut conn, 32, 4000, 300).unwrap();
    workload::mixed(&mut conn, 33, 4000, 300).unwrap();
    let setup = Setup::new(redis.dir(), &redis.url());
    setup.backup();
    let expected = keyspace::dump(&mut conn, &[0]).unwrap();
    assert!(expected.len() > 200, "{} keys", expected.len());
    for (thin, exact) in setup.restore_both_ways(&expected) {
        assert!(
            thinned(&thin) > 0,
            "the workload's SETs and DELs hide writes: {thin}"
        );
        assert!(
            thin["commands"].as_u64() < exact["commands"].as_u64(),
            "thinned {thin}\nexact {exact}"
        );
    }
}

#[test]
fn kevy_workloads_restore_equal_thinned_and_exact() {
    let kevy = KevyServer::start(4).unwrap();
    let mut conn = kevy.conn().unwrap();
    for seed in [41, 42, 43] {
        workload::mixed(&mut conn, seed, 4000, 300).unwrap();
    }
    kevy.wait_aof_flushed().unwrap();
    let setup = Setup::new(kevy.dir(), &kevy.url());
    setup.backup();
    let expected = keyspace::dump(&mut conn, &[0]).unwrap();
    assert!(expected.len() > 200, "{} keys", expected.len());
    for (thin, _) in setup.restore_both_ways(&expected) {
        assert!(thinned(&thin) > 0, "{thin}");
    }
}

/// Five writes per key, round after round, with every kind of rule in between: whole
/// overwrites (SET, SET EX, DEL), single-key writes (INCR, HSET, EXPIRE), conditional SETs
/// (KEEPTTL, NX) that are not overwrites, and RENAMEs that pin both their keys.
fn five_times(conn: &mut redis::Connection, keys: usize) {
    for round in 0..5 {
        let mut pipe = redis::pipe();
        for i in 0..keys {
            let k = format!("five:{i}");
            match (i % 4, round) {
                (0, 0) => pipe.cmd("SET").arg(&k).arg(5).arg("EX").arg(3000),
                (0, 1) => pipe.cmd("INCR").arg(&k),
                (0, 2) => pipe.cmd("SET").arg(&k).arg(7).arg("KEEPTTL"),
                (0, 3) => pipe.cmd("SET").arg(&k).arg(8).arg("NX"),
                (0, _) => pipe.cmd("SET").arg(&k).arg(format!("final-{i}")),
                (1, 0) | (1, 3) => pipe.cmd("HSET").arg(&k).arg("f").arg(round),
                (1, 1) => pipe.cmd("EXPIRE").arg(&k).arg(3000),
                (1, 2) => pipe.cmd("DEL").arg(&k),
                (1, _) => pipe.cmd("HSET").arg(&k).arg("g").arg(i),
                (2, 2) => pipe.cmd("RENAME").arg(&k).arg(format!("five:moved:{i}")),
                (2, _) => pipe.cmd("SET").arg(&k).arg(format!("r{round}")),
                (_, 4) => pipe.cmd("SET").arg(&k).arg(i).arg("PX").arg(3_000_000),
                (_, _) => pipe.cmd("SET").arg(&k).arg(round),
            };
        }
        let _: Vec<redis::Value> = pipe.query(conn).unwrap();
    }
}

#[test]
fn keys_written_five_times_send_fewer_commands_and_restore_equal() {
    let redis = RedisServer::start().unwrap();
    let mut conn = redis.conn().unwrap();
    five_times(&mut conn, 2000);
    let setup = Setup::new(redis.dir(), &redis.url());
    setup.backup();
    let expected = keyspace::dump(&mut conn, &[0]).unwrap();
    assert_eq!(
        expected.len(),
        2000 + 500,
        "every key, and the renamed ones"
    );
    let reports = setup.restore_both_ways(&expected);
    for (thin, exact) in &reports {
        // Keys 3 mod 4 alone: four SETs hidden by the fifth.
        assert!(thinned(thin) >= 4 * 500, "{thin}");
        assert!(
            thin["commands"].as_u64() < exact["commands"].as_u64(),
            "{thin}\n{exact}"
        );
    }
    // Into redis-server no command is translated: each one left out is one fewer sent.
    let (thin, exact) = &reports[0];
    assert_eq!(
        thin["commands"].as_u64().unwrap() + thinned(thin),
        exact["commands"].as_u64().unwrap(),
        "{thin}\n{exact}"
    );
}
