//! `aofvault verify` collects, never stops: a real repository (kevy and the agent) with one byte
//! flipped in every object — the format marker, every manifest, every chain head, every base and
//! segment — is verified to the end, and every flipped object is named (exit 3). With only the
//! documents damaged, every base and segment is still found by listing and checked in full.
//! And a chain holding overlapping segments `[a,b)` and `[a,c)` (a retry after a lost reply) is
//! sound: no phantom missing object, and it restores key for key.
//!
//! The lease (`lease.json`) and the member records (`members/`) are not verified: the lease is
//! the running writer's lock, rewritten on every renewal and never read by a restore (a clean
//! stop marks it released); it is flipped too and must not be named.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aofvault::repo::{keys, Repo as Store, RepoSpec, ShardId};
use aofvault_tests::keyspace::{self, Keyspace};
use aofvault_tests::{agent, workload, KevyServer};
use common::cli::kevy_sizes;

mod common;

struct Repo {
    tmp: tempfile::TempDir,
}

impl Repo {
    fn new() -> Repo {
        Repo {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    fn root(&self) -> PathBuf {
        self.tmp.path().join("repo")
    }

    fn args(&self) -> (String, String) {
        (
            format!("file://{}", self.root().display()),
            self.tmp.path().join("state").display().to_string(),
        )
    }

    fn cmd(&self, args: &[&str]) -> agent::Output {
        let (url, state) = self.args();
        let mut all = vec!["--repo", &url, "--instance", "t", "--state-dir", &state];
        all.extend_from_slice(args);
        agent::run(&all, &[]).unwrap()
    }

    fn plan(&self) -> serde_json::Value {
        self.cmd(&["restore", "--dry-run", "--json", "--to-dir", "/nonexistent"])
            .ok()
            .unwrap()
            .json()
            .unwrap()
    }

    /// Every file of the repository, as repository keys.
    fn files(&self) -> BTreeSet<String> {
        fn walk(dir: &Path, root: &Path, out: &mut BTreeSet<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, root, out);
                } else {
                    out.insert(p.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(&self.root(), &self.root(), &mut out);
        out
    }

    fn store(&self) -> Store {
        Store::open(&RepoSpec::File(self.root()), 3).unwrap()
    }
}

/// Runs the agent over `kevy` while `write` runs, until the repository holds every byte of the
/// AOFs (and a base on every shard when `based`); returns the source's keyspace.
fn backup(
    kevy: &KevyServer,
    repo: &Repo,
    based: bool,
    write: impl FnOnce(&mut redis::Connection),
) -> Keyspace {
    let mut conn = kevy.conn().unwrap();
    let (url, state) = repo.args();
    let dir = kevy.dir().display().to_string();
    let server = kevy.url();
    let args = [
        "--repo",
        &url,
        "--instance",
        "t",
        "--state-dir",
        &state,
        "--source",
        &dir,
        "--server",
        &server,
        "run",
    ];
    let mut agent = agent::spawn(&args, &[]).unwrap();
    agent
        .wait_for_log("snapshot published", Duration::from_secs(60))
        .unwrap();
    write(&mut conn);
    kevy.wait_aof_flushed().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let plan = repo.plan();
        let shards = plan["plan"]["shards"].as_array().unwrap();
        let ends: Vec<u64> = shards.iter().map(|s| s["end"].as_u64().unwrap()).collect();
        let has_base = shards
            .iter()
            .all(|s| !s["base"].as_array().unwrap().is_empty());
        if (has_base || !based) && ends == kevy_sizes(kevy) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not shipped: {plan}\n{}",
            agent.logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    agent.terminate().unwrap();
    keyspace::dump(&mut conn, &[0]).unwrap()
}

/// Flips bit 0 of the byte at `at`.
fn flip_at(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

/// A JSON document made unparseable: its first `"` becomes `#`.
fn flip_json(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    flip_at(path, bytes.iter().position(|b| *b == b'"').unwrap());
}

/// A manifest that still parses but lies: the last character of its id is flipped, so it no
/// longer names the file it is stored in.
fn flip_manifest_id(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let open = text.find("\"id\": \"").unwrap() + "\"id\": \"".len();
    let close = open + text[open..].find('"').unwrap();
    flip_at(path, close - 1);
}

fn findings(doc: &serde_json::Value) -> BTreeSet<String> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["object"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn verify_names_every_flipped_document_and_object_and_checks_every_chain_regardless() {
    let kevy = KevyServer::start(2).unwrap();
    let repo = Repo::new();
    backup(&kevy, &repo, true, |conn| {
        workload::mixed(conn, 31, 2000, 300).unwrap();
        // BGSAVE: every shard gets a KEVYSNAP base and a new chain; the bursts that follow,
        // a few ship intervals apart, give the chains several segments.
        let _: () = redis::cmd("BGSAVE").query(conn).unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        workload::mixed(conn, 32, 1000, 300).unwrap();
        std::thread::sleep(Duration::from_millis(2500));
        workload::mixed(conn, 33, 1000, 300).unwrap();
    });
    let intact = repo.cmd(&["verify", "--json"]);
    let doc = intact.json().unwrap();
    assert_eq!(intact.code(), Some(0), "{doc}\n{}", intact.stderr);

    let files = repo.files();
    let lease = keys::lease("t");
    // The group member records are not verified either (each agent's own note of its state).
    let members = keys::members_prefix("t");
    let is_doc = |k: &str| k.ends_with(".json") && k != lease && !k.starts_with(&members);
    let docs: BTreeSet<String> = files.iter().filter(|k| is_doc(k)).cloned().collect();
    let data: BTreeSet<String> = files
        .iter()
        .filter(|k| !k.ends_with(".json"))
        .cloned()
        .collect();
    let manifests: Vec<&String> = docs.iter().filter(|k| k.contains("/snapshots/")).collect();
    let heads = docs.iter().filter(|k| k.ends_with("/chain.json")).count();
    let bases = data.iter().filter(|k| k.contains("/base-")).count();
    let segments = data.iter().filter(|k| k.contains("/seg-")).count();
    assert!(
        manifests.len() >= 2 && heads >= 4 && bases >= 2 && segments >= 4,
        "a repository worth damaging: {files:#?}"
    );
    assert_eq!(doc["objects"].as_u64(), Some(data.len() as u64), "{doc}");

    // 1. Every document damaged, no object: all of them named, and every base and segment
    // still found (by listing) and decoded.
    for k in &docs {
        let path = repo.root().join(k);
        if manifests.last() == Some(&k) {
            flip_manifest_id(&path);
        } else {
            flip_json(&path);
        }
    }
    if files.contains(&lease) {
        flip_json(&repo.root().join(&lease));
    }
    let out = repo.cmd(&["verify", "--json"]);
    let doc = out.json().unwrap();
    assert_eq!(out.code(), Some(3), "{doc}\n{}", out.stderr);
    assert_eq!(findings(&doc), docs, "exactly the damaged documents: {doc}");
    assert_eq!(
        doc["objects"].as_u64(),
        Some(data.len() as u64),
        "every object is still checked: {doc}"
    );
    assert_eq!(
        doc["chains"].as_u64(),
        Some(heads as u64),
        "every chain is listed: {doc}"
    );
    assert!(doc["commands"].as_u64().unwrap() > 0, "decoded: {doc}");
    assert!(doc["base_keys"].as_u64().unwrap() > 0, "decoded: {doc}");

    // 2. Every object damaged too: every one of them named.
    for k in &data {
        let path = repo.root().join(k);
        flip_at(&path, std::fs::metadata(&path).unwrap().len() as usize / 2);
    }
    let everything: BTreeSet<String> = docs.union(&data).cloned().collect();
    let out = repo.cmd(&["verify"]);
    assert_eq!(out.code(), Some(3), "{}\n{}", out.stdout, out.stderr);
    for k in &everything {
        assert!(
            out.stdout.contains(&format!("PROBLEM {k}: ")),
            "verify names {k}:\n{}",
            out.stdout
        );
    }
    assert!(
        !out.stdout.contains(&format!("PROBLEM {lease}")),
        "{}",
        out.stdout
    );
    let out = repo.cmd(&["verify", "--json"]);
    let doc = out.json().unwrap();
    assert_eq!(out.code(), Some(3), "{doc}\n{}", out.stderr);
    assert_eq!(
        findings(&doc),
        everything,
        "every flipped file, nothing else: {doc}"
    );

    // Restore still refuses what it cannot prove.
    let target = repo.tmp.path().join("target");
    let out = repo.cmd(&["restore", "--to-dir", target.to_str().unwrap()]);
    assert_ne!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
}

#[test]
fn overlapping_segments_from_a_retry_are_no_gap_and_restore_key_for_key() {
    let kevy = KevyServer::start(1).unwrap();
    let repo = Repo::new();
    let expected = backup(&kevy, &repo, false, |conn| {
        // Bursts a few ship intervals apart: the chain gets several segments.
        for seed in 41..45 {
            workload::mixed(conn, seed, 800, 200).unwrap();
            std::thread::sleep(Duration::from_millis(1500));
        }
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = repo.store();
    let shard = ShardId(0);
    let chain = rt
        .block_on(store.chain_ids("t", shard))
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let dir = keys::chain_dir("t", shard, &chain);
    let segs: Vec<_> = rt
        .block_on(store.segments("t", shard, &chain))
        .unwrap()
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    // Segments some manifest names must stay: pick two adjacent ones after every cut.
    let named: String = repo
        .files()
        .iter()
        .filter(|k| k.contains("/snapshots/"))
        .map(|k| std::fs::read_to_string(repo.root().join(k)).unwrap())
        .collect();
    let (first, second) = segs
        .windows(2)
        .map(|w| (w[0].clone(), w[1].clone()))
        .find(|(a, b)| a.end == b.start && !named.contains(&b.object))
        .unwrap_or_else(|| panic!("two adjacent segments past the cut: {segs:#?}\n{named}"));
    // The retry: its first attempt stored [a,b) and lost the reply; the second read on and
    // stored [a,c). Built from the real bytes, stored through the library (name, crc, codec).
    let mut payload = Vec::new();
    for s in [&first, &second] {
        payload = rt
            .block_on(store.download(
                &format!("{dir}{}", s.object),
                s.crc32c,
                Some(s.end - s.start),
                payload,
            ))
            .unwrap();
    }
    let longer = rt
        .block_on(store.put_segment(
            "t",
            shard,
            &chain,
            first.start,
            &payload,
            (first.first_seen_ms, second.last_seen_ms),
        ))
        .unwrap();
    assert_eq!(longer.end, second.end);
    rt.block_on(store.delete(&format!("{dir}{}", second.object)))
        .unwrap();

    let out = repo.cmd(&["verify", "--json"]);
    let doc = out.json().unwrap();
    assert_eq!(out.code(), Some(0), "{doc}\n{}", out.stderr);
    assert!(findings(&doc).is_empty(), "{doc}");
    let short = format!("{dir}{}", first.object);
    let notes: Vec<&serde_json::Value> = doc["notes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["object"] == short.as_str())
        .collect();
    assert_eq!(notes.len(), 1, "the shorter attempt is a note: {doc}");
    let out = repo.cmd(&["verify"]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains("missing"), "{}", out.stdout);
    assert!(out.stdout.contains("no problems"), "{}", out.stdout);

    let restored = repo.tmp.path().join("restored");
    repo.cmd(&["restore", "--to-dir", restored.to_str().unwrap()])
        .ok()
        .unwrap();
    let copy = KevyServer::start_on_dir(&restored, 1).unwrap();
    keyspace::assert_same(
        &expected,
        &keyspace::dump(&mut copy.conn().unwrap(), &[0]).unwrap(),
    );
}
