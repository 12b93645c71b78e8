//! Silent data-loss paths (issue 12), each proven end to end against a real server: the agent
//! runs as a daemon, the server does what it does in production, and a restore is compared
//! with the live server key by key.
//!
//! - A kevy `SAVE` truncates the AOF in place; when the same pipeline refills it past the
//!   agent's read position with identical bytes (`INCR counter` over and over), nothing about
//!   the file's size or content at the old offset says it was replaced.
//! - Two Redis 7 rewrites while the agent is behind (the store is down): the incr file the
//!   agent was reading is gone by the time the store is back.
//! - A repository holding overlapping segments (`[a,c)` beside `[a,b)` and `[b,c)`, as a retry
//!   after a lost reply leaves them): readers must follow the longest run, not see a gap.
//! - A kill that tore a frame which the restarted kevy's first bytes complete: the bytes parse
//!   as a whole command that never ran.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use aofvault::repo::{keys, Repo, RepoSpec, ShardId};
use aofvault_tests::keyspace::{self, Keyspace};
use aofvault_tests::proxy::Mode;
use aofvault_tests::torn::TornRanges;
use aofvault_tests::vault::{file_sizes, redis_stream_len, tail, Vault};
use aofvault_tests::{KevyServer, RedisServer};

fn dump(url: &str) -> Keyspace {
    keyspace::dump(&mut aofvault_tests::connect(url).unwrap(), &[0]).unwrap()
}

fn get_u64(url: &str, key: &str) -> Option<u64> {
    let mut c = aofvault_tests::connect(url).unwrap();
    redis::cmd("GET").arg(key).query(&mut c).unwrap()
}

/// Ships often, so that the tests see several segments and short waits.
const FAST_SHIP: &str = "[ship]\ninterval = \"200ms\"\npoll_interval = \"200ms\"\n";

#[test]
fn kevy_save_refilled_with_identical_bytes_loses_nothing() {
    let kevy = KevyServer::start(1).unwrap();
    let v = Vault::file().unwrap();
    let cfg = v.config(FAST_SHIP).unwrap();
    let mut a = v.run_agent(kevy.dir(), &kevy.url(), Some(&cfg)).unwrap();
    a.wait_for_log("snapshot published", Duration::from_secs(60))
        .unwrap();
    let mut conn = kevy.conn().unwrap();
    let mut p = redis::pipe();
    for _ in 0..3000 {
        p.cmd("INCR").arg("counter").ignore();
    }
    p.query::<()>(&mut conn).unwrap();
    kevy.wait_aof_flushed().unwrap();
    let sizes = || file_sizes(&kevy.aof_paths());
    v.wait_shipped(&sizes, &a, Duration::from_secs(60)).unwrap();
    let before = sizes()[0];

    // One pipeline: SAVE truncates the AOF to its header, then 6000 identical INCR frames
    // refill it past where the agent stopped reading.
    let mut p = redis::pipe();
    p.cmd("SAVE").ignore();
    for _ in 0..6000 {
        p.cmd("INCR").arg("counter").ignore();
    }
    p.query::<()>(&mut conn).unwrap();
    kevy.wait_aof_flushed().unwrap();
    let after = sizes()[0];
    assert!(
        after > before,
        "the refill must pass the old read position ({after} ≤ {before})"
    );
    assert_eq!(get_u64(&kevy.url(), "counter"), Some(9000));
    v.wait_shipped(&sizes, &a, Duration::from_secs(60)).unwrap();
    a.terminate().unwrap();

    let to = v.restore_dir("restored", &[]).unwrap();
    let copy = KevyServer::start_on_dir(&to, 1).unwrap();
    let restored = get_u64(&copy.url(), "counter");
    // What the server's own files hold: kevy started on a copy of them.
    let own_copy = v.path("own");
    std::fs::create_dir(&own_copy).unwrap();
    for e in std::fs::read_dir(kevy.dir()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), own_copy.join(e.file_name())).unwrap();
    }
    let own = get_u64(
        &KevyServer::start_on_dir(&own_copy, 1).unwrap().url(),
        "counter",
    );
    println!(
        "kevy SAVE + identical refill: AOF {before} → {after} bytes; server counter=9000, restored counter={restored:?}, kevy's own restart on its files: {own:?}"
    );
    if std::env::var_os("AOFVAULT_SHOW_LOG").is_some() {
        println!("{}", a.logs());
        let plan = v.cmd(&["restore", "--dry-run", "--json", "--to-dir", "/nonexistent"]);
        println!("{}", plan.unwrap().stdout);
        for e in std::fs::read_dir(&to).unwrap() {
            let e = e.unwrap();
            println!("{:?} {}", e.file_name(), e.metadata().unwrap().len());
        }
    }
    assert_eq!(
        restored,
        Some(9000),
        "the restore lost INCRs after the SAVE\nagent log tail:\n{}",
        tail(&a.logs(), 40)
    );
    keyspace::assert_same(&dump(&kevy.url()), &dump(&copy.url()));
}

/// `INFO persistence` says no rewrite is running or scheduled.
fn wait_rewrite_done(conn: &mut redis::Connection) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let info: String = redis::cmd("INFO").arg("persistence").query(conn).unwrap();
        if info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrite_scheduled:0") {
            return;
        }
        assert!(Instant::now() < deadline, "the rewrite did not end: {info}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Writes `n` SETs of 100-byte values named `{prefix}:{i}`.
fn write_keys(conn: &mut redis::Connection, prefix: &str, n: usize) {
    let value = "x".repeat(100);
    let mut p = redis::pipe();
    for i in 0..n {
        p.cmd("SET")
            .arg(format!("{prefix}:{i}"))
            .arg(&value)
            .ignore();
    }
    p.query::<()>(conn).unwrap();
}

#[test]
fn two_redis_rewrites_while_the_agent_is_behind_lose_nothing() {
    let redis = RedisServer::start_with(&["--auto-aof-rewrite-percentage", "0"]).unwrap();
    let mut conn = redis.conn().unwrap();
    write_keys(&mut conn, "early", 200);
    let v = Vault::s3("two-rewrites").unwrap();
    let proxy = v.proxy().unwrap();
    // Small segments: the agent reads at most one segment ahead of what is stored, so ~100 KB
    // written during the outage leave its read position deep inside the first incr file.
    let cfg = v
        .config(&format!("{FAST_SHIP}segment_max = \"4KiB\"\n"))
        .unwrap();
    let mut a = v.run_agent(redis.dir(), &redis.url(), Some(&cfg)).unwrap();
    a.wait_for_log("snapshot published", Duration::from_secs(60))
        .unwrap();
    let sizes = || vec![redis_stream_len(redis.dir())];
    v.wait_shipped(&sizes, &a, Duration::from_secs(60)).unwrap();

    // The store goes away; ~100 KB of writes pile up behind the agent.
    proxy.set_mode(Mode::Down);
    write_keys(&mut conn, "behind", 1000);
    // A slow first rewrite (8 ms per key, ~12 s): the agent, retrying, sees its new incr
    // file listed while it runs; writes go there meanwhile...
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("rdb-key-save-delay")
        .arg("8000")
        .query(&mut conn)
        .unwrap();
    let _: redis::Value = redis::cmd("BGREWRITEAOF").query(&mut conn).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    write_keys(&mut conn, "during", 300);
    wait_rewrite_done(&mut conn);
    // ... then a quick second one, and more writes on top.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("rdb-key-save-delay")
        .arg("0")
        .query(&mut conn)
        .unwrap();
    let _: redis::Value = redis::cmd("BGREWRITEAOF").query(&mut conn).unwrap();
    wait_rewrite_done(&mut conn);
    write_keys(&mut conn, "later", 300);
    let manifest = std::fs::read_to_string(
        redis
            .dir()
            .join("appendonlydir")
            .join("appendonly.aof.manifest"),
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    proxy.set_mode(Mode::Pass);
    let healed = Instant::now();

    // The agent catches up by itself (no restart): status shows no lag and a latest restore
    // reaches the file.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let s = v.status();
        let shards = s["shards"].as_array().cloned().unwrap_or_default();
        let caught_up = !shards.is_empty()
            && shards
                .iter()
                .all(|sh| sh["lag_bytes"] == 0 && sh["state"] == "following");
        if caught_up && v.plan_ends() == Some(sizes()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not catch up within 180 s of the store coming back\nmanifest:\n{manifest}\nstatus: {s}\nplan ends {:?}, file {:?}\nagent log tail:\n{}",
            v.plan_ends(),
            sizes(),
            tail(&a.logs(), 60)
        );
        assert!(a.is_running(), "the agent died:\n{}", tail(&a.logs(), 60));
        std::thread::sleep(Duration::from_millis(500));
    }
    println!(
        "two Redis rewrites behind an outage: caught up {:.1} s after the store came back",
        healed.elapsed().as_secs_f64()
    );
    a.terminate().unwrap();

    let expected = dump(&redis.url());
    let to = v.restore_dir("restored", &[]).unwrap();
    let copy = RedisServer::start_on_dir(&to, &[]).unwrap();
    let got = dump(&copy.url());
    for prefix in ["early", "behind", "during", "later"] {
        let key = format!("{prefix}:0");
        assert!(
            got.get(0, key.as_bytes()).is_some(),
            "the restore has no {key} ({} keys restored of {})",
            got.len(),
            expected.len()
        );
    }
    keyspace::assert_same(&expected, &got);
}

#[test]
fn overlapping_segments_restore_and_verify_clean() {
    let kevy = KevyServer::start(1).unwrap();
    let v = Vault::file().unwrap();
    let cfg = v.config(FAST_SHIP).unwrap();
    let mut a = v.run_agent(kevy.dir(), &kevy.url(), Some(&cfg)).unwrap();
    a.wait_for_log("snapshot published", Duration::from_secs(60))
        .unwrap();
    let sizes = || file_sizes(&kevy.aof_paths());
    let mut conn = kevy.conn().unwrap();
    // Batches shipped one by one: one segment (at least) each, past the published snapshot.
    for batch in 0..4 {
        aofvault_tests::workload::mixed(&mut conn, 40 + batch, 300, 200).unwrap();
        kevy.wait_aof_flushed().unwrap();
        v.wait_shipped(&sizes, &a, Duration::from_secs(60)).unwrap();
    }
    // A crash: no final snapshot, so the segments are a tail the readers list.
    a.kill9();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let repo = Repo::open(&RepoSpec::File(v.repo_dir().unwrap()), 3).unwrap();
    let shard = ShardId(0);
    let chain = rt
        .block_on(repo.chain_ids(v.instance(), shard))
        .unwrap()
        .pop()
        .unwrap();
    let segs = rt
        .block_on(repo.segments(v.instance(), shard, &chain))
        .unwrap();
    assert!(segs.len() >= 2, "need two segments, have {segs:?}");
    let (ab, bc) = (&segs[segs.len() - 2].0, &segs[segs.len() - 1].0);
    assert_eq!(ab.end, bc.start, "the last two segments are adjacent");
    let dir = keys::chain_dir(v.instance(), shard, &chain);
    let mut payload = Vec::new();
    for s in [ab, bc] {
        payload = rt
            .block_on(repo.download(
                &format!("{dir}{}", s.object),
                s.crc32c,
                Some(s.end - s.start),
                payload,
            ))
            .unwrap();
    }
    let ac = rt
        .block_on(repo.put_segment(
            v.instance(),
            shard,
            &chain,
            ab.start,
            &payload,
            (ab.first_seen_ms, bc.last_seen_ms),
        ))
        .unwrap();
    assert_eq!((ac.start, ac.end), (ab.start, bc.end));
    println!(
        "overlap: added [{:#x},{:#x}) beside [{:#x},{:#x}) and [{:#x},{:#x})",
        ac.start, ac.end, ab.start, ab.end, bc.start, bc.end
    );

    let expected = dump(&kevy.url());
    let check = |name: &str| {
        let to = v.restore_dir(name, &[]).unwrap();
        let copy = KevyServer::start_on_dir(&to, 1).unwrap();
        keyspace::assert_same(&expected, &dump(&copy.url()));
        let out = v.cmd(&["verify"]).unwrap();
        assert!(
            out.success(),
            "verify with overlapping segments: {:?}\n{}\n{}",
            out.code(),
            out.stdout,
            out.stderr
        );
    };
    check("restored-tail");

    // The agent resumes over the overlap, ships more and publishes a snapshot that cuts
    // across it.
    let mut a = v.run_agent(kevy.dir(), &kevy.url(), Some(&cfg)).unwrap();
    aofvault_tests::workload::mixed(&mut conn, 50, 300, 200).unwrap();
    kevy.wait_aof_flushed().unwrap();
    v.wait_shipped(&sizes, &a, Duration::from_secs(60)).unwrap();
    a.terminate().unwrap();
    let expected = dump(&kevy.url());
    let to = v.restore_dir("restored-again", &[]).unwrap();
    let copy = KevyServer::start_on_dir(&to, 1).unwrap();
    keyspace::assert_same(&expected, &dump(&copy.url()));
    let out = v.cmd(&["verify"]).unwrap();
    assert!(out.success(), "verify: {}\n{}", out.stdout, out.stderr);
}

/// A kill can tear a frame inside a bulk string whose missing bytes the restarted kevy's next
/// frame happens to supply: `SET torn <8 bytes>` cut after 2, then `*2\r\n$4\r\nINCR…` — its
/// first 8 bytes complete the value and its CRLF, so the bytes parse as one whole `SET` and
/// the invalid bytes show only at `INCR`. The agent must not ship that `SET` (it never ran) and
/// must go on shipping the INCRs without anyone's help; the restore equals kevy's files
/// without the torn bytes.
#[test]
fn a_torn_frame_completed_by_the_restarted_server_is_not_a_command() {
    let mut kevy = KevyServer::start(1).unwrap();
    let v = Vault::file().unwrap();
    let cfg = v.config(FAST_SHIP).unwrap();
    let mut a = v.run_agent(kevy.dir(), &kevy.url(), Some(&cfg)).unwrap();
    a.wait_for_log("snapshot published", Duration::from_secs(60))
        .unwrap();
    aofvault_tests::workload::mixed(&mut kevy.conn().unwrap(), 60, 500, 100).unwrap();
    kevy.wait_aof_flushed().unwrap();
    let paths = kevy.aof_paths();
    let sizes = || file_sizes(&paths);
    v.wait_shipped(&sizes, &a, Duration::from_secs(60)).unwrap();

    kevy.kill();
    let aof = kevy.aof_paths();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&aof[0])
            .unwrap();
        f.write_all(b"*3\r\n$3\r\nSET\r\n$4\r\ntorn\r\n$8\r\nab")
            .unwrap();
    }
    let mut torn = TornRanges::default();
    torn.after_kill(&aof).unwrap();
    assert_eq!(torn.count(), 1);
    let restarted_at = sizes()[0];
    let chain_before = v.status()["shards"][0]["chain"].clone();
    kevy.restart().unwrap();
    let mut conn = kevy.conn().unwrap();
    let mut p = redis::pipe();
    for _ in 0..200 {
        p.cmd("INCR").arg("counter").ignore();
    }
    p.query::<()>(&mut conn).unwrap();
    aofvault_tests::workload::mixed(&mut conn, 61, 300, 100).unwrap();
    kevy.wait_aof_flushed().unwrap();

    // Shipping goes on past the torn bytes, with nobody's help — in the same file, or in the
    // clean file of the rewrite the agent asks for once it has stepped over the torn bytes
    // (kevy's own next restart would drop what follows them).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = v.status();
        let shards = s["shards"].as_array().cloned().unwrap_or_default();
        if shards.len() == 1
            && shards[0]["state"] == "following"
            && shards[0]["lag_bytes"] == 0
            && (shards[0]["shipped_offset"].as_u64() >= Some(restarted_at)
                || shards[0]["chain"] != chain_before)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not shipping past the torn frame 60 s after the restart (file was {restarted_at} bytes)\nstatus: {s}\nagent log tail:\n{}",
            tail(&a.logs(), 30)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(
        a.logs().contains("torn by a crash")
            && a.logs().contains(&format!("from={}", restarted_at - 29)),
        "the agent stepped over the 29 torn bytes:\n{}",
        tail(&a.logs(), 30)
    );
    a.terminate().unwrap();
    let reference = v.path("reference");
    torn.reference_dir(kevy.dir(), 1, &reference).unwrap();
    let expected = dump(&KevyServer::start_on_dir(&reference, 1).unwrap().url());
    let to = v.restore_dir("restored", &[]).unwrap();
    let got = dump(&KevyServer::start_on_dir(&to, 1).unwrap().url());
    assert!(got.get(0, b"torn").is_none(), "the torn SET was restored");
    assert_eq!(get_u64(&kevy.url(), "counter"), Some(200));
    keyspace::assert_same(&expected, &got);
}
