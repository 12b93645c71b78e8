//! The server itself killed with `-9` under a write load, and nobody sends `BGREWRITEAOF`
//! (issue 12): a kill can leave a torn frame at the end of an AOF, and kevy 1.19 restarts
//! appending after it, so the agent must get past it on its own — not wait for a compaction
//! (the growth threshold here is never reached and the cooldown is a week).
//!
//! On a 4-shard kevy and on redis-server 7 (`aof-load-truncated yes`, the default) a thread
//! writes continuously while the server is killed and restarted on the same dir and port
//! (`AOFVAULT_SERVER_KILLS` times, 3 by default). After each restart the test measures the
//! time until every shard's `status --json` is `following` again and has shipped past the
//! point where the server restarted; the bound is a generous liveness limit (60 s; the issue
//! asks for 30 s), the real figure is printed. At the end the load stops, the agent catches up,
//! and a restore equals the live server key by key; `verify` is clean.
//!
//! A third test pins what kevy 1.19's own restart does with a torn frame (docs/COMPATIBILITY.md
//! "kevy restart after a crash: torn frame"). `scripts/soak.sh` runs more kills with a new seed.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aofvault_tests::keyspace::{self, Keyspace};
use aofvault_tests::vault::{file_sizes, redis_stream_len, tail, Vault};
use aofvault_tests::workload::{self, Rng};
use aofvault_tests::{agent, KevyServer, RedisServer};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The liveness bound after a restart (the target is 30 s).
const RECOVERY_LIMIT: Duration = Duration::from_secs(60);

/// Compaction never fires on growth, and not soon after one either: recovery must not wait
/// for it.
const NO_COMPACTION: &str = "[ship]\ninterval = \"500ms\"\n\n[compact]\nrewrite_percentage = 10000\n\
                             rewrite_min_size = \"1GiB\"\ncooldown = \"7d\"\n";

/// The server under test.
enum Server {
    Kevy(KevyServer),
    Redis(RedisServer),
}

impl Server {
    fn url(&self) -> String {
        match self {
            Server::Kevy(k) => k.url(),
            Server::Redis(r) => r.url(),
        }
    }

    fn dir(&self) -> PathBuf {
        match self {
            Server::Kevy(k) => k.dir().to_path_buf(),
            Server::Redis(r) => r.dir().to_path_buf(),
        }
    }

    fn name(&self) -> String {
        match self {
            Server::Kevy(k) => format!("kevy{}", k.shards()),
            Server::Redis(_) => "redis7".into(),
        }
    }

    /// Stream length per shard as the agent counts it: the AOF files (kevy), or the incr files
    /// of the Redis manifest.
    fn sizes(&self) -> Vec<u64> {
        match self {
            Server::Kevy(k) => file_sizes(&k.aof_paths()),
            Server::Redis(r) => vec![redis_stream_len(r.dir())],
        }
    }

    fn kill(&mut self) {
        match self {
            Server::Kevy(k) => k.kill(),
            Server::Redis(r) => r.kill(),
        }
    }

    fn restart(&mut self) {
        match self {
            Server::Kevy(k) => k.restart().unwrap(),
            Server::Redis(r) => r.restart().unwrap(),
        }
    }

    /// Waits until acknowledged writes are in the files (kevy buffers up to a second).
    fn settle(&self) {
        match self {
            Server::Kevy(k) => k.wait_aof_flushed().unwrap(),
            Server::Redis(_) => std::thread::sleep(Duration::from_millis(1500)),
        }
    }

    fn log(&self) -> String {
        match self {
            Server::Kevy(k) => k.log(),
            Server::Redis(r) => r.log(),
        }
    }

    fn restore_and_compare(&self, v: &Vault) -> Keyspace {
        let expected = dump(&self.url());
        let to = v.restore_dir("restored", &[]).unwrap();
        let got = match self {
            Server::Kevy(k) => dump(&KevyServer::start_on_dir(&to, k.shards()).unwrap().url()),
            Server::Redis(_) => dump(&RedisServer::start_on_dir(&to, &[]).unwrap().url()),
        };
        keyspace::assert_same(&expected, &got);
        expected
    }
}

fn dump(url: &str) -> Keyspace {
    keyspace::dump(&mut aofvault_tests::connect(url).unwrap(), &[0]).unwrap()
}

fn shards_of(status: &serde_json::Value) -> Vec<serde_json::Value> {
    status["shards"].as_array().cloned().unwrap_or_default()
}

/// Waits until every shard is `following`, without an error, and has shipped past `sizes`
/// (the stream lengths when the server came back); returns how long that took.
fn wait_recovered(
    v: &Vault,
    a: &mut agent::AgentProcess,
    server: &Server,
    sizes: &[u64],
) -> Duration {
    let start = Instant::now();
    loop {
        let s = v.status();
        let shards = shards_of(&s);
        let recovered = shards.len() == sizes.len()
            && shards.iter().zip(sizes).all(|(sh, size)| {
                sh["state"] == "following"
                    && sh["last_error"].is_null()
                    && sh["shipped_offset"].as_u64().unwrap_or(0) >= *size
            });
        if recovered {
            return start.elapsed();
        }
        assert!(
            a.is_running(),
            "the agent died:\n{}",
            tail(&a.logs(), 60)
        );
        assert!(
            start.elapsed() < RECOVERY_LIMIT,
            "{}: shards not following {RECOVERY_LIMIT:?} after the server restarted (files at restart {sizes:?})\nstatus: {s}\nagent log tail:\n{}\nserver log tail:\n{}",
            server.name(),
            tail(&a.logs(), 60),
            tail(&server.log(), 20)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Waits (≤ 120 s) until every shard is `following` with no lag, twice in a row.
fn wait_caught_up(v: &Vault, a: &agent::AgentProcess) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut good = 0;
    while good < 2 {
        let s = v.status();
        let shards = shards_of(&s);
        if !shards.is_empty()
            && shards
                .iter()
                .all(|sh| sh["state"] == "following" && sh["lag_bytes"] == 0)
        {
            good += 1;
        } else {
            good = 0;
        }
        assert!(
            Instant::now() < deadline,
            "not caught up after the load stopped: {s}\n{}",
            tail(&a.logs(), 60)
        );
        std::thread::sleep(Duration::from_millis(1200));
    }
}

fn kill_under_load(mut server: Server, seed: u64) {
    let kills = env_num("AOFVAULT_SERVER_KILLS", 3);
    let mut rng = Rng::new(seed);
    workload::mixed(&mut aofvault_tests::connect(&server.url()).unwrap(), seed, 2000, 500)
        .unwrap();
    let v = Vault::file().unwrap();
    let cfg = v.config(NO_COMPACTION).unwrap();
    let mut a = v
        .run_agent(&server.dir(), &server.url(), Some(&cfg))
        .unwrap();
    a.wait_for_log("snapshot published", Duration::from_secs(60))
        .unwrap();
    let load = workload::background(server.url(), seed ^ 1, 500);
    let mut times = Vec::new();
    for _ in 0..kills {
        std::thread::sleep(Duration::from_millis(1500 + rng.below(2500)));
        server.kill();
        std::thread::sleep(Duration::from_millis(rng.below(500)));
        server.restart();
        let sizes = server.sizes();
        let took = wait_recovered(&v, &mut a, &server, &sizes);
        println!(
            "{}: server killed -9 and restarted; every shard following again after {:.2} s",
            server.name(),
            took.as_secs_f64()
        );
        times.push(took);
    }
    let written = load.stop();
    server.settle();
    wait_caught_up(&v, &a);
    a.terminate().unwrap();
    let expected = server.restore_and_compare(&v);
    let out = v.cmd(&["verify"]).unwrap();
    assert!(out.success(), "verify: {}\n{}", out.stdout, out.stderr);
    let shown: Vec<String> = times
        .iter()
        .map(|t| format!("{:.2}", t.as_secs_f64()))
        .collect();
    println!(
        "SOAK-SUMMARY server-crash {} seed={seed:#x} kills={kills} writes={written} recovery_s=[{}] max_recovery_s={:.2} keys={} restore=equal verify=clean",
        server.name(),
        shown.join(","),
        times.iter().max().copied().unwrap_or_default().as_secs_f64(),
        expected.len()
    );
}

#[test]
fn kevy_killed_under_load_recovers_without_a_rewrite() {
    let seed = env_num("AOFVAULT_SEED", 0x5e4e_0001);
    kill_under_load(Server::Kevy(KevyServer::start(4).unwrap()), seed);
}

#[test]
fn redis_killed_under_load_recovers_without_a_rewrite() {
    let seed = env_num("AOFVAULT_SEED", 0x5e4e_0002);
    let redis = RedisServer::start_with(&["--aof-load-truncated", "yes"]).unwrap();
    kill_under_load(Server::Redis(redis), seed);
}

/// One `SET key value` frame as kevy writes it.
fn set_frame(key: &str, value: &str) -> Vec<u8> {
    format!(
        "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
        key.len(),
        value.len()
    )
    .into_bytes()
}

fn dbsize(url: &str) -> u64 {
    let mut c = aofvault_tests::connect(url).unwrap();
    redis::cmd("DBSIZE").query(&mut c).unwrap()
}

fn append(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

/// What kevy 1.19's own start-up does with an AOF holding a half-written frame followed by
/// whole frames (the state a kill leaves once kevy appended after it): it replays up to the
/// torn frame, drops the rest *in memory only*, and appends its new writes after the bytes it
/// dropped — so its next restart loses those too. Pinned here; documented in
/// docs/COMPATIBILITY.md.
#[test]
fn kevy_own_restart_drops_everything_after_a_torn_frame() {
    let mut kevy = KevyServer::start(1).unwrap();
    let mut conn = kevy.conn().unwrap();
    for i in 0..5 {
        let _: () = redis::cmd("SET")
            .arg(format!("before{i}"))
            .arg("v")
            .query(&mut conn)
            .unwrap();
    }
    drop(conn);
    kevy.stop();
    let aof = kevy.aof_paths()[0].clone();
    let clean_len = std::fs::metadata(&aof).unwrap().len();
    // A torn frame: the header and key of a SET, cut inside its value.
    let torn = set_frame("torn", "value");
    append(&aof, &torn[..torn.len() - 6]);
    for i in 0..10 {
        append(&aof, &set_frame(&format!("after{i}"), "v"));
    }
    let with_torn = std::fs::metadata(&aof).unwrap().len();
    kevy.restart().unwrap();
    let kept_first = dbsize(&kevy.url());
    assert!(
        kevy.log().contains("corrupt frame"),
        "kevy says it hit a corrupt frame:\n{}",
        kevy.log()
    );
    let mut conn = kevy.conn().unwrap();
    let _: () = redis::cmd("SET")
        .arg("written-after-restart")
        .arg("v")
        .query(&mut conn)
        .unwrap();
    drop(conn);
    kevy.stop();
    let grown = std::fs::metadata(&aof).unwrap().len();
    kevy.restart().unwrap();
    let kept_second = dbsize(&kevy.url());
    let mut conn = kevy.conn().unwrap();
    let survived: Option<String> = redis::cmd("GET")
        .arg("written-after-restart")
        .query(&mut conn)
        .unwrap();
    println!(
        "kevy torn frame: AOF {clean_len} bytes clean + torn frame + 10 whole frames = {with_torn}; \
         first restart kept {kept_first} keys (of 5 before + 10 after), file not truncated; \
         a write after it grew the file to {grown}; second restart kept {kept_second} keys, \
         the post-restart write survived: {}",
        survived.is_some()
    );
    assert_eq!(kept_first, 5, "kevy keeps the frames before the torn one only");
    assert!(grown > with_torn, "kevy appends after the bytes it dropped");
    assert_eq!(kept_second, 5);
    assert_eq!(survived, None, "kevy's own restart loses writes made after a crash");
}
