//! Every RDB fixture decodes, and where the fixture set ships the expected content as JSON
//! (`hdt3213/*.json`, written by an independent parser), the decoded records equal it key for
//! key: database, key, type, value, expiry and hash field expiries. Values are compared
//! semantically: sets as sets, zsets and hashes as maps, expiries as instants.
//!
//! The fixtures are kept in `tests/fixtures/rdb/` (copied with their licences from the shared
//! fixture set, `../../shared/fixtures/rdb`, which is also checked when present so a fixture
//! added there is not silently missed here).
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use aofvault_formats::model::{Entry, Record, Stream, Value};
use aofvault_formats::rdb::{decode_all, ChecksumStatus, RdbError, RdbReader};
use serde_json::Value as Json;

fn fixture_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rdb")
}

fn rdb_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(root).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|e| e == "rdb") {
                out.push(file);
            }
        }
    }
    out.sort();
    out
}

/// Module fixtures: the decoder stops with an error naming the module type and the key.
const MODULE_FIXTURES: &[(&str, &str, &str)] = &[
    ("redis_40_with_module.rdb", "foo", "ReJSON-RL"),
    ("redis_60_with_module_aux.rdb", "", "test__rdb"),
];

#[test]
fn the_repo_copy_holds_every_shared_fixture() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/rdb");
    if !shared.is_dir() {
        return;
    }
    for file in rdb_files(&shared) {
        let rel = file.strip_prefix(&shared).unwrap();
        let copy = fixture_root().join(rel);
        assert_eq!(
            std::fs::read(&file).unwrap(),
            std::fs::read(&copy).unwrap(),
            "{} differs",
            rel.display()
        );
    }
}

#[test]
fn every_fixture_decodes_and_matches_its_json() {
    let files = rdb_files(&fixture_root());
    assert!(files.len() >= 25, "found only {} fixtures", files.len());
    let mut compared = 0;
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(file).unwrap();
        if let Some(&(_, key, module)) = MODULE_FIXTURES.iter().find(|(f, _, _)| *f == name) {
            match decode_all(&bytes) {
                Err(RdbError::Module {
                    key: k, module: m, ..
                }) => assert_eq!((k.as_str(), m.as_str()), (key, module)),
                other => panic!("{name}: expected a module error, got {other:?}"),
            }
            continue;
        }
        let records = decode_all(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let json_path = file.with_extension("json");
        if json_path.exists() {
            let expected: Vec<Json> =
                serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
            compare(&name, &records, &expected);
            compared += 1;
        }
    }
    assert_eq!(compared, 22, "every hdt3213 fixture has its JSON");
}

#[test]
fn checksums_of_real_files_verify() {
    for (name, status) in [
        ("hdt3213/listpack.rdb", ChecksumStatus::Verified),
        (
            "hdt3213/rdb_version_5_with_checksum.rdb",
            ChecksumStatus::Verified,
        ),
        (
            "redis-rdb-tools/redis_50_with_streams.rdb",
            ChecksumStatus::Verified,
        ),
    ] {
        let bytes = std::fs::read(fixture_root().join(name)).unwrap();
        let mut reader = RdbReader::new(&bytes[..]).unwrap();
        while reader.next_record().unwrap().is_some() {}
        assert_eq!(reader.checksum(), status, "{name}");
        assert_eq!(reader.offset(), bytes.len() as u64, "{name}");
    }
}

#[test]
fn redis_5_streams_fixture_has_its_keys() {
    let bytes =
        std::fs::read(fixture_root().join("redis-rdb-tools/redis_50_with_streams.rdb")).unwrap();
    let entries: Vec<Entry> = decode_all(&bytes)
        .unwrap()
        .into_iter()
        .filter_map(|r| {
            if let Record::Entry(e) = r {
                Some(e)
            } else {
                None
            }
        })
        .collect();
    let types: BTreeMap<String, &str> = entries
        .iter()
        .map(|e| {
            (
                String::from_utf8_lossy(&e.key).into_owned(),
                e.value.type_name(),
            )
        })
        .collect();
    assert_eq!(types.get("string"), Some(&"string"));
    assert_eq!(
        types.values().filter(|t| **t == "stream").count(),
        1,
        "{types:?}"
    );
    let stream = entries
        .iter()
        .find_map(|e| {
            if let Value::Stream(s) = &e.value {
                Some(s)
            } else {
                None
            }
        })
        .unwrap();
    assert!(!stream.entries.is_empty());
    assert!(stream.entries.windows(2).all(|w| w[0].id < w[1].id));
    assert!(stream
        .entries
        .last()
        .is_some_and(|e| e.id <= stream.last_id));
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn compare(name: &str, records: &[Record], expected: &[Json]) {
    let mut got: BTreeMap<(u32, String), &Entry> = BTreeMap::new();
    for record in records {
        if let Record::Entry(e) = record {
            assert!(
                got.insert((e.db, lossy(&e.key)), e).is_none(),
                "{name}: duplicate key"
            );
        }
    }
    assert_eq!(got.len(), expected.len(), "{name}: key count");
    for want in expected {
        let db = want["db"].as_u64().unwrap() as u32;
        let key = want["key"].as_str().unwrap().to_owned();
        let ctx = format!("{name}: db {db} key {key:?}");
        let entry = got
            .get(&(db, key.clone()))
            .unwrap_or_else(|| panic!("{ctx}: missing"));
        assert_eq!(
            entry.value.type_name(),
            want["type"].as_str().unwrap(),
            "{ctx}: type"
        );
        let want_expiry = want
            .get("expiration")
            .and_then(Json::as_str)
            .map(rfc3339_ms);
        assert_eq!(entry.expire_at_ms, want_expiry, "{ctx}: expiry");
        match &entry.value {
            Value::String(v) => assert_eq!(lossy(v), want["value"].as_str().unwrap(), "{ctx}"),
            Value::List(v) => assert_eq!(
                v.iter().map(|x| lossy(x)).collect::<Vec<_>>(),
                strings(&want["values"]),
                "{ctx}"
            ),
            Value::Set(v) => {
                let got: BTreeSet<String> = v.iter().map(|x| lossy(x)).collect();
                let want: BTreeSet<String> = strings(&want["members"]).into_iter().collect();
                assert_eq!(got.len(), v.len(), "{ctx}: duplicate members");
                assert_eq!(got, want, "{ctx}");
            }
            Value::ZSet(v) => {
                let got: BTreeMap<String, f64> = v.iter().map(|(m, s)| (lossy(m), *s)).collect();
                let want: BTreeMap<String, f64> = want["entries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| {
                        (
                            e["member"].as_str().unwrap().to_owned(),
                            e["score"].as_f64().unwrap(),
                        )
                    })
                    .collect();
                assert_eq!(got, want, "{ctx}");
            }
            Value::Hash(v) => {
                let got: BTreeMap<String, String> = v
                    .iter()
                    .map(|f| (lossy(&f.field), lossy(&f.value)))
                    .collect();
                let want_hash: BTreeMap<String, String> = want["hash"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect();
                assert_eq!(got, want_hash, "{ctx}");
                // Field expiries: the JSON lists every field, 0 meaning none.
                let got_ttl: BTreeMap<String, i64> = v
                    .iter()
                    .map(|f| (lossy(&f.field), f.expire_at_ms.unwrap_or(0)))
                    .collect();
                match want.get("expire").and_then(Json::as_object) {
                    Some(ttl) => {
                        let want_ttl: BTreeMap<String, i64> = ttl
                            .iter()
                            .map(|(k, v)| (k.clone(), v.as_i64().unwrap()))
                            .collect();
                        assert_eq!(got_ttl, want_ttl, "{ctx}: field expiries");
                    }
                    None => assert!(v.iter().all(|f| f.expire_at_ms.is_none()), "{ctx}"),
                }
            }
            Value::Stream(s) => compare_stream(&ctx, s, want),
        }
    }
}

fn strings(json: &Json) -> Vec<String> {
    json.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

/// The JSON renders a stream as its nodes (`entries`, each with `msgs` including deleted ones),
/// `len`, `lastId` and `groups` with `pending` and per-consumer `pending` id lists.
fn compare_stream(ctx: &str, s: &Stream, want: &Json) {
    let want_entries: Vec<(String, BTreeMap<String, String>)> = want["entries"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|node| node["msgs"].as_array().unwrap().iter())
        .filter(|m| !m["deleted"].as_bool().unwrap())
        .map(|m| {
            let fields = m["fields"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()));
            (m["id"].as_str().unwrap().to_owned(), fields.collect())
        })
        .collect();
    let got_entries: Vec<(String, BTreeMap<String, String>)> = s
        .entries
        .iter()
        .map(|e| {
            (
                e.id.to_string(),
                e.fields.iter().map(|(f, v)| (lossy(f), lossy(v))).collect(),
            )
        })
        .collect();
    assert_eq!(got_entries, want_entries, "{ctx}: entries");
    // `len` is the length field stored in the file, which the model does not carry (it is the
    // number of live entries); it can be stale: key `trim` stores 120 over 118 live entries.
    assert!(
        s.entries.len() as u64 <= want["len"].as_u64().unwrap(),
        "{ctx}: len"
    );
    assert_eq!(
        s.last_id.to_string(),
        want["lastId"].as_str().unwrap(),
        "{ctx}: last id"
    );
    let no_groups = Vec::new();
    let want_groups = want
        .get("groups")
        .and_then(Json::as_array)
        .unwrap_or(&no_groups);
    assert_eq!(s.groups.len(), want_groups.len(), "{ctx}: groups");
    for (g, wg) in s.groups.iter().zip(want_groups) {
        assert_eq!(lossy(&g.name), wg["name"].as_str().unwrap(), "{ctx}");
        assert_eq!(
            g.last_delivered.to_string(),
            wg["lastId"].as_str().unwrap(),
            "{ctx}"
        );
        let mut owner: BTreeMap<String, String> = BTreeMap::new();
        for c in wg
            .get("consumers")
            .and_then(Json::as_array)
            .unwrap_or(&no_groups)
        {
            for id in c
                .get("pending")
                .and_then(Json::as_array)
                .unwrap_or(&no_groups)
            {
                owner.insert(
                    id.as_str().unwrap().to_owned(),
                    c["name"].as_str().unwrap().to_owned(),
                );
            }
        }
        let want_pending: Vec<(String, u64, u64, String)> = wg
            .get("pending")
            .and_then(Json::as_array)
            .unwrap_or(&no_groups)
            .iter()
            .map(|p| {
                let id = p["id"].as_str().unwrap().to_owned();
                let who = owner.get(&id).cloned().unwrap_or_default();
                (
                    id,
                    p["deliveryTime"].as_u64().unwrap(),
                    p["deliveryCount"].as_u64().unwrap(),
                    who,
                )
            })
            .collect();
        let got_pending: Vec<(String, u64, u64, String)> = g
            .pending
            .iter()
            .map(|p| {
                (
                    p.id.to_string(),
                    p.delivery_time_ms,
                    p.delivery_count,
                    lossy(&p.consumer),
                )
            })
            .collect();
        assert_eq!(
            got_pending,
            want_pending,
            "{ctx}: pending of {}",
            lossy(&g.name)
        );
        let want_consumers: Vec<(String, u64)> = wg
            .get("consumers")
            .and_then(Json::as_array)
            .unwrap_or(&no_groups)
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_owned(),
                    c["seenTime"].as_u64().unwrap(),
                )
            })
            .collect();
        let got_consumers: Vec<(String, u64)> = g
            .consumers
            .iter()
            .map(|c| (lossy(&c.name), c.seen_time_ms))
            .collect();
        assert_eq!(got_consumers, want_consumers, "{ctx}: consumers");
    }
}

/// Unix milliseconds of an RFC 3339 instant such as `2022-12-25T18:11:12.573+08:00`.
fn rfc3339_ms(s: &str) -> i64 {
    let num = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let (year, month, day) = (num(0, 4), num(5, 7), num(8, 10));
    let (hour, minute, second) = (num(11, 13), num(14, 16), num(17, 19));
    let mut rest = &s[19..];
    let mut millis = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let padded = format!("{:0<3}", &frac[..digits]);
        millis = padded[..3].parse::<i64>().unwrap();
        rest = &frac[digits..];
    }
    let offset_s = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (rest[1..3].parse::<i64>().unwrap() * 3600
                + rest[4..6].parse::<i64>().unwrap() * 60)
        }
    };
    // Days from the civil date (proleptic Gregorian), after Howard Hinnant's algorithm.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 86_400 + hour * 3600 + minute * 60 + second - offset_s) * 1000) + millis
}

#[test]
fn rfc3339_parser_agrees_with_known_instants() {
    assert_eq!(rfc3339_ms("1970-01-01T00:00:00Z"), 0);
    assert_eq!(
        rfc3339_ms("2022-12-25T18:11:12.573+08:00"),
        1_671_963_072_573
    );
    assert_eq!(
        rfc3339_ms("2000-03-01T00:00:00-01:30"),
        951_868_800_000 + 5_400_000
    );
}
