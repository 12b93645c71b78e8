//! `assert_server_holds`: compare a live server, key by key, with entries of the neutral form.

use std::collections::BTreeMap;

use aofvault_formats::model::{Entry, Stream, Value};

use super::{Client, Reply};

/// Largest accepted difference between a TTL the server reports and the expected deadline, in
/// ms: kevy keeps deadlines on a monotonic clock and converts at save and load.
const TTL_SLACK_MS: i64 = 5_000;

/// Every entry is on the server with the same type, value, TTL and (for streams) metadata,
/// groups, consumers and pending entries; and each database holds nothing else.
pub fn assert_server_holds(c: &mut Client, entries: &[Entry]) {
    let mut per_db: BTreeMap<u32, i64> = BTreeMap::new();
    for e in entries {
        *per_db.entry(e.db).or_default() += 1;
    }
    for (db, count) in &per_db {
        if *db != 0 {
            c.ok(&["SELECT".to_owned(), db.to_string()]);
        } else {
            c.cmd(&["SELECT", "0"]);
        }
        assert_eq!(c.ok(&["DBSIZE"]).int(), *count, "key count of db {db}");
    }
    let mut current_db = None;
    for e in entries {
        if current_db != Some(e.db) {
            c.cmd(&["SELECT".to_owned(), e.db.to_string()]);
            current_db = Some(e.db);
        }
        assert_entry(c, e);
    }
    c.cmd(&["SELECT", "0"]);
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn assert_entry(c: &mut Client, e: &Entry) {
    let k = e.key.clone();
    let name = show(&k);
    let ty = c.ok(&[b"TYPE".to_vec(), k.clone()]).bytes();
    assert_eq!(show(&ty), e.value.type_name(), "type of {name}");
    match &e.value {
        Value::String(v) => {
            assert_eq!(
                &c.ok(&[b"GET".to_vec(), k.clone()]).bytes(),
                v,
                "value of {name}"
            )
        }
        Value::List(items) => {
            let got = c.ok(&[b"LRANGE".to_vec(), k.clone(), b"0".to_vec(), b"-1".to_vec()]);
            assert_eq!(&got.byte_list(), items, "list {name}");
        }
        Value::Set(members) => {
            let mut got = c.ok(&[b"SMEMBERS".to_vec(), k.clone()]).byte_list();
            let mut want = members.clone();
            got.sort();
            want.sort();
            assert_eq!(got, want, "set {name}");
        }
        Value::ZSet(pairs) => {
            let got = c.ok(&[
                b"ZRANGE".to_vec(),
                k.clone(),
                b"0".to_vec(),
                b"-1".to_vec(),
                b"WITHSCORES".to_vec(),
            ]);
            let got: BTreeMap<Vec<u8>, f64> = got
                .byte_list()
                .chunks(2)
                .map(|p| (p[0].clone(), parse_score(&p[1])))
                .collect();
            let want: BTreeMap<Vec<u8>, f64> = pairs.iter().cloned().collect();
            assert_eq!(got, want, "zset {name}");
        }
        Value::Hash(fields) => {
            let got: BTreeMap<Vec<u8>, Vec<u8>> = c
                .ok(&[b"HGETALL".to_vec(), k.clone()])
                .byte_list()
                .chunks(2)
                .map(|p| (p[0].clone(), p[1].clone()))
                .collect();
            let want: BTreeMap<Vec<u8>, Vec<u8>> = fields
                .iter()
                .map(|f| (f.field.clone(), f.value.clone()))
                .collect();
            assert_eq!(got, want, "hash {name}");
        }
        Value::Stream(s) => assert_stream(c, &k, s),
    }
    let pttl = c.ok(&[b"PTTL".to_vec(), k.clone()]).int();
    match e.expire_at_ms {
        None => assert_eq!(pttl, -1, "{name} must not expire"),
        Some(at) => {
            assert!(pttl > 0, "{name} must have a TTL, PTTL is {pttl}");
            let implied = now_ms() + pttl;
            assert!(
                (implied - at).abs() <= TTL_SLACK_MS,
                "{name}: server deadline {implied} vs expected {at}"
            );
        }
    }
}

fn assert_stream(c: &mut Client, k: &[u8], s: &Stream) {
    let name = show(k);
    let got = c.ok(&[b"XRANGE".to_vec(), k.to_vec(), b"-".to_vec(), b"+".to_vec()]);
    let got: Vec<(String, Vec<Vec<u8>>)> = got
        .array()
        .iter()
        .map(|e| {
            let parts = e.array();
            (show(&parts[0].bytes()), parts[1].byte_list())
        })
        .collect();
    let want: Vec<(String, Vec<Vec<u8>>)> = s
        .entries
        .iter()
        .map(|e| {
            let flat = e
                .fields
                .iter()
                .flat_map(|(f, v)| [f.clone(), v.clone()])
                .collect();
            (e.id.to_string(), flat)
        })
        .collect();
    assert_eq!(got, want, "entries of stream {name}");

    let info = c
        .ok(&[b"XINFO".to_vec(), b"STREAM".to_vec(), k.to_vec()])
        .field_map();
    let text = |field: &str| show(&info[field].bytes());
    assert_eq!(
        info["length"].int(),
        s.entries.len() as i64,
        "{name} length"
    );
    assert_eq!(
        text("last-generated-id"),
        s.last_id.to_string(),
        "{name} last id"
    );
    assert_eq!(
        text("max-deleted-entry-id"),
        s.max_deleted_id.to_string(),
        "{name}"
    );
    assert_eq!(
        info["entries-added"].int(),
        s.entries_added as i64,
        "{name} entries added"
    );

    let groups = c.ok(&[b"XINFO".to_vec(), b"GROUPS".to_vec(), k.to_vec()]);
    let groups: BTreeMap<Vec<u8>, BTreeMap<String, Reply>> = groups
        .array()
        .iter()
        .map(|g| {
            let m = g.field_map();
            (m["name"].bytes(), m)
        })
        .collect();
    assert_eq!(groups.len(), s.groups.len(), "{name} group count");
    for g in &s.groups {
        let info = &groups[&g.name];
        let gname = show(&g.name);
        assert_eq!(
            show(&info["last-delivered-id"].bytes()),
            g.last_delivered.to_string()
        );
        assert_eq!(
            info["pending"].int(),
            g.pending.len() as i64,
            "{name}/{gname} pending"
        );
        if let (Some(n), Some(Reply::Int(got))) = (g.entries_read, info.get("entries-read")) {
            assert_eq!(*got, n as i64, "{name}/{gname} entries-read");
        }
        let pending = c.ok(&[
            b"XPENDING".to_vec(),
            k.to_vec(),
            g.name.clone(),
            b"-".to_vec(),
            b"+".to_vec(),
            b"100000".to_vec(),
        ]);
        let got: Vec<(String, Vec<u8>, i64)> = pending
            .array()
            .iter()
            .map(|p| {
                let p = p.array();
                (show(&p[0].bytes()), p[1].bytes(), p[3].int())
            })
            .collect();
        let want: Vec<(String, Vec<u8>, i64)> = g
            .pending
            .iter()
            .map(|p| {
                (
                    p.id.to_string(),
                    p.consumer.clone(),
                    p.delivery_count as i64,
                )
            })
            .collect();
        assert_eq!(got, want, "{name}/{gname} pending entries");
        let consumers = c.ok(&[
            b"XINFO".to_vec(),
            b"CONSUMERS".to_vec(),
            k.to_vec(),
            g.name.clone(),
        ]);
        let mut got: Vec<Vec<u8>> = consumers
            .array()
            .iter()
            .map(|m| m.field_map()["name"].bytes())
            .collect();
        let mut want: Vec<Vec<u8>> = g.consumers.iter().map(|c| c.name.clone()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{name}/{gname} consumers");
    }
}

fn parse_score(b: &[u8]) -> f64 {
    let s = show(b);
    match s.as_str() {
        "inf" | "+inf" => f64::INFINITY,
        "-inf" => f64::NEG_INFINITY,
        _ => s.parse().unwrap_or_else(|_| panic!("score {s:?}")),
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
