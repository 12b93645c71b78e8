//! A value read from a server, reduced to a digest that compares equal whatever order the
//! server returns an unordered collection in (set members and hash fields sorted, sorted-set
//! scores re-printed from their float), plus a short summary for messages.

use std::collections::hash_map::DefaultHasher;
use std::hash::Hasher;

use redis::Value;

/// Canonical bytes of a reply: tagged, length-prefixed, so no two replies share them.
fn canon(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::BulkString(b) => {
            out.push(b'b');
            out.extend_from_slice(&(b.len() as u64).to_le_bytes());
            out.extend_from_slice(b);
        }
        Value::SimpleString(s) => canon(&Value::BulkString(s.as_bytes().to_vec()), out),
        Value::Int(n) => {
            out.push(b'i');
            out.extend_from_slice(&n.to_le_bytes());
        }
        Value::Array(items) | Value::Set(items) => {
            out.push(b'a');
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for i in items {
                canon(i, out);
            }
        }
        Value::Nil => out.push(b'n'),
        other => {
            out.push(b'?');
            out.extend_from_slice(format!("{other:?}").as_bytes());
        }
    }
}

fn encoded(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    canon(v, &mut out);
    out
}

fn items(v: &Value) -> &[Value] {
    match v {
        Value::Array(items) | Value::Set(items) => items,
        _ => &[],
    }
}

/// The digest and summary of a value of type `kind`.
pub fn digest(kind: &str, value: &Value) -> (u64, String) {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    let summary = match kind {
        "string" => {
            parts.push(encoded(value));
            match value {
                Value::BulkString(b) => format!(
                    "string \"{}\" ({} bytes)",
                    key_text(&b[..b.len().min(40)]),
                    b.len()
                ),
                _ => "string".into(),
            }
        }
        "set" => {
            parts.extend(items(value).iter().map(encoded));
            parts.sort();
            format!("set of {} members", parts.len())
        }
        "hash" => {
            for pair in items(value).chunks(2) {
                let mut p = Vec::new();
                for v in pair {
                    canon(v, &mut p);
                }
                parts.push(p);
            }
            parts.sort();
            format!("hash of {} fields", parts.len())
        }
        "zset" => {
            for pair in items(value).chunks(2) {
                let mut p = Vec::new();
                if let Some(m) = pair.first() {
                    canon(m, &mut p);
                }
                let score = match pair.get(1) {
                    Some(Value::BulkString(s)) => std::str::from_utf8(s)
                        .ok()
                        .and_then(|s| s.parse::<f64>().ok())
                        .map_or_else(
                            || String::from_utf8_lossy(s).into_owned(),
                            |f| f.to_string(),
                        ),
                    Some(Value::Double(f)) => f.to_string(),
                    other => format!("{other:?}"),
                };
                p.extend_from_slice(score.as_bytes());
                parts.push(p);
            }
            parts.sort();
            format!("zset of {} members", parts.len())
        }
        "list" => {
            parts.push(encoded(value));
            format!("list of {} items", items(value).len())
        }
        "stream" => {
            parts.push(encoded(value));
            format!("stream of {} entries", items(value).len())
        }
        other => {
            parts.push(encoded(value));
            other.to_string()
        }
    };
    let mut h = DefaultHasher::new();
    h.write(kind.as_bytes());
    for p in &parts {
        h.write_u64(p.len() as u64);
        h.write(p);
    }
    (h.finish(), summary)
}

/// A key as text for messages (escaped, at most 200 characters).
pub fn key_text(key: &[u8]) -> String {
    let text = String::from_utf8_lossy(&key[..key.len().min(200)]);
    let mut s = text.escape_debug().to_string();
    if key.len() > 200 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn unordered_collections_compare_equal_in_any_order() {
        let a = Value::Array(vec![bulk("x"), bulk("y")]);
        let b = Value::Array(vec![bulk("y"), bulk("x")]);
        assert_eq!(digest("set", &a).0, digest("set", &b).0);
        assert_ne!(
            digest("list", &a).0,
            digest("list", &b).0,
            "lists keep order"
        );
        let h1 = Value::Array(vec![bulk("f"), bulk("1"), bulk("g"), bulk("2")]);
        let h2 = Value::Array(vec![bulk("g"), bulk("2"), bulk("f"), bulk("1")]);
        let h3 = Value::Array(vec![bulk("g"), bulk("1"), bulk("f"), bulk("2")]);
        assert_eq!(digest("hash", &h1).0, digest("hash", &h2).0);
        assert_ne!(digest("hash", &h1).0, digest("hash", &h3).0);
        let z1 = Value::Array(vec![bulk("m"), bulk("1.50")]);
        let z2 = Value::Array(vec![bulk("m"), bulk("1.5")]);
        assert_eq!(digest("zset", &z1).0, digest("zset", &z2).0);
        assert_eq!(digest("set", &a).1, "set of 2 members");
    }
}
