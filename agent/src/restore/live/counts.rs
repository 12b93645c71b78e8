//! How many keys a target holds, per database: what decides "empty" before a live restore and
//! what the report says after it.
//!
//! Counted with `DBSIZE`, not read from `INFO keyspace`: kevy 1.19's shards publish the counts
//! `INFO keyspace` shows on their own tick, so right after `FLUSHALL` it still shows old keys
//! (measured on 4 shards: 124,687 of 250,010 flushed keys shown at once, gone 70 ms later) and
//! a key just written may not show yet. kevy's `DBSIZE` asks every shard and sums the answers:
//! measured on 4 shards (`--threads 4`), it equals the total on every connection, right after
//! a `SET`, `DEL` or `FLUSHALL` on another connection (300 of 300 rounds, 8 connections each),
//! and after 250,000 pipelined `SET`s.
//!
//! The databases counted are 0 and every one `INFO keyspace` lists (Redis lists exactly those
//! that hold keys; kevy only has database 0 and refuses `SELECT 1`). The whole reading is
//! repeated until two readings agree, a bounded number of times, so a count still moving is
//! not taken for the answer — except after a replay ([`key_counts_after_replay`]): every
//! command's reply has been read by then, so every write is applied and one reading is the
//! answer (the repeat cost at least a pause and a second round of `INFO` + `DBSIZE`).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;
use redis::aio::MultiplexedConnection;

/// Readings at most before the last one is taken as it is.
const READINGS: usize = 10;
/// Pause between two readings.
const PAUSE: Duration = Duration::from_millis(25);

/// `(db, keys)` for every database holding keys, `db0` first; empty for an empty server.
/// `home_db` is the database the connection uses (from the URL); it is selected again last.
pub async fn key_counts(
    conn: &mut MultiplexedConnection,
    home_db: i64,
) -> anyhow::Result<Vec<(String, u64)>> {
    let mut last = reading(conn, home_db).await?;
    for _ in 1..READINGS {
        tokio::time::sleep(PAUSE).await;
        let again = reading(conn, home_db).await?;
        if again == last {
            return Ok(again);
        }
        last = again;
    }
    Ok(last)
}

/// [`key_counts`] once every write sent to the target has been answered: one reading.
pub async fn key_counts_after_replay(
    conn: &mut MultiplexedConnection,
    home_db: i64,
) -> anyhow::Result<Vec<(String, u64)>> {
    reading(conn, home_db).await
}

/// One reading: `DBSIZE` in every database worth counting.
async fn reading(
    conn: &mut MultiplexedConnection,
    home_db: i64,
) -> anyhow::Result<Vec<(String, u64)>> {
    let text: String = redis::cmd("INFO")
        .arg("keyspace")
        .query_async(conn)
        .await
        .context("INFO keyspace")?;
    let dbs = databases(&text);
    let sizes: Vec<u64> = if dbs.len() == 1 && home_db == 0 {
        // Database 0 only (always so on kevy): no SELECT needed.
        vec![redis::cmd("DBSIZE")
            .query_async(conn)
            .await
            .context("DBSIZE")?]
    } else {
        let mut pipe = redis::pipe();
        for db in &dbs {
            pipe.cmd("SELECT").arg(*db).ignore().cmd("DBSIZE");
        }
        pipe.cmd("SELECT").arg(home_db).ignore();
        pipe.query_async(conn)
            .await
            .context("SELECT and DBSIZE per database")?
    };
    Ok(dbs
        .iter()
        .zip(sizes)
        .filter(|(_, n)| *n > 0)
        .map(|(db, n)| (format!("db{db}"), n))
        .collect())
}

/// Database 0 and every database an `INFO keyspace` answer lists, in order.
fn databases(info: &str) -> BTreeSet<i64> {
    let mut dbs: BTreeSet<i64> = crate::server::parse_info(info)
        .into_keys()
        .filter_map(|k| k.strip_prefix("db")?.parse().ok())
        .filter(|db: &i64| *db >= 0)
        .collect();
    dbs.insert(0);
    dbs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_0_is_always_counted_and_listed_ones_too() {
        assert_eq!(databases("# Keyspace\r\n"), BTreeSet::from([0]));
        assert_eq!(
            databases("# Keyspace\r\ndb3:keys=1,expires=0,avg_ttl=0\r\ndb12:keys=4,expires=1\r\n"),
            BTreeSet::from([0, 3, 12])
        );
        assert_eq!(
            databases("db0:keys=124687,expires=0,avg_ttl=0\r\n"),
            BTreeSet::from([0])
        );
    }
}
