//! `inspect` on files written here: each format, each output form, corrupt and half-written
//! input.

#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::path::Path;

use anyhow::Result;

use aofvault_formats::resp::encode_command;
use serde_json::json;

use super::*;
use aofvault_formats::kevy::write_snapshot;
use aofvault_formats::model::{Entry, Value};

fn inspect_bytes(path: &Path, json: bool, resp: bool) -> Result<Vec<u8>> {
    let args = crate::cli::InspectArgs {
        file: path.to_path_buf(),
        json,
        resp,
    };
    let mut out = Vec::new();
    run(&args, &mut out)?;
    Ok(out)
}

fn inspect(path: &Path, json: bool, resp: bool) -> Result<String> {
    inspect_bytes(path, json, resp).map(|b| String::from_utf8_lossy(&b).into_owned())
}

fn cmd(args: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_command(args, &mut out);
    out
}

#[test]
fn kevy_snapshot_summary_json_and_resp() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dump-0.rdb");
    let entries = [
        Entry {
            db: 0,
            key: b"s".to_vec(),
            value: Value::String(b"v".to_vec()),
            expire_at_ms: Some(1_700_000_000_000),
        },
        Entry {
            db: 0,
            key: b"l".to_vec(),
            value: Value::List(vec![b"\xff".to_vec()]),
            expire_at_ms: None,
        },
    ];
    write_snapshot(File::create(&path).unwrap(), &entries).unwrap();
    let summary = inspect(&path, false, false).unwrap();
    assert!(
        summary.contains("kevy snapshot (KEVYSNAP), version 4"),
        "{summary}"
    );
    assert!(
        summary.contains("keys:      2 (list 1, string 1)"),
        "{summary}"
    );
    assert!(summary.contains("expiring:  1"), "{summary}");
    let json: serde_json::Value =
        serde_json::from_str(&inspect(&path, true, false).unwrap()).unwrap();
    assert_eq!(json[0]["expiration"], "2023-11-14T22:13:20.000Z");
    assert_eq!(json[1]["values"][0], json!({"base64": "/w=="}));
    let resp = inspect_bytes(&path, false, true).unwrap();
    let mut want = cmd(&["SET", "s", "v"]);
    want.extend(cmd(&["PEXPIREAT", "s", "1700000000000"]));
    want.extend_from_slice(b"*3\r\n$5\r\nRPUSH\r\n$1\r\nl\r\n$1\r\n\xff\r\n");
    assert_eq!(resp, want);
}

#[test]
fn aof_commands_timestamps_and_an_unfinished_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("appendonly.aof.1.incr.aof");
    let mut bytes = b"#TS:1700000000\r\n".to_vec();
    bytes.extend(cmd(&["SET", "a", "1"]));
    bytes.extend(cmd(&["set", "b", "2"]));
    bytes.extend(cmd(&["MULTI"]));
    std::fs::write(&path, &bytes).unwrap();
    let summary = inspect(&path, false, false).unwrap();
    assert!(summary.contains("format:    Redis AOF"), "{summary}");
    assert!(summary.contains("commands:  2 (SET 2)"), "{summary}");
    assert!(summary.contains("2023-11-14T22:13:20.000Z"), "{summary}");
    assert!(
        summary.contains(&format!("15 bytes from byte {}", bytes.len() - 15)),
        "{summary}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&inspect(&path, true, false).unwrap()).unwrap();
    assert_eq!(json, json!([["SET", "a", "1"], ["set", "b", "2"]]));
}

#[test]
fn corrupt_input_names_the_file_and_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("aof-0.aof");
    let mut bytes = b"KEVYAOF1\n".to_vec();
    bytes.extend(cmd(&["SET", "a", "1"]));
    let bad_at = bytes.len();
    bytes.extend_from_slice(b"*2\r\n$3\r\nDEL\r\n?1\r\na\r\n");
    std::fs::write(&path, &bytes).unwrap();
    let err = format!("{:#}", inspect(&path, false, false).unwrap_err());
    assert!(err.contains("aof-0.aof"), "{err}");
    assert!(err.contains(&format!("byte {}", bad_at + 13)), "{err}");

    let snap = dir.path().join("dump-0.rdb");
    std::fs::write(&snap, b"KEVYSNAP\x04\x01\x00\xff\xff\xff\xff").unwrap();
    let err = format!("{:#}", inspect(&snap, false, false).unwrap_err());
    assert!(
        err.contains("dump-0.rdb") && err.contains("byte 15"),
        "{err}"
    );
}

#[test]
fn manifest_lists_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("appendonly.aof.manifest");
    std::fs::write(
        &path,
        "file a.rdb seq 1 type b\nfile a.1.incr.aof seq 1 type i\n",
    )
    .unwrap();
    let summary = inspect(&path, false, false).unwrap();
    assert!(summary.contains("base     seq 1      a.rdb"), "{summary}");
    let json: serde_json::Value =
        serde_json::from_str(&inspect(&path, true, false).unwrap()).unwrap();
    assert_eq!(
        json[1],
        json!({"file": "a.1.incr.aof", "seq": 1, "type": "incr"})
    );
}
