//! Hash field expiration (Redis 7.4+/8.0) for the tests: a deterministic workload of the
//! commands that set and clear field TTLs, and a reader of which fields hold one.
//!
//! [`keyspace::dump`](crate::keyspace::dump) compares hashes by fields and values only; the
//! per-field TTLs are read here with `HPEXPIRETIME`, so a test can say exactly which field TTLs
//! a restore kept and which it reported lost.

use std::collections::BTreeMap;

use anyhow::{Context, Result};

use crate::workload::Rng;

/// Key prefix of the hashes this workload writes.
pub const PREFIX: &str = "hfe:";

/// Unix milliseconds now.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Sends `n` hash-field-expiration commands over `keys` hashes `hfe:{i}`: `HSET`, `HSETEX`
/// (relative, `FNX`, `KEEPTTL`), `HEXPIRE`, `HPEXPIRE`, `HPEXPIREAT` (future, and past —
/// which deletes the field at once), `HPERSIST`, `HDEL`. TTLs are 10–60 minutes so nothing
/// expires while a test compares. Replies are not checked (a field that does not exist
/// answers -2, a failed `FNX` 0): only error replies fail.
pub fn write(conn: &mut redis::Connection, seed: u64, n: usize, keys: u64) -> Result<()> {
    let mut rng = Rng::new(seed);
    let mut pipe = redis::pipe();
    for i in 0..n {
        let key = format!("{PREFIX}{}", rng.below(keys));
        let f = |rng: &mut Rng| format!("f{}", rng.below(12));
        let secs = 600 + rng.below(3000);
        let value = format!("v{}", rng.below(100_000));
        let mut cmd;
        match rng.below(10) {
            0 | 1 => {
                cmd = redis::cmd("HSET");
                cmd.arg(&key).arg(f(&mut rng)).arg(&value);
            }
            2 => {
                cmd = redis::cmd("HSETEX");
                cmd.arg(&key)
                    .arg("PX")
                    .arg(secs * 1000)
                    .arg("FIELDS")
                    .arg(2);
                cmd.arg(f(&mut rng)).arg(&value).arg(f(&mut rng)).arg("w");
            }
            3 => {
                cmd = redis::cmd("HSETEX");
                cmd.arg(&key)
                    .arg("FNX")
                    .arg("EX")
                    .arg(secs)
                    .arg("FIELDS")
                    .arg(1);
                cmd.arg(format!("n{}", rng.below(40))).arg(&value);
            }
            4 => {
                cmd = redis::cmd("HSETEX");
                cmd.arg(&key).arg("KEEPTTL").arg("FIELDS").arg(1);
                cmd.arg(f(&mut rng)).arg(&value);
            }
            5 => {
                cmd = redis::cmd("HEXPIRE");
                cmd.arg(&key)
                    .arg(secs)
                    .arg("FIELDS")
                    .arg(1)
                    .arg(f(&mut rng));
            }
            6 => {
                cmd = redis::cmd("HPEXPIRE");
                cmd.arg(&key).arg(secs * 1000).arg("FIELDS").arg(2);
                cmd.arg(f(&mut rng)).arg(f(&mut rng));
            }
            7 => {
                // One in four in the past: the field is deleted at once (logged as HDEL).
                let at = if rng.below(4) == 0 {
                    1_000
                } else {
                    now_ms() + secs as i64 * 1000
                };
                cmd = redis::cmd("HPEXPIREAT");
                cmd.arg(&key).arg(at).arg("FIELDS").arg(1).arg(f(&mut rng));
            }
            8 => {
                cmd = redis::cmd("HPERSIST");
                cmd.arg(&key).arg("FIELDS").arg(1).arg(f(&mut rng));
            }
            _ => {
                cmd = redis::cmd("HDEL");
                cmd.arg(&key).arg(f(&mut rng));
            }
        }
        pipe.add_command(cmd).ignore();
        if i % 200 == 199 || i + 1 == n {
            pipe.query::<()>(conn)
                .with_context(|| format!("field TTL workload seed {seed}"))?;
            pipe = redis::pipe();
        }
    }
    Ok(())
}

/// Every field of the `hfe:*` hashes that holds a TTL: (key, field) → expiry (unix ms), read
/// with `HPEXPIRETIME` (the server must have hash field expiration).
pub fn read(conn: &mut redis::Connection) -> Result<BTreeMap<(String, String), i64>> {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{PREFIX}*"))
        .query(conn)
        .context("KEYS hfe:*")?;
    let mut out = BTreeMap::new();
    for key in keys {
        let fields: Vec<String> = redis::cmd("HKEYS").arg(&key).query(conn)?;
        if fields.is_empty() {
            continue;
        }
        let times: Vec<i64> = redis::cmd("HPEXPIRETIME")
            .arg(&key)
            .arg("FIELDS")
            .arg(fields.len())
            .arg(&fields)
            .query(conn)
            .with_context(|| format!("HPEXPIRETIME {key}"))?;
        for (field, at) in fields.into_iter().zip(times) {
            if at > 0 {
                out.insert((key.clone(), field), at);
            }
        }
    }
    Ok(out)
}
