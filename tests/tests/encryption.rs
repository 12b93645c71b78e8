//! Encryption at rest, end to end: a real server, the real `aofvault run` with age recipients
//! (and compression off, so nothing but the cipher hides the data), then the raw object files
//! of the `file://` repository are searched for the keys and values written — none may appear —
//! and `restore --to-dir` is started in a fresh server and compared key by key. Without the
//! identity, or with another one, restore and verify fail cleanly, naming the object, and
//! write nothing to the target. A control run without encryption finds the same needles, so the
//! search itself is shown to work. Key rotation: objects written under an old key need the old
//! identity too; an identity file holding both reads everything.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use age::secrecy::ExposeSecret;
use aofvault_tests::keyspace;
use aofvault_tests::{agent, wait_until, KevyServer, RedisServer};
use common::cli::{dump, kevy_sizes};

mod common;

/// An age key pair: (identity text, recipient).
fn keypair() -> (String, String) {
    let id = age::x25519::Identity::generate();
    (
        id.to_string().expose_secret().to_string(),
        id.to_public().to_string(),
    )
}

/// Writes recognisable data of every type; returns the strings that must never appear in an
/// encrypted repository.
fn write_dataset(conn: &mut redis::Connection, tag: &str, n: usize) -> Vec<String> {
    let mut pipe = redis::pipe();
    for i in 0..n {
        let value = format!("plaintext-{tag}-value-{i:04}-{}", "v".repeat(i % 40));
        pipe.cmd("SET")
            .arg(format!("secretkey:{tag}:{i:04}"))
            .arg(value)
            .ignore();
        if i % 7 == 0 {
            pipe.cmd("EXPIRE")
                .arg(format!("secretkey:{tag}:{i:04}"))
                .arg(36_000)
                .ignore();
        }
        pipe.cmd("HSET")
            .arg(format!("secrethash:{tag}"))
            .arg(format!("hfield-{tag}-{i}"))
            .arg(format!("hvalue-{tag}-{i}"))
            .ignore();
        pipe.cmd("RPUSH")
            .arg(format!("secretlist:{tag}"))
            .arg(format!("litem-{tag}-{i}"))
            .ignore();
        pipe.cmd("SADD")
            .arg(format!("secretset:{tag}"))
            .arg(format!("smember-{tag}-{i}"))
            .ignore();
        pipe.cmd("ZADD")
            .arg(format!("secretzset:{tag}"))
            .arg(i)
            .arg(format!("zmember-{tag}-{i}"))
            .ignore();
    }
    pipe.query::<()>(conn).unwrap();
    vec![
        format!("secretkey:{tag}"),
        format!("plaintext-{tag}-value"),
        format!("secrethash:{tag}"),
        format!("hfield-{tag}"),
        format!("hvalue-{tag}"),
        format!("litem-{tag}"),
        format!("smember-{tag}"),
        format!("zmember-{tag}"),
    ]
}

/// Every regular file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// (file, needle) for every needle found in a raw object file of the repository.
fn find_needles(repo: &Path, needles: &[String]) -> Vec<(String, String)> {
    let mut hits = Vec::new();
    for f in files(repo) {
        let bytes = std::fs::read(&f).unwrap();
        for n in needles {
            if bytes.windows(n.len()).any(|w| w == n.as_bytes()) {
                hits.push((f.display().to_string(), n.clone()));
            }
        }
    }
    hits
}

/// Names of the data objects (bases and segments) under `repo`.
fn data_objects(repo: &Path) -> Vec<String> {
    files(repo)
        .into_iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("base-") || n.starts_with("seg-"))
        .collect()
}

/// A temp dir with a repository, a state dir and key files.
struct Setup {
    tmp: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            tmp: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
    fn repo(&self) -> PathBuf {
        self.path("repo")
    }
    fn repo_url(&self) -> String {
        format!("file://{}", self.repo().display())
    }
    /// Writes a secret key file (0600) and returns its path.
    fn key_file(&self, name: &str, text: &str) -> String {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p.display().to_string()
    }
    /// A config file with these `[repository]` lines.
    fn config(&self, name: &str, repository: &str) -> String {
        let p = self.path(name);
        std::fs::write(&p, format!("[repository]\n{repository}\n")).unwrap();
        p.display().to_string()
    }
    fn global(&self, config: &str) -> Vec<String> {
        let state = self.path("state").display().to_string();
        [
            "--config",
            config,
            "--repo",
            &self.repo_url(),
            "--instance",
            "t",
            "--state-dir",
            &state,
        ]
        .map(String::from)
        .to_vec()
    }
    fn cmd(&self, config: &str, args: &[&str], env: &[(String, String)]) -> agent::Output {
        let mut all = self.global(config);
        all.extend(args.iter().map(|s| s.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        agent::run(&all, env).unwrap()
    }
    fn spawn_run(&self, config: &str, source: &Path, server: &str) -> agent::AgentProcess {
        let mut args = self.global(config);
        args.extend([
            "--source".into(),
            source.display().to_string(),
            "--server".into(),
            server.into(),
            "run".into(),
        ]);
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut agent = agent::spawn(&a, &[]).unwrap();
        agent
            .wait_for_log("snapshot published", Duration::from_secs(60))
            .unwrap();
        agent
    }
    /// Waits until a latest restore covers `sizes()` on every shard (the plan needs no key: it
    /// reads manifests and listings only).
    fn wait_shipped(
        &self,
        config: &str,
        sizes: impl Fn() -> Vec<u64>,
        agent: &agent::AgentProcess,
    ) {
        let r = wait_until(
            Duration::from_secs(60),
            "the agent ships everything",
            || {
                let out = self.cmd(
                    config,
                    &["restore", "--dry-run", "--json", "--to-dir", "/nonexistent"],
                    &[],
                );
                let plan = out.ok()?.json()?;
                let ends: Vec<u64> = plan["plan"]["shards"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["end"].as_u64().unwrap())
                    .collect();
                Ok(ends == sizes())
            },
        );
        if let Err(e) = r {
            panic!("{e:#}\nagent log:\n{}", agent.logs());
        }
    }
}

fn identity_env(text: &str) -> Vec<(String, String)> {
    vec![("AOFVAULT_ENCRYPTION_IDENTITY".to_string(), text.to_string())]
}

fn redis_stream_size(r: &RedisServer) -> Vec<u64> {
    let dir = r.dir().join("appendonlydir");
    let manifest = std::fs::read_to_string(dir.join("appendonly.aof.manifest")).unwrap();
    let incr = manifest
        .lines()
        .rfind(|l| l.ends_with("type i"))
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .to_string();
    vec![std::fs::metadata(dir.join(incr)).unwrap().len()]
}

fn wait_rewrite(conn: &mut redis::Connection) {
    wait_until(Duration::from_secs(30), "the AOF rewrite finishes", || {
        let info: String = redis::cmd("INFO").arg("persistence").query(conn)?;
        Ok(info.contains("aof_rewrite_in_progress:0") && info.contains("aof_rewrite_scheduled:0"))
    })
    .unwrap();
}

/// Entries of `dir`, hidden ones included (a restore's staging directory is hidden).
fn entries(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn encrypted_redis_backup_hides_every_key_and_value_and_restores_only_with_the_identity() {
    let redis = RedisServer::start().unwrap();
    let mut conn = redis.conn().unwrap();
    let mut needles = write_dataset(&mut conn, "before", 150);

    let s = Setup::new();
    let (secret, public) = keypair();
    std::fs::write(
        s.path("recipients.txt"),
        format!("# the backup key\n{public}\n"),
    )
    .unwrap();
    let recipients = s.path("recipients.txt").display().to_string();
    let agent_cfg = s.config(
        "agent.toml",
        &format!("compression = \"none\"\nencryption_recipients_file = {recipients:?}"),
    );
    let mut agent = s.spawn_run(&agent_cfg, redis.dir(), &redis.url());
    needles.extend(write_dataset(&mut conn, "segment", 150));
    // A rewrite: the new chain's base is an RDB holding everything so far.
    let _: () = redis::cmd("BGREWRITEAOF").query(&mut conn).unwrap();
    wait_rewrite(&mut conn);
    needles.extend(write_dataset(&mut conn, "after", 150));
    s.wait_shipped(&agent_cfg, || redis_stream_size(&redis), &agent);
    agent.terminate().unwrap();
    let expected = dump(&redis.url());
    assert!(expected.len() >= 450, "{} keys", expected.len());

    // 1. No raw object holds a key or a value; every data object is an age object.
    let objects = data_objects(&s.repo());
    assert!(
        objects.iter().filter(|n| n.starts_with("base-")).count() >= 2,
        "{objects:?}"
    );
    assert!(
        objects.iter().filter(|n| n.starts_with("seg-")).count() >= 2,
        "{objects:?}"
    );
    for name in &objects {
        assert!(name.ends_with(".raw.age"), "{name} is not encrypted");
    }
    let hits = find_needles(&s.repo(), &needles);
    assert!(
        hits.is_empty(),
        "plaintext found in the encrypted repository: {hits:?}"
    );

    // 2. The agent's host held only the public key; the identity alone restores.
    let reader_cfg = s.config("reader.toml", "");
    let good = identity_env(&secret);
    let restored = s.path("restored");
    s.cmd(
        &reader_cfg,
        &["restore", "--to-dir", restored.to_str().unwrap()],
        &good,
    )
    .ok()
    .unwrap();
    let copy = RedisServer::start_on_dir(&restored, &[]).unwrap();
    keyspace::assert_same(&expected, &dump(&copy.url()));
    let verify = s.cmd(&reader_cfg, &["verify", "--json"], &good);
    assert_eq!(
        verify.code(),
        Some(0),
        "{}\n{}",
        verify.stdout,
        verify.stderr
    );

    // 3. Without a key, and with another key: a clean error naming an object, nothing written.
    let (other, _) = keypair();
    let cases = [
        (
            "no key",
            Vec::new(),
            "is encrypted: set [repository] encryption_identity_file",
        ),
        ("wrong key", identity_env(&other), "wrong key"),
    ];
    for (what, env, message) in cases {
        let target = s.path(&format!("target-{}", what.replace(' ', "-")));
        let out = s.cmd(
            &reader_cfg,
            &["restore", "--to-dir", target.to_str().unwrap()],
            &env,
        );
        assert!(!out.success(), "{what}: restore succeeded");
        assert_ne!(
            out.code(),
            None,
            "{what}: killed instead of failing cleanly"
        );
        assert!(out.stderr.contains(message), "{what}: {}", out.stderr);
        assert!(
            out.stderr.contains(".raw.age"),
            "{what}: the error names no object: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("panicked"), "{what}: {}", out.stderr);
        assert_eq!(
            entries(&target),
            Vec::<String>::new(),
            "{what}: the target was written to"
        );
        let out = s.cmd(&reader_cfg, &["verify"], &env);
        assert_eq!(
            out.code(),
            Some(3),
            "{what}: verify\n{}\n{}",
            out.stdout,
            out.stderr
        );
        assert!(
            out.stdout.contains(message) || out.stderr.contains(message),
            "{what}: {}{}",
            out.stdout,
            out.stderr
        );
    }

    // 4. Control: the same data shipped without encryption is found by the same search.
    let plain = Setup::new();
    let plain_cfg = plain.config("plain.toml", "compression = \"none\"");
    let mut args = plain.global(&plain_cfg);
    args.extend([
        "--source".into(),
        redis.dir().display().to_string(),
        "--server".into(),
        redis.url(),
        "backup".into(),
    ]);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    agent::run(&a, &[]).unwrap().ok().unwrap();
    let hits = find_needles(&plain.repo(), &needles);
    let found: std::collections::BTreeSet<&str> = hits.iter().map(|(_, n)| n.as_str()).collect();
    assert!(
        found.len() >= needles.len() / 2,
        "the search should find the data in a plain repository: found {found:?} of {needles:?}"
    );
}

#[test]
fn kevy_key_rotation_needs_the_old_identity_for_old_objects() {
    let mut kevy = KevyServer::start(2).unwrap();
    let mut conn = kevy.conn().unwrap();
    let mut needles = write_dataset(&mut conn, "first", 100);
    let s = Setup::new();
    let (old_secret, old_public) = keypair();
    let (new_secret, new_public) = keypair();

    // Under the old key (compressed, the default).
    let cfg_old = s.config(
        "old.toml",
        &format!("encryption_recipients = [{old_public:?}]"),
    );
    let mut agent = s.spawn_run(&cfg_old, kevy.dir(), &kevy.url());
    needles.extend(write_dataset(&mut conn, "second", 100));
    kevy.wait_aof_flushed().unwrap();
    s.wait_shipped(&cfg_old, || kevy_sizes(&kevy), &agent);
    agent.terminate().unwrap();

    // Rotated: the agent now has only the new recipient; the chains go on under it.
    let cfg_new = s.config(
        "new.toml",
        &format!("encryption_recipients = [{new_public:?}]"),
    );
    let mut agent = s.spawn_run(&cfg_new, kevy.dir(), &kevy.url());
    needles.extend(write_dataset(&mut conn, "third", 100));
    kevy.wait_aof_flushed().unwrap();
    s.wait_shipped(&cfg_new, || kevy_sizes(&kevy), &agent);
    agent.terminate().unwrap();
    let expected = dump(&kevy.url());
    kevy.stop();

    assert!(data_objects(&s.repo())
        .iter()
        .all(|n| n.ends_with(".zst.age")));
    let hits = find_needles(&s.repo(), &needles);
    assert!(hits.is_empty(), "plaintext found: {hits:?}");

    let reader = s.config("reader.toml", "");
    // The new identity alone cannot read what was written before the rotation.
    let target = s.path("only-new");
    let out = s.cmd(
        &reader,
        &["restore", "--to-dir", target.to_str().unwrap()],
        &identity_env(&new_secret),
    );
    assert!(
        !out.success() && out.stderr.contains("wrong key"),
        "{}",
        out.stderr
    );
    assert_eq!(entries(&target), Vec::<String>::new());

    // An identity file holding both keys reads everything.
    let both = s.key_file(
        "identities.txt",
        &format!("# old\n{old_secret}\n# new\n{new_secret}\n"),
    );
    let reader = s.config(
        "reader-both.toml",
        &format!("encryption_identity_file = {both:?}"),
    );
    let restored = s.path("restored");
    s.cmd(
        &reader,
        &["restore", "--to-dir", restored.to_str().unwrap()],
        &[],
    )
    .ok()
    .unwrap();
    let copy = KevyServer::start_on_dir(&restored, 2).unwrap();
    keyspace::assert_same(&expected, &dump(&copy.url()));
}
