//! The segment step of the shipping path: read what is new, cut it at the last safe point, store
//! it as one object ([`Tailer::ship_available`]); a failed store is retried with exactly the
//! same object ([`Tailer::put`]); a torn tail the server cut is forgotten ([`Tailer::settle_tail`]).

use aofvault_formats::aof::{safe_prefix, AofError};
use tokio::time::Instant;

use super::{invalid, now_ms, Attempt, TailError, Tailer};

/// The most bytes read from the files in one call while filling a segment.
const READ_CHUNK: usize = 2 << 20;
use crate::repo::ShardId;
use crate::status::Counters;

impl Tailer {
    /// Reads what is new and stores whole commands: every `interval` (RPO), when a segment is
    /// full, or at once when `force` (drain before a new chain, shutdown).
    pub(super) async fn ship_available(&mut self, force: bool) -> Result<(), TailError> {
        self.recheck_pending()?;
        loop {
            if self.owed.is_some() {
                return Ok(());
            }
            if let Some(attempt) = self.inflight {
                // The last store failed: the same object again, before reading anything more.
                self.put(attempt).await?;
                continue;
            }
            let Some(start) = self.chain.as_ref().map(|open| open.end) else {
                return Ok(());
            };
            let at = start + self.pending.len() as u64;
            let room = self.limit.saturating_sub(self.pending.len());
            let got = self.read_into_pending(at, room)?;
            if got < room {
                self.read_to_end_ms = now_ms();
            }
            if got > 0 {
                let now = now_ms();
                self.seen = Some(self.seen.map_or((now, now), |(first, _)| (first, now)));
            }
            if self.pending.is_empty() {
                return Ok(());
            }
            // Only the bytes after the known safe prefix are scanned: under a steady load a
            // tailer wakes on every write, and rescanning the whole pending buffer each time
            // would cost quadratic CPU.
            let known = self.scanned.min(self.pending.len());
            let safe = match safe_prefix(&self.pending[known..], start + known as u64) {
                Ok(more) => known + more.len,
                Err(AofError::Invalid { offset, reason }) => {
                    match self.invalid(start, offset, reason, got < room).await? {
                        invalid::Next::Again => continue,
                        invalid::Next::Wait => return Ok(()),
                    }
                }
            };
            self.scanned = safe;
            if safe == 0 {
                if self.pending.len() >= self.limit {
                    // One command (or transaction) is bigger than a segment: allow it, up to 32×.
                    if self.limit >= self.settings.segment_max * 32 {
                        return Err(TailError::TooLarge {
                            shard: self.shard,
                            file: self.follower.describe(),
                            offset: start,
                            limit: self.limit,
                        });
                    }
                    self.limit *= 2;
                    continue;
                }
                return Ok(());
            }
            let full = self.pending.len() >= self.limit;
            if !(force || full || self.last_ship.elapsed() >= self.settings.interval) {
                return Ok(());
            }
            self.store(start, safe).await?;
            if got == 0 && !full && self.pending.is_empty() {
                return Ok(());
            }
        }
    }

    /// Appends up to `room` bytes of the stream at `at` to `pending`, [`READ_CHUNK`] at a time,
    /// stopping at the end of what the files hold; returns how many were appended. In chunks so
    /// that a full segment is never held twice (once read, once pending): the peak memory of
    /// following a fast writer is one segment, not two. `pending` is sized once, exactly, for
    /// the segment, not by doubling.
    fn read_into_pending(&mut self, at: u64, room: usize) -> Result<usize, TailError> {
        let mut got = 0;
        while got < room {
            let want = (room - got).min(READ_CHUNK);
            let data = self
                .follower
                .read(at + got as u64, want)
                .map_err(|e| self.io(e))?;
            if got == 0 && !data.is_empty() {
                self.pending.reserve_exact(room);
            }
            self.pending.extend_from_slice(&data);
            got += data.len();
            if data.len() < want {
                break;
            }
        }
        Ok(got)
    }

    /// Stores the first `len` pending bytes (whole commands, from logical offset `start`) as one
    /// segment and moves the chain's end past them.
    pub(super) async fn store(&mut self, start: u64, len: usize) -> Result<(), TailError> {
        let seen = self.seen.unwrap_or((now_ms(), now_ms()));
        self.put(Attempt {
            start,
            len,
            seen,
            torn: false,
        })
        .await
    }

    /// Stores one attempt; on failure it stays in `inflight`, to be sent again as it is.
    pub(super) async fn put(&mut self, attempt: Attempt) -> Result<(), TailError> {
        let Attempt {
            start,
            len,
            seen,
            torn,
        } = attempt;
        self.inflight = Some(attempt);
        let t0 = Instant::now();
        let (instance, shard, chain) = (&self.instance, ShardId(self.shard), self.chain_id());
        let payload = &self.pending[..len.min(self.pending.len())];
        let stored = if torn {
            self.repo
                .put_torn(instance, shard, &chain, start, payload, seen)
                .await
        } else {
            self.repo
                .put_segment(instance, shard, &chain, start, payload, seen)
                .await
        };
        let seg = stored.map_err(|e| self.repo_err(e))?;
        self.inflight = None;
        let c = &self.shared.counters;
        Counters::add(&c.upload_micros_total, t0.elapsed().as_micros() as u64);
        Counters::add(&c.uploads_total, 1);
        Counters::add(&c.objects_shipped, 1);
        Counters::add(&c.bytes_shipped, len as u64);
        self.pending.drain(..len);
        self.scanned = self.scanned.saturating_sub(len);
        self.seen = if self.pending.is_empty() {
            None
        } else {
            Some((seen.1, seen.1))
        };
        self.last_ship = Instant::now();
        self.limit = self.settings.segment_max;
        let end = seg.end;
        if let Some(open) = self.chain.as_mut() {
            open.end = end;
        }
        self.shared.update(self.shard, |s| {
            s.shipped_offset = end;
            s.last_upload_ms = Some(now_ms());
            s.segments_shipped += 1;
            s.bytes_shipped += len as u64;
        });
        Ok(())
    }

    /// Bytes read in an earlier pass and not stored yet must still be what the file holds there
    /// before more is appended to them: a server that cut a torn tail at restart and wrote on
    /// past it before this look leaves the file as long as before, with other bytes where the
    /// torn command was (Redis `aof-load-truncated`). Joined to what follows, the old bytes could
    /// even parse. The last bytes read are compared; if they changed, the unstored bytes are
    /// read again.
    fn recheck_pending(&mut self) -> Result<(), TailError> {
        if self.pending.is_empty() || self.inflight.is_some() {
            return Ok(());
        }
        let Some(end) = self.chain.as_ref().map(|o| o.end) else {
            return Ok(());
        };
        let k = self.pending.len().min(64);
        let tail_at = end + (self.pending.len() - k) as u64;
        let now = self.reread(tail_at, k)?;
        if now[..] == self.pending[self.pending.len() - k..] {
            return Ok(());
        }
        tracing::warn!(
            shard = self.shard,
            offset = end,
            "bytes read but not stored yet changed in the file (a torn command cut and written over at restart); reading them again"
        );
        self.pending = self.reread(end, self.pending.len())?;
        self.scanned = 0;
        Ok(())
    }

    /// The stream shrank below what was read, but not below what is stored: a torn tail the
    /// server cut when it restarted (Redis). Forget the unstored bytes past the new end, so that
    /// what the server appends there is read afresh. Anything shorter is for the follower's
    /// check (a SAVE, a truncation).
    pub(super) async fn settle_tail(&mut self) -> Result<(), TailError> {
        let Some(open) = self.chain.as_ref() else {
            return Ok(());
        };
        let end = open.end;
        let keep = self.inflight.map_or(0, |a| a.len);
        let read = end + self.pending.len() as u64;
        let len = self.follower.stream_len();
        if len >= read || len < end + keep as u64 {
            return Ok(());
        }
        let cut = read - len;
        if self.follower.rewind(len).map_err(|e| self.io(e))? {
            tracing::warn!(
                shard = self.shard,
                offset = len,
                bytes = cut,
                "the server cut the end of its AOF (a torn command after a crash); reading on from there"
            );
            self.pending.truncate((len - end) as usize);
        } else {
            self.pending.truncate(keep);
        }
        self.scanned = self.scanned.min(self.pending.len());
        Ok(())
    }
}
