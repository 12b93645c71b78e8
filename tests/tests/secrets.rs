//! Secrets and files, end to end: the real agent runs at debug log level against a
//! redis-server that requires a password (read from `password_file`) and an S3 repository (the
//! SeaweedFS of the harness, credentials from the environment), with an age identity file. Then
//! every place an operator or an attacker could look is searched for each secret value: the
//! agent's whole log, `status --json`, `config check --json`, `/proc/<pid>/cmdline`, the error
//! output of commands given a wrong password and a wrong S3 secret, and every object in the
//! repository (manifests, chain heads, bases, segments). None may hold one. A restore writes
//! files no other user can read, and the agent leaves the server's data directory alone.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use age::secrecy::ExposeSecret;
use aofvault_tests::keyspace;
use aofvault_tests::s3::{LONG_ACCESS_KEY, LONG_SECRET_KEY};
use aofvault_tests::{agent, shared_s3, wait_until, workload, RedisServer};

fn write_private(path: &Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.display().to_string()
}

/// Every secret found in `text`, by name.
fn leaks<'a>(text: &[u8], secrets: &'a [(&'a str, String)]) -> Vec<&'a str> {
    secrets
        .iter()
        .filter(|(_, s)| text.windows(s.len()).any(|w| w == s.as_bytes()))
        .map(|(name, _)| *name)
        .collect()
}

/// Every path under `dir` (files and directories), relative.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn no_secret_reaches_logs_status_config_objects_or_arguments() {
    let s3 = shared_s3();
    let redis = RedisServer::start().unwrap();
    let mut conn = redis.conn().unwrap();
    let password = format!(
        "srcpw-{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    );
    // This connection stays authenticated; every new one needs the password.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(&password)
        .query(&mut conn)
        .unwrap();
    workload::mixed(&mut conn, 11, 2000, 300).unwrap();
    let identity = age::x25519::Identity::generate();
    let age_secret = identity.to_string().expose_secret().to_string();
    let wrong_password = format!("wrongpw-{:016x}", rand::random::<u64>());
    let wrong_s3_secret = format!("wrongs3-{:016x}", rand::random::<u64>());
    let secrets: Vec<(&str, String)> = vec![
        ("source password", password.clone()),
        ("S3 secret key", LONG_SECRET_KEY.to_string()),
        ("age identity", age_secret.clone()),
        (
            "age identity body",
            age_secret["AGE-SECRET-KEY-1".len()..].to_string(),
        ),
        ("wrong source password", wrong_password.clone()),
        ("wrong S3 secret key", wrong_s3_secret.clone()),
    ];

    let tmp = tempfile::tempdir().unwrap();
    let path = |name: &str| tmp.path().join(name);
    let password_file = write_private(&path("source-password"), &format!("{password}\n"));
    let identity_file = write_private(
        &path("identity.txt"),
        &format!("# test key\n{age_secret}\n"),
    );
    let prefix = format!("secrets-{}-{}", std::process::id(), rand::random::<u32>());
    let config = |password_file: &str| {
        format!(
            "[source]\ndir = {dir:?}\nurl = {url:?}\npassword_file = {password_file:?}\n\
             [repository]\nurl = {repo:?}\ninstance = \"t\"\nencryption_identity_file = {identity_file:?}\n\
             [log]\nlevel = \"debug\"\n[state]\ndir = {state:?}\n[compact]\ncheck_interval = \"200ms\"\n",
            dir = redis.dir().display().to_string(),
            url = redis.url(),
            repo = s3.repo_url(&prefix),
            state = path("state").display().to_string(),
        )
    };
    let config_file = path("aofvault.toml").display().to_string();
    std::fs::write(&config_file, config(&password_file)).unwrap();
    let mut env = s3.env();
    for (k, v) in env.iter_mut() {
        match k.as_str() {
            "AWS_ACCESS_KEY_ID" => *v = LONG_ACCESS_KEY.to_string(),
            "AWS_SECRET_ACCESS_KEY" => *v = LONG_SECRET_KEY.to_string(),
            _ => {}
        }
    }
    let server_entries_before = tree(redis.dir());

    let mut daemon = agent::spawn(&["--config", &config_file, "run"], &env).unwrap();
    daemon
        .wait_for_log("snapshot published", Duration::from_secs(60))
        .unwrap();
    workload::mixed(&mut conn, 12, 2000, 300).unwrap();
    // The agent's own connection (INFO, CONFIG GET, compaction checks) authenticates with the
    // password: a rewrite it must see proves the connection is used.
    let _: () = redis::cmd("BGREWRITEAOF").query(&mut conn).unwrap();
    wait_until(
        Duration::from_secs(60),
        "a new chain after the rewrite",
        || Ok(daemon.logs().matches("snapshot published").count() >= 2),
    )
    .unwrap();
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", daemon.pid())).unwrap();
    assert!(
        String::from_utf8_lossy(&cmdline).contains("run"),
        "that is the agent's command line: {cmdline:?}"
    );
    let status = agent::run(&["--config", &config_file, "status", "--json"], &env).unwrap();
    assert!(status.success(), "{}\n{}", status.stdout, status.stderr);
    status.json().unwrap();
    let check = agent::run(
        &["--config", &config_file, "config", "check", "--json"],
        &env,
    )
    .unwrap();
    assert!(check.success(), "{}\n{}", check.stdout, check.stderr);
    assert!(
        check.stdout.contains("***"),
        "secrets show as ***: {}",
        check.stdout
    );
    daemon.terminate().unwrap();
    let logs = daemon.logs();
    assert!(
        logs.contains("DEBUG"),
        "the agent ran at debug level:\n{logs}"
    );

    // Commands that fail on a credential must not print it either.
    let wrong_password_file = write_private(&path("wrong-password"), &wrong_password);
    let wrong_config = path("wrong.toml").display().to_string();
    std::fs::write(&wrong_config, config(&wrong_password_file)).unwrap();
    let mut bad_daemon = agent::spawn(&["--config", &wrong_config, "run"], &env).unwrap();
    bad_daemon
        .wait_for_log("server not reachable", Duration::from_secs(30))
        .unwrap();
    bad_daemon.terminate().unwrap();
    let bad_auth = bad_daemon.logs();
    assert!(
        bad_auth.contains("Password authentication failed"),
        "the server refused the wrong password:\n{bad_auth}"
    );
    let mut wrong_env = env.clone();
    for (k, v) in wrong_env.iter_mut() {
        if k == "AWS_SECRET_ACCESS_KEY" {
            *v = wrong_s3_secret.clone();
        }
    }
    let bad_s3 = agent::run(&["--config", &config_file, "list"], &wrong_env).unwrap();
    assert!(
        !bad_s3.success(),
        "a wrong S3 secret must fail:\n{}",
        bad_s3.stdout
    );

    // A restore: files only the owner may read.
    let restored = path("restored");
    let restore = agent::run(
        &[
            "--config",
            &config_file,
            "restore",
            "--to-dir",
            restored.to_str().unwrap(),
        ],
        &env,
    )
    .unwrap();
    assert!(restore.success(), "{}\n{}", restore.stdout, restore.stderr);

    let places: Vec<(&str, Vec<u8>)> = vec![
        ("agent log", logs.clone().into_bytes()),
        ("/proc/pid/cmdline", cmdline),
        (
            "status --json",
            format!("{}{}", status.stdout, status.stderr).into_bytes(),
        ),
        (
            "config check --json",
            format!("{}{}", check.stdout, check.stderr).into_bytes(),
        ),
        ("run with a wrong password", bad_auth.into_bytes()),
        (
            "list with a wrong S3 secret",
            format!("{}{}", bad_s3.stdout, bad_s3.stderr).into_bytes(),
        ),
        (
            "restore",
            format!("{}{}", restore.stdout, restore.stderr).into_bytes(),
        ),
    ];
    // The search itself finds a secret where one is.
    let own = std::fs::read(&password_file).unwrap();
    assert_eq!(leaks(&own, &secrets), vec!["source password"]);
    for (place, text) in &places {
        let found = leaks(text, &secrets);
        assert!(
            found.is_empty(),
            "{place} shows {found:?}:\n{}",
            String::from_utf8_lossy(text)
        );
    }
    let keys = s3.list_keys(&prefix).unwrap();
    let heads = keys.iter().filter(|k| k.ends_with("/chain.json")).count();
    let manifests = keys.iter().filter(|k| k.contains("/snapshots/")).count();
    assert!(heads >= 2 && manifests >= 2, "{keys:?}");
    for key in &keys {
        let body = s3.get_object(key).unwrap().unwrap();
        let found = leaks(&body, &secrets);
        assert!(found.is_empty(), "object {key} holds {found:?}");
    }

    for p in tree(&restored) {
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o007,
            0,
            "{} is open to every user: {mode:o}",
            p.display()
        );
    }
    let copy = RedisServer::start_on_dir(&restored, &[]).unwrap();
    let expected = keyspace::dump(&mut conn, &[0]).unwrap();
    keyspace::assert_same(
        &expected,
        &keyspace::dump(&mut copy.conn().unwrap(), &[0]).unwrap(),
    );

    // Nothing of the agent's in the server's directory: only what redis-server itself writes.
    for p in tree(redis.dir()) {
        if server_entries_before.contains(&p) {
            continue;
        }
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let redis_own = name == "appendonlydir"
            || name.starts_with("appendonly.aof")
            || name == "dump.rdb"
            || name.starts_with("temp-");
        assert!(
            redis_own,
            "{} appeared in the server's directory",
            p.display()
        );
    }
}
