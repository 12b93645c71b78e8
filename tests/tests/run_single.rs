//! Redis ≤ 6's single-file AOF (`appendonly.aof`, with an RDB preamble): the agent ships the
//! preamble as the chain's base and the commands after it as segments; a rewrite (a new file
//! renamed over the old one) starts a new chain; a restore to files, loaded by redis-server 7
//! (which migrates a single-file AOF), equals the reference server.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::time::Duration;

use aofvault_formats::resp::encode_command;
use aofvault_tests::{agent, keyspace, RedisServer};

/// Applies `cmds` to the reference server and returns them as AOF bytes.
fn apply(conn: &mut redis::Connection, cmds: &[Vec<String>]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in cmds {
        let mut cmd = redis::cmd(&c[0]);
        for a in &c[1..] {
            cmd.arg(a);
        }
        let _: redis::Value = cmd.query(conn).unwrap();
        encode_command(c, &mut out);
    }
    out
}

fn sets(from: usize, to: usize, tag: &str) -> Vec<Vec<String>> {
    (from..to)
        .map(|i| vec!["SET".into(), format!("k{}", i % 50), format!("{tag}{i}")])
        .collect()
}

/// An RDB of the reference server's current data (its SAVE output).
fn rdb_of(reference: &RedisServer, conn: &mut redis::Connection) -> Vec<u8> {
    let _: () = redis::cmd("SAVE").query(conn).unwrap();
    std::fs::read(reference.dir().join("dump.rdb")).unwrap()
}

#[test]
fn a_single_file_aof_with_an_rdb_preamble_is_shipped_and_restored() {
    let reference = RedisServer::start_with(&["--appendonly", "no"]).unwrap();
    let mut conn = reference.conn().unwrap();
    apply(&mut conn, &sets(0, 30, "a"));
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let aof = data.join("appendonly.aof");
    let preamble = rdb_of(&reference, &mut conn);
    let mut file = preamble.clone();
    file.extend(apply(&mut conn, &[vec!["SELECT".into(), "0".into()]]));
    file.extend(apply(&mut conn, &sets(30, 80, "b")));
    std::fs::write(&aof, &file).unwrap();

    let repo = tmp.path().join("repo");
    let (src, repo_url, state) = (
        data.display().to_string(),
        format!("file://{}", repo.display()),
        tmp.path().join("state").display().to_string(),
    );
    let base_args = [
        "--source",
        &src,
        "--repo",
        &repo_url,
        "--instance",
        "r6",
        "--state-dir",
        &state,
    ];
    let mut run_args = base_args.to_vec();
    run_args.push("run");
    let mut a = agent::spawn(&run_args, &[]).unwrap();
    a.wait_for_log("snapshot published", Duration::from_secs(30))
        .unwrap();
    let more = apply(&mut conn, &sets(80, 140, "c"));
    std::fs::OpenOptions::new()
        .append(true)
        .open(&aof)
        .unwrap()
        .write_all(&more)
        .unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let r = common::file_repo(&repo);
    common::wait_synced(&rt, &r, "r6", 1, |_| aof.clone());
    let (id, start, _) = rt.block_on(common::stored_stream(&r, "r6", 0)).unwrap();
    assert_eq!(
        start,
        preamble.len() as u64,
        "the stream starts after the RDB preamble"
    );
    let head = rt
        .block_on(r.chain_head("r6", aofvault::repo::ShardId(0), &id))
        .unwrap()
        .unwrap();
    assert_eq!(
        head.base[0].crc32c,
        crc32c::crc32c(&preamble),
        "the preamble is the base"
    );

    // A rewrite: a new file (new RDB preamble) renamed over the old one.
    let mut rewritten = rdb_of(&reference, &mut conn);
    rewritten.extend(apply(&mut conn, &[vec!["SELECT".into(), "0".into()]]));
    rewritten.extend(apply(&mut conn, &sets(140, 170, "d")));
    let tmpfile = data.join("temp-rewriteaof-bg-1.aof");
    std::fs::write(&tmpfile, &rewritten).unwrap();
    std::fs::rename(&tmpfile, &aof).unwrap();
    common::wait_synced(&rt, &r, "r6", 1, |_| aof.clone());
    assert_eq!(
        common::chain_count(&rt, &r, "r6", 0),
        2,
        "the rewrite started a new chain"
    );
    a.terminate().unwrap();

    let target = tmp.path().join("restored");
    let mut restore_args = base_args.to_vec();
    let t = target.display().to_string();
    restore_args.extend(["restore", "--to-dir", &t]);
    agent::run(&restore_args, &[]).unwrap().ok().unwrap();
    let restored = RedisServer::start_on_dir(&target, &["--appendonly", "yes"]).unwrap();
    let expected = keyspace::dump(&mut conn, &[0]).unwrap();
    let actual = keyspace::dump(&mut restored.conn().unwrap(), &[0]).unwrap();
    keyspace::assert_same(&expected, &actual);
    assert_eq!(expected.len(), 50);
}
