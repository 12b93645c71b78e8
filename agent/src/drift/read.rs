//! Reading keys from either side of a drift check: the live server, through a [`Limiter`] that
//! holds the check to its configured rate, and the scratch server, unlimited.
//!
//! A key is read as an [`Observed`]: its `TYPE`, a digest of its value in a form that compares
//! equal whatever order a server returns an unordered collection in (set members and hash
//! fields sorted, sorted-set scores re-printed from their float), a short summary for messages,
//! and its TTL as an absolute deadline (`PTTL` + the time of the read), so that two reads made
//! at different moments compare. Every command sent counts against the rate: `SCAN`, `TYPE`,
//! `PTTL`, the value read, `EXISTS`, `RANDOMKEY`, `DBSIZE`, `INFO`, `SELECT`.

use std::time::Duration;

use anyhow::Context;
use redis::aio::MultiplexedConnection;
use redis::Value;
use tokio::time::Instant;

/// Two TTL deadlines this close are the same TTL (reads happen at different moments).
const TTL_TOLERANCE_MS: i64 = 2000;
/// KeyRing asked per `SCAN` on the live server (each `SCAN` is one command of the budget).
pub const LIVE_SCAN_COUNT: usize = 100;

/// At most `rate` commands per second, without bursts: each command waits for its slot.
#[derive(Debug)]
pub struct Limiter {
    interval: Duration,
    next: Instant,
    /// Commands sent so far.
    pub sent: u64,
}

impl Limiter {
    pub fn new(rate: Option<u32>) -> Limiter {
        Limiter {
            interval: rate.map_or(Duration::ZERO, |r| {
                Duration::from_secs_f64(1.0 / f64::from(r.max(1)))
            }),
            next: Instant::now(),
            sent: 0,
        }
    }

    /// Waits until `n` more commands may be sent.
    pub async fn take(&mut self, n: u64) {
        self.sent += n;
        if self.interval.is_zero() {
            return;
        }
        let now = Instant::now();
        if self.next < now {
            self.next = now;
        }
        let slot = self.next;
        self.next += self.interval * u32::try_from(n).unwrap_or(u32::MAX);
        tokio::time::sleep_until(slot).await;
    }
}

/// One key as read from one side.
#[derive(Debug, Clone)]
pub struct Observed {
    pub kind: String,
    pub digest: u64,
    pub summary: String,
    /// Absolute TTL deadline, unix ms.
    pub deadline_ms: Option<i64>,
}

/// How two reads of a key differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Difference {
    Type,
    Value,
    Ttl,
}

impl Observed {
    /// `None` when both reads hold the same thing.
    pub fn differs(&self, other: &Observed) -> Option<Difference> {
        if self.kind != other.kind {
            return Some(Difference::Type);
        }
        if self.digest != other.digest {
            return Some(Difference::Value);
        }
        match (self.deadline_ms, other.deadline_ms) {
            (None, None) => None,
            (Some(a), Some(b)) if (a - b).abs() <= TTL_TOLERANCE_MS => None,
            _ => Some(Difference::Ttl),
        }
    }

    /// The summary with the TTL, for messages.
    pub fn describe(&self) -> String {
        match self.deadline_ms {
            Some(ms) => format!(
                "{}, expires {}",
                self.summary,
                aofvault_formats::json::rfc3339_ms(ms)
            ),
            None => self.summary.clone(),
        }
    }
}

/// Whether two optional reads hold the same thing (both absent counts as the same).
pub fn same(a: Option<&Observed>, b: Option<&Observed>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.differs(b).is_none(),
        _ => false,
    }
}

/// One side of the check: a connection and its limiter.
pub struct Side {
    conn: MultiplexedConnection,
    pub limiter: Limiter,
    /// "server" or "backup", for messages.
    pub name: &'static str,
    db: u32,
}

impl Side {
    pub fn new(conn: MultiplexedConnection, rate: Option<u32>, name: &'static str) -> Side {
        Side {
            conn,
            limiter: Limiter::new(rate),
            name,
            db: 0,
        }
    }

    async fn query<T: redis::FromRedisValue>(
        &mut self,
        n: u64,
        what: &str,
        cmd: &redis::Cmd,
    ) -> anyhow::Result<T> {
        self.limiter.take(n).await;
        cmd.query_async(&mut self.conn)
            .await
            .with_context(|| format!("{what} on the {}", self.name))
    }

    /// `SELECT db`, when not already there.
    pub async fn select(&mut self, db: u32) -> anyhow::Result<()> {
        if db != self.db {
            let _: () = self
                .query(1, "SELECT", redis::cmd("SELECT").arg(db))
                .await?;
            self.db = db;
        }
        Ok(())
    }

    /// One `SCAN` page: the next cursor ("0" at the end) and the keys.
    pub async fn scan(
        &mut self,
        cursor: &str,
        count: usize,
    ) -> anyhow::Result<(String, Vec<Vec<u8>>)> {
        self.query(
            1,
            "SCAN",
            redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(count),
        )
        .await
    }

    pub async fn exists(&mut self, key: &[u8]) -> anyhow::Result<bool> {
        let n: i64 = self
            .query(1, "EXISTS", redis::cmd("EXISTS").arg(key))
            .await?;
        Ok(n > 0)
    }

    pub async fn random_key(&mut self) -> anyhow::Result<Option<Vec<u8>>> {
        self.query(1, "RANDOMKEY", &redis::cmd("RANDOMKEY")).await
    }

    pub async fn dbsize(&mut self) -> anyhow::Result<u64> {
        self.query(1, "DBSIZE", &redis::cmd("DBSIZE")).await
    }

    /// `INFO <section>` text.
    pub async fn info(&mut self, section: &str) -> anyhow::Result<String> {
        self.query(1, "INFO", redis::cmd("INFO").arg(section)).await
    }

    /// The key as this side holds it now; `None` when it does not exist.
    pub async fn observe(&mut self, key: &[u8]) -> anyhow::Result<Option<Observed>> {
        let mut pipe = redis::pipe();
        pipe.cmd("TYPE").arg(key).cmd("PTTL").arg(key);
        self.limiter.take(2).await;
        let (kind, pttl): (String, i64) =
            pipe.query_async(&mut self.conn).await.with_context(|| {
                format!(
                    "TYPE/PTTL {} on the {}",
                    super::digest::key_text(key),
                    self.name
                )
            })?;
        let read_ms = crate::context::now_ms();
        let mut cmd = match kind.as_str() {
            "none" => return Ok(None),
            "string" => redis::cmd("GET"),
            "list" => redis::cmd("LRANGE"),
            "set" => redis::cmd("SMEMBERS"),
            "zset" => redis::cmd("ZRANGE"),
            "hash" => redis::cmd("HGETALL"),
            "stream" => redis::cmd("XRANGE"),
            // A type this check cannot read (a module's): compared by type and TTL only.
            _ => {
                return Ok(Some(Observed {
                    summary: kind.clone(),
                    kind,
                    digest: 0,
                    deadline_ms: (pttl >= 0).then_some(read_ms + pttl),
                }))
            }
        };
        cmd.arg(key);
        match kind.as_str() {
            "list" => {
                cmd.arg(0).arg(-1);
            }
            "zset" => {
                cmd.arg(0).arg(-1).arg("WITHSCORES");
            }
            "stream" => {
                cmd.arg("-").arg("+");
            }
            _ => {}
        }
        let value: Value = self.query(1, "reading a value", &cmd).await?;
        if matches!(value, Value::Nil) {
            // Deleted between TYPE and the read.
            return Ok(None);
        }
        let (digest, summary) = super::digest::digest(&kind, &value);
        Ok(Some(Observed {
            kind,
            digest,
            summary,
            deadline_ms: (pttl >= 0).then_some(read_ms + pttl),
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ttls_compare_within_a_tolerance() {
        let o = |deadline_ms| Observed {
            kind: "string".into(),
            digest: 1,
            summary: String::new(),
            deadline_ms,
        };
        assert!(o(Some(10_000)).differs(&o(Some(11_000))).is_none());
        assert_eq!(
            o(Some(10_000)).differs(&o(Some(20_000))),
            Some(Difference::Ttl)
        );
        assert_eq!(o(None).differs(&o(Some(1))), Some(Difference::Ttl));
        assert!(same(None, None));
        assert!(!same(Some(&o(None)), None));
    }

    #[tokio::test]
    async fn the_limiter_spaces_commands() {
        let mut l = Limiter::new(Some(100));
        let start = Instant::now();
        for _ in 0..5 {
            l.take(2).await;
        }
        // 10 commands at 100/s: the fifth take waits for slot 8 (80 ms).
        assert!(start.elapsed() >= Duration::from_millis(80));
        assert_eq!(l.sent, 10);
    }
}
