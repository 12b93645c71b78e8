//! `aofvault restore` end to end: real servers write, the real agent ships (`run`), the real
//! binary restores — to files a fresh server then starts on, or live into a running server —
//! and the restored keyspace is compared key by key with the source's (`keyspace::assert_same`:
//! types, values, TTL presence). Across kinds too (kevy → Redis, Redis → kevy), to a point in
//! time, from `file://` and from an S3 server.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aofvault_tests::keyspace::{self, Keyspace};
use aofvault_tests::{agent, shared_s3, workload, KevyServer, RedisServer};

/// A repository, a state dir and (once started) the agent shipping into it.
struct Backup {
    tmp: tempfile::TempDir,
    repo_url: String,
    env: Vec<(String, String)>,
    agent: Option<agent::AgentProcess>,
}

impl Backup {
    fn file() -> Backup {
        let tmp = tempfile::tempdir().unwrap();
        let repo_url = format!("file://{}", tmp.path().join("repo").display());
        Backup {
            tmp,
            repo_url,
            env: Vec::new(),
            agent: None,
        }
    }

    fn s3(prefix: &str) -> Backup {
        let s3 = shared_s3();
        let tmp = tempfile::tempdir().unwrap();
        let unique = format!("{prefix}-{}-{}", std::process::id(), rand::random::<u32>());
        Backup {
            tmp,
            repo_url: s3.repo_url(&unique),
            env: s3.env(),
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

    /// `aofvault <global> <args>`.
    fn cmd(&self, args: &[&str]) -> agent::Output {
        let mut all = self.global();
        all.extend(args.iter().map(|s| s.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        agent::run(&all, &self.env).unwrap()
    }

    /// Starts `aofvault run` on a server; `toml` is an optional config file.
    fn start(&mut self, source: &Path, server: &str, toml: Option<&str>) {
        let mut args = self.global();
        args.extend([
            "--source".into(),
            source.display().to_string(),
            "--server".into(),
            server.into(),
        ]);
        if let Some(text) = toml {
            let p = self.path("aofvault.toml");
            std::fs::write(&p, text).unwrap();
            args.extend(["--config".into(), p.display().to_string()]);
        }
        args.push("run".into());
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut agent = agent::spawn(&a, &self.env).unwrap();
        agent
            .wait_for_log("snapshot published", Duration::from_secs(60))
            .unwrap();
        self.agent = Some(agent);
    }

    /// The plan of a latest restore, as `restore --dry-run --json` prints it.
    fn plan(&self, extra: &[&str]) -> serde_json::Value {
        let mut args = vec!["restore", "--dry-run", "--json", "--to-dir", "/nonexistent"];
        args.extend_from_slice(extra);
        self.cmd(&args).ok().unwrap().json().unwrap()
    }

    /// Waits (≤ 60 s) until a latest restore covers every shard up to `sizes()` (the stream
    /// length of each shard on the server).
    fn wait_shipped(&self, sizes: impl Fn() -> Vec<u64>) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let plan = self.plan(&[]);
            let ends: Vec<u64> = plan["plan"]["shards"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["end"].as_u64().unwrap())
                .collect();
            let want = sizes();
            if ends == want {
                return;
            }
            let log = self.agent.as_ref().map(|a| a.logs()).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "not shipped: plan ends {ends:?}, files {want:?}\nagent log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

fn kevy_sizes(k: &KevyServer) -> impl Fn() -> Vec<u64> + '_ {
    move || {
        k.aof_paths()
            .iter()
            .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .collect()
    }
}

/// Size of the last incr file of a Redis ≥ 7 AOF dir (the chain's whole stream when it has one
/// incr file, as in these tests).
fn redis_sizes(r: &RedisServer) -> impl Fn() -> Vec<u64> + '_ {
    move || {
        let dir = r.dir().join("appendonlydir");
        let manifest = std::fs::read_to_string(dir.join("appendonly.aof.manifest")).unwrap();
        let incr = manifest
            .lines()
            .rfind(|l| l.ends_with("type i"))
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .to_string();
        vec![std::fs::metadata(dir.join(incr)).unwrap().len()]
    }
}

fn dump(url: &str) -> Keyspace {
    keyspace::dump(&mut aofvault_tests::connect(url).unwrap(), &[0]).unwrap()
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

/// Restores into a fresh kevy/Redis started on the restored dir and compares.
fn check_dir_kevy(b: &Backup, expected: &Keyspace, shards: u32, extra: &[&str]) {
    let dir = b.path(&format!("to-kevy-{}", rand::random::<u32>()));
    let mut args = vec!["restore", "--to-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    b.cmd(&args).ok().unwrap();
    assert!(dir.join("shards.meta").is_file());
    let server = KevyServer::start_on_dir(&dir, shards).unwrap();
    keyspace::assert_same(expected, &dump(&server.url()));
}

fn check_dir_redis(b: &Backup, expected: &Keyspace, extra: &[&str]) {
    let dir = b.path(&format!("to-redis-{}", rand::random::<u32>()));
    let mut args = vec!["restore", "--to-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    b.cmd(&args).ok().unwrap();
    assert!(dir.join("appendonlydir/appendonly.aof.manifest").is_file());
    let server = RedisServer::start_on_dir(&dir, &[]).unwrap();
    keyspace::assert_same(expected, &dump(&server.url()));
}

fn check_live(b: &Backup, expected: &Keyspace, url: &str) -> serde_json::Value {
    let out = b.cmd(&["restore", "--json", "--to", url]).ok().unwrap();
    keyspace::assert_same(expected, &dump(url));
    let doc = out.json().unwrap();
    assert_eq!(doc["report"]["errors"], 0, "{doc}");
    doc
}

#[test]
fn kevy_backup_restores_to_files_and_live_into_kevy_and_redis() {
    let kevy = KevyServer::start(4).unwrap();
    let mut conn = kevy.conn().unwrap();
    let mut b = Backup::file();
    workload::mixed(&mut conn, 1, 3000, 400).unwrap();
    b.start(kevy.dir(), &kevy.url(), None);
    // A BGSAVE starts new chains whose base is a KEVYSNAP snapshot; more writes follow it.
    let _: () = redis::cmd("BGSAVE").query(&mut conn).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    workload::mixed(&mut conn, 2, 3000, 400).unwrap();
    kevy.wait_aof_flushed().unwrap();
    b.wait_shipped(kevy_sizes(&kevy));
    let expected = dump(&kevy.url());
    assert!(
        expected.len() > 300,
        "the workload wrote {} keys",
        expected.len()
    );
    assert!(
        expected.0.values().any(|v| v.has_ttl),
        "some keys have a TTL"
    );
    let plan = b.plan(&[]);
    let with_base = plan["plan"]["shards"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| !s["base"].as_array().unwrap().is_empty())
        .count();
    assert_eq!(
        with_base, 4,
        "after BGSAVE every shard's chain has a KEVYSNAP base: {plan}"
    );

    check_dir_kevy(&b, &expected, 4, &[]);
    check_dir_redis(&b, &expected, &["--format", "redis"]);
    // Another shard count: every key routed to its new shard.
    check_dir_kevy(&b, &expected, 2, &["--shards", "2"]);
    let fresh_kevy = KevyServer::start(4).unwrap();
    check_live(&b, &expected, &fresh_kevy.url());
    let fresh_redis = RedisServer::start().unwrap();
    let doc = check_live(&b, &expected, &fresh_redis.url());
    assert_eq!(doc["report"]["target_kind"], "redis");
    assert_eq!(
        doc["report"]["keyspace"][0][1].as_u64().unwrap(),
        expected.len() as u64,
        "key count reported: {doc}"
    );
}

#[test]
fn redis_backup_restores_to_files_and_live_into_redis_and_kevy() {
    let redis = RedisServer::start().unwrap();
    let mut conn = redis.conn().unwrap();
    let mut b = Backup::file();
    b.start(redis.dir(), &redis.url(), None);
    workload::mixed(&mut conn, 3, 3000, 400).unwrap();
    // A rewrite makes a new chain whose base is an RDB holding the first phase.
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut conn).unwrap();
    wait_redis_rewrite(&mut conn);
    workload::mixed(&mut conn, 4, 3000, 400).unwrap();
    b.wait_shipped(redis_sizes(&redis));
    let expected = dump(&redis.url());
    assert!(expected.len() > 300);
    let plan = b.plan(&[]);
    assert_eq!(
        plan["plan"]["shards"][0]["base"][0]["format"], "rdb",
        "{plan}"
    );
    assert!(
        plan["plan"]["shards"][0]["base"][0]["size"]
            .as_u64()
            .unwrap()
            > 10_000,
        "the base holds phase 1: {plan}"
    );

    check_dir_redis(&b, &expected, &[]);
    check_dir_kevy(&b, &expected, 4, &["--format", "kevy", "--shards", "4"]);
    check_dir_kevy(&b, &expected, 1, &["--format", "kevy"]);
    let fresh_redis = RedisServer::start().unwrap();
    check_live(&b, &expected, &fresh_redis.url());
    let fresh_kevy = KevyServer::start(4).unwrap();
    let doc = check_live(&b, &expected, &fresh_kevy.url());
    assert_eq!(doc["report"]["target_kind"], "kevy");
}

#[test]
fn redis_databases_other_than_0_restore_to_redis_and_are_refused_by_kevy() {
    let redis = RedisServer::start().unwrap();
    let mut conn = redis.conn().unwrap();
    let mut b = Backup::file();
    workload::mixed(&mut conn, 5, 500, 100).unwrap();
    let _: () = redis::cmd("SELECT").arg(3).query(&mut conn).unwrap();
    let _: () = redis::cmd("SET")
        .arg("in-db-3")
        .arg("x")
        .query(&mut conn)
        .unwrap();
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut conn).unwrap();
    wait_redis_rewrite(&mut conn);
    let _: () = redis::cmd("SET")
        .arg("later-in-db-3")
        .arg("y")
        .query(&mut conn)
        .unwrap();
    b.start(redis.dir(), &redis.url(), None);
    b.wait_shipped(redis_sizes(&redis));
    let expected = keyspace::dump(&mut conn, &[0, 3]).unwrap();
    let target = RedisServer::start().unwrap();
    b.cmd(&["restore", "--to", &target.url()]).ok().unwrap();
    keyspace::assert_same(
        &expected,
        &keyspace::dump(&mut target.conn().unwrap(), &[0, 3]).unwrap(),
    );
    let dir = b.path("kevy-refused");
    let out = b.cmd(&[
        "restore",
        "--to-dir",
        dir.to_str().unwrap(),
        "--format",
        "kevy",
    ]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("database 3"),
        "the error names the database: {}",
        out.stderr
    );
    assert!(
        !dir.join("shards.meta").exists(),
        "nothing that looks complete"
    );
}

/// Unix seconds now, as a float.
fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Sleeps until the wall clock reaches `t` (unix seconds).
fn sleep_until(t: f64) {
    let now = now_secs();
    if t > now {
        std::thread::sleep(Duration::from_secs_f64(t - now));
    }
}

#[test]
fn point_in_time_redis_is_cut_inside_a_segment_at_its_ts_annotations() {
    let redis = RedisServer::start_with(&["--aof-timestamp-enabled", "yes"]).unwrap();
    let mut conn = redis.conn().unwrap();
    let mut b = Backup::file();
    // A long ship interval puts phase A, the pause and phase B into one segment: only the
    // #TS: annotations inside it can tell them apart.
    b.start(
        redis.dir(),
        &redis.url(),
        Some("[ship]\ninterval = \"30s\"\n"),
    );
    workload::mixed(&mut conn, 6, 2000, 300).unwrap();
    let phase_a = dump(&redis.url());
    let t = now_secs().floor() as i64 + 2;
    sleep_until(t as f64 + 3.0);
    workload::mixed(&mut conn, 7, 2000, 300).unwrap();
    let phase_b = dump(&redis.url());
    assert_ne!(phase_a, phase_b, "phase B overwrites and deletes");
    b.agent.as_mut().unwrap().terminate().unwrap(); // ships what is pending on a clean stop
    let plan = b.plan(&["--at", &t.to_string()]);
    let segs = plan["plan"]["shards"][0]["segments"].as_array().unwrap();
    let last = segs.last().unwrap();
    assert!(
        last["take"].as_u64().unwrap()
            < last["end"].as_u64().unwrap() - last["start"].as_u64().unwrap(),
        "the segment holding T is cut inside: {plan}"
    );
    check_dir_redis(&b, &phase_a, &["--at", &t.to_string()]);
    let fresh = RedisServer::start().unwrap();
    b.cmd(&["restore", "--at", &t.to_string(), "--to", &fresh.url()])
        .ok()
        .unwrap();
    keyspace::assert_same(&phase_a, &dump(&fresh.url()));
    // Without --at: phase B.
    check_dir_redis(&b, &phase_b, &[]);
}

#[test]
fn point_in_time_kevy_follows_the_time_the_agent_saw_the_bytes() {
    let kevy = KevyServer::start(4).unwrap();
    let mut conn = kevy.conn().unwrap();
    let mut b = Backup::file();
    b.start(
        kevy.dir(),
        &kevy.url(),
        Some("[ship]\ninterval = \"200ms\"\n"),
    );
    workload::mixed(&mut conn, 8, 2000, 300).unwrap();
    kevy.wait_aof_flushed().unwrap();
    b.wait_shipped(kevy_sizes(&kevy));
    let phase_a = dump(&kevy.url());
    let t = now_secs().floor() as i64 + 2;
    sleep_until(t as f64 + 3.0);
    workload::mixed(&mut conn, 9, 2000, 300).unwrap();
    kevy.wait_aof_flushed().unwrap();
    b.wait_shipped(kevy_sizes(&kevy));
    let rfc = chrono_free_rfc3339(t);
    check_dir_kevy(&b, &phase_a, 4, &["--at", &rfc]);
    let fresh = KevyServer::start(4).unwrap();
    b.cmd(&["restore", "--at", &t.to_string(), "--to", &fresh.url()])
        .ok()
        .unwrap();
    keyspace::assert_same(&phase_a, &dump(&fresh.url()));
    // A time outside the window is refused, naming the window.
    let out = b.cmd(&[
        "restore",
        "--at",
        "1000000000",
        "--dry-run",
        "--to-dir",
        "/nonexistent",
    ]);
    assert_eq!(out.code(), Some(1));
    assert!(
        out.stderr.contains("outside the restorable window") && out.stderr.contains(" … "),
        "{}",
        out.stderr
    );
}

/// `t` (unix seconds) as RFC 3339 UTC, without pulling in a date crate.
fn chrono_free_rfc3339(t: i64) -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("@{t}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn s3_repository_round_trip_kevy_to_files_and_into_redis() {
    let kevy = KevyServer::start(4).unwrap();
    let mut conn = kevy.conn().unwrap();
    let mut b = Backup::s3("restore");
    b.start(kevy.dir(), &kevy.url(), None);
    workload::mixed(&mut conn, 10, 3000, 400).unwrap();
    kevy.wait_aof_flushed().unwrap();
    b.wait_shipped(kevy_sizes(&kevy));
    let expected = dump(&kevy.url());
    check_dir_kevy(&b, &expected, 4, &[]);
    let fresh = RedisServer::start().unwrap();
    check_live(&b, &expected, &fresh.url());
    let list = b.cmd(&["list", "--json"]).ok().unwrap().json().unwrap();
    assert_eq!(list["instances"][0]["instance"], "t", "{list}");
    assert!(
        list["instances"][0]["window"]["latest_ms"]
            .as_i64()
            .unwrap()
            >= list["instances"][0]["window"]["earliest_ms"]
                .as_i64()
                .unwrap()
    );
}

#[test]
fn s3_repository_round_trip_redis_into_kevy() {
    let redis = RedisServer::start().unwrap();
    let mut conn = redis.conn().unwrap();
    let mut b = Backup::s3("restore-redis");
    b.start(redis.dir(), &redis.url(), None);
    workload::mixed(&mut conn, 11, 3000, 400).unwrap();
    b.wait_shipped(redis_sizes(&redis));
    let expected = dump(&redis.url());
    check_dir_redis(&b, &expected, &[]);
    let fresh = KevyServer::start(4).unwrap();
    check_live(&b, &expected, &fresh.url());
}

#[test]
fn non_empty_targets_are_refused_and_force_moves_old_files_aside() {
    let kevy = KevyServer::start(2).unwrap();
    let mut conn = kevy.conn().unwrap();
    let mut b = Backup::file();
    workload::mixed(&mut conn, 12, 500, 100).unwrap();
    kevy.wait_aof_flushed().unwrap();
    b.start(kevy.dir(), &kevy.url(), None);
    b.wait_shipped(kevy_sizes(&kevy));
    let expected = dump(&kevy.url());
    let dir = b.path("occupied");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("precious.txt"), b"keep me").unwrap();
    let out = b.cmd(&["restore", "--to-dir", dir.to_str().unwrap()]);
    assert_eq!(out.code(), Some(7), "{}", out.stderr);
    assert!(out.stderr.contains("precious.txt"), "{}", out.stderr);
    assert!(!dir.join("shards.meta").exists());
    b.cmd(&["restore", "--to-dir", dir.to_str().unwrap(), "--force"])
        .ok()
        .unwrap();
    let moved: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("aofvault-moved-")
        })
        .collect();
    assert_eq!(moved.len(), 1);
    assert_eq!(
        std::fs::read(moved[0].join("precious.txt")).unwrap(),
        b"keep me"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(dir.join("aof-0.aof"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let server = KevyServer::start_on_dir(&dir, 2).unwrap();
    keyspace::assert_same(&expected, &dump(&server.url()));
    // Live: a server with keys is refused; --force writes into it.
    let busy = RedisServer::start().unwrap();
    let _: () = redis::cmd("SET")
        .arg("other")
        .arg("1")
        .query(&mut busy.conn().unwrap())
        .unwrap();
    let out = b.cmd(&["restore", "--to", &busy.url()]);
    assert_eq!(out.code(), Some(7), "{}", out.stderr);
    assert_eq!(dump(&busy.url()).len(), 1, "nothing was written");
    b.cmd(&["restore", "--to", &busy.url(), "--force"])
        .ok()
        .unwrap();
    assert_eq!(dump(&busy.url()).len(), expected.len() + 1);
    // Error replies do not stop the replay, and are reported with the commands that got them.
    let full = RedisServer::start_with(&["--maxmemory", "1mb"]).unwrap();
    let out = b.cmd(&["restore", "--to", &full.url()]);
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("OOM") && out.stderr.contains("shard "),
        "{}",
        out.stderr
    );
}
