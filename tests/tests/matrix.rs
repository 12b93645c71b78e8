//! The compatibility matrix (docs/COMPATIBILITY.md): one test body run on every server kind
//! and version the tests can start — redis 7.0, redis 6.2 (single-file AOF), redis 8.0.2 (with
//! hash field expiration in the workload), valkey 8.1.1, kevy 1.19 (4 shards).
//!
//! Per source flavor, against the real agent and real servers:
//! 1. **ship**: a mixed workload is shipped until a latest restore reaches the files' ends;
//! 2. **compaction trigger**: the AOF grows past `[compact]`'s threshold; the agent sends
//!    `BGREWRITEAOF` and the rewritten file (an RDB base on Redis/Valkey) becomes a new chain;
//! 3. **drift check**: `verify --against` the source finds no drift (the scratch server is
//!    redis-server 7.0 or kevy: a newer backup is converted for it);
//! 4. **restore to files** in the source's own layout, loaded by the source's own server;
//! 5. **PITR**: the state before a pause, to files;
//! 6. **cross restores** into every other flavor, live (`--to`) and to files
//!    (`--to-dir --for <server>`), each compared key by key with the source.
//!
//! With redis 8.0.2 as the source, the hash field TTLs are compared too: a target with field
//! expiration keeps each one (same absolute time); a target without must report exactly the
//! fields that hold a TTL on the source — no error reply, no silent loss.

#![allow(clippy::unwrap_used)]

mod backup_helper;

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aofvault_tests::keyspace::{self, Keyspace};
use aofvault_tests::{field_ttl, workload, AnyServer, Flavor};
use backup_helper::{dump, Backup};

/// The agent: ship often, rewrite once the AOF doubled past 256 KiB (more than phase A writes,
/// so the rewrite comes from the growth the test makes), settle the drift check fast.
const CONFIG: &str = r#"
[ship]
interval = "200ms"
[compact]
rewrite_percentage = 100
rewrite_min_size = "256KiB"
cooldown = "600s"
check_interval = "1s"
[drift]
settle = "3s"
"#;

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Ships what the source wrote, and waits until a latest restore covers it.
fn shipped(b: &Backup, source: &AnyServer) {
    source.wait_flushed().unwrap();
    b.wait_shipped(|| source.stream_ends());
}

/// Overwrites 100 keys with 200-byte values until the agent asks for a rewrite, then waits
/// for the server to finish it.
fn grow_until_rewrite(b: &Backup, source: &AnyServer) {
    let mut conn = source.conn().unwrap();
    let value = "g".repeat(200);
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut i = 0u64;
    let logs = || b.agent.as_ref().unwrap().logs();
    let accepted = || logs().matches("BGREWRITEAOF accepted").count();
    assert_eq!(
        accepted(),
        0,
        "{}: a rewrite before the growth\n{}",
        source.flavor(),
        logs()
    );
    while accepted() == 0 {
        assert!(
            Instant::now() < deadline,
            "{}: no rewrite asked for\n{}",
            source.flavor(),
            logs()
        );
        let mut p = redis::pipe();
        for _ in 0..100 {
            p.cmd("SET")
                .arg(format!("grow:{}", i % 100))
                .arg(&value)
                .ignore();
            i += 1;
        }
        p.query::<()>(&mut conn).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info: String = redis::cmd("INFO")
            .arg("persistence")
            .query(&mut conn)
            .unwrap();
        let busy = info.lines().any(|l| {
            l.trim() == "aof_rewrite_in_progress:1" || l.trim() == "aof_rewrite_scheduled:1"
        });
        if !busy {
            break;
        }
        assert!(Instant::now() < deadline, "rewrite did not finish: {info}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The chain of each shard in a plan.
fn chains(plan: &serde_json::Value) -> Vec<String> {
    plan["plan"]["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["chain"].as_str().unwrap().to_string())
        .collect()
}

/// The field TTLs a restore reported lost, as (key, field).
fn reported(list: &serde_json::Value) -> BTreeSet<(String, String)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["key"].as_str().unwrap().to_string(),
                l["field"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The source's hash field TTLs, when it has them.
struct FieldTtls(std::collections::BTreeMap<(String, String), i64>);

impl FieldTtls {
    /// Checks a target: same TTLs where it has field expiration; else the report (`count`,
    /// `list` from the JSON) names exactly the source's fields with a TTL.
    fn check(
        &self,
        target: Flavor,
        url: &str,
        count: &serde_json::Value,
        list: &serde_json::Value,
        what: &str,
    ) {
        if target.hash_field_ttl() {
            let got = field_ttl::read(&mut aofvault_tests::connect(url).unwrap()).unwrap();
            assert_eq!(got, self.0, "{what}: the field TTLs differ");
            assert_eq!(count.as_u64().unwrap_or(0), 0, "{what}: nothing is lost");
        } else {
            let want: BTreeSet<(String, String)> = self.0.keys().cloned().collect();
            assert_eq!(
                count.as_u64().unwrap(),
                want.len() as u64,
                "{what}: lost count"
            );
            assert_eq!(reported(list), want, "{what}: the lost field TTLs named");
        }
    }
}

/// A live restore into a fresh `target`, compared with `expected`; returns the JSON report.
fn live_into(b: &Backup, target: Flavor, expected: &Keyspace, ttls: Option<&FieldTtls>) {
    let server = AnyServer::start(target).unwrap();
    let out = b.cmd(&["restore", "--json", "--to", &server.url()]);
    let what = format!("live into {target}");
    assert!(
        out.success(),
        "{what}: exit {:?}\n{}",
        out.code(),
        out.stderr
    );
    let doc = out.json().unwrap();
    assert_eq!(doc["report"]["errors"], 0, "{what}: {doc}");
    keyspace::assert_same(expected, &dump(&server.url()));
    if let Some(t) = ttls {
        let r = &doc["report"];
        t.check(
            target,
            &server.url(),
            &r["field_ttls_lost"],
            &r["lost_field_ttls"],
            &what,
        );
        if !target.hash_field_ttl() {
            assert!(
                out.stderr.contains("hash field TTL lost: db0 key \"hfe:"),
                "{what}: a warning names key and field: {}",
                out.stderr
            );
        }
    }
}

/// Whether `target` cannot load `source`'s own files: an RDB base newer than it reads (Redis
/// 7.0 ≤ 10, Redis 6.2 ≤ 9, Valkey 8.1 ≤ 11), field TTL commands it does not know, or a layout
/// it predates — so `--for` must convert.
fn must_convert(source: Flavor, target: Flavor) -> bool {
    use Flavor::*;
    matches!(
        (source, target),
        (Redis80, Redis70 | Redis62 | Valkey81)
            | (Valkey81, Redis70 | Redis62)
            | (Redis70, Redis62)
    )
}

/// A restore to files for `target` (`--for`), loaded by a server of that flavor.
fn files_for(
    b: &Backup,
    source: Flavor,
    target: Flavor,
    expected: &Keyspace,
    ttls: Option<&FieldTtls>,
) {
    let dir = b.path(&format!("for-{}-{}", target.name(), rand::random::<u32>()));
    let mut args = vec![
        "restore",
        "--json",
        "--to-dir",
        dir.to_str().unwrap(),
        "--for",
        target.for_spec(),
    ];
    if target.is_kevy() {
        args.extend(["--shards", "4"]);
    }
    let out = b.cmd(&args);
    let what = format!("files for {target}");
    assert!(
        out.success(),
        "{what}: exit {:?}\n{}",
        out.code(),
        out.stderr
    );
    let doc = out.json().unwrap();
    if !source.is_kevy() && !target.is_kevy() {
        assert_eq!(
            doc["converted"].is_string(),
            must_convert(source, target),
            "{what}: converted for the older server exactly when it cannot load the files: {doc}"
        );
    }
    let server = AnyServer::start_on_dir(target, &dir).unwrap();
    keyspace::assert_same(expected, &dump(&server.url()));
    if let Some(t) = ttls {
        t.check(
            target,
            &server.url(),
            &doc["field_ttls_lost"],
            &doc["lost_field_ttls"],
            &what,
        );
        if !target.hash_field_ttl() {
            assert!(
                out.stderr.contains("hash field TTL lost: db0 key \"hfe:"),
                "{what}: a warning names key and field: {}",
                out.stderr
            );
        }
    }
}

/// The whole matrix row for `source_flavor` (see the module docs).
fn row(source_flavor: Flavor, seed: u64) {
    let source = AnyServer::start(source_flavor).unwrap();
    let mut conn = source.conn().unwrap();
    let mut b = Backup::file();
    let cfg = b.path("aofvault.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    b.start_with(source.dir(), &source.url(), Some(&cfg));
    let hfe = source_flavor.hash_field_ttl();
    let started = Instant::now();
    let step = |what: &str| {
        eprintln!(
            "{source_flavor}: {what} at {:.1}s",
            started.elapsed().as_secs_f64()
        )
    };

    // Phase A, shipped; then a pause that a point in time falls into.
    workload::mixed(&mut conn, seed, 1500, 300).unwrap();
    if hfe {
        field_ttl::write(&mut conn, seed, 600, 40).unwrap();
    }
    shipped(&b, &source);
    let phase_a = dump(&source.url());
    let chains_a = chains(&b.plan());
    step("phase A shipped");
    let t = now_secs().floor() as i64 + 2;
    let wake = t as f64 + 2.5;
    std::thread::sleep(Duration::from_secs_f64((wake - now_secs()).max(0.0)));

    // Phase B: growth past the threshold makes the agent compact; more writes after.
    grow_until_rewrite(&b, &source);
    step("rewritten");
    workload::mixed(&mut conn, seed + 1, 1500, 300).unwrap();
    if hfe {
        field_ttl::write(&mut conn, seed + 1, 600, 40).unwrap();
    }
    shipped(&b, &source);
    let expected = dump(&source.url());
    assert!(expected.len() > 200, "{} keys", expected.len());
    assert_ne!(phase_a, expected, "phase B changed the data");
    let plan = b.plan();
    let chains_b = chains(&plan);
    assert!(
        chains_a.iter().zip(&chains_b).all(|(a, b)| a != b),
        "the rewrite started a new chain on every shard: {chains_a:?} → {plan}"
    );
    if !source_flavor.is_kevy() {
        // kevy rewrites into commands; Redis and Valkey into an RDB base.
        assert_eq!(
            plan["plan"]["shards"][0]["base"][0]["format"], "rdb",
            "{plan}"
        );
    }
    let ttls = hfe.then(|| FieldTtls(field_ttl::read(&mut conn).unwrap()));
    if let Some(t) = &ttls {
        assert!(
            t.0.len() > 20,
            "the workload left field TTLs: {}",
            t.0.len()
        );
    }

    step("shipped, compacted");
    // Drift check: none.
    let out = b.cmd(&[
        "--config",
        cfg.to_str().unwrap(),
        "verify",
        "--against",
        &source.url(),
        "--json",
    ]);
    assert_eq!(
        out.code(),
        Some(0),
        "drift check on {source_flavor}:\n{}\n{}",
        out.stdout,
        out.stderr
    );

    step("drift check");
    // Own layout, own server; then the point in time.
    let own = b.path("own");
    b.cmd(&["restore", "--to-dir", own.to_str().unwrap()])
        .ok()
        .unwrap();
    let server = AnyServer::start_on_dir(source_flavor, &own).unwrap();
    keyspace::assert_same(&expected, &dump(&server.url()));
    if let Some(t) = &ttls {
        let got = field_ttl::read(&mut server.conn().unwrap()).unwrap();
        assert_eq!(got, t.0, "own files keep every field TTL");
    }
    drop(server);
    let at = b.path("at");
    b.cmd(&[
        "restore",
        "--at",
        &t.to_string(),
        "--to-dir",
        at.to_str().unwrap(),
    ])
    .ok()
    .unwrap();
    let server = AnyServer::start_on_dir(source_flavor, &at).unwrap();
    keyspace::assert_same(&phase_a, &dump(&server.url()));
    drop(server);

    step("own files, point in time");
    // Every other server, live and to files.
    for target in Flavor::ALL {
        live_into(&b, target, &expected, ttls.as_ref());
        if target != source_flavor {
            files_for(&b, source_flavor, target, &expected, ttls.as_ref());
        }
        step(&format!("into {target}"));
    }
}

macro_rules! matrix_rows {
    ($($name:ident: $flavor:expr, $seed:expr;)*) => {$(
        #[test]
        fn $name() {
            row($flavor, $seed);
        }
    )*};
}

matrix_rows! {
    redis_7_0: Flavor::Redis70, 0x700;
    redis_6_2: Flavor::Redis62, 0x620;
    redis_8_0: Flavor::Redis80, 0x800;
    valkey_8_1: Flavor::Valkey81, 0x810;
    kevy_1_19: Flavor::Kevy, 0x119;
}
