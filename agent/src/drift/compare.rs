//! The first pass of a drift check: every key (or a sample) of the live server read and compared
//! with the scratch server's, and every scratch key the live server lacks; what differs becomes
//! a [`Candidate`] for the re-check.
//!
//! Full mode walks the live server with `SCAN` (a key present during the whole walk is seen at
//! least once; one written meanwhile may be missed or seen twice — the dedup set and the second
//! walk below cover both), then walks the scratch server for keys the first walk did not see.
//! Memory is one 64-bit hash per live key. Sample mode reads `RANDOMKEY` N times on each side:
//! it finds a drift that touches a fraction f of the keys with probability 1 − (1 − f)^N, and
//! counts types only for the sample on the live side.

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};

use super::read::{same, Observed, Side, LIVE_SCAN_COUNT};

/// A key that differed in the first pass.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub db: u32,
    pub key: Vec<u8>,
}

/// What the first pass saw.
#[derive(Debug, Default)]
pub struct Pass {
    /// type → keys, per side (the live side's from the sample in sample mode).
    pub server_types: BTreeMap<String, u64>,
    pub backup_types: BTreeMap<String, u64>,
    pub compared: u64,
    pub candidates: Vec<Candidate>,
}

impl Pass {
    fn count(map: &mut BTreeMap<String, u64>, o: Option<&Observed>) {
        if let Some(o) = o {
            *map.entry(o.kind.clone()).or_insert(0) += 1;
        }
    }

    fn record(&mut self, db: u32, key: &[u8], live: Option<&Observed>, backup: Option<&Observed>) {
        self.compared += 1;
        if !same(live, backup) {
            self.candidates.push(Candidate {
                db,
                key: key.to_vec(),
            });
        }
    }
}

fn key_hash(key: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// Every key of `db` on both sides.
pub async fn full(
    live: &mut Side,
    backup: &mut Side,
    db: u32,
    pass: &mut Pass,
) -> anyhow::Result<()> {
    live.select(db).await?;
    backup.select(db).await?;
    let mut seen: HashSet<u64> = HashSet::new();
    let mut cursor = "0".to_string();
    loop {
        let (next, keys) = live.scan(&cursor, LIVE_SCAN_COUNT).await?;
        for key in keys {
            if !seen.insert(key_hash(&key)) {
                continue;
            }
            let l = live.observe(&key).await?;
            if l.is_none() {
                // Gone since SCAN saw it: the second walk compares it if the backup has it.
                seen.remove(&key_hash(&key));
                continue;
            }
            let b = backup.observe(&key).await?;
            Pass::count(&mut pass.server_types, l.as_ref());
            Pass::count(&mut pass.backup_types, b.as_ref());
            pass.record(db, &key, l.as_ref(), b.as_ref());
        }
        if next == "0" {
            break;
        }
        cursor = next;
    }
    // KeyRing of the backup the live walk did not see: stale, or written during the walk.
    let mut cursor = "0".to_string();
    loop {
        let (next, keys) = backup.scan(&cursor, 1000).await?;
        for key in keys {
            if seen.contains(&key_hash(&key)) {
                continue;
            }
            let b = backup.observe(&key).await?;
            Pass::count(&mut pass.backup_types, b.as_ref());
            let l = if live.exists(&key).await? {
                live.observe(&key).await?
            } else {
                None
            };
            Pass::count(&mut pass.server_types, l.as_ref());
            seen.insert(key_hash(&key));
            pass.record(db, &key, l.as_ref(), b.as_ref());
        }
        if next == "0" {
            break;
        }
        cursor = next;
    }
    Ok(())
}

/// `n` random keys of each side in `db`; the backup's types are counted in full (the scratch
/// server is not rate-limited).
pub async fn sample(
    live: &mut Side,
    backup: &mut Side,
    db: u32,
    n: u64,
    pass: &mut Pass,
) -> anyhow::Result<()> {
    live.select(db).await?;
    backup.select(db).await?;
    let mut done: HashSet<u64> = HashSet::new();
    for from_live in [true, false] {
        for _ in 0..n {
            let picked = if from_live {
                live.random_key().await?
            } else {
                backup.random_key().await?
            };
            let Some(key) = picked else { break };
            if !done.insert(key_hash(&key)) {
                continue;
            }
            let l = live.observe(&key).await?;
            let b = backup.observe(&key).await?;
            Pass::count(&mut pass.server_types, l.as_ref());
            pass.record(db, &key, l.as_ref(), b.as_ref());
        }
    }
    let mut cursor = "0".to_string();
    loop {
        let (next, keys) = backup.scan(&cursor, 1000).await?;
        for key in keys {
            if let Some(b) = backup.observe(&key).await? {
                *pass.backup_types.entry(b.kind).or_insert(0) += 1;
            }
        }
        if next == "0" {
            break;
        }
        cursor = next;
    }
    Ok(())
}
