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
    fn new(server_dir: &Path, url: &str, retention: &str) -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        let config = tmp.path().join("aofvault.toml");
        let instance = "prune-e2e";
        let text = format!(
            "[source]\ndir = {dir:?}\nurl = {url:?}\n\n[repository]\nurl = \"file://{repo}\"\ninstance = \"{instance}\"\n\n\
             [state]\ndir = {state:?}\n\n[retention]\n{retention}\n",
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

/// Asserts that every object the manifest names is in the repository.
fn assert_objects_exist(setup: &Setup, m: &Value) {
    for cut in m["shards"].as_array().unwrap() {
        let dir = setup.chain_dir(
            cut["shard"].as_u64().unwrap(),
            cut["chain"].as_str().unwrap(),
        );
        assert!(
            dir.join("chain.json").is_file(),
            "missing {}",
            dir.join("chain.json").display()
        );
        let named = cut["base"]
            .as_array()
            .unwrap()
            .iter()
            .chain(cut["segments"].as_array().unwrap());
        for obj in named {
            let p = dir.join(obj["object"].as_str().unwrap());
            assert!(
                p.is_file(),
                "the kept snapshot names {} but it is gone",
                p.display()
            );
        }
    }
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
