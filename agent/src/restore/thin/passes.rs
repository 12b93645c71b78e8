//! The partition passes: the spill file read backward once per partition of the key digests,
//! deciding which commands are kept.
//!
//! Backward, the rule of [`super`] needs one set: the keys whose next event is a whole
//! overwrite ("doomed"). A command on a doomed key is left out; an overwrite dooms its keys; a
//! pin undooms its keys; a barrier undooms every key. A pass for partition `k` of `parts` only
//! looks at the keys whose digest's high half is `k` modulo `parts`, so the set never holds more
//! than that share of the keys; a command over several keys is kept when any partition keeps
//! it, so the union of the passes is the same bitmap one pass over all keys would give.

use std::collections::HashSet;
use std::fs::File;
use std::hash::{BuildHasherDefault, Hasher};

use super::classify::KeyId;
use super::spill::{Backward, BARRIER, NEUTRAL, OVERWRITE, PIN, SINGLE};

/// One bit per command of the stream: set = send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap {
    words: Vec<u64>,
    len: u64,
}

impl Bitmap {
    pub fn new(len: u64) -> Self {
        Self {
            words: vec![0; len.div_ceil(64) as usize],
            len,
        }
    }

    pub fn set(&mut self, i: u64) {
        if let Some(w) = self.words.get_mut((i / 64) as usize) {
            *w |= 1 << (i % 64);
        }
    }

    /// Commands it covers.
    pub fn commands(&self) -> u64 {
        self.len
    }

    /// Commands whose bit is clear (left out).
    pub fn cleared(&self) -> u64 {
        self.len
            - self
                .words
                .iter()
                .map(|w| u64::from(w.count_ones()))
                .sum::<u64>()
    }

    /// Bits past the end read as set (a command the plan did not see is sent).
    pub fn get(&self, i: u64) -> bool {
        i >= self.len
            || self
                .words
                .get((i / 64) as usize)
                .is_none_or(|w| w & (1 << (i % 64)) != 0)
    }
}

/// The digests are uniform already: the set's hash is the digest's low half (the partition
/// uses the high half, so the buckets stay evenly used).
#[derive(Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

type Doomed = HashSet<KeyId, BuildHasherDefault<DigestHasher>>;

fn partition(k: KeyId, parts: u64) -> u64 {
    ((k >> 64) as u64) % parts
}

/// The keep bitmap of `commands` records in `spill`, in `parts` passes whose sets start with
/// room for `capacity` keys; `None` as soon as one pass's set would hold more than `limit`.
pub fn keep_bitmap(
    spill: &mut File,
    commands: u64,
    parts: u64,
    capacity: usize,
    limit: usize,
) -> std::io::Result<Option<Bitmap>> {
    let parts = parts.max(1);
    let mut keep = Bitmap::new(commands);
    let mut doomed = Doomed::with_capacity_and_hasher(capacity, Default::default());
    for part in 0..parts {
        doomed.clear();
        let mine = |k: &KeyId| partition(*k, parts) == part;
        let mut back = Backward::new(spill)?;
        let mut i = commands;
        while let Some((tag, keys)) = back.prev()? {
            i = i
                .checked_sub(1)
                .ok_or_else(|| std::io::Error::other("spill file: more records than commands"))?;
            match tag {
                NEUTRAL => keep.set(i),
                BARRIER => {
                    keep.set(i);
                    doomed.clear();
                }
                SINGLE | OVERWRITE => {
                    if keys.iter().filter(|k| mine(k)).any(|k| !doomed.contains(k)) {
                        keep.set(i);
                    }
                    if tag == OVERWRITE {
                        doomed.extend(keys.iter().filter(|k| mine(k)));
                        if doomed.len() > limit {
                            return Ok(None);
                        }
                    }
                }
                PIN => {
                    keep.set(i);
                    for k in keys.iter().filter(|k| mine(k)) {
                        doomed.remove(k);
                    }
                }
                _ => return Err(std::io::Error::other("spill file: unknown record tag")),
            }
        }
        if i != 0 {
            return Err(std::io::Error::other(
                "spill file: fewer records than commands",
            ));
        }
    }
    Ok(Some(keep))
}
