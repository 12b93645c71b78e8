//! What a tailer does when the bytes it read stop parsing as commands.
//!
//! In order: (1) the file may have changed under the read position since the bytes were read
//! (a torn tail cut and refilled by a restarted server): read them again and look afresh.
//! (2) The whole commands before the bad bytes are good data: store them. (3) A crash's torn
//! frame followed by a restart's whole commands ([`crate::ship::torn`]) is stepped over: the
//! torn bytes are stored as a *torn range* that continues the chain (restore and verify know
//! it is intentional and replay nothing from it), and shipping goes on after it. (4) Anything
//! else is [`TailError::Corrupt`]: the shard stops, or recovers through a server rewrite.

use aofvault_formats::aof::safe_prefix;

use super::{now_ms, Attempt, TailError, Tailer};
use crate::ship::torn::{classify, torn_start, Verdict};
use crate::ship::Event;
use crate::status::Counters;

/// What the shipping loop does next.
pub(super) enum Next {
    /// The pending bytes changed: scan them again.
    Again,
    /// Nothing to do until more bytes arrive.
    Wait,
}

impl Tailer {
    /// Reads `len` bytes of the stream at `start` again (across the follower's files).
    pub(super) fn reread(&mut self, start: u64, len: usize) -> Result<Vec<u8>, TailError> {
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let at = start + out.len() as u64;
            let more = self
                .follower
                .read(at, len - out.len())
                .map_err(|e| self.io(e))?;
            if more.is_empty() {
                break;
            }
            out.extend_from_slice(&more);
        }
        Ok(out)
    }

    /// Invalid bytes at logical `offset` in the pending bytes that start at `start`. `at_eof`:
    /// the last read reached the end of the file.
    pub(super) async fn invalid(
        &mut self,
        start: u64,
        offset: u64,
        reason: String,
        at_eof: bool,
    ) -> Result<Next, TailError> {
        // (1) Still the bytes the file holds?
        let fresh = self.reread(start, self.pending.len())?;
        if fresh != self.pending {
            tracing::warn!(
                shard = self.shard,
                offset = start,
                "the file changed under the read position (cut and refilled?); reading it again"
            );
            self.pending = fresh;
            self.scanned = 0;
            self.seen = None;
            return Ok(if self.pending.is_empty() {
                Next::Wait
            } else {
                Next::Again
            });
        }
        // (2) The whole commands before the bad bytes — or before a torn command that the
        // restarted server's first bytes completed into one that parses (see `torn_start`).
        let bad = (offset.saturating_sub(start) as usize).min(self.pending.len());
        let good = safe_prefix(&self.pending[..bad], start).map_or(0, |p| p.len);
        let good = torn_start(&self.pending, good, start, at_eof).unwrap_or(good);
        if good > 0 {
            self.store(start, good).await?;
        }
        let start = start + good as u64;
        // (3) The crash pattern.
        match classify(&self.pending, start, at_eof) {
            Verdict::Torn(torn) => {
                tracing::warn!(
                    shard = self.shard,
                    file = %self.follower.describe(),
                    from = start,
                    to = start + torn.len as u64,
                    "a command torn by a crash, then whole commands the restarted server appended: the torn bytes are recorded as skipped and shipping goes on after them"
                );
                let seen = self.seen.unwrap_or((now_ms(), now_ms()));
                self.put(Attempt {
                    start,
                    len: torn.len,
                    seen,
                    torn: true,
                })
                .await?;
                Counters::add(&self.shared.counters.torn_frames, 1);
                if self.can_recover {
                    // The backup has what follows the torn command, but the server's own next
                    // restart would drop it (kevy 1.19 stops its replay there). A rewrite gives
                    // the server clean files; shipping goes on meanwhile.
                    let reason = format!(
                        "a torn command at offset {start}: the server's own restart would drop what follows it"
                    );
                    let _ = self
                        .events
                        .send(Event::NeedRewrite {
                            shard: self.shard,
                            reason,
                        })
                        .await;
                }
                Ok(Next::Again)
            }
            Verdict::NeedMore => {
                self.set_state(
                    "waiting",
                    Some(format!(
                        "a torn command at offset {start}; waiting for the restarted server's next whole command"
                    )),
                );
                Ok(Next::Wait)
            }
            // (4) Not a crash: the server must rewrite (or repair) its AOF.
            Verdict::NotACrash => Err(TailError::Corrupt {
                shard: self.shard,
                file: self.follower.describe(),
                offset,
                reason,
                shipped: self.chain.as_ref().map_or(start, |o| o.end),
            }),
        }
    }
}
