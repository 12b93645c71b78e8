//! `aofvault prune` end to end, with the real binary against real servers: several backups
//! separated by writes and `BGREWRITEAOF` leave several chains; `prune` with `keep_last = 1`
//! and `gc_grace = "0s"` deletes every other snapshot and every chain only they needed, and
//! nothing the kept snapshot names; the kept snapshot still restores into a fresh server that
//! equals the source. `--dry-run` deletes nothing, and a second prune finds nothing to do.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aofvault_tests::process::wait_until;
use aofvault_tests::{agent, keyspace, workload, KevyServer, RedisServer};
use serde_json::Value;

/// A repository, a state dir and a config file for one server.
struct Setup {
    _tmp: tempfile::TempDir,
    config: PathBuf,
    repo: PathBuf,
    instance: &'static str,
}

impl Setup {
    /// `extra` is appended to the config file (sections of its own).
    fn new(server_dir: &Path, url: &str, retention: &str, extra: &str) -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        let config = tmp.path().join("aofvault.toml");
        let instance = "prune-e2e";
        let text = format!(
            "[source]\ndir = {dir:?}\nurl = {url:?}\n\n[repository]\nurl = \"file://{repo}\"\ninstance = \"{instance}\"\n\n\
             [state]\ndir = {state:?}\n\n[retention]\n{retention}\n\n{extra}\n",
            dir = server_dir.display().to_string(),
            repo = repo.display(),
            state = tmp.path().join("state").display().to_string(),
        );
        std::fs::write(&config, text).unwrap();
        Setup {
            _tmp: tmp,
            config,
            repo,
            instance,
        }
    }

    fn run(&self, args: &[&str]) -> agent::Output {
        let mut all = vec!["--config", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        agent::run(&all, &[]).unwrap()
    }

    /// `aofvault backup --json`: the id of the new snapshot.
    fn backup(&self) -> String {
        let out = self.run(&["backup", "--json"]).ok().unwrap();
        out.json().unwrap()["id"].as_str().unwrap().to_string()
    }

    fn prune(&self, extra: &[&str]) -> Value {
        let mut args = vec!["prune", "--json"];
        args.extend_from_slice(extra);
        self.run(&args).ok().unwrap().json().unwrap()
    }

    fn instance_dir(&self) -> PathBuf {
        self.repo.join("instances").join(self.instance)
    }

    /// Every file of the repository, relative to it.
    fn files(&self) -> BTreeSet<String> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(root, &p, out);
                } else {
                    out.insert(p.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(&self.repo, &self.repo, &mut out);
        out
    }

    fn snapshot_ids(&self) -> BTreeSet<String> {
        std::fs::read_dir(self.instance_dir().join("snapshots"))
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .trim_end_matches(".json")
                    .to_string()
            })
            .collect()
    }

    fn manifest(&self, id: &str) -> Value {
        let text = std::fs::read(
            self.instance_dir()
                .join("snapshots")
                .join(format!("{id}.json")),
        )
        .unwrap();
        serde_json::from_slice(&text).unwrap()
    }

    fn chain_dir(&self, shard: u64, chain: &str) -> PathBuf {
        self.instance_dir()
            .join("shards")
            .join(format!("{shard:04}"))
            .join("chains")
            .join(chain)
    }

    /// (shard, chain) folders present in the repository.
    fn chain_folders(&self) -> BTreeSet<(u64, String)> {
        let mut out = BTreeSet::new();
        let shards = self.instance_dir().join("shards");
        for s in std::fs::read_dir(shards).unwrap() {
            let s = s.unwrap();
            let shard: u64 = s.file_name().to_string_lossy().parse().unwrap();
            let Ok(chains) = std::fs::read_dir(s.path().join("chains")) else {
                continue;
            };
            for c in chains {
                out.insert((shard, c.unwrap().file_name().to_string_lossy().to_string()));
            }
        }
        out
    }
}

/// (shard, chain) pairs a manifest names.
fn chains_of(m: &Value) -> BTreeSet<(u64, String)> {
    m["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["shard"].as_u64().unwrap(),
                c["chain"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The objects a manifest names that are missing from the repository.
fn missing_objects(setup: &Setup, m: &Value) -> Vec<PathBuf> {
    let mut missing = Vec::new();
    for cut in m["shards"].as_array().unwrap() {
        let dir = setup.chain_dir(
            cut["shard"].as_u64().unwrap(),
            cut["chain"].as_str().unwrap(),
        );
        let named = cut["base"]
            .as_array()
            .unwrap()
            .iter()
            .chain(cut["segments"].as_array().unwrap());
        let names = named
            .map(|o| o["object"].as_str().unwrap())
            .chain(["chain.json"]);
        missing.extend(names.map(|n| dir.join(n)).filter(|p| !p.is_file()));
    }
    missing
}

/// Asserts that every object the manifest names is in the repository.
fn assert_objects_exist(setup: &Setup, m: &Value) {
    let missing = missing_objects(setup, m);
    assert!(
        missing.is_empty(),
        "snapshot {} names objects that are gone: {missing:?}",
        m["id"]
    );
}

fn info_field(conn: &mut redis::Connection, field: &str) -> Option<String> {
    let info: String = redis::cmd("INFO").arg("persistence").query(conn).unwrap();
    info.lines().find_map(|l| {
        l.strip_prefix(&format!("{field}:"))
            .map(|v| v.trim().to_string())
    })
}

fn rewrite_and_wait(conn: &mut redis::Connection) {
    let _: redis::Value = redis::cmd("BGREWRITEAOF").query(conn).unwrap();
    wait_until(Duration::from_secs(60), "the AOF rewrite to finish", || {
        let busy = ["aof_rewrite_in_progress", "aof_rewrite_scheduled"]
            .iter()
            .any(|f| info_field(conn, f).is_some_and(|v| v != "0"));
        Ok(!busy)
    })
    .unwrap();
}

/// The checks after `prune` with keep_last = 1, shared by both servers. Returns the kept id.
fn prune_keeps_the_last_and_collects_the_rest(setup: &Setup, ids: &[String]) -> String {
    let newest = ids.last().unwrap().clone();
    let manifests: Vec<Value> = ids.iter().map(|id| setup.manifest(id)).collect();
    let kept_chains = chains_of(manifests.last().unwrap());
    let all_named: BTreeSet<(u64, String)> = manifests.iter().flat_map(chains_of).collect();
    let orphans: BTreeSet<(u64, String)> = all_named.difference(&kept_chains).cloned().collect();
    assert!(
        !orphans.is_empty(),
        "the rewrites should have left chains only older snapshots name: {all_named:?}"
    );

    // A dry run deletes nothing but says what it would.
    let before = setup.files();
    let dry = setup.prune(&["--dry-run"]);
    assert_eq!(setup.files(), before, "--dry-run changed the repository");
    let would = dry["deletions"].as_array().unwrap();
    assert!(!would.is_empty());
    assert!(
        would
            .iter()
            .all(|d| d["deleted"] == false && d["error"].is_null()),
        "{dry:#}"
    );
    assert_eq!(dry["summary"]["snapshots_deleted"], ids.len() - 1);
    // The text output names each would-be deletion with its reason.
    let text = setup.run(&["prune", "--dry-run"]).ok().unwrap().stdout;
    for d in would {
        let line = format!("would delete {} (", d["key"].as_str().unwrap());
        assert!(text.contains(&line), "{line} not in:\n{text}");
    }
    assert!(text.contains("not kept by the retention policy"), "{text}");
    assert!(
        text.contains("chain named by no snapshot that stays"),
        "{text}"
    );
    assert_eq!(setup.files(), before, "--dry-run changed the repository");

    let report = setup.prune(&[]);
    assert_eq!(report["summary"]["failures"], 0, "{report:#}");
    assert_eq!(
        report["summary"]["snapshots_deleted"],
        ids.len() - 1,
        "{report:#}"
    );
    let kept: Vec<&Value> = report["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["fate"] == "keep")
        .collect();
    assert_eq!(kept.len(), 1, "{report:#}");
    assert_eq!(kept[0]["id"], newest.as_str());
    assert!(
        kept[0]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "last"),
        "{report:#}"
    );
    // The same deletions the dry run announced, each with a reason, all done.
    let done = report["deletions"].as_array().unwrap();
    let keys = |v: &[Value]| {
        v.iter()
            .map(|d| d["key"].as_str().unwrap().to_string())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(keys(done), keys(would));
    assert!(
        done.iter()
            .all(|d| d["deleted"] == true && !d["reason"].as_str().unwrap().is_empty()),
        "{report:#}"
    );
    assert_eq!(report["summary"]["objects_deleted"], done.len());

    // What remains: exactly the kept snapshot and its chains, every object it names.
    assert_eq!(setup.snapshot_ids(), BTreeSet::from([newest.clone()]));
    assert_objects_exist(setup, &setup.manifest(&newest));
    assert_eq!(
        setup.chain_folders(),
        kept_chains,
        "only the kept snapshot's chains remain"
    );
    for (shard, chain) in &orphans {
        assert!(
            !setup.chain_dir(*shard, chain).exists(),
            "chain {shard}/{chain} survived"
        );
    }
    let deleted_bytes: u64 = done.iter().map(|d| d["size"].as_u64().unwrap()).sum();
    assert_eq!(report["summary"]["bytes_freed"], deleted_bytes);

    // Nothing left to do.
    let again = setup.prune(&[]);
    assert!(
        again["deletions"].as_array().unwrap().is_empty(),
        "{again:#}"
    );

    newest
}

/// `aofvault verify` of what remains.
fn verify_clean(setup: &Setup) {
    let out = setup.run(&["verify"]);
    assert!(
        out.success(),
        "verify after prune failed:\n{}\n{}",
        out.stdout,
        out.stderr
    );
}

#[test]
fn prune_on_redis_keeps_the_last_snapshot_and_it_restores() {
    let server = RedisServer::start().unwrap();
    let mut conn = server.conn().unwrap();
    let setup = Setup::new(
        server.dir(),
        &server.url(),
        "keep_last = 1\ngc_grace = \"0s\"",
        "",
    );
    let mut ids = Vec::new();
    workload::mixed(&mut conn, 1, 400, 60).unwrap();
    ids.push(setup.backup());
    for seed in [2, 3] {
        workload::mixed(&mut conn, seed, 400, 60).unwrap();
        rewrite_and_wait(&mut conn);
        ids.push(setup.backup());
    }
    workload::mixed(&mut conn, 4, 400, 60).unwrap();
    ids.push(setup.backup());
    let expected = keyspace::dump(&mut conn, &[0]).unwrap();

    let kept = prune_keeps_the_last_and_collects_the_rest(&setup, &ids);
    verify_clean(&setup);

    let target = tempfile::tempdir().unwrap();
    let dir = target.path().join("restored");
    setup
        .run(&[
            "restore",
            "--snapshot",
            &kept,
            "--to-dir",
            dir.to_str().unwrap(),
        ])
        .ok()
        .unwrap();
    let restored = RedisServer::start_on_dir(&dir, &[]).unwrap();
    let actual = keyspace::dump(&mut restored.conn().unwrap(), &[0]).unwrap();
    keyspace::assert_same(&expected, &actual);
}

#[test]
fn prune_on_kevy_collects_old_chains_of_every_shard() {
    let server = KevyServer::start(4).unwrap();
    let mut conn = server.conn().unwrap();
    let setup = Setup::new(
        server.dir(),
        &server.url(),
        "keep_last = 1\ngc_grace = \"0s\"",
        "",
    );
    let mut ids = Vec::new();
    workload::mixed(&mut conn, 11, 600, 80).unwrap();
    server.wait_aof_flushed().unwrap();
    ids.push(setup.backup());
    workload::mixed(&mut conn, 12, 600, 80).unwrap();
    rewrite_and_wait(&mut conn);
    server.wait_aof_flushed().unwrap();
    ids.push(setup.backup());
    workload::mixed(&mut conn, 13, 600, 80).unwrap();
    server.wait_aof_flushed().unwrap();
    ids.push(setup.backup());
    let expected = keyspace::dump(&mut conn, &[0]).unwrap();

    let kept = prune_keeps_the_last_and_collects_the_rest(&setup, &ids);
    assert_eq!(chains_of(&setup.manifest(&kept)).len(), 4);
    verify_clean(&setup);

    let target = tempfile::tempdir().unwrap();
    let dir = target.path().join("restored");
    setup
        .run(&[
            "restore",
            "--snapshot",
            &kept,
            "--to-dir",
            dir.to_str().unwrap(),
        ])
        .ok()
        .unwrap();
    let restored = KevyServer::start_on_dir(&dir, 4).unwrap();
    let actual = keyspace::dump(&mut restored.conn().unwrap(), &[0]).unwrap();
    keyspace::assert_same(&expected, &actual);
}

/// Every manifest in the repository names only objects that exist. A manifest pruned between
/// reading it and looking at its objects is not a finding: prune deletes manifests before
/// chains, so a missing object counts only if its manifest is still there afterwards.
fn assert_every_manifest_whole(setup: &Setup) -> usize {
    let mut checked = 0;
    for id in setup.snapshot_ids() {
        let path = setup
            .instance_dir()
            .join("snapshots")
            .join(format!("{id}.json"));
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let m: Value = serde_json::from_slice(&bytes).unwrap();
        let missing = missing_objects(setup, &m);
        if !missing.is_empty() && path.exists() {
            panic!("snapshot {id} is still there but names objects that are gone: {missing:?}");
        }
        checked += 1;
    }
    checked
}

#[test]
fn prune_beside_a_running_agent_never_breaks_a_snapshot() {
    let server = RedisServer::start().unwrap();
    let mut conn = server.conn().unwrap();
    workload::mixed(&mut conn, 21, 300, 50).unwrap();
    // The daemon prunes on its own every second too, and publishes a snapshot every second.
    let setup = Setup::new(
        server.dir(),
        &server.url(),
        "keep_last = 1\ngc_grace = \"0s\"",
        "[schedule]\nsnapshot = \"every 1s\"\nprune = \"every 1s\"\n\n[ship]\ninterval = \"100ms\"\n\n\
         [compact]\nenabled = false\n",
    );
    let mut daemon =
        agent::spawn(&["--config", setup.config.to_str().unwrap(), "run"], &[]).unwrap();
    daemon
        .wait_for_log("snapshot published", Duration::from_secs(60))
        .unwrap();
    let writer = workload::background(server.url(), 22, 80);

    let started = std::time::Instant::now();
    let (mut rounds, mut chains_deleted, mut snapshots_deleted) = (0, 0, 0);
    while started.elapsed() < Duration::from_secs(15) || chains_deleted < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no chain was collected in 2 minutes"
        );
        if rounds % 4 == 1 {
            // A new chain per rewrite; "already in progress" is fine.
            let _: redis::RedisResult<redis::Value> = redis::cmd("BGREWRITEAOF").query(&mut conn);
        }
        let report = setup.prune(&[]);
        assert_eq!(report["summary"]["failures"], 0, "{report:#}");
        chains_deleted += report["summary"]["chains_deleted"].as_u64().unwrap();
        snapshots_deleted += report["summary"]["snapshots_deleted"].as_u64().unwrap();
        assert!(
            assert_every_manifest_whole(&setup) >= 1,
            "prune left no snapshot"
        );
        rounds += 1;
        std::thread::sleep(Duration::from_millis(150));
    }
    eprintln!("{rounds} prune rounds beside the agent: {chains_deleted} chains and {snapshots_deleted} snapshots collected");
    let written = writer.stop();
    assert!(written > 100, "the writer wrote only {written} commands");
    assert!(snapshots_deleted > 0);
    std::thread::sleep(Duration::from_secs(3));
    daemon.terminate().unwrap();
    let logs = daemon.logs();
    assert!(
        logs.contains("prune: "),
        "the scheduled prune never reported:\n{logs}"
    );
    for line in logs.lines().filter(|l| l.contains("scheduled job failed")) {
        assert!(
            !line.contains("prune"),
            "the scheduled prune failed: {line}"
        );
    }

    // The agent is stopped: one more snapshot of everything, prune, verify, restore.
    let id = setup.backup();
    let expected = keyspace::dump(&mut conn, &[0]).unwrap();
    let report = setup.prune(&[]);
    assert_eq!(report["summary"]["failures"], 0, "{report:#}");
    assert_eq!(setup.snapshot_ids(), BTreeSet::from([id.clone()]));
    assert_every_manifest_whole(&setup);
    verify_clean(&setup);
    let target = tempfile::tempdir().unwrap();
    let dir = target.path().join("restored");
    setup
        .run(&[
            "restore",
            "--snapshot",
            &id,
            "--to-dir",
            dir.to_str().unwrap(),
        ])
        .ok()
        .unwrap();
    let restored = RedisServer::start_on_dir(&dir, &[]).unwrap();
    let actual = keyspace::dump(&mut restored.conn().unwrap(), &[0]).unwrap();
    keyspace::assert_same(&expected, &actual);
}
