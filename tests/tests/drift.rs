//! `aofvault verify --against URL`: the live server compared with what a restore of the
//! repository's latest state gives (the real agent shipping, the real binary checking).
//!
//! - kevy 4 shards: an unchanged server has no drift (exit 0); after a cross-shard `RENAME` —
//!   which kevy 1.19 writes to no AOF — the check names the new key as missing from the backup
//!   and the old one as stale (exit 3, text and JSON, a warning log line).
//! - redis-server written to during the whole check: keys written meanwhile are re-checked
//!   once the repository caught up, or listed as changing; no drift is reported (exit 0).
//! - The check's load: the commands the server counted (`INFO stats`) are the ones the check
//!   says it sent, within the configured rate.
//! - `[schedule] drift_check` in the daemon: warning log lines naming the keys, and the
//!   `drift_keys` metric.

#![allow(clippy::unwrap_used)]

mod backup_helper;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use aofvault_tests::{workload, KevyServer, RedisServer};
use backup_helper::{dump, kevy_sizes, key_pair, redis_sizes, Backup};

/// `[drift] settle` short: an idle server ships nothing, so the re-check waits this long.
const TOML: &str = "[drift]\nsettle = \"3s\"\n";

fn verify(b: &Backup, url: &str, extra: &[&str]) -> aofvault_tests::agent::Output {
    let toml = b.path("drift.toml");
    std::fs::write(&toml, TOML).unwrap();
    let mut args = vec![
        "--config",
        toml.to_str().unwrap(),
        "verify",
        "--against",
        url,
    ];
    args.extend_from_slice(extra);
    b.cmd(&args)
}

fn stat(conn: &mut redis::Connection, name: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("stats").query(conn).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn kevy_cross_shard_rename_is_named_missing_and_stale_and_an_unchanged_server_has_no_drift() {
    let kevy = KevyServer::start(4).unwrap();
    let mut c = kevy.conn().unwrap();
    let mut b = Backup::file();
    b.start(kevy.dir(), &kevy.url());
    workload::mixed(&mut c, 7, 2000, 300).unwrap();
    let (src, dst) = key_pair("moved", 4, false);
    let _: () = redis::cmd("SET")
        .arg(&src)
        .arg("the value")
        .query(&mut c)
        .unwrap();
    kevy.wait_aof_flushed().unwrap();
    b.wait_shipped(kevy_sizes(&kevy));
    let keys = dump(&kevy.url()).len() as u64;

    let out = verify(&b, &kevy.url(), &["--json"]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    let doc = out.json().unwrap();
    assert_eq!(doc["divergences"].as_array().unwrap().len(), 0, "{doc}");
    assert_eq!(doc["compared"].as_u64().unwrap(), keys, "every key: {doc}");
    assert_eq!(doc["server_keys"]["db0"].as_u64().unwrap(), keys);
    assert_eq!(doc["backup_keys"]["db0"].as_u64().unwrap(), keys);
    assert_eq!(doc["mode"], "full");

    // Sampled: 50 random keys of each side, the backup's types still counted in full.
    let out = verify(&b, &kevy.url(), &["--json", "--sample", "50"]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    let doc = out.json().unwrap();
    assert_eq!(doc["mode"], "sample");
    let compared = doc["compared"].as_u64().unwrap();
    assert!((1..=100).contains(&compared), "{doc}");
    let typed: u64 = doc["backup_types"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(typed, keys, "{doc}");

    // kevy moves the value to another shard in memory and logs nothing.
    let _: () = redis::cmd("RENAME")
        .arg(&src)
        .arg(&dst)
        .query(&mut c)
        .unwrap();
    kevy.wait_aof_flushed().unwrap();
    let out = verify(&b, &kevy.url(), &["--json"]);
    assert_eq!(out.code(), Some(3), "{}\n{}", out.stdout, out.stderr);
    let doc = out.json().unwrap();
    let mut found: Vec<(String, String)> = doc["divergences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["key"].as_str().unwrap().to_string(),
                d["problem"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    found.sort();
    let mut want = vec![
        (dst.clone(), "missing".to_string()),
        (src.clone(), "stale".to_string()),
    ];
    want.sort();
    assert_eq!(found, want, "{doc}");
    assert!(
        out.stderr.contains("drift") && out.stderr.contains(&dst) && out.stderr.contains("WARN"),
        "a warning log line names the key: {}",
        out.stderr
    );

    let out = verify(&b, &kevy.url(), &[]);
    assert_eq!(out.code(), Some(3));
    assert!(
        out.stdout
            .contains(&format!("key \"{dst}\": in the server, MISSING"))
            && out
                .stdout
                .contains(&format!("key \"{src}\": STALE: in what a restore gives"))
            && out.stdout.contains("2 KEY(S) DIFFER"),
        "{}",
        out.stdout
    );
}

/// Writes until stopped, values never repeating: in turn `SET hot:{n % hot} n` (keys written
/// again and again) and `SET once:{n} n` (each key written once).
fn writer(url: String, hot: u64, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut conn = aofvault_tests::connect(&url).unwrap();
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let key = if n.is_multiple_of(2) {
                format!("hot:{}", n % hot)
            } else {
                format!("once:{n}")
            };
            let _: () = redis::cmd("SET").arg(key).arg(n).query(&mut conn).unwrap();
            n += 1;
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        n
    })
}

#[test]
fn redis_written_during_the_check_reports_no_drift_and_the_load_is_what_it_says() {
    let redis = RedisServer::start().unwrap();
    let mut c = redis.conn().unwrap();
    let mut b = Backup::file();
    b.start(redis.dir(), &redis.url());
    workload::mixed(&mut c, 11, 3000, 600).unwrap();
    b.wait_shipped(redis_sizes(&redis));

    // Quiet server: the commands the server counted are the ones the check sent, at most
    // `rate` per second.
    let before = stat(&mut c, "total_commands_processed");
    let out = verify(&b, &redis.url(), &["--json", "--rate", "2000"]);
    let after = stat(&mut c, "total_commands_processed");
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    let doc = out.json().unwrap();
    let sent = doc["server_commands"].as_u64().unwrap();
    let seconds = doc["seconds"].as_f64().unwrap();
    eprintln!(
        "quiet check: {sent} commands in {seconds:.2}s ({:.0}/s, limit 2000/s); the server counted {}",
        sent as f64 / seconds,
        after - before
    );
    assert!(
        after - before >= sent && after - before <= sent + 10,
        "server counted {} commands, the check says {sent}",
        after - before
    );
    assert!(sent as f64 <= 2000.0 * seconds + 2.0);

    // Writes during the whole check.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = writer(redis.url(), 40, stop.clone());
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = verify(&b, &redis.url(), &["--json", "--rate", "5000"]);
    stop.store(true, Ordering::SeqCst);
    let written = writer.join().unwrap();
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    let doc = out.json().unwrap();
    eprintln!(
        "under writes ({written} SETs): compared {}, re-checked {}, agreed {}, changing {}",
        doc["compared"],
        doc["rechecked"],
        doc["resolved"],
        doc["changing"].as_array().unwrap().len()
    );
    // KeyRing written once after the first restore agree with the second; keys written all the
    // time are listed as changing; none is drift.
    assert!(
        doc["resolved"].as_u64().unwrap() > 0 && !doc["changing"].as_array().unwrap().is_empty(),
        "{doc}"
    );
    assert_eq!(doc["divergences"].as_array().unwrap().len(), 0, "{doc}");
}

/// `GET /metrics` from the daemon.
fn metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    sock.read_to_string(&mut body).unwrap();
    body
}

#[test]
fn the_scheduled_drift_check_logs_the_keys_and_sets_the_metric() {
    let kevy = KevyServer::start(4).unwrap();
    let mut c = kevy.conn().unwrap();
    let mut b = Backup::file();
    let port = aofvault_tests::free_port();
    let toml = b.path("daemon.toml");
    std::fs::write(
        &toml,
        format!(
            "[metrics]\nlisten = \"127.0.0.1:{port}\"\n[schedule]\ndrift_check = \"every 3s\"\n[drift]\nsettle = \"2s\"\n"
        ),
    )
    .unwrap();
    let (src, dst) = key_pair("sched", 4, false);
    let _: () = redis::cmd("SET").arg(&src).arg("v").query(&mut c).unwrap();
    b.start_with(kevy.dir(), &kevy.url(), Some(&toml));
    kevy.wait_aof_flushed().unwrap();
    b.wait_shipped(kevy_sizes(&kevy));
    let _: () = redis::cmd("RENAME")
        .arg(&src)
        .arg(&dst)
        .query(&mut c)
        .unwrap();

    let agent = b.agent.as_mut().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let logs = agent.logs();
        if logs.contains(&format!("key={dst}")) && logs.contains(&format!("key={src}")) {
            assert!(
                logs.lines()
                    .any(|l| l.contains("WARN") && l.contains("drift") && l.contains(&dst)),
                "{logs}"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no drift logged for {src}/{dst}:\n{logs}"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let body = metrics(port);
        if body.lines().any(|l| l == "aofvault_drift_keys 2") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}
