//! The server's ACL users travel with the backup: a redis-server with two ACL users is backed
//! up; `restore --to-dir` writes `users.acl` beside the data, and the server started on it
//! accepts both users' passwords and refuses a wrong one; `--no-acl` leaves the file out;
//! `restore --to URL --with-acl` creates the users on a live server.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use aofvault_tests::{agent, keyspace, workload, RedisServer};
use common::cli::dump;

const USERS: [(&str, &str); 2] = [("alice", "alice-pw-7f3c"), ("bob", "bob-pw-9a1e")];

struct Vault {
    tmp: tempfile::TempDir,
}

impl Vault {
    fn cmd(&self, args: &[&str]) -> agent::Output {
        let repo = format!("file://{}", self.tmp.path().join("repo").display());
        let state = self.tmp.path().join("state").display().to_string();
        let mut all = vec!["--repo", &repo, "--instance", "t", "--state-dir", &state];
        all.extend_from_slice(args);
        agent::run(&all, &[]).unwrap()
    }

    fn dir(&self, name: &str) -> std::path::PathBuf {
        self.tmp.path().join(name)
    }
}

/// Whether `AUTH user password` succeeds on the server at `url`.
fn auth(url: &str, user: &str, password: &str) -> bool {
    let mut conn = aofvault_tests::connect(url).unwrap();
    redis::cmd("AUTH")
        .arg(user)
        .arg(password)
        .query::<()>(&mut conn)
        .is_ok()
}

fn assert_users(url: &str) {
    for (user, pw) in USERS {
        assert!(
            auth(url, user, pw),
            "{user} cannot log in with its password"
        );
        assert!(
            !auth(url, user, "wrong-password"),
            "{user} logs in with a wrong password"
        );
    }
}

/// A redis-server with two ACL users and some data, backed up once; and its keyspace.
fn backed_up() -> (Vault, RedisServer, keyspace::Keyspace) {
    let redis = RedisServer::start().unwrap();
    let mut conn = redis.conn().unwrap();
    for (user, pw) in USERS {
        redis::cmd("ACL")
            .arg("SETUSER")
            .arg(user)
            .arg("on")
            .arg(format!(">{pw}"))
            .arg("~*")
            .arg("+@all")
            .query::<()>(&mut conn)
            .unwrap();
    }
    workload::mixed(&mut conn, 77, 500, 100).unwrap();
    let v = Vault {
        tmp: tempfile::tempdir().unwrap(),
    };
    let dir = redis.dir().display().to_string();
    let out = v.cmd(&["--source", &dir, "--server", &redis.url(), "backup"]);
    assert!(out.success(), "backup: {}\n{}", out.stdout, out.stderr);
    let expected = dump(&redis.url());
    (v, redis, expected)
}

#[test]
fn restore_to_dir_brings_back_both_acl_users() {
    let (v, _redis, expected) = backed_up();
    let to = v.dir("restored");
    let to_s = to.display().to_string();
    v.cmd(&["restore", "--to-dir", &to_s]).ok().unwrap();
    let acl = to.join("users.acl");
    let text = std::fs::read_to_string(&acl).unwrap();
    assert!(
        text.contains("user alice ") && text.contains("user bob "),
        "{text}"
    );
    for (_, pw) in USERS {
        assert!(
            !text.contains(pw),
            "a clear-text password in users.acl: {text}"
        );
    }
    let acl_s = acl.display().to_string();
    let copy = RedisServer::start_on_dir(&to, &["--aclfile", &acl_s]).unwrap();
    keyspace::assert_same(&expected, &dump(&copy.url()));
    assert_users(&copy.url());

    // --no-acl: the data, without the users file.
    let bare = v.dir("bare");
    let bare_s = bare.display().to_string();
    v.cmd(&["restore", "--to-dir", &bare_s, "--no-acl"])
        .ok()
        .unwrap();
    assert!(!Path::new(&bare).join("users.acl").exists());
}

#[test]
fn restore_to_a_live_server_with_acl_creates_the_users() {
    let (v, _redis, expected) = backed_up();
    let target = RedisServer::start().unwrap();
    assert!(!auth(&target.url(), "alice", USERS[0].1));
    v.cmd(&["restore", "--to", &target.url(), "--with-acl"])
        .ok()
        .unwrap();
    keyspace::assert_same(&expected, &dump(&target.url()));
    assert_users(&target.url());
}
