//! A hostile repository is refused before a byte reaches the target. From a real backup of a
//! redis-server (the real `aofvault run`), a manifest is written that names every stored
//! segment — it verifies and restores, which shows the cases below fail for their one change
//! only. Then, each on its own copy of the repository, that manifest is made to name a path
//! with `..`, an absolute path, segments whose ranges do not continue, a segment range longer
//! than the stored object, a base of another size: `verify` reports the problem (exit 3) and
//! `restore --to-dir` refuses naming it, writes nothing into the target and nothing outside it.
//! A chain head made to name `..` is reported by `verify`; a restore, which reads the
//! manifest's objects and not the heads, restores the source exactly.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use aofvault_tests::keyspace;
use aofvault_tests::{agent, wait_until, workload, RedisServer};
use common::cli::dump;
use serde_json::Value;

mod common;

const MANIFEST_ID: &str = "20991231T235959000Z-ffff";

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

fn entries(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// `aofvault --repo file://<repo> --instance t <args>`.
fn cmd(repo: &Path, state: &Path, args: &[&str]) -> agent::Output {
    let url = format!("file://{}", repo.display());
    let state = state.display().to_string();
    let mut all = vec!["--repo", &url, "--instance", "t", "--state-dir", &state];
    all.extend_from_slice(args);
    agent::run(&all, &[]).unwrap()
}

fn snapshots_dir(repo: &Path) -> PathBuf {
    repo.join("instances/t/snapshots")
}

/// Replaces every manifest by one naming the newest chain's base and all its stored segments.
fn write_full_manifest(repo: &Path) -> Value {
    let dir = snapshots_dir(repo);
    let mut names = entries(&dir);
    names.sort();
    let newest = names.last().expect("the agent published a snapshot");
    let mut m: Value = serde_json::from_slice(&std::fs::read(dir.join(newest)).unwrap()).unwrap();
    let chain = m["shards"][0]["chain"].as_str().unwrap().to_string();
    let chain_dir = repo.join(format!("instances/t/shards/0000/chains/{chain}"));
    let mut segs: Vec<String> = entries(&chain_dir)
        .into_iter()
        .filter(|n| n.starts_with("seg-"))
        .collect();
    segs.sort();
    let mut at = m["shards"][0]["stream_start"].as_u64().unwrap();
    let mut list = Vec::new();
    for name in segs {
        let stem = name
            .strip_prefix("seg-")
            .unwrap()
            .strip_suffix(".zst")
            .unwrap();
        let p: Vec<&str> = stem.split('-').collect();
        let (start, end) = (
            u64::from_str_radix(p[0], 16).unwrap(),
            u64::from_str_radix(p[1], 16).unwrap(),
        );
        assert_eq!(start, at, "stored segments are contiguous");
        at = end;
        list.push(serde_json::json!({
            "start": start, "end": end, "object": name,
            "crc32c": u32::from_str_radix(p[4], 16).unwrap(),
            "first_seen_ms": p[2].parse::<i64>().unwrap(), "last_seen_ms": p[3].parse::<i64>().unwrap(),
        }));
    }
    assert!(list.len() >= 3, "the test needs a few segments: {list:?}");
    m["shards"][0]["segments"] = Value::Array(list);
    m["shards"][0]["end"] = at.into();
    m["id"] = MANIFEST_ID.into();
    for n in names {
        std::fs::remove_file(dir.join(n)).unwrap();
    }
    write_manifest(repo, &m);
    m
}

fn write_manifest(repo: &Path, m: &Value) {
    let path = snapshots_dir(repo).join(format!("{MANIFEST_ID}.json"));
    std::fs::write(path, serde_json::to_vec_pretty(m).unwrap()).unwrap();
}

/// Changes the manifest (or, through the repository's path, another document).
type Change = Box<dyn Fn(&Path, &mut Value)>;

/// One hostile change: what it does to the manifest (or the repository), and what the
/// refusal must say.
struct Case {
    name: &'static str,
    change: Change,
    says: &'static [&'static str],
    /// Whether restore reads what was changed (a restore of a snapshot reads the manifest,
    /// not the chain heads: it must then succeed on the manifest's objects alone).
    restore_reads_it: bool,
}

#[test]
fn hostile_manifests_and_heads_are_refused_by_verify_and_restore_and_nothing_is_written() {
    let redis = RedisServer::start().unwrap();
    let mut conn = redis.conn().unwrap();
    workload::mixed(&mut conn, 21, 1500, 300).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let state = tmp.path().join("state");
    let url = format!("file://{}", repo.display());
    let state_s = state.display().to_string();
    let dir = redis.dir().display().to_string();
    let server = redis.url();
    let args = [
        "--repo",
        &url,
        "--instance",
        "t",
        "--state-dir",
        &state_s,
        "--source",
        &dir,
        "--server",
        &server,
        "run",
    ];
    let mut daemon = agent::spawn(&args, &[]).unwrap();
    daemon
        .wait_for_log("snapshot published", Duration::from_secs(60))
        .unwrap();
    // Three bursts a few ship intervals apart: at least three segments.
    for seed in 22..25 {
        workload::mixed(&mut conn, seed, 500, 300).unwrap();
        std::thread::sleep(Duration::from_millis(1500));
    }
    let incr = redis.dir().join("appendonlydir/appendonly.aof.1.incr.aof");
    wait_until(Duration::from_secs(60), "every AOF byte shipped", || {
        let plan = cmd(
            &repo,
            &state,
            &["restore", "--dry-run", "--json", "--to-dir", "/nonexistent"],
        )
        .ok()?
        .json()?;
        Ok(plan["plan"]["shards"][0]["end"].as_u64() == Some(std::fs::metadata(&incr)?.len()))
    })
    .unwrap();
    daemon.terminate().unwrap();
    let expected = dump(&redis.url());

    // The untouched full manifest verifies and restores.
    let full = write_full_manifest(&repo);
    assert!(
        !full["shards"][0]["base"].as_array().unwrap().is_empty(),
        "a Redis chain has a base"
    );
    let out = cmd(&repo, &state, &["verify"]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    let good = tmp.path().join("good");
    cmd(
        &repo,
        &state,
        &["restore", "--to-dir", good.to_str().unwrap()],
    )
    .ok()
    .unwrap();
    let copy = RedisServer::start_on_dir(&good, &[]).unwrap();
    keyspace::assert_same(&expected, &dump(&copy.url()));
    drop(copy);

    let escape = tmp.path().join("escaped");
    let absolute = escape.display().to_string();
    let cases = [
        Case {
            name: "a segment named with ..",
            change: Box::new(|_, m| {
                m["shards"][0]["segments"][1]["object"] = "../../../escaped".into()
            }),
            says: &["segments[1].object", "not a plain object name"],
            restore_reads_it: true,
        },
        Case {
            name: "a base written to an absolute path",
            change: Box::new(move |_, m| {
                m["shards"][0]["base"][0]["file_name"] = absolute.clone().into()
            }),
            says: &["base[0].file_name", "not a plain object name"],
            restore_reads_it: true,
        },
        Case {
            name: "a segment object at an absolute path",
            change: Box::new(|_, m| m["shards"][0]["segments"][0]["object"] = "/etc/passwd".into()),
            says: &["segments[0].object", "not a plain object name"],
            restore_reads_it: true,
        },
        Case {
            name: "segment ranges that do not continue",
            change: Box::new(|_, m| {
                let s = m["shards"][0]["segments"][1]["start"].as_u64().unwrap();
                m["shards"][0]["segments"][1]["start"] = (s + 1).into();
            }),
            says: &["segments[1]", "does not continue"],
            restore_reads_it: true,
        },
        Case {
            name: "a cut past the last segment",
            change: Box::new(|_, m| {
                let e = m["shards"][0]["end"].as_u64().unwrap();
                m["shards"][0]["end"] = (e + 10).into();
            }),
            says: &["shards[0].end", "but the segments end at"],
            restore_reads_it: true,
        },
        Case {
            name: "a segment range longer than its object",
            change: Box::new(|_, m| {
                let segs = m["shards"][0]["segments"].as_array_mut().unwrap();
                let last = segs.last_mut().unwrap();
                let e = last["end"].as_u64().unwrap() + 100;
                last["end"] = e.into();
                m["shards"][0]["end"] = e.into();
            }),
            says: &["seg-", "were recorded"],
            restore_reads_it: true,
        },
        Case {
            name: "a base of another size",
            change: Box::new(|_, m| {
                let n = m["shards"][0]["base"][0]["size"].as_u64().unwrap();
                m["shards"][0]["base"][0]["size"] = (n + 1).into();
            }),
            says: &["base-0", "were recorded"],
            restore_reads_it: true,
        },
        Case {
            name: "a chain head naming ..",
            change: Box::new(|repo, m| {
                let chain = m["shards"][0]["chain"].as_str().unwrap();
                let path = repo.join(format!("instances/t/shards/0000/chains/{chain}/chain.json"));
                let mut head: Value =
                    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                head["base"][0]["object"] = "../../../../aofvault.json".into();
                std::fs::write(&path, serde_json::to_vec(&head).unwrap()).unwrap();
            }),
            says: &["chain.json", "not a plain object name"],
            restore_reads_it: false,
        },
    ];

    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let copy = tmp.path().join(format!("repo-{i}"));
        copy_tree(&repo, &copy);
        let mut m = full.clone();
        (case.change)(&copy, &mut m);
        write_manifest(&copy, &m);
        let state = tmp.path().join(format!("state-{i}"));

        let out = cmd(&copy, &state, &["verify"]);
        let text = format!("{}{}", out.stdout, out.stderr);
        if out.code() != Some(3) || !case.says.iter().all(|s| text.contains(s)) {
            failures.push(format!(
                "{}: verify exit {:?}, expected 3 and {:?}:\n{text}",
                case.name,
                out.code(),
                case.says
            ));
        }

        let target = tmp.path().join(format!("target-{i}"));
        let out = cmd(
            &copy,
            &state,
            &["restore", "--to-dir", target.to_str().unwrap()],
        );
        let text = format!("{}{}", out.stdout, out.stderr);
        if !case.restore_reads_it {
            if out.success() {
                let copy = RedisServer::start_on_dir(&target, &[]).unwrap();
                if !keyspace::diff(&expected, &dump(&copy.url())).is_empty() {
                    failures.push(format!("{}: restore differs from the source", case.name));
                }
            } else {
                failures.push(format!(
                    "{}: restore failed on what it does not read:\n{text}",
                    case.name
                ));
            }
        } else {
            let refused = !out.success() && out.code().is_some();
            if !refused || !case.says.iter().all(|s| text.contains(s)) {
                failures.push(format!(
                    "{}: restore exit {:?}, expected a refusal saying {:?}:\n{text}",
                    case.name,
                    out.code(),
                    case.says
                ));
            }
            if !entries(&target).is_empty() {
                failures.push(format!(
                    "{}: restore wrote {:?} into the target",
                    case.name,
                    entries(&target)
                ));
            }
        }
        if escape.exists() || tmp.path().join("etc").exists() {
            failures.push(format!(
                "{}: something was written outside the target",
                case.name
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
