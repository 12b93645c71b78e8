//! `restore --to URL` decides whether the target is empty, and refuses one that is not (exit 7)
//! unless `--force`. On kevy 1.19 `INFO keyspace` cannot decide it (its shards publish their
//! counts on a tick: a flushed kevy still shows keys, a key just written does not show yet),
//! so the agent counts with `DBSIZE`; these tests hold it to both directions, right after the
//! change, on every shard: a kevy flushed a moment ago is accepted, a kevy holding one key
//! anywhere is refused. And on Redis, a key in a database other than 0 counts too.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use aofvault_tests::keyspace::{self, Keyspace};
use aofvault_tests::{agent, workload, KevyServer, RedisServer};

/// A `file://` repository holding a shipped kevy, and what it holds.
struct Shipped {
    tmp: tempfile::TempDir,
    expected: Keyspace,
    source: KevyServer,
}

impl Shipped {
    fn global(&self) -> Vec<String> {
        let repo = format!("file://{}", self.tmp.path().join("repo").display());
        let state = self.tmp.path().join("state").display().to_string();
        ["--repo", &repo, "--instance", "t", "--state-dir", &state]
            .map(String::from)
            .to_vec()
    }

    fn cmd(&self, args: &[&str]) -> agent::Output {
        let mut all = self.global();
        all.extend(args.iter().map(|s| s.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        agent::run(&all, &[]).unwrap()
    }

    /// A 4-shard kevy with a mixed workload, shipped completely.
    fn kevy(seed: u64) -> Shipped {
        let source = KevyServer::start(4).unwrap();
        workload::mixed(&mut source.conn().unwrap(), seed, 4000, 500).unwrap();
        source.wait_aof_flushed().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let mut s = Shipped {
            tmp,
            expected: Keyspace::default(),
            source,
        };
        let dir = s.source.dir().display().to_string();
        let url = s.source.url();
        let mut args = s.global();
        args.extend(["--source".into(), dir, "--server".into(), url, "run".into()]);
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut daemon = agent::spawn(&a, &[]).unwrap();
        let want: Vec<u64> = s
            .source
            .aof_paths()
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = s.cmd(&["restore", "--dry-run", "--json", "--to-dir", "/nonexistent"]);
            let ends: Option<Vec<u64>> = out.success().then(|| {
                out.json().unwrap()["plan"]["shards"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|sh| sh["end"].as_u64().unwrap())
                    .collect()
            });
            if ends.as_ref() == Some(&want) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "not shipped: {ends:?} vs {want:?}\n{}",
                daemon.logs()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        daemon.terminate().unwrap();
        s.expected = dump(&s.source.url());
        assert!(s.expected.len() > 100, "{} keys", s.expected.len());
        s
    }
}

fn dump(url: &str) -> Keyspace {
    keyspace::dump(&mut aofvault_tests::connect(url).unwrap(), &[0]).unwrap()
}

/// Writes `n` small keys in pipelines of 10,000.
fn fill(conn: &mut redis::Connection, n: u64) {
    for chunk in 0..n.div_ceil(10_000) {
        let mut p = redis::pipe();
        for i in chunk * 10_000..((chunk + 1) * 10_000).min(n) {
            p.cmd("SET").arg(format!("old:{i}")).arg(i).ignore();
        }
        p.query::<()>(conn).unwrap();
    }
}

/// A 4-shard kevy that held 250,000 keys until a moment ago is empty: the restore is accepted
/// at once, without `--force`, and the result equals the source. Then a key written a moment
/// before the restore — one per round, on a different shard each time — makes the target
/// non-empty: refused with exit 7, the key alone still there.
#[test]
fn a_kevy_flushed_a_moment_ago_is_accepted_and_one_key_on_any_shard_is_refused() {
    let s = Shipped::kevy(0x7a4_6e70);
    let target = KevyServer::start(4).unwrap();
    let mut conn = target.conn().unwrap();
    fill(&mut conn, 250_000);
    let _: () = redis::cmd("FLUSHALL").query(&mut conn).unwrap();
    let out = s.cmd(&["restore", "--json", "--to", &target.url()]);
    assert!(
        out.success(),
        "a kevy flushed a moment ago was refused (exit {:?}): {}",
        out.code(),
        out.stderr
    );
    keyspace::assert_same(&s.expected, &dump(&target.url()));
    // The key count reported after the restore is the target's (DBSIZE), not a stale one.
    let doc = out.json().unwrap();
    assert_eq!(
        doc["report"]["keyspace"][0],
        serde_json::json!(["db0", s.expected.len()]),
        "{doc}"
    );

    // kevy routes keys by hash: 16 names put a key on each of the 4 shards in all likelihood
    // (the test cannot tell which shard a name lands on), and every round must be refused.
    let _: () = redis::cmd("FLUSHALL").query(&mut conn).unwrap();
    for round in 0..16 {
        let key = format!("precious-{round}");
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(round)
            .query(&mut conn)
            .unwrap();
        let out = s.cmd(&["restore", "--to", &target.url()]);
        assert_eq!(
            out.code(),
            Some(7),
            "round {round}: a kevy holding {key} was not refused:\n{}\n{}",
            out.stdout,
            out.stderr
        );
        assert!(
            out.stderr.contains("db0: 1 keys"),
            "round {round}: the refusal names the count: {}",
            out.stderr
        );
        let now = dump(&target.url());
        assert_eq!(now.len(), 1, "round {round}: the target was written into");
        let _: () = redis::cmd("DEL").arg(&key).query(&mut conn).unwrap();
    }
}

/// The same held a moment after the restore was refused: a `FLUSHALL` right before a second
/// restore makes it go through (no waiting for kevy's tick).
#[test]
fn a_refused_kevy_is_accepted_right_after_flushall() {
    let s = Shipped::kevy(0x7a4_6e71);
    let target = KevyServer::start(4).unwrap();
    let mut conn = target.conn().unwrap();
    fill(&mut conn, 50_000);
    let refused = s.cmd(&["restore", "--to", &target.url()]);
    assert_eq!(refused.code(), Some(7), "{}", refused.stderr);
    assert!(
        refused.stderr.contains("db0: 50000 keys"),
        "{}",
        refused.stderr
    );
    let _: () = redis::cmd("FLUSHALL").query(&mut conn).unwrap();
    s.cmd(&["restore", "--to", &target.url()]).ok().unwrap();
    keyspace::assert_same(&s.expected, &dump(&target.url()));
}

/// Redis: a key in database 5 only (database 0 empty) makes the target non-empty.
#[test]
fn a_redis_holding_keys_in_another_database_only_is_refused() {
    let s = Shipped::kevy(0x7a4_6e72);
    let target = RedisServer::start().unwrap();
    let mut conn = target.conn().unwrap();
    let _: () = redis::cmd("SELECT").arg(5).query(&mut conn).unwrap();
    let _: () = redis::cmd("SET")
        .arg("in-db-5")
        .arg(1)
        .query(&mut conn)
        .unwrap();
    let out = s.cmd(&["restore", "--to", &target.url()]);
    assert_eq!(out.code(), Some(7), "{}", out.stderr);
    assert!(out.stderr.contains("db5: 1 keys"), "{}", out.stderr);
    assert!(
        dump(&target.url()).is_empty(),
        "database 0 was written into"
    );
    // Emptied, it is accepted, and the report counts what is there now.
    let _: () = redis::cmd("FLUSHALL").query(&mut conn).unwrap();
    let out = s.cmd(&["restore", "--json", "--to", &target.url()]);
    let out = out.ok().unwrap();
    keyspace::assert_same(&s.expected, &dump(&target.url()));
    let doc = out.json().unwrap();
    assert_eq!(
        doc["report"]["keyspace"],
        serde_json::json!([["db0", s.expected.len()]]),
        "{doc}"
    );
}
