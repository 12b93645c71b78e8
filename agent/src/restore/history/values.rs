//! The commands [`super::apply`] evaluates on a typed value: strings (`APPEND`, `INCR…`),
//! hashes, lists, sets and sorted sets, in the forms Redis 7 and kevy 1.19 write them to their
//! AOFs. Each returns false when the model does not evaluate the command (it is then replayed
//! as a command) or the value has another type (the server would have refused it).

use aofvault_formats::model::{HashField, Value};

/// A hash field without a TTL.
fn field(f: &[u8], v: &[u8]) -> HashField {
    HashField {
        field: f.to_vec(),
        value: v.to_vec(),
        expire_at_ms: None,
    }
}

fn int(a: &[u8]) -> Option<i64> {
    std::str::from_utf8(a).ok()?.trim().parse().ok()
}

fn float(a: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(a).ok()?.trim().to_ascii_lowercase();
    match s.as_str() {
        "inf" | "+inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// Is `name` a command [`eval`] knows (so that on a missing key it is known to do nothing)?
pub fn known(name: &str) -> bool {
    matches!(
        name,
        "HDEL"
            | "LPOP"
            | "RPOP"
            | "LPUSHX"
            | "RPUSHX"
            | "LSET"
            | "LTRIM"
            | "LREM"
            | "SREM"
            | "ZREM"
    )
}

/// A collection left empty no longer exists.
pub fn is_empty(v: &Value) -> bool {
    match v {
        Value::String(_) | Value::Stream(_) => false,
        Value::List(x) => x.is_empty(),
        Value::Set(x) => x.is_empty(),
        Value::Hash(x) => x.is_empty(),
        Value::ZSet(x) => x.is_empty(),
    }
}

/// Applies `name rest…` to `v`; false when not evaluated.
pub fn eval(v: &mut Value, name: &str, rest: &[&[u8]]) -> bool {
    match v {
        Value::String(s) => string(s, name, rest),
        Value::Hash(h) => hash(h, name, rest),
        Value::List(l) => list(l, name, rest),
        Value::Set(s) => set(s, name, rest),
        Value::ZSet(z) => zset(z, name, rest),
        Value::Stream(_) => false,
    }
}

fn string(s: &mut Vec<u8>, name: &str, rest: &[&[u8]]) -> bool {
    let by = match (name, rest) {
        ("APPEND", [v]) => {
            s.extend_from_slice(v);
            return true;
        }
        ("INCR", []) => 1,
        ("DECR", []) => -1,
        ("INCRBY", [n]) => match int(n) {
            Some(n) => n,
            None => return false,
        },
        ("DECRBY", [n]) => match int(n) {
            Some(n) => -n,
            None => return false,
        },
        _ => return false,
    };
    let now = if s.is_empty() { Some(0) } else { int(s) };
    match now.and_then(|n| n.checked_add(by)) {
        Some(n) => {
            *s = n.to_string().into_bytes();
            true
        }
        None => false,
    }
}

fn hash(h: &mut Vec<HashField>, name: &str, rest: &[&[u8]]) -> bool {
    match name {
        "HSET" | "HMSET" if !rest.is_empty() && rest.len().is_multiple_of(2) => {
            for fv in rest.chunks(2) {
                match h.iter_mut().find(|f| f.field == fv[0]) {
                    Some(f) => {
                        f.value = fv[1].to_vec();
                        f.expire_at_ms = None;
                    }
                    None => h.push(field(fv[0], fv[1])),
                }
            }
            true
        }
        "HSETNX" if rest.len() == 2 => {
            if !h.iter().any(|f| f.field == rest[0]) {
                h.push(field(rest[0], rest[1]));
            }
            true
        }
        "HDEL" => {
            h.retain(|f| !rest.iter().any(|r| f.field == *r));
            true
        }
        "HINCRBY" if rest.len() == 2 => {
            let Some(by) = int(rest[1]) else { return false };
            let f = match h.iter().position(|f| f.field == rest[0]) {
                Some(i) => &mut h[i],
                None => {
                    h.push(field(rest[0], b"0"));
                    let last = h.len() - 1;
                    &mut h[last]
                }
            };
            match int(&f.value).and_then(|n| n.checked_add(by)) {
                Some(n) => {
                    f.value = n.to_string().into_bytes();
                    true
                }
                None => false,
            }
        }
        _ => false,
    }
}

fn list(l: &mut Vec<Vec<u8>>, name: &str, rest: &[&[u8]]) -> bool {
    match name {
        "LPUSH" | "LPUSHX" => {
            for v in rest {
                l.insert(0, v.to_vec());
            }
            true
        }
        "RPUSH" | "RPUSHX" => {
            l.extend(rest.iter().map(|v| v.to_vec()));
            true
        }
        "LPOP" | "RPOP" => {
            let count = match rest.first() {
                Some(c) => match int(c) {
                    Some(c) if c >= 0 => c as usize,
                    _ => return false,
                },
                None => 1,
            }
            .min(l.len());
            if name == "LPOP" {
                l.drain(..count);
            } else {
                l.truncate(l.len() - count);
            }
            true
        }
        "LSET" if rest.len() == 2 => {
            let Some(i) = int(rest[0]) else { return false };
            let len = l.len() as i64;
            let i = if i < 0 { len + i } else { i };
            if !(0..len).contains(&i) {
                return false;
            }
            l[i as usize] = rest[1].to_vec();
            true
        }
        "LTRIM" if rest.len() == 2 => {
            let (Some(a), Some(b)) = (int(rest[0]), int(rest[1])) else {
                return false;
            };
            let len = l.len() as i64;
            let a = if a < 0 { (len + a).max(0) } else { a };
            let b = if b < 0 { len + b } else { b.min(len - 1) };
            if a > b || a >= len {
                l.clear();
            } else {
                l.truncate(b as usize + 1);
                l.drain(..a as usize);
            }
            true
        }
        "LREM" if rest.len() == 2 => {
            let Some(count) = int(rest[0]) else {
                return false;
            };
            let target = rest[1];
            let mut left = if count == 0 {
                usize::MAX
            } else {
                count.unsigned_abs() as usize
            };
            if count >= 0 {
                l.retain(|v| {
                    if left > 0 && v == target {
                        left -= 1;
                        false
                    } else {
                        true
                    }
                });
            } else {
                l.reverse();
                l.retain(|v| {
                    if left > 0 && v == target {
                        left -= 1;
                        false
                    } else {
                        true
                    }
                });
                l.reverse();
            }
            true
        }
        _ => false,
    }
}

fn set(s: &mut Vec<Vec<u8>>, name: &str, rest: &[&[u8]]) -> bool {
    match name {
        "SADD" => {
            for m in rest {
                if !s.iter().any(|x| x == m) {
                    s.push(m.to_vec());
                }
            }
            true
        }
        "SREM" => {
            s.retain(|x| !rest.iter().any(|r| x == r));
            true
        }
        _ => false,
    }
}

fn zset(z: &mut Vec<(Vec<u8>, f64)>, name: &str, rest: &[&[u8]]) -> bool {
    match name {
        "ZADD" => {
            let mut i = 0;
            let (mut nx, mut xx, mut gt, mut lt, mut incr) = (false, false, false, false, false);
            while i < rest.len() {
                match String::from_utf8_lossy(rest[i])
                    .to_ascii_uppercase()
                    .as_str()
                {
                    "NX" => nx = true,
                    "XX" => xx = true,
                    "GT" => gt = true,
                    "LT" => lt = true,
                    "CH" => {}
                    "INCR" => incr = true,
                    _ => break,
                }
                i += 1;
            }
            let pairs = &rest[i..];
            if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
                return false;
            }
            for sm in pairs.chunks(2) {
                let Some(score) = float(sm[0]) else {
                    return false;
                };
                let member = sm[1];
                match z.iter_mut().find(|(m, _)| m == member) {
                    Some((_, old)) => {
                        let new = if incr { *old + score } else { score };
                        let refused = nx || (gt && new <= *old) || (lt && new >= *old);
                        if !refused {
                            *old = new;
                        }
                    }
                    None if !xx => z.push((member.to_vec(), score)),
                    None => {}
                }
            }
            true
        }
        "ZINCRBY" if rest.len() == 2 => {
            let Some(by) = float(rest[0]) else {
                return false;
            };
            match z.iter_mut().find(|(m, _)| m == rest[1]) {
                Some((_, s)) => *s += by,
                None => z.push((rest[1].to_vec(), by)),
            }
            true
        }
        "ZREM" => {
            z.retain(|(m, _)| !rest.iter().any(|r| m == r));
            true
        }
        _ => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lists_strings_and_sorted_sets_evaluate_like_the_server() {
        let mut l = Value::List(Vec::new());
        assert!(eval(&mut l, "RPUSH", &[b"a", b"b", b"c", b"d"]));
        assert!(eval(&mut l, "LPUSH", &[b"x", b"y"]));
        assert!(eval(&mut l, "LTRIM", &[b"1", b"-2"]));
        assert_eq!(
            l,
            Value::List(vec![
                b"x".to_vec(),
                b"a".to_vec(),
                b"b".to_vec(),
                b"c".to_vec()
            ])
        );
        assert!(eval(&mut l, "RPOP", &[b"2"]));
        assert_eq!(l, Value::List(vec![b"x".to_vec(), b"a".to_vec()]));
        let mut s = Value::String(b"41".to_vec());
        assert!(eval(&mut s, "INCR", &[]));
        assert_eq!(s, Value::String(b"42".to_vec()));
        let mut z = Value::ZSet(Vec::new());
        assert!(eval(&mut z, "ZADD", &[b"1", b"m", b"2", b"n"]));
        assert!(eval(&mut z, "ZADD", &[b"GT", b"0", b"m"]));
        assert!(eval(&mut z, "ZINCRBY", &[b"5", b"n"]));
        assert_eq!(
            z,
            Value::ZSet(vec![(b"m".to_vec(), 1.0), (b"n".to_vec(), 7.0)])
        );
        assert!(!eval(&mut z, "ZPOPMIN", &[]));
    }
}
