//! Redis Cluster end to end (issue 14): a real 3-primary redis-server 7 cluster, one agent
//! beside each node with `--cluster prod`, a write load through a cluster client, 500 slots
//! resharded from one primary to another during the load; then `restore --cluster prod` into a
//! fresh 2-primary cluster, a fresh 4-primary cluster and a single plain server — each equal,
//! key by key, to the source's union of keys — `list --cluster prod` showing the common window,
//! and `--at T` (before the reshard) equal to the cluster as it was at T. A `FLUSHALL` on one
//! node empties only that node's keys in a merged restore, as it did in the cluster.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use aofvault_tests::agent::{self, AgentProcess, Output};
use aofvault_tests::cluster::{self, RedisCluster};
use aofvault_tests::keyspace;
use aofvault_tests::vault::{redis_stream_len, tail};
use aofvault_tests::RedisServer;

/// Quick shipping, so that waiting for the agents is short.
const FAST_SHIP: &str = "[ship]\ninterval = \"200ms\"\npoll_interval = \"200ms\"\n";
/// Distinct keys the load writes.
const KEYS: usize = 3_000;

/// One repository, shared by every node's agent.
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn url(&self) -> String {
        format!("file://{}", self.dir.path().join("repo").display())
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `aofvault --repo … <args>` to completion.
    fn cmd(&self, args: &[&str]) -> Result<Output> {
        let url = self.url();
        let state = self.path("reader-state").display().to_string();
        let mut all = vec!["--repo", url.as_str(), "--state-dir", state.as_str()];
        all.extend(args);
        agent::run(&all, &[])
    }

    /// The agent beside node `i` of `c`, shipping as instance `prod-<i>`.
    fn spawn_agent(&self, c: &RedisCluster, i: usize, cfg: &Path) -> Result<AgentProcess> {
        self.spawn_agent_as(c, i, cfg, Some(&format!("prod-{i}")))
    }

    /// The agent beside node `i` of `c`, as `instance` (or, without one, the instance the
    /// agent derives from its shard: `prod-<group>`).
    fn spawn_agent_as(
        &self,
        c: &RedisCluster,
        i: usize,
        cfg: &Path,
        instance: Option<&str>,
    ) -> Result<AgentProcess> {
        let node = &c.nodes[i];
        let (url, dir) = (self.url(), node.dir().display().to_string());
        let state = self.path(&format!("state-{i}")).display().to_string();
        let cfg = cfg.display().to_string();
        let node_url = node.url();
        let mut args = vec!["--config", &cfg, "--repo", &url, "--state-dir", &state];
        if let Some(name) = instance {
            args.extend(["--instance", name]);
        }
        args.extend([
            "--source",
            &dir,
            "--server",
            &node_url,
            "--cluster",
            "prod",
            "run",
        ]);
        agent::spawn(&args, &[])
    }

    /// The end offset of a latest restore of `instance` (its only shard).
    fn plan_end(&self, instance: &str) -> Option<u64> {
        let out = self
            .cmd(&[
                "--instance",
                instance,
                "restore",
                "--dry-run",
                "--json",
                "--to-dir",
                "/nonexistent",
            ])
            .ok()?;
        if !out.success() {
            return None;
        }
        out.json().ok()?["plan"]["shards"][0]["end"].as_u64()
    }

    /// Waits until every node's AOF is in the repository (node `i` as instance `prod-<i>`).
    fn wait_shipped(&self, c: &RedisCluster, agents: &[AgentProcess]) -> Result<()> {
        let pairs: Vec<(String, usize)> = (0..c.nodes.len())
            .map(|i| (format!("prod-{i}"), i))
            .collect();
        self.wait_shipped_as(c, &pairs, agents)
    }

    /// Waits until, for each `(instance, node)`, the node's AOF is in the instance, up to its
    /// last byte.
    fn wait_shipped_as(
        &self,
        c: &RedisCluster,
        pairs: &[(String, usize)],
        agents: &[AgentProcess],
    ) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let mut behind = Vec::new();
            for (instance, i) in pairs {
                let want = redis_stream_len(c.nodes[*i].dir());
                let got = self.plan_end(instance);
                if got != Some(want) {
                    behind.push(format!(
                        "{instance} (node {i}): files {want}, repository {got:?}"
                    ));
                }
            }
            if behind.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                let logs: Vec<String> = agents.iter().map(|a| tail(&a.logs(), 30)).collect();
                bail!(
                    "not shipped: {behind:?}\nagent logs:\n{}",
                    logs.join("\n---\n")
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// `restore --cluster prod <extra> --to URL`, which must succeed.
    fn restore_to(&self, url: &str, extra: &[&str]) -> Result<Output> {
        let mut args = vec!["--cluster", "prod", "restore", "--to", url];
        args.extend(extra);
        self.cmd(&args)?.ok()
    }
}

/// A 3-primary cluster, a repository, and an agent beside each node shipping as `prod-<i>`.
fn three_primaries_with_agents() -> Result<(RedisCluster, Repo, Vec<AgentProcess>)> {
    let src = RedisCluster::start(3, 0)?;
    let repo = Repo {
        dir: tempfile::tempdir()?,
    };
    let cfg = repo.path("aofvault.toml");
    std::fs::write(&cfg, FAST_SHIP)?;
    let mut agents = Vec::new();
    for i in 0..src.nodes.len() {
        agents.push(repo.spawn_agent(&src, i, &cfg)?);
    }
    Ok((src, repo, agents))
}

/// `CLUSTER SETSLOT slot <how> id` on `node`.
fn setslot(node: &RedisServer, slot: u16, how: &str, id: &str) -> Result<()> {
    redis::cmd("CLUSTER")
        .arg("SETSLOT")
        .arg(slot)
        .arg(how)
        .arg(id)
        .query::<()>(&mut node.conn()?)
        .with_context(|| format!("CLUSTER SETSLOT {slot} {how} {id}"))
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[test]
fn a_cluster_resharded_under_load_restores_into_any_shape() -> Result<()> {
    let started = Instant::now();
    let (src, repo, agents) = three_primaries_with_agents()?;
    eprintln!(
        "cluster and agents up: {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // Before the reshard: a load, then a quiet moment T the restore --at must reproduce.
    let mut client = src.client()?;
    cluster::load(&mut client, 1, 12_000, KEYS)?;
    repo.wait_shipped(&src, &agents)?;
    let at_t = src.dump()?;
    std::thread::sleep(Duration::from_millis(1500));
    let t = unix_now();
    std::thread::sleep(Duration::from_millis(1500));

    // 500 slots move from node 0 to node 1 while a writer keeps going.
    let slots_before = src.slot_count(1)?;
    let load = cluster::background_load(&src.url(), 2, KEYS, 200_000);
    aofvault_tests::wait_until(Duration::from_secs(30), "the load to start", || {
        Ok(load.written() > 500)
    })?;
    let during = load.written();
    src.reshard(0, 1, 500)?;
    let written_in_reshard = load.written() - during;
    aofvault_tests::wait_until(
        Duration::from_secs(30),
        "more writes after the reshard",
        || Ok(load.written() > during + written_in_reshard + 2_000),
    )?;
    let written = load.stop()?;
    assert_eq!(
        src.slot_count(1)?,
        slots_before + 500,
        "the reshard moved 500 slots"
    );
    assert!(
        written_in_reshard > 0,
        "the load wrote while the slots moved"
    );
    eprintln!(
        "reshard done under load ({written} commands, {written_in_reshard} during the reshard): {:.1}s",
        started.elapsed().as_secs_f64()
    );
    repo.wait_shipped(&src, &agents)?;
    let expected = src.dump()?;
    assert!(
        expected.len() > KEYS / 2,
        "the load wrote keys: {}",
        expected.len()
    );

    // list --cluster: three groups and a common window covering now.
    let listed = repo
        .cmd(&["--cluster", "prod", "list", "--json"])?
        .ok()?
        .json()?;
    let groups = listed["groups"].as_array().context("groups")?;
    assert_eq!(groups.len(), 3, "{listed}");
    let window = &listed["window"];
    let (earliest, latest) = (
        window["earliest_ms"].as_i64().context("a common window")?,
        window["latest_ms"].as_i64().context("a common window")?,
    );
    assert!(
        earliest <= (t * 1000.0) as i64 && (t * 1000.0) as i64 <= latest,
        "{listed}"
    );
    let text = repo.cmd(&["--cluster", "prod", "list"])?.ok()?.stdout;
    assert!(text.contains("common restorable window"), "{text}");
    let dry_run = || -> Result<serde_json::Value> {
        repo.cmd(&[
            "--cluster",
            "prod",
            "restore",
            "--dry-run",
            "--json",
            "--to",
            "redis://x",
        ])?
        .ok()?
        .json()
    };
    // The agents record the topology when their once-a-second look sees it change: the last
    // slots' move is in the record a look after the reshard ends.
    let recorded = aofvault_tests::wait_until(
        Duration::from_secs(30),
        "the whole reshard in the record",
        || Ok(dry_run()?["moved_slots"] == 500),
    );
    let plan = dry_run()?;
    assert!(recorded.is_ok(), "the reshard is in the record: {plan}");
    assert_eq!(plan["moved_slots"], 500, "the reshard is in the record");
    assert_eq!(plan["phases"].as_array().map(Vec::len), Some(2), "{plan}");

    // The latest state into a 2-primary cluster, a 4-primary cluster and one plain server.
    for primaries in [2, 4] {
        let target = RedisCluster::start(primaries, 0)?;
        let out = repo.restore_to(&target.url(), &[])?;
        eprintln!("into {primaries} primaries: {}", out.stdout.trim());
        keyspace::assert_same(&expected, &target.dump()?);
    }
    // A target resharding while it is restored into: one slot of the data half moved from
    // its owner A to B. A answers ASK for every key it lacks; the restore follows to B.
    let moving = RedisCluster::start(3, 0)?;
    let key = expected.0.keys().next().context("a key")?.1.clone();
    let slot = aofvault_formats::slot::key_slot(&key);
    let owner = (0..3)
        .find(|&i| moving.serves(i, slot).unwrap_or(false))
        .context("the slot's owner")?;
    let other = (owner + 1) % 3;
    let (a, b) = (moving.node_id(owner)?, moving.node_id(other)?);
    setslot(&moving.nodes[other], slot, "IMPORTING", &a)?;
    setslot(&moving.nodes[owner], slot, "MIGRATING", &b)?;
    let out = repo.restore_to(&moving.url(), &[])?;
    assert!(out.stderr.contains("MOVED/ASK"), "{}", out.stderr);
    for n in &moving.nodes {
        setslot(n, slot, "NODE", &b)?;
    }
    moving.wait_ok()?;
    keyspace::assert_same(&expected, &moving.dump()?);

    // One directory per group: each node's files at the latest moment.
    let dirs = repo.path("dirs");
    let dirs_s = dirs.display().to_string();
    repo.cmd(&["--cluster", "prod", "restore", "--to-dir", &dirs_s])?
        .ok()?;
    let slots: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dirs.join("cluster-slots.json"))?)?;
    let served: u64 = slots["groups"]
        .as_object()
        .context("groups")?
        .values()
        .flat_map(|g| g["slots"].as_array().cloned().unwrap_or_default())
        .map(|r| r[1].as_u64().unwrap_or(0) + 1 - r[0].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(served, 16384, "every slot has its group: {slots}");
    let mut union = keyspace::Keyspace::default();
    for entry in std::fs::read_dir(&dirs)? {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        let server = RedisServer::start_on_dir(&path, &[])?;
        union.0.extend(keyspace::dump(&mut server.conn()?, &[0])?.0);
    }
    keyspace::assert_same(&expected, &union);

    let single = RedisServer::start()?;
    let out = repo.restore_to(&single.url(), &[])?;
    eprintln!("into one server: {}", out.stdout.trim());
    keyspace::assert_same(&expected, &keyspace::dump(&mut single.conn()?, &[0])?);

    // --at T, before the reshard: the cluster as it was then.
    let before = RedisServer::start()?;
    let t_text = format!("{t:.3}");
    repo.restore_to(&before.url(), &["--at", &t_text])?;
    keyspace::assert_same(&at_t, &keyspace::dump(&mut before.conn()?, &[0])?);

    for mut a in agents {
        a.terminate()?;
    }
    eprintln!("whole test: {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

#[test]
fn a_single_server_backup_is_routed_into_a_cluster() -> Result<()> {
    let started = Instant::now();
    let source = RedisServer::start()?;
    let mut conn = source.conn()?;
    aofvault_tests::workload::mixed(&mut conn, 7, 5_000, 1_000)?;
    // A rename across slots is replayed as its effect; an SMOVE across slots cannot be sent.
    redis::cmd("SET")
        .arg("foo")
        .arg("1")
        .query::<()>(&mut conn)?;
    redis::cmd("RENAME")
        .arg("foo")
        .arg("bar")
        .query::<()>(&mut conn)?;
    redis::cmd("SADD")
        .arg("s1")
        .arg("m")
        .query::<()>(&mut conn)?;
    redis::cmd("SMOVE")
        .arg("s1")
        .arg("s2")
        .arg("m")
        .query::<()>(&mut conn)?;
    assert_ne!(
        aofvault_formats::slot::key_slot(b"foo"),
        aofvault_formats::slot::key_slot(b"bar")
    );
    assert_ne!(
        aofvault_formats::slot::key_slot(b"s1"),
        aofvault_formats::slot::key_slot(b"s2")
    );
    let repo = Repo {
        dir: tempfile::tempdir()?,
    };
    let (url, dir) = (repo.url(), source.dir().display().to_string());
    let state = repo.path("state").display().to_string();
    agent::run(
        &[
            "--repo",
            &url,
            "--state-dir",
            &state,
            "--instance",
            "single",
            "--source",
            &dir,
            "--server",
            &source.url(),
            "backup",
        ],
        &[],
    )?
    .ok()?;
    let target = RedisCluster::start(3, 0)?;
    let out = repo.cmd(&["--instance", "single", "restore", "--to", &target.url()])?;
    // The cross-slot SMOVE cannot be sent to a cluster: named, and the exit is still 0.
    assert!(out.success(), "{}", out.stderr);
    assert!(out.stderr.contains("several hash slots"), "{}", out.stderr);
    let mut expected = keyspace::dump(&mut conn, &[0])?;
    let mut got = target.dump()?;
    assert!(
        got.get(0, b"bar").is_some() && got.get(0, b"foo").is_none(),
        "RENAME's effect"
    );
    // What the left-out SMOVE did: s1 still holds m, s2 was never made.
    assert!(got.get(0, b"s1").is_some() && got.get(0, b"s2").is_none());
    got.0.remove(&(0, b"s1".to_vec()));
    expected.0.remove(&(0, b"s2".to_vec()));
    keyspace::assert_same(&expected, &got);
    eprintln!("whole test: {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

#[test]
fn a_cluster_failover_under_load_restores_equal() -> Result<()> {
    let started = Instant::now();
    let src = RedisCluster::start(3, 1)?;
    let repo = Repo {
        dir: tempfile::tempdir()?,
    };
    let cfg = repo.path("aofvault.toml");
    std::fs::write(&cfg, FAST_SHIP)?;
    // One replication group per shard: a primary's agent and its replica's share an instance,
    // which they derive themselves (no --instance): `prod-<the shard's first primary's id>`.
    let mut group_of = Vec::new();
    for i in 0..src.nodes.len() {
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(&mut src.nodes[i].conn()?)?;
        let me = nodes
            .lines()
            .find(|l| l.contains("myself"))
            .context("myself")?;
        let master = me.split(' ').nth(3).context("master field")?.to_string();
        let primary = if master == "-" {
            i
        } else {
            (0..3)
                .find(|&p| src.node_id(p).is_ok_and(|id| id == master))
                .context("the replica's primary")?
        };
        group_of.push(primary);
    }
    let mut agents = Vec::new();
    for i in 0..group_of.len() {
        agents.push(repo.spawn_agent_as(&src, i, &cfg, None)?);
    }
    let group = |g: usize| src.node_id(g).map(|id| format!("prod-{id}"));
    let mut client = src.client()?;
    cluster::load(&mut client, 3, 3_000, KEYS)?;

    // The replica of the first primary takes over (a manual CLUSTER FAILOVER) under load.
    let replica = (3..src.nodes.len())
        .find(|&i| group_of[i] == 0)
        .context("the first primary's replica")?;
    let load = cluster::background_load(&src.url(), 4, KEYS, 200_000);
    aofvault_tests::wait_until(Duration::from_secs(30), "the load to start", || {
        Ok(load.written() > 500)
    })?;
    // A manual failover gives up after 5 s when the replica cannot catch up meanwhile (a busy
    // machine): asked again, as an operator would.
    let mut promoted = false;
    for _ in 0..5 {
        redis::cmd("CLUSTER")
            .arg("FAILOVER")
            .query::<()>(&mut src.nodes[replica].conn()?)?;
        let wait = aofvault_tests::wait_until(
            Duration::from_secs(10),
            "the replica to be primary",
            || {
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query(&mut src.nodes[replica].conn()?)?;
                Ok(info.contains("role:master"))
            },
        );
        promoted = wait.is_ok();
        if promoted {
            break;
        }
    }
    assert!(promoted, "CLUSTER FAILOVER never promoted the replica");
    let at_failover = load.written();
    aofvault_tests::wait_until(Duration::from_secs(30), "writes after the failover", || {
        Ok(load.written() > at_failover + 1_000)
    })?;
    load.stop()?;
    src.wait_ok()?;
    // The group of node 0 is shipped by its replica's agent now.
    let pairs = vec![(group(0)?, replica), (group(1)?, 1), (group(2)?, 2)];
    repo.wait_shipped_as(&src, &pairs, &agents)?;
    let expected = src.dump()?;

    let listed = repo
        .cmd(&["--cluster", "prod", "list", "--json"])?
        .ok()?
        .json()?;
    assert_eq!(
        listed["groups"].as_array().map(Vec::len),
        Some(3),
        "{listed}"
    );
    let target = RedisCluster::start(2, 0)?;
    repo.restore_to(&target.url(), &[])?;
    keyspace::assert_same(&expected, &target.dump()?);
    for mut a in agents {
        a.terminate()?;
    }
    eprintln!("whole test: {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// A `FLUSHALL` sent to one primary empties that node's slots only. Replayed as it is into one
/// keyspace it would also delete what the other groups hold: the restore replays that group
/// from after its flush instead, into a plain server and into a cluster of another shape.
#[test]
fn a_flushall_on_one_node_empties_only_its_keys_in_a_merged_restore() -> Result<()> {
    let (src, repo, agents) = three_primaries_with_agents()?;
    let mut client = src.client()?;
    cluster::load(&mut client, 1, 3_000, KEYS)?;
    let before = src.dump()?.0.len();
    redis::cmd("FLUSHALL").query::<()>(&mut src.nodes[0].conn()?)?;
    let flushed = src.dump()?.0.len();
    assert!(
        flushed > 0 && flushed < before,
        "node 0's FLUSHALL should empty its slots only: {before} keys, then {flushed}"
    );
    // Writes after the flush, some of them to node 0's slots again.
    cluster::load(&mut client, 2, 1_000, KEYS)?;
    repo.wait_shipped(&src, &agents)?;
    let expected = src.dump()?;

    let single = RedisServer::start()?;
    repo.restore_to(&single.url(), &[])?;
    keyspace::assert_same(&expected, &keyspace::dump(&mut single.conn()?, &[0])?);
    let target = RedisCluster::start(2, 0)?;
    repo.restore_to(&target.url(), &[])?;
    keyspace::assert_same(&expected, &target.dump()?);
    for mut a in agents {
        a.terminate()?;
    }
    Ok(())
}
