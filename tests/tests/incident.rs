//! The incident tools end to end — `aofvault log`, `aofvault diff` and `restore --keys` — on the
//! drill of issue 16, against redis-server 7 (with `aof-timestamp-enabled`) and kevy with 4
//! shards: 1000 `user:` and 1000 `other:` keys are written and shipped; after a moment T,
//! `user:0..49` are deleted, `user:50..99` overwritten, one new `user:` key created and
//! `other:0` changed. `log 'user:*' --since T` must name exactly the 101 changed keys, `diff
//! --from T 'user:*'` must count 50 deleted, 50 changed and 1 created, and a selective restore
//! of `user:*` at T into the same live server must bring back the 100 old values and leave
//! `other:0` and the new key as they are — all from the repository alone.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aofvault_tests::{agent, KevyServer, RedisServer};
use redis::Commands;

/// A repository, a state dir and the agent shipping into it.
struct Backup {
    tmp: tempfile::TempDir,
    repo_url: String,
    agent: Option<agent::AgentProcess>,
}

impl Backup {
    fn new() -> Backup {
        let tmp = tempfile::tempdir().unwrap();
        let repo_url = format!("file://{}", tmp.path().join("repo").display());
        Backup {
            tmp,
            repo_url,
            agent: None,
        }
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

    fn cmd(&self, args: &[&str]) -> agent::Output {
        let mut all = self.global();
        all.extend(args.iter().map(|s| s.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        agent::run(&all, &[]).unwrap()
    }

    fn start(&mut self, source: &std::path::Path, server: &str) {
        let p = self.path("aofvault.toml");
        std::fs::write(&p, "[ship]\ninterval = \"200ms\"\n").unwrap();
        let mut args = self.global();
        args.extend([
            "--source".into(),
            source.display().to_string(),
            "--server".into(),
            server.into(),
            "--config".into(),
            p.display().to_string(),
            "run".into(),
        ]);
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut agent = agent::spawn(&a, &[]).unwrap();
        agent
            .wait_for_log("snapshot published", Duration::from_secs(60))
            .unwrap();
        self.agent = Some(agent);
    }

    /// Waits (≤ 60 s) until a latest restore covers every shard up to `sizes()`.
    fn wait_shipped(&self, sizes: &dyn Fn() -> Vec<u64>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.cmd(&["restore", "--dry-run", "--json", "--to-dir", "/nonexistent"]);
            let plan = out.ok().unwrap().json().unwrap();
            let ends: Vec<u64> = plan["plan"]["shards"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["end"].as_u64().unwrap())
                .collect();
            if ends == sizes() {
                return;
            }
            let log = self.agent.as_ref().map(|a| a.logs()).unwrap_or_default();
            assert!(Instant::now() < deadline, "not shipped: {ends:?}\n{log}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn sleep_until(t: f64) {
    let now = now_secs();
    if t > now {
        std::thread::sleep(Duration::from_secs_f64(t - now));
    }
}

/// Waits (≤ 60 s) until a file directly in `dir` holds `needle`: a server may write its AOF a
/// moment after it answered (Redis postpones the write while a background fsync runs).
fn wait_written(dir: &std::path::Path, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let found = || {
        std::fs::read_dir(dir).unwrap().flatten().any(|e| {
            std::fs::read(e.path())
                .is_ok_and(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
    };
    while !found() {
        assert!(
            Instant::now() < deadline,
            "{needle} never reached {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The drill on one server: `conn` writes, `sizes` says how long each shard's stream is,
/// `aof_dir` holds its AOF files.
fn drill(
    url: &str,
    conn: &mut redis::Connection,
    b: &Backup,
    sizes: &dyn Fn() -> Vec<u64>,
    aof_dir: &std::path::Path,
) {
    let mut pipe = redis::pipe();
    for i in 0..1000 {
        pipe.set(format!("user:{i}"), format!("old-{i}")).ignore();
        pipe.set(format!("other:{i}"), format!("other-{i}"))
            .ignore();
    }
    pipe.query::<()>(conn).unwrap();
    wait_written(aof_dir, "other-999");
    b.wait_shipped(sizes);
    // T: a whole second after everything above was stored, before anything below is written.
    let t = now_secs().floor() as i64 + 1;
    sleep_until(t as f64 + 1.5);
    let mut pipe = redis::pipe();
    for i in 0..50 {
        pipe.del(format!("user:{i}")).ignore();
    }
    for i in 50..100 {
        pipe.set(format!("user:{i}"), format!("new-{i}")).ignore();
    }
    pipe.set("user:new", "fresh").ignore();
    pipe.set("other:0", "changed").ignore();
    pipe.query::<()>(conn).unwrap();
    wait_written(aof_dir, "changed");
    b.wait_shipped(sizes);
    let t = t.to_string();

    // log: exactly the 101 changed keys, no other:.
    let out = b
        .cmd(&["log", "user:*", "--since", &t, "--json"])
        .ok()
        .unwrap();
    let mut keys = BTreeSet::new();
    for line in out.stdout.lines() {
        let ev: serde_json::Value = serde_json::from_str(line).unwrap();
        for k in ev["keys"].as_array().unwrap() {
            keys.insert(k.as_str().unwrap().to_string());
        }
        assert_eq!(ev["source"], "aof", "{line}");
    }
    let mut want: BTreeSet<String> = (0..100).map(|i| format!("user:{i}")).collect();
    want.insert("user:new".into());
    assert_eq!(keys, want, "log output:\n{}", out.stdout);
    let text = b.cmd(&["log", "user:1*", "--since", &t]).ok().unwrap();
    assert!(text.stdout.contains("DEL user:1"), "{}", text.stdout);
    assert!(!text.stdout.contains("other:"), "{}", text.stdout);

    // diff: 50 deleted, 50 changed, 1 created.
    let out = b
        .cmd(&["diff", "--from", &t, "user:*", "--json", "--values"])
        .ok()
        .unwrap();
    let summary: serde_json::Value =
        serde_json::from_str(out.stdout.lines().last().unwrap()).unwrap();
    let s = &summary["summary"];
    assert_eq!(
        (
            s["deleted"].as_u64(),
            s["changed"].as_u64(),
            s["created"].as_u64()
        ),
        (Some(50), Some(50), Some(1)),
        "{}",
        out.stdout
    );
    assert_eq!(s["keys_before"].as_u64(), Some(1000), "{summary}");
    let user0: serde_json::Value = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["key"] == "user:0")
        .unwrap();
    assert_eq!(
        (&user0["change"], &user0["before"]["value"], &user0["after"]),
        (&"deleted".into(), &"old-0".into(), &serde_json::Value::Null),
        "{user0}"
    );
    // Without a pattern other:0 is a change too.
    let out = b.cmd(&["diff", "--from", &t]).ok().unwrap();
    assert!(
        out.stdout.contains("1 created, 51 changed, 50 deleted") && out.stdout.contains("other:0"),
        "{}",
        out.stdout
    );

    // Selective restore: refused while matching keys exist, then with --replace.
    let refused = b.cmd(&["restore", "--keys", "user:*", "--at", &t, "--to", url]);
    assert_eq!(refused.code(), Some(7), "{}", refused.stderr);
    let dry = b
        .cmd(&[
            "restore",
            "--keys",
            "user:*",
            "--at",
            &t,
            "--to",
            url,
            "--dry-run",
            "--json",
        ])
        .ok()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(dry["keys"].as_u64(), Some(1000), "{dry}");
    assert_eq!(dry["left_alone"].as_array().unwrap().len(), 1, "{dry}");
    let v: Option<String> = conn.get("user:0").unwrap();
    assert_eq!(v, None, "a dry run writes nothing");
    let done = b
        .cmd(&[
            "restore",
            "--keys",
            "user:*",
            "--at",
            &t,
            "--to",
            url,
            "--replace",
        ])
        .ok()
        .unwrap();
    assert!(
        done.stdout.contains("user:new"),
        "the new key is listed: {}",
        done.stdout
    );
    for i in 0..1000 {
        let v: Option<String> = conn.get(format!("user:{i}")).unwrap();
        assert_eq!(v.as_deref(), Some(format!("old-{i}").as_str()), "user:{i}");
    }
    let v: String = conn.get("user:new").unwrap();
    assert_eq!(v, "fresh");
    let v: String = conn.get("other:0").unwrap();
    assert_eq!(v, "changed");
    let v: String = conn.get("other:1").unwrap();
    assert_eq!(v, "other-1");

    // --to-dir --keys: a Redis layout holding only the matching keys at T (across kinds for
    // kevy), which redis-server loads.
    let dir = b.path("keys-dir");
    b.cmd(&[
        "restore",
        "--keys",
        "user:*",
        "--at",
        &t,
        "--format",
        "redis",
        "--to-dir",
        dir.to_str().unwrap(),
    ])
    .ok()
    .unwrap();
    let copy = RedisServer::start_on_dir(&dir, &[]).unwrap();
    let mut cc = copy.conn().unwrap();
    let n: u64 = redis::cmd("DBSIZE").query(&mut cc).unwrap();
    assert_eq!(n, 1000, "only the user: keys, as at T");
    let v: String = cc.get("user:7").unwrap();
    assert_eq!(v, "old-7");
}

#[test]
fn incident_drill_on_redis_with_timestamps() {
    let redis = RedisServer::start_with(&["--aof-timestamp-enabled", "yes"]).unwrap();
    let mut conn = redis.conn().unwrap();
    let mut b = Backup::new();
    b.start(redis.dir(), &redis.url());
    let dir = redis.dir().join("appendonlydir");
    let sizes = move || {
        let manifest = std::fs::read_to_string(dir.join("appendonly.aof.manifest")).unwrap();
        let incr = manifest
            .lines()
            .rfind(|l| l.ends_with("type i"))
            .and_then(|l| l.split(' ').nth(1))
            .unwrap()
            .to_string();
        vec![std::fs::metadata(dir.join(incr)).unwrap().len()]
    };
    drill(
        &redis.url(),
        &mut conn,
        &b,
        &sizes,
        &redis.dir().join("appendonlydir"),
    );
    // Times come from the #TS: annotations.
    let out = b.cmd(&["log", "user:new", "--json"]).ok().unwrap();
    assert!(
        out.stdout.contains("\"time_source\":\"ts\""),
        "{}",
        out.stdout
    );
    // A compaction: the rewrite's base shows the key's state as a `base` event of the new
    // chain.
    let since = (now_secs().floor() as i64).to_string();
    redis::cmd("BGREWRITEAOF").query::<()>(&mut conn).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = b
            .cmd(&["log", "user:7", "--since", &since, "--json"])
            .ok()
            .unwrap();
        let events: Vec<serde_json::Value> = out
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if let Some(base) = events.iter().find(|e| e["source"] == "base") {
            assert_eq!(base["time_source"], "chain", "{base}");
            assert_eq!(
                base["command"][2], "old-7",
                "the state after the restore: {base}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no base event: {}", out.stdout);
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn incident_drill_on_kevy_4_shards_and_across_kinds() {
    let kevy = KevyServer::start(4).unwrap();
    let mut conn = kevy.conn().unwrap();
    let mut b = Backup::new();
    b.start(kevy.dir(), &kevy.url());
    let paths = kevy.aof_paths();
    let sizes = move || {
        paths
            .iter()
            .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .collect::<Vec<u64>>()
    };
    drill(&kevy.url(), &mut conn, &b, &sizes, kevy.dir());
    // kevy → Redis: the matching keys only, translated like a full restore.
    let redis = RedisServer::start().unwrap();
    let mut rc = redis.conn().unwrap();
    rc.set::<_, _, ()>("unrelated", "kept").unwrap();
    b.cmd(&["restore", "--keys", "user:1??", "--to", &redis.url()])
        .ok()
        .unwrap();
    let n: u64 = redis::cmd("DBSIZE").query(&mut rc).unwrap();
    assert_eq!(n, 101, "user:100..199 and the unrelated key");
    let v: String = rc.get("user:150").unwrap();
    assert_eq!(v, "old-150");
}

#[test]
fn databases_other_than_0_are_kept_apart_by_db() {
    let redis = RedisServer::start_with(&["--aof-timestamp-enabled", "yes"]).unwrap();
    let mut conn = redis.conn().unwrap();
    let mut b = Backup::new();
    b.start(redis.dir(), &redis.url());
    let dir = redis.dir().join("appendonlydir");
    let sizes = move || {
        let manifest = std::fs::read_to_string(dir.join("appendonly.aof.manifest")).unwrap();
        let incr = manifest
            .lines()
            .rfind(|l| l.ends_with("type i"))
            .and_then(|l| l.split(' ').nth(1))
            .unwrap()
            .to_string();
        vec![std::fs::metadata(dir.join(incr)).unwrap().len()]
    };
    let set = |conn: &mut redis::Connection, db: u32, k: &str, v: &str| {
        redis::cmd("SELECT").arg(db).query::<()>(conn).unwrap();
        conn.set::<_, _, ()>(k, v).unwrap();
    };
    set(&mut conn, 0, "k1", "zero");
    set(&mut conn, 2, "k1", "two");
    set(&mut conn, 2, "k2", "two-b");
    wait_written(&redis.dir().join("appendonlydir"), "two-b");
    b.wait_shipped(&sizes);
    let t = now_secs().floor() as i64 + 1;
    sleep_until(t as f64 + 1.5);
    set(&mut conn, 0, "k1", "zero-changed");
    set(&mut conn, 2, "k1", "two-changed");
    wait_written(&redis.dir().join("appendonlydir"), "two-changed");
    b.wait_shipped(&sizes);
    let t = t.to_string();
    let out = b.cmd(&["log", "k*", "--db", "2", "--json"]).ok().unwrap();
    let dbs: BTreeSet<u64> = out
        .stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["db"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(dbs, BTreeSet::from([2]), "{}", out.stdout);
    assert_eq!(out.stdout.lines().count(), 3, "{}", out.stdout);
    b.cmd(&[
        "restore",
        "--keys",
        "k*",
        "--db",
        "2",
        "--at",
        &t,
        "--to",
        &redis.url(),
        "--replace",
    ])
    .ok()
    .unwrap();
    redis::cmd("SELECT").arg(2).query::<()>(&mut conn).unwrap();
    let v: String = conn.get("k1").unwrap();
    assert_eq!(v, "two", "db 2 is back as at T");
    redis::cmd("SELECT").arg(0).query::<()>(&mut conn).unwrap();
    let v: String = conn.get("k1").unwrap();
    assert_eq!(v, "zero-changed", "db 0 is untouched");
}
