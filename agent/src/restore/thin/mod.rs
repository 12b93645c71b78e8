//! Sending less than the log (`restore --to`, unless `--exact-replay`): the writes to a key
//! that a later whole overwrite of that key makes invisible are left out of the replay.
//!
//! The rule, per key (database + name): every command of the stream is classified
//! ([`classify`]) as neutral, a *barrier*, a *single-key* command, a *whole overwrite* of its
//! keys, or a *pin* of its keys (a multi-key command that reads them). A single-key command or
//! overwrite is left out iff, for each of its keys, the key's next event after it — its next
//! overwrite or pin, or the next barrier — is a whole overwrite. Why that is safe: a whole
//! overwrite's result does not depend on what the key held, and nothing between reads the key
//! (a reader of several keys is a pin; anything that could read keys it does not name is a
//! barrier), so the target ends in the state the source had, command for command after each
//! event that is sent. `MULTI`/`EXEC` stay; commands inside are decided one by one.
//!
//! How, with bounded memory: the stream (from where the replay starts) is read once, each
//! command's class and key digests written to a spill file beside the staged stream
//! ([`spill`]); then the spill file is read backward once per partition of the digest space
//! ([`passes`]), which only needs the set of doomed keys of that partition. The outcome is one
//! bit per command, consulted by the replay in order ([`Thinning::keep_next`]).
//!
//! Bounds: the doomed set holds at most about [`MAX_KEYS`] digests per pass (~17 MiB of table):
//! one pass when the overwritten keys fit, else as many as the count of overwritten keys needs.
//! The bitmap is one bit per command, and a stream of more than [`MAX_COMMANDS`] commands (8 MiB
//! of bitmap) is replayed exactly instead. The spill file takes about 21 bytes of disk per
//! single-key command, in the staging directory, nameless, gone when planning ends.

pub mod classify;
pub mod passes;
pub mod spill;

#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::Read;

use anyhow::Context;

use super::fetch::StagedShard;
use super::stream::{for_each_item, Item};
use classify::{Class, Classifier};
use passes::{keep_bitmap, Bitmap};
use spill::SpillWriter;

/// Overwritten keys one partition pass may hold: 7/8 of 2^20 is what a table of 2^20 buckets
/// holds without growing (16-byte digests: about 17 MiB).
pub const MAX_KEYS: usize = 917_504;

/// Commands of a stream that thinning plans for: 2^26 bits = 8 MiB of bitmap.
pub const MAX_COMMANDS: u64 = 1 << 26;

/// Which commands of a shard's stream are sent, consulted in stream order.
#[derive(Debug)]
pub struct Thinning {
    keep: Option<Bitmap>,
    next: u64,
    skipped: u64,
}

impl Thinning {
    /// Every command is sent (`--exact-replay`, `--to-dir`).
    pub fn off() -> Self {
        Self {
            keep: None,
            next: 0,
            skipped: 0,
        }
    }

    fn with(keep: Bitmap) -> Self {
        Self {
            keep: Some(keep),
            next: 0,
            skipped: 0,
        }
    }

    /// Plans the shard's stream from logical offset `from` (where the replay starts).
    pub fn plan(s: &StagedShard, from: u64) -> anyhow::Result<Self> {
        // Beside the staged stream (the staging directory is private), and nameless: nothing
        // is left behind if the restore stops, and two replays of one staged shard (cluster
        // phases) never meet.
        let dir = s
            .stream
            .parent()
            .map_or_else(std::env::temp_dir, std::path::Path::to_path_buf);
        let spill = tempfile::tempfile_in(&dir)
            .with_context(|| format!("cannot create a spill file in {}", dir.display()))?;
        // Through the fetch's watermark: only bytes that checked out are read.
        let reader = s.open_stream(from)?;
        let started = std::time::Instant::now();
        let planned = plan_stream(reader, from, spill)
            .with_context(|| format!("shard {}: planning which commands to send", s.shard))?;
        if let Some(keep) = &planned.keep {
            tracing::info!(
                shard = s.shard,
                commands = keep.commands(),
                left_out = keep.cleared(),
                seconds = format!("{:.2}", started.elapsed().as_secs_f64()),
                "planned which commands the log's later overwrites hide"
            );
        } else {
            tracing::info!(
                shard = s.shard,
                limit = MAX_COMMANDS,
                "the stream has more commands than thinning plans for: it is replayed exactly"
            );
        }
        Ok(planned)
    }

    /// Whether the next command of the stream is sent; called once per command, in order.
    pub fn keep_next(&mut self) -> bool {
        let i = self.next;
        self.next += 1;
        let keep = self.keep.as_ref().is_none_or(|b| b.get(i));
        if !keep {
            self.skipped += 1;
        }
        keep
    }

    /// Commands left out so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

/// [`Thinning::plan`] over any reader of a stream that starts at logical offset `base`.
pub fn plan_stream<R: Read>(r: R, base: u64, spill: File) -> anyhow::Result<Thinning> {
    let (mut spill, commands, overwritten) = classify_stream(r, base, spill)?;
    if commands > MAX_COMMANDS {
        return Ok(Thinning::off());
    }
    // One pass when the overwritten keys fit (most histories); else as many partitions as the
    // count of overwritten keys (with repeats: an upper bound) needs, with room to spare for
    // an uneven split.
    let capacity = (overwritten as usize).min(MAX_KEYS);
    if let Some(keep) = keep_bitmap(&mut spill, commands, 1, capacity, MAX_KEYS)? {
        return Ok(Thinning::with(keep));
    }
    let parts = (overwritten as usize).div_ceil(MAX_KEYS * 3 / 4).max(1) as u64;
    plan_spilled(&mut spill, commands, parts, MAX_KEYS)
}

/// Reads the stream once, writing each command's record; returns the spill file, the number
/// of commands and of overwritten keys (counted with repeats: an upper bound on the set).
fn classify_stream<R: Read>(r: R, base: u64, spill: File) -> anyhow::Result<(File, u64, u64)> {
    let mut out = SpillWriter::new(spill);
    let mut classifier = Classifier::new();
    let mut commands = 0u64;
    let mut overwritten = 0u64;
    for_each_item(r, base, |item, _| {
        if let Item::Command(args) = item {
            commands += 1;
            let class = classifier.classify(args);
            if let Class::Overwrite(keys) = &class {
                overwritten += keys.len() as u64;
            }
            // Past the bound the plan is dropped: no need to write more.
            if commands <= MAX_COMMANDS {
                out.push(&class)?;
            }
        }
        Ok(())
    })?;
    Ok((out.finish()?, commands, overwritten))
}

/// The bitmap of a spill file, in `parts` passes.
fn plan_spilled(
    spill: &mut File,
    commands: u64,
    parts: u64,
    capacity: usize,
) -> anyhow::Result<Thinning> {
    let keep = keep_bitmap(spill, commands, parts, capacity, usize::MAX)?
        .ok_or_else(|| anyhow::anyhow!("a partition pass without a limit stopped"))?;
    Ok(Thinning::with(keep))
}
