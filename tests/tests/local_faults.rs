//! Local faults: a corrupt frame in the middle of a kevy AOF, a server killed with `kill -9`
//! that comes back, a state directory that is full or read-only, and an AOF directory the
//! agent may not read. Each must end with a clear error (in the log and in `status --json`)
//! and nothing lost: a restore equals what the server holds.
//!
//! Some need root (a small tmpfs for a full or read-only state directory; `setpriv` to run the
//! agent as `nobody`, since root reads any directory whatever its mode). Without it they say
//! why on stderr and pass without checking anything.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aofvault_tests::keyspace::{self, Keyspace};
use aofvault_tests::{agent, workload, KevyServer, RedisServer};
use common::cli::{dump, kevy_sizes, redis_sizes, Cli};

mod common;

/// A file repository, a state dir, and the commands that use them.
struct Vault {
    tmp: tempfile::TempDir,
    state: PathBuf,
}

impl Vault {
    fn new() -> Vault {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        Vault { tmp, state }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn global(&self) -> Vec<String> {
        let repo = format!("file://{}", self.path("repo").display());
        let state = self.state.display().to_string();
        ["--repo", &repo, "--instance", "t", "--state-dir", &state]
            .map(String::from)
            .to_vec()
    }

    fn args(&self, args: &[&str]) -> Vec<String> {
        let mut all = self.global();
        all.extend(args.iter().map(|s| s.to_string()));
        all
    }

    fn run_agent(&self, source: &Path, server: Option<&str>) -> agent::AgentProcess {
        let dir = source.display().to_string();
        let mut a = vec!["--source", &dir];
        if let Some(url) = server {
            a.extend(["--server", url]);
        }
        a.push("run");
        let all = self.args(&a);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        agent::spawn(&all, &[]).unwrap()
    }

    fn restore_kevy(&self, name: &str, shards: u32) -> Keyspace {
        let to = self.path(name);
        self.cmd(&["restore", "--to-dir", &to.display().to_string()])
            .ok()
            .unwrap();
        let copy = KevyServer::start_on_dir(&to, shards).unwrap();
        dump(&copy.url())
    }
}

impl Cli for Vault {
    fn cmd(&self, args: &[&str]) -> agent::Output {
        let all = self.args(args);
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        agent::run(&all, &[]).unwrap()
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn skip(test: &str, why: &str) {
    eprintln!("SKIPPED {test}: {why}");
    println!("SOAK-SUMMARY local-faults {test} skipped: {why}");
}

/// The offset of a command start (`*<digit>` after CR LF) at or after the middle of `aof`.
fn command_start_after_middle(aof: &[u8]) -> usize {
    let mut at = aof.len() / 2;
    while at + 3 < aof.len() {
        if &aof[at..at + 3] == b"\r\n*" && aof[at + 3].is_ascii_digit() {
            return at + 2;
        }
        at += 1;
    }
    panic!(
        "no command start after the middle of a {}-byte AOF",
        aof.len()
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn a_corrupt_frame_stops_that_shard_only_and_nothing_past_it_is_shipped() {
    let mut kevy = KevyServer::start(4).unwrap();
    workload::mixed(&mut kevy.conn().unwrap(), 41, 6000, 800).unwrap();
    kevy.stop();
    let dir = kevy.dir().to_path_buf();
    let bad = dir.join("aof-2.aof");
    let mut bytes = std::fs::read(&bad).unwrap();
    let at = command_start_after_middle(&bytes);
    bytes[at..at + 8].copy_from_slice(b"GARBAGE!");
    std::fs::write(&bad, &bytes).unwrap();

    // The agent follows that directory from scratch (the server is down: files only).
    let v = Vault::new();
    let mut a = v.run_agent(&dir, None);
    a.wait_for_log("shard stopped", Duration::from_secs(60))
        .unwrap();
    let sizes = |d: &Path| -> Vec<u64> {
        (0..4)
            .map(|i| {
                std::fs::metadata(d.join(format!("aof-{i}.aof")))
                    .unwrap()
                    .len()
            })
            .collect()
    };
    // The other shards ship everything; the broken one nothing past the corruption — and
    // everything before it.
    let want = sizes(&dir);
    v.wait_plan(
        "the healthy shards ship all, the corrupt one up to the corruption",
        &|ends| {
            ends.len() == 4
                && ends[0] == want[0]
                && ends[1] == want[1]
                && ends[3] == want[3]
                && ends[2] == at as u64
        },
        &|| a.logs(),
    );
    // The status file is rewritten every second: the stop shows at the next write.
    aofvault_tests::wait_until(Duration::from_secs(10), "the status says stopped", || {
        Ok(v.status()["shards"][2]["state"] == "stopped")
    })
    .unwrap_or_else(|e| panic!("{e}: {}", v.status()));
    let st = v.status();
    let shard = &st["shards"][2];
    assert_eq!(shard["state"], "stopped", "{st}");
    let err = shard["last_error"].as_str().unwrap_or_default();
    assert!(
        err.contains(&bad.display().to_string()) && err.contains(&format!("offset {at}")),
        "the error names the file and the offset {at}: {err}"
    );
    for i in [0, 1, 3] {
        assert_eq!(st["shards"][i]["state"], "following", "shard {i}: {st}");
    }
    assert!(a.logs().contains(&format!("offset {at}")), "{}", a.logs());

    // Nothing lost so far: a restore holds exactly what the files hold up to the corruption.
    let expected_dir = v.path("expected");
    copy_dir(&dir, &expected_dir);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(expected_dir.join("aof-2.aof"))
        .unwrap();
    f.set_len(at as u64).unwrap();
    drop(f);
    let expected = dump(&KevyServer::start_on_dir(&expected_dir, 4).unwrap().url());
    assert!(expected.len() > 300);
    keyspace::assert_same(&expected, &v.restore_kevy("restored", 4));

    // The server comes back on these files (kevy drops what follows the bad frame, and goes on
    // appending after it): the other shards ship what it writes, the broken one nothing.
    let kevy = KevyServer::start_on_dir(&dir, 4).unwrap();
    let mut conn = kevy.conn().unwrap();
    workload::mixed(&mut conn, 42, 3000, 800).unwrap();
    kevy.wait_aof_flushed().unwrap();
    let want = sizes(&dir);
    assert!(want[2] > bytes.len() as u64, "kevy appended to aof-2.aof");
    v.wait_plan(
        "the healthy shards ship the new writes, the corrupt one nothing",
        &|ends| {
            ends.len() == 4
                && ends[0] == want[0]
                && ends[1] == want[1]
                && ends[3] == want[3]
                && ends[2] == at as u64
        },
        &|| a.logs(),
    );
    assert_eq!(v.status()["shards"][2]["state"], "stopped");

    // A rewrite replaces the broken file: the shard ships again, on a new chain.
    let _: () = redis::cmd("BGREWRITEAOF").query(&mut conn).unwrap();
    workload::mixed(&mut conn, 43, 1000, 800).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    kevy.wait_aof_flushed().unwrap();
    v.wait_plan(
        "every shard ships after the rewrite",
        &|ends| ends == sizes(&dir).as_slice(),
        &|| a.logs(),
    );
    let st = v.status();
    for i in 0..4 {
        assert_eq!(st["shards"][i]["state"], "following", "shard {i}: {st}");
        assert!(st["shards"][i]["last_error"].is_null(), "shard {i}: {st}");
    }
    assert!(a.is_running(), "the agent goes on: {}", a.logs());
    a.terminate().unwrap();
    let out = v.cmd(&["verify"]);
    assert!(out.success(), "verify: {}\n{}", out.stdout, out.stderr);
    let live = dump(&kevy.url());
    keyspace::assert_same(&live, &v.restore_kevy("after-rewrite", 4));
    println!(
        "SOAK-SUMMARY local-faults corrupt-frame shard=2 offset={at} shipped_up_to={at} other_shards=complete keys_before={} keys_after_rewrite={} restore=equal",
        expected.len(),
        live.len()
    );
}

#[test]
fn a_server_killed_and_restarted_loses_nothing_kevy_and_redis() {
    // kevy, 4 shards.
    let mut kevy = KevyServer::start(4).unwrap();
    workload::mixed(&mut kevy.conn().unwrap(), 51, 2000, 400).unwrap();
    let v = Vault::new();
    let mut a = v.run_agent(kevy.dir(), Some(&kevy.url()));
    a.wait_for_log("snapshot published", Duration::from_secs(60))
        .unwrap();
    let writer = workload::background(kevy.url(), 52, 400);
    std::thread::sleep(Duration::from_millis(1500));
    kevy.kill();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        a.is_running(),
        "the agent outlives the server: {}",
        a.logs()
    );
    kevy.restart().unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    // kevy 1.19 keeps the half-written frame a crash leaves at the end of an AOF and appends
    // after it: those shards hold invalid bytes now, and the agent stops them (naming file
    // and offset) rather than ship them. A rewrite gives clean files; they ship again.
    let st = v.status();
    let mut stopped = Vec::new();
    for (i, sh) in st["shards"].as_array().unwrap().iter().enumerate() {
        if sh["state"] == "stopped" {
            let err = sh["last_error"].as_str().unwrap_or_default();
            assert!(
                err.contains(&format!("aof-{i}.aof"))
                    && err.contains("invalid AOF bytes at offset"),
                "shard {i}: {err}"
            );
            stopped.push(i);
        }
    }
    let _: () = redis::cmd("BGREWRITEAOF")
        .query(&mut kevy.conn().unwrap())
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let written = writer.stop();
    kevy.wait_aof_flushed().unwrap();
    v.wait_shipped(&|| kevy_sizes(&kevy), &a);
    let st = v.status();
    for sh in st["shards"].as_array().unwrap() {
        assert_eq!(sh["state"], "following", "{st}");
    }
    a.terminate().unwrap();
    let expected = dump(&kevy.url());
    keyspace::assert_same(&expected, &v.restore_kevy("kevy", 4));

    // redis-server.
    let mut redis = RedisServer::start().unwrap();
    workload::mixed(&mut redis.conn().unwrap(), 53, 2000, 400).unwrap();
    let r = Vault::new();
    let mut a = r.run_agent(redis.dir(), Some(&redis.url()));
    a.wait_for_log("snapshot published", Duration::from_secs(60))
        .unwrap();
    let writer = workload::background(redis.url(), 54, 400);
    std::thread::sleep(Duration::from_millis(1500));
    redis.kill();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        a.is_running(),
        "the agent outlives the server: {}",
        a.logs()
    );
    redis.restart().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let written_redis = writer.stop();
    r.wait_shipped(&|| redis_sizes(&redis), &a);
    a.terminate().unwrap();
    let expected_redis = dump(&redis.url());
    let to = r.path("redis");
    r.cmd(&["restore", "--to-dir", &to.display().to_string()])
        .ok()
        .unwrap();
    let copy = RedisServer::start_on_dir(&to, &[]).unwrap();
    keyspace::assert_same(&expected_redis, &dump(&copy.url()));
    println!(
        "SOAK-SUMMARY local-faults server-kill9 kevy_writes={written} kevy_shards_stopped_by_torn_frame={stopped:?} kevy_keys={} redis_writes={written_redis} redis_keys={} restore=equal",
        expected.len(),
        expected_redis.len()
    );
}

/// A small tmpfs, unmounted on drop (also when the test fails).
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(path).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            path: path.to_path_buf(),
        })
    }

    fn remount(&self, opts: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.path)
            .output()
            .unwrap();
        assert!(out.status.success(), "remount {opts}: {out:?}");
    }

    /// Fills it up (a filler file written until ENOSPC).
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.path.join("filler")).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).and_then(|()| f.sync_all()).is_ok() {}
    }

    fn free(&self) {
        std::fs::remove_file(self.path.join("filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[test]
fn a_full_or_read_only_state_directory_is_reported_and_shipping_goes_on() {
    const TEST: &str = "state-dir-full-or-read-only";
    if !is_root() {
        return skip(TEST, "needs root to mount a small tmpfs");
    }
    let v = Vault::new();
    let tmpfs = match Tmpfs::mount(&v.state, "64k") {
        Ok(t) => t,
        Err(e) => return skip(TEST, &e),
    };
    let kevy = KevyServer::start(2).unwrap();
    let mut conn = kevy.conn().unwrap();
    workload::mixed(&mut conn, 61, 2000, 300).unwrap();

    // Full from the start.
    tmpfs.fill();
    let mut a = v.run_agent(kevy.dir(), Some(&kevy.url()));
    a.wait_for_log("snapshot published", Duration::from_secs(60))
        .unwrap();
    workload::mixed(&mut conn, 62, 2000, 300).unwrap();
    kevy.wait_aof_flushed().unwrap();
    v.wait_shipped(&|| kevy_sizes(&kevy), &a);
    a.wait_for_log("No space left on device", Duration::from_secs(10))
        .unwrap();
    let full_log = a.logs();
    let line = full_log
        .lines()
        .find(|l| l.contains("No space left on device"))
        .unwrap()
        .to_string();
    assert!(
        line.contains("status"),
        "the error says what could not be written: {line}"
    );

    // Space again: the status file comes back.
    tmpfs.free();
    let deadline = Instant::now() + Duration::from_secs(20);
    while v.status()["shards"].as_array().is_none() {
        assert!(Instant::now() < deadline, "no status after space came back");
        std::thread::sleep(Duration::from_millis(300));
    }

    // Read-only: the status goes stale, shipping goes on, the log says why.
    tmpfs.remount("ro");
    let before = v.status()["written_ms"].as_i64().unwrap();
    workload::mixed(&mut conn, 63, 2000, 300).unwrap();
    kevy.wait_aof_flushed().unwrap();
    v.wait_shipped(&|| kevy_sizes(&kevy), &a);
    a.wait_for_log("Read-only file system", Duration::from_secs(10))
        .unwrap();
    assert_eq!(
        v.status()["written_ms"].as_i64().unwrap(),
        before,
        "nothing is written to a read-only state dir"
    );
    assert!(a.is_running(), "{}", a.logs());
    tmpfs.remount("rw");
    let deadline = Instant::now() + Duration::from_secs(20);
    while v.status()["written_ms"].as_i64().unwrap_or(0) == before {
        assert!(Instant::now() < deadline, "the status never came back");
        std::thread::sleep(Duration::from_millis(300));
    }
    a.terminate().unwrap();
    let expected = dump(&kevy.url());
    keyspace::assert_same(&expected, &v.restore_kevy("restored", 2));
    println!(
        "SOAK-SUMMARY local-faults {TEST} keys={} full_error={:?} restore=equal",
        expected.len(),
        line.split("error=").nth(1).unwrap_or(&line)
    );
}

/// Makes `path` and every directory above it traversable by anyone (the temp dirs are 0700).
fn open_up(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn an_aof_directory_the_agent_cannot_read_is_reported_and_caught_up_once_readable() {
    const TEST: &str = "aof-dir-unreadable";
    if !is_root() {
        return skip(TEST, "needs root to run the agent as another user");
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        return skip(TEST, "setpriv is not installed");
    }
    let kevy = KevyServer::start(2).unwrap();
    let mut conn = kevy.conn().unwrap();
    workload::mixed(&mut conn, 71, 2000, 300).unwrap();
    let data = kevy.dir().to_path_buf();
    let root = data.parent().unwrap().to_path_buf();
    open_up(&root, 0o755);
    open_up(&data, 0o755);
    let v = Vault::new();
    open_up(v.tmp.path(), 0o777);
    std::fs::create_dir_all(v.path("repo")).unwrap();
    std::fs::create_dir_all(&v.state).unwrap();
    open_up(&v.path("repo"), 0o777);
    open_up(&v.state, 0o777);
    let as_nobody = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = ["--reuid=65534", "--regid=65534", "--clear-groups", "--"]
            .map(String::from)
            .to_vec();
        all.push(agent::bin().display().to_string());
        all.extend(v.args(args));
        all
    };
    let source = data.display().to_string();
    let url = kevy.url();
    let run = as_nobody(&["--source", &source, "--server", &url, "run"]);
    let run: Vec<&str> = run.iter().map(String::as_str).collect();

    // Unreadable from the start: a clear error, naming the directory.
    open_up(&data, 0o700);
    let out = agent::run_program(Path::new("setpriv"), &run, &[], Duration::from_secs(30));
    let started_blind = match out {
        Ok(o) => o,
        Err(e) => panic!("the agent neither exited nor shipped with an unreadable dir: {e:#}"),
    };
    assert!(!started_blind.success(), "{started_blind:?}");
    assert!(
        started_blind.stderr.contains(&source) && started_blind.stderr.contains("ermission denied"),
        "the start-up error names the directory and the cause: {}",
        started_blind.stderr
    );

    // Readable, then not while the server writes, then readable again.
    open_up(&data, 0o755);
    let mut a = agent::spawn_program(Path::new("setpriv"), &run, &[]).unwrap();
    a.wait_for_log("snapshot published", Duration::from_secs(60))
        .unwrap();
    open_up(&data, 0o700);
    workload::mixed(&mut conn, 72, 2000, 300).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let reported = loop {
        let st = v.status();
        let errs: Vec<String> = st["shards"]
            .as_array()
            .map(|s| {
                s.iter()
                    .filter_map(|sh| sh["last_error"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(e) = errs.iter().find(|e| e.contains("ermission denied")) {
            break e.clone();
        }
        assert!(
            Instant::now() < deadline,
            "status never reported the unreadable directory: {st}\n{}",
            a.logs()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(a.is_running(), "{}", a.logs());
    open_up(&data, 0o755);
    kevy.wait_aof_flushed().unwrap();
    v.wait_shipped(&|| kevy_sizes(&kevy), &a);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = v.status();
        let ok = st["shards"].as_array().is_some_and(|s| {
            s.iter()
                .all(|sh| sh["state"] == "following" && sh["last_error"].is_null())
        });
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "status stayed in error: {st}");
        std::thread::sleep(Duration::from_millis(300));
    }
    a.terminate().unwrap();
    let expected = dump(&kevy.url());
    keyspace::assert_same(&expected, &v.restore_kevy("restored", 2));
    println!(
        "SOAK-SUMMARY local-faults {TEST} keys={} reported={reported:?} restore=equal",
        expected.len()
    );
}
