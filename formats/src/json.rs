//! The neutral form as JSON, for `aofvault inspect --json` and for comparing decoders with the
//! fixture files in `shared/fixtures/rdb/hdt3213/*.json`, whose shape this follows.
//!
//! Every record becomes one object (`docs/INSPECT.md` is the reference):
//!
//! - entries: `db`, `key`, `type` (`string`, `list`, `set`, `zset`, `hash`, `stream`), the value
//!   as `value` / `values` / `members` / `entries` (`[{member, score}]`) / `hash` (an object; plus
//!   `expire`, field → unix ms or 0, when any field has a TTL), and `expiration` (RFC 3339, UTC,
//!   millisecond precision) when the key has a TTL;
//! - streams: `entries` (`[{id, fields}]`), `lastId`, `firstId`, `maxDeletedId`, `entriesAdded`,
//!   `len`, and `groups` (`[{name, lastDeliveredId, entriesRead, pending: [{id, consumer,
//!   deliveryTime, deliveryCount}], consumers: [{name, seenTime, activeTime}]}]`);
//! - aux fields: `{"type": "aux", "key", "value"}`; functions: `{"type": "function", "code"}`.
//!
//! Bytes that are valid UTF-8 are JSON strings; others are `{"base64": "…"}`. Where bytes are
//! object keys (hash fields, stream entry fields) and one of them is not UTF-8, or a stream entry
//! repeats a field, the object becomes an array of `{field, value}` pairs instead.
//! Scores that are whole numbers below 2^53 are written as integers; infinities as the strings
//! `"inf"` and `"-inf"`.

use base64::Engine as _;
use serde_json::{json, Map, Value as Json};

use crate::model::{Entry, HashField, Record, Stream, StreamId, Value};

/// One record as a JSON object.
pub fn record_json(record: &Record) -> Json {
    match record {
        Record::Entry(entry) => entry_json(entry),
        Record::Aux { key, value } => json!({
            "type": "aux",
            "key": bytes_json(key),
            "value": bytes_json(value),
        }),
        Record::Function { code } => json!({"type": "function", "code": bytes_json(code)}),
    }
}

/// Bytes as a JSON string when they are UTF-8, else as `{"base64": "…"}`.
pub fn bytes_json(bytes: &[u8]) -> Json {
    match std::str::from_utf8(bytes) {
        Ok(s) => Json::String(s.to_owned()),
        Err(_) => json!({"base64": base64::engine::general_purpose::STANDARD.encode(bytes)}),
    }
}

/// Unix milliseconds as RFC 3339 in UTC with milliseconds, e.g. `2022-12-25T10:11:12.573Z`.
pub fn rfc3339_ms(unix_ms: i64) -> String {
    let secs = unix_ms.div_euclid(1000);
    let millis = unix_ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let day_secs = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        day_secs / 3600,
        day_secs / 60 % 60,
        day_secs % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (eras of 400 years).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn entry_json(entry: &Entry) -> Json {
    let mut obj = Map::new();
    obj.insert("db".into(), json!(entry.db));
    obj.insert("key".into(), bytes_json(&entry.key));
    obj.insert("type".into(), json!(entry.value.type_name()));
    if let Some(ms) = entry.expire_at_ms {
        obj.insert("expiration".into(), json!(rfc3339_ms(ms)));
    }
    match &entry.value {
        Value::String(v) => {
            obj.insert("value".into(), bytes_json(v));
        }
        Value::List(items) => {
            obj.insert(
                "values".into(),
                items.iter().map(|i| bytes_json(i)).collect(),
            );
        }
        Value::Set(members) => {
            obj.insert(
                "members".into(),
                members.iter().map(|m| bytes_json(m)).collect(),
            );
        }
        Value::ZSet(pairs) => {
            let entries = pairs
                .iter()
                .map(|(m, s)| json!({"member": bytes_json(m), "score": score_json(*s)}))
                .collect();
            obj.insert("entries".into(), entries);
        }
        Value::Hash(fields) => hash_json(&mut obj, fields),
        Value::Stream(stream) => stream_json(&mut obj, stream),
    }
    Json::Object(obj)
}

fn hash_json(obj: &mut Map<String, Json>, fields: &[HashField]) {
    let any_ttl = fields.iter().any(|f| f.expire_at_ms.is_some());
    let pairs: Vec<(&[u8], &[u8])> = fields
        .iter()
        .map(|f| (f.field.as_slice(), f.value.as_slice()))
        .collect();
    obj.insert("hash".into(), pairs_json(&pairs));
    if any_ttl {
        let expires: Vec<Vec<u8>> = fields
            .iter()
            .map(|f| f.expire_at_ms.unwrap_or(0).to_string().into_bytes())
            .collect();
        let pairs: Vec<(&[u8], &[u8])> = fields
            .iter()
            .zip(&expires)
            .map(|(f, e)| (f.field.as_slice(), e.as_slice()))
            .collect();
        // Field → unix ms (0 = no TTL), as numbers.
        let expire = match pairs_json(&pairs) {
            Json::Object(map) => {
                Json::Object(map.into_iter().map(|(k, v)| (k, number_of(&v))).collect())
            }
            Json::Array(list) => Json::Array(
                list.into_iter()
                    .map(|mut pair| {
                        if let Some(v) = pair.get_mut("value") {
                            *v = number_of(v);
                        }
                        pair
                    })
                    .collect(),
            ),
            other => other,
        };
        obj.insert("expire".into(), expire);
    }
}

fn number_of(v: &Json) -> Json {
    v.as_str()
        .and_then(|s| s.parse::<i64>().ok())
        .map_or(Json::Null, |n| json!(n))
}

/// An object `{field: value}` when every field is UTF-8 and unique, else `[{field, value}]`.
fn pairs_json(pairs: &[(&[u8], &[u8])]) -> Json {
    let mut map = Map::new();
    for (field, value) in pairs {
        let Ok(name) = std::str::from_utf8(field) else {
            return pairs_array(pairs);
        };
        if map.insert(name.to_owned(), bytes_json(value)).is_some() {
            return pairs_array(pairs);
        }
    }
    Json::Object(map)
}

fn pairs_array(pairs: &[(&[u8], &[u8])]) -> Json {
    pairs
        .iter()
        .map(|(f, v)| json!({"field": bytes_json(f), "value": bytes_json(v)}))
        .collect()
}

fn stream_json(obj: &mut Map<String, Json>, s: &Stream) {
    let entries: Vec<Json> = s
        .entries
        .iter()
        .map(|e| {
            let pairs: Vec<(&[u8], &[u8])> = e
                .fields
                .iter()
                .map(|(f, v)| (f.as_slice(), v.as_slice()))
                .collect();
            json!({"id": id_json(e.id), "fields": pairs_json(&pairs)})
        })
        .collect();
    let groups: Vec<Json> = s
        .groups
        .iter()
        .map(|g| {
            json!({
                "name": bytes_json(&g.name),
                "lastDeliveredId": id_json(g.last_delivered),
                "entriesRead": g.entries_read,
                "pending": g.pending.iter().map(|p| json!({
                    "id": id_json(p.id),
                    "consumer": bytes_json(&p.consumer),
                    "deliveryTime": p.delivery_time_ms,
                    "deliveryCount": p.delivery_count,
                })).collect::<Vec<_>>(),
                "consumers": g.consumers.iter().map(|c| json!({
                    "name": bytes_json(&c.name),
                    "seenTime": c.seen_time_ms,
                    "activeTime": c.active_time_ms,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    obj.insert("len".into(), json!(s.entries.len()));
    obj.insert("lastId".into(), id_json(s.last_id));
    obj.insert("firstId".into(), id_json(s.first_id));
    obj.insert("maxDeletedId".into(), id_json(s.max_deleted_id));
    obj.insert("entriesAdded".into(), json!(s.entries_added));
    obj.insert("entries".into(), Json::Array(entries));
    obj.insert("groups".into(), Json::Array(groups));
}

fn id_json(id: StreamId) -> Json {
    Json::String(id.to_string())
}

fn score_json(score: f64) -> Json {
    const EXACT_INT: f64 = 9_007_199_254_740_992.0; // 2^53
    if score.is_infinite() {
        return json!(if score > 0.0 { "inf" } else { "-inf" });
    }
    if score.fract() == 0.0 && score.abs() < EXACT_INT {
        return json!(score as i64);
    }
    serde_json::Number::from_f64(score).map_or_else(|| json!("nan"), Json::Number)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        // keys_with_expiry.json: 2022-12-25T18:11:12.573+08:00
        assert_eq!(rfc3339_ms(1_671_963_072_573), "2022-12-25T10:11:12.573Z");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
    }

    /// The shape matches the fixture JSON files for every field they share with ours (streams
    /// excepted: the fixtures show listpack internals there).
    #[test]
    fn decoded_fixtures_match_the_fixture_json() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rdb/hdt3213");
        let Ok(listing) = std::fs::read_dir(&dir) else {
            return; // fixtures not copied in this checkout
        };
        let mut compared = 0;
        for path in listing.map(|e| e.unwrap().path()) {
            if path.extension().is_none_or(|e| e != "json") || !path.with_extension("rdb").exists()
            {
                continue;
            }
            let want: Json = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let records =
                crate::rdb::decode_all(&std::fs::read(path.with_extension("rdb")).unwrap())
                    .unwrap();
            let got: Vec<Json> = records
                .iter()
                .filter(|r| matches!(r, Record::Entry(_)))
                .map(record_json)
                .collect();
            let want = want.as_array().unwrap();
            assert_eq!(got.len(), want.len(), "{}", path.display());
            for (g, w) in got.iter().zip(want) {
                if w["type"] == "stream" {
                    continue;
                }
                for field in [
                    "db", "key", "type", "value", "values", "members", "hash", "entries",
                ] {
                    assert_eq!(lossy(&g[field]), w[field], "{} {field}", path.display());
                }
                if let Some(expire) = w.get("expire") {
                    assert_eq!(&g["expire"], expire, "{}", path.display());
                }
                assert_eq!(g.get("expiration").is_some(), w.get("expiration").is_some());
                compared += 1;
            }
        }
        assert!(compared > 20, "only {compared} fixture keys compared");
    }

    /// The fixtures write non-UTF-8 bytes lossily; turn our base64 objects into that.
    fn lossy(v: &Json) -> Json {
        match v {
            Json::Object(m) if m.len() == 1 && m.contains_key("base64") => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(m["base64"].as_str().unwrap())
                    .unwrap();
                Json::String(String::from_utf8_lossy(&raw).into_owned())
            }
            Json::Object(m) => Json::Object(m.iter().map(|(k, v)| (k.clone(), lossy(v))).collect()),
            Json::Array(a) => Json::Array(a.iter().map(lossy).collect()),
            other => other.clone(),
        }
    }

    #[test]
    fn non_utf8_becomes_base64_and_hash_keys_fall_back_to_pairs() {
        assert_eq!(bytes_json(b"\xff\x00"), json!({"base64": "/wA="}));
        let fields = vec![
            HashField {
                field: b"a".to_vec(),
                value: b"1".to_vec(),
                expire_at_ms: Some(5),
            },
            HashField {
                field: b"\xff".to_vec(),
                value: b"2".to_vec(),
                expire_at_ms: None,
            },
        ];
        let j = entry_json(&Entry {
            db: 1,
            key: b"h".to_vec(),
            value: Value::Hash(fields),
            expire_at_ms: None,
        });
        assert_eq!(j["hash"][1]["field"], json!({"base64": "/w=="}));
        assert_eq!(j["expire"][0]["value"], json!(5));
        assert_eq!(j["expire"][1]["value"], json!(0));
    }
}
