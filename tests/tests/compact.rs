//! The growth trigger against real servers: once the AOF has doubled past its base (and is at
//! least `rewrite_min_size`), the agent sends BGREWRITEAOF — once per doubling, as the server's
//! own counters show — and the rewritten AOF becomes a new chain in the repository.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use aofvault_tests::{agent, workload, KevyServer, RedisServer};
use common::{chain_count, file_repo};

fn write_config(dir: &Path, source: &Path, server: &str) -> std::path::PathBuf {
    let path = dir.join("aofvault.toml");
    let toml = format!(
        r#"[source]
dir = "{}"
url = "{server}"
[repository]
url = "file://{}/repo"
instance = "c"
[state]
dir = "{}/state"
[compact]
rewrite_percentage = 100
rewrite_min_size = "64KiB"
cooldown = "2s"
check_interval = "1s"
"#,
        source.display(),
        dir.display(),
        dir.display()
    );
    std::fs::write(&path, toml).unwrap();
    path
}

fn info_counter(conn: &mut redis::Connection, name: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("persistence").query(conn).unwrap();
    info.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{name}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("INFO persistence has no {name}: {info}"))
}

/// Writes overwriting SETs of ~200-byte values on 100 keys until `size()` passes `bytes`.
fn grow(conn: &mut redis::Connection, seed: u64, bytes: u64, size: impl Fn() -> u64) {
    let value = "v".repeat(200);
    let mut i = seed * 1_000_000;
    while size() < bytes {
        // Small steps (~4.6 KB): the size is read between them, so the AOF passes `bytes` by
        // little — not by a step big enough to cross `rewrite_min_size` by itself.
        let mut p = redis::pipe();
        for _ in 0..20 {
            p.cmd("SET")
                .arg(format!("k{}", i % 100))
                .arg(&value)
                .ignore();
            i += 1;
        }
        p.query::<()>(conn).unwrap();
    }
}

fn wait_counter(conn: &mut redis::Connection, name: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while info_counter(conn, name) < want {
        assert!(Instant::now() < deadline, "{name} did not reach {want}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Once reached, it stays: no second rewrite for the same doubling.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        info_counter(conn, name),
        want,
        "{name}: exactly one rewrite per doubling"
    );
}

#[test]
fn redis_rewrite_is_triggered_once_per_doubling() {
    let redis = RedisServer::start_with(&["--auto-aof-rewrite-percentage", "0"]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), redis.dir(), &redis.url());
    let mut a = agent::spawn(&["--config", &cfg.display().to_string(), "run"], &[]).unwrap();
    a.wait_for_log("snapshot published", Duration::from_secs(30))
        .unwrap();
    let mut conn = redis.conn().unwrap();
    let size = || {
        let mut c = redis.conn().unwrap();
        info_counter(&mut c, "aof_current_size")
    };
    grow(&mut conn, 1, 40 * 1024, size);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        info_counter(&mut conn, "aof_rewrites"),
        0,
        "below rewrite_min_size: no rewrite\nagent log:\n{}",
        a.logs()
    );
    grow(&mut conn, 2, 70 * 1024, size);
    wait_counter(&mut conn, "aof_rewrites", 1);
    let base = info_counter(&mut conn, "aof_base_size");
    grow(&mut conn, 3, (2 * base).max(64 * 1024) + 1024, size);
    wait_counter(&mut conn, "aof_rewrites", 2);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let repo = file_repo(&tmp.path().join("repo"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while chain_count(&rt, &repo, "c", 0) < 3 {
        assert!(
            Instant::now() < deadline,
            "each rewrite starts a chain:\n{}",
            a.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(a.logs().contains("BGREWRITEAOF accepted"), "{}", a.logs());
    a.terminate().unwrap();
}

#[test]
fn kevy_rewrite_is_triggered_once_per_doubling_on_four_shards() {
    let kevy = KevyServer::start(4).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = write_config(tmp.path(), kevy.dir(), &kevy.url());
    let mut a = agent::spawn(&["--config", &cfg.display().to_string(), "run"], &[]).unwrap();
    a.wait_for_log("snapshot published", Duration::from_secs(30))
        .unwrap();
    let mut conn = kevy.conn().unwrap();
    let biggest = || {
        (0..4)
            .map(|i| {
                std::fs::metadata(kevy.dir().join(format!("aof-{i}.aof")))
                    .map(|m| m.len())
                    .unwrap_or(0)
            })
            .max()
            .unwrap_or(0)
    };
    grow(&mut conn, 1, 40 * 1024, biggest);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        info_counter(&mut conn, "aof_rewrites_total"),
        0,
        "below rewrite_min_size: no rewrite"
    );
    grow(&mut conn, 2, 80 * 1024, biggest);
    wait_counter(&mut conn, "aof_rewrites_total", 1);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let repo = file_repo(&tmp.path().join("repo"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while (0..4).any(|s| chain_count(&rt, &repo, "c", s) < 2) {
        assert!(
            Instant::now() < deadline,
            "the rewrite starts a chain on every shard:\n{}",
            a.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    grow(&mut conn, 3, 80 * 1024, biggest);
    wait_counter(&mut conn, "aof_rewrites_total", 2);
    a.terminate().unwrap();
    let _ = workload::key_name(0);
}
