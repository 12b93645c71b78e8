//! Which server a restore writes for — product and version — and what that server can hold.
//!
//! A live restore reads it from the target's `INFO server` ([`TargetServer::from_info`]); a
//! restore to files takes it from `--for redis:7.0` ([`TargetServer::parse`]). What follows from
//! it (facts from each server's release notes and source, `rdb.h` `RDB_VERSION`):
//!
//! | server | RDB versions it loads | AOF layout | hash field TTLs | `HSETEX`/`HGETEX` |
//! |---|---|---|---|---|
//! | Redis ≤ 6.2 | ≤ 9 | single `appendonly.aof` | no | no |
//! | Redis 7.0 | ≤ 10 | `appendonlydir/` | no | no |
//! | Redis 7.2 | ≤ 11 | `appendonlydir/` | no | no |
//! | Redis 7.4 | ≤ 12 | `appendonlydir/` | yes | no |
//! | Redis 8.0 | ≤ 12 | `appendonlydir/` | yes | yes |
//! | Redis 8.2 and later | ≤ 13 and later | `appendonlydir/` | yes | yes |
//! | Valkey 7.2–8.1 | ≤ 11 | `appendonlydir/` | no | no |
//! | Valkey 9.0 | ≤ 11 and 80 | `appendonlydir/` | yes | yes |
//! | kevy 1.19 | (KEVYSNAP) | per-shard `aof-{i}.aof` | no | no |
//!
//! A server named without a version is taken as the newest of its product.

use std::collections::HashMap;
use std::fmt;

use super::Kind;

/// The product a target runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Product {
    Redis,
    Valkey,
    Kevy,
}

/// A target server: product and (major, minor) version, `None` for "the newest".
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TargetServer {
    pub product: Product,
    pub version: Option<(u32, u32)>,
}

/// `--for` was given something that names no server this restore knows.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` names no known server: give redis[:X.Y], valkey[:X.Y] or kevy[:X.Y]")]
pub struct UnknownServer(pub String);

impl TargetServer {
    /// `redis`, `redis:7.0`, `valkey:8.1`, `kevy:1.19` (a patch level is accepted and ignored).
    pub fn parse(spec: &str) -> Result<Self, UnknownServer> {
        let bad = || UnknownServer(spec.to_string());
        let (name, version) = match spec.split_once(':') {
            Some((n, v)) => (n, Some(v)),
            None => (spec, None),
        };
        let product = match name.trim().to_ascii_lowercase().as_str() {
            "redis" => Product::Redis,
            "valkey" => Product::Valkey,
            "kevy" => Product::Kevy,
            _ => return Err(bad()),
        };
        let version = match version {
            None => None,
            Some(v) => Some(parse_version(v).ok_or_else(bad)?),
        };
        Ok(Self { product, version })
    }

    /// From `INFO server`: `kevy_version` means kevy; `valkey_version` (or
    /// `server_name:valkey`) Valkey, whose `redis_version` is a fixed compatibility number;
    /// else Redis at `redis_version`.
    pub fn from_info(info: &HashMap<String, String>) -> Self {
        let version = |k: &str| info.get(k).and_then(|v| parse_version(v));
        if info.contains_key("kevy_version") {
            return Self {
                product: Product::Kevy,
                version: version("kevy_version"),
            };
        }
        let valkey = info.contains_key("valkey_version")
            || info
                .get("server_name")
                .is_some_and(|n| n.eq_ignore_ascii_case("valkey"));
        if valkey {
            return Self {
                product: Product::Valkey,
                version: version("valkey_version"),
            };
        }
        Self {
            product: Product::Redis,
            version: version("redis_version"),
        }
    }

    /// From a server binary's `--version` line: `Redis server v=7.0.15 sha=…`, `Valkey server
    /// v=8.1.1 …`.
    pub fn from_version_line(line: &str) -> Option<Self> {
        let product = if line.starts_with("Valkey server") {
            Product::Valkey
        } else if line.starts_with("Redis server") {
            Product::Redis
        } else {
            return None;
        };
        let v = line.split_whitespace().find_map(|w| w.strip_prefix("v="))?;
        Some(Self {
            product,
            version: Some(parse_version(v)?),
        })
    }

    /// The translation kind: kevy, or the Redis family (Redis and Valkey).
    pub fn kind(&self) -> Kind {
        match self.product {
            Product::Kevy => Kind::Kevy,
            Product::Redis | Product::Valkey => Kind::Redis,
        }
    }

    /// True when the version is at least `(major, minor)` (or unknown: the newest).
    fn at_least(&self, major: u32, minor: u32) -> bool {
        self.version.is_none_or(|v| v >= (major, minor))
    }

    /// Holds per-field TTLs of hashes (`HPEXPIREAT`, `HPERSIST`).
    pub fn hash_field_ttl(&self) -> bool {
        match self.product {
            Product::Redis => self.at_least(7, 4),
            Product::Valkey => self.at_least(9, 0),
            Product::Kevy => false,
        }
    }

    /// Serves `HSETEX` (and `HGETEX`, `HGETDEL`).
    pub fn hsetex(&self) -> bool {
        match self.product {
            Product::Redis => self.at_least(8, 0),
            Product::Valkey => self.at_least(9, 0),
            Product::Kevy => false,
        }
    }

    /// The highest `REDIS` RDB version the server loads (`None`: no limit known, or kevy).
    pub fn max_rdb_version(&self) -> Option<u32> {
        let v = self.version?;
        match self.product {
            Product::Redis => Some(match v {
                v if v < (7, 0) => 9,
                v if v < (7, 2) => 10,
                v if v < (7, 4) => 11,
                v if v < (8, 2) => 12,
                _ => return None,
            }),
            // Valkey 9 writes its own RDB 80 but loads Redis' RDB up to 11 only.
            Product::Valkey => Some(11),
            Product::Kevy => None,
        }
    }

    /// Loads the multi-part `appendonlydir/` layout (Redis ≥ 7, every Valkey).
    pub fn multi_part_aof(&self) -> bool {
        match self.product {
            Product::Redis => self.at_least(7, 0),
            Product::Valkey => true,
            Product::Kevy => false,
        }
    }
}

impl fmt::Display for TargetServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.product {
            Product::Redis => "redis",
            Product::Valkey => "valkey",
            Product::Kevy => "kevy",
        };
        match self.version {
            Some((major, minor)) => write!(f, "{name} {major}.{minor}"),
            None => f.write_str(name),
        }
    }
}

/// `7.0`, `7.0.15`, `8` → (major, minor).
fn parse_version(v: &str) -> Option<(u32, u32)> {
    let mut parts = v.trim().split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = match parts.next() {
        Some(m) => m.parse().ok()?,
        None => 0,
    };
    Some((major, minor))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn info(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn specs_and_info_name_the_server_and_its_abilities() {
        let r70 = TargetServer::parse("redis:7.0").unwrap();
        assert!(!r70.hash_field_ttl() && r70.multi_part_aof());
        assert_eq!(r70.max_rdb_version(), Some(10));
        let r62 = TargetServer::parse("Redis:6.2.14").unwrap();
        assert!(!r62.multi_part_aof());
        assert_eq!(r62.max_rdb_version(), Some(9));
        let r80 = TargetServer::parse("redis:8.0").unwrap();
        assert!(r80.hash_field_ttl() && r80.hsetex());
        let r74 = TargetServer::parse("redis:7.4").unwrap();
        assert!(r74.hash_field_ttl() && !r74.hsetex());
        assert!(TargetServer::parse("redis").unwrap().hash_field_ttl());
        assert_eq!(TargetServer::parse("kevy").unwrap().kind(), Kind::Kevy);
        assert!(TargetServer::parse("memcached:1.6").is_err());
        assert!(TargetServer::parse("redis:seven").is_err());

        let valkey = TargetServer::from_info(&info(&[
            ("redis_version", "7.2.4"),
            ("server_name", "valkey"),
            ("valkey_version", "8.1.1"),
        ]));
        assert_eq!(valkey.product, Product::Valkey);
        assert_eq!(valkey.version, Some((8, 1)));
        assert!(!valkey.hash_field_ttl());
        let redis = TargetServer::from_info(&info(&[("redis_version", "8.0.2")]));
        assert!(redis.hash_field_ttl());
        let kevy = TargetServer::from_info(&info(&[
            ("redis_version", "7.0.0"),
            ("kevy_version", "1.19.0"),
        ]));
        assert_eq!(kevy.kind(), Kind::Kevy);
        assert!(!kevy.hash_field_ttl());
        let line = "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64";
        assert_eq!(
            TargetServer::from_version_line(line),
            Some(TargetServer::parse("redis:7.0").unwrap())
        );
        let line = "Valkey server v=8.1.1 sha=00000000:1 malloc=libc bits=64";
        assert_eq!(
            TargetServer::from_version_line(line).unwrap().product,
            Product::Valkey
        );
    }
}
