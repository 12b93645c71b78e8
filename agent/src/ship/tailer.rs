//! One shard's shipping loop: wake on a file event, a poll tick or a due upload; check the
//! files with the follower; read what is new; store whole commands up to the last safe cut.
//!
//! Invariants: the chain's segments are contiguous from `stream_start`; a segment is stored
//! before `end` moves past it; a new chain is started only after the old one's pinned files
//! were drained. Transient store errors keep the bytes in memory and retry with backoff (the
//! lag grows and is reported); invalid AOF bytes stop the shard, naming file and offset, after
//! the whole commands before them are stored — until the server replaces the file (a rewrite,
//! or a repaired and truncated AOF), when shipping resumes on a new chain.

use std::time::Duration;

// tokio's clock: real time in the daemon, driven by the follower simulation in its tests.
use tokio::time::Instant;

use aofvault_formats::aof::{safe_prefix, AofError};
use aofvault_formats::vault::{BasePart, ChainHead, ServerLayout, FORMAT_VERSION};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::status::{Counters, SharedRef};
use super::Event;
use crate::repo::{keys, Repo, RepoError, ShardId};
use crate::source::{Check, Follower};

/// The longest wait between two attempts to store: a store that comes back is noticed within
/// this long.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Shipping settings.
#[derive(Debug, Clone)]
pub struct ShipSettings {
    pub interval: Duration,
    pub segment_max: usize,
    pub poll: Duration,
}

/// Why a tailer stopped.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("shard {shard}: {file} holds invalid AOF bytes at offset {offset}: {reason}; nothing past offset {shipped} was shipped. Inspect it with `aofvault inspect {file}`; the server must repair or rewrite its AOF (BGREWRITEAOF) before this shard can ship again")]
    Corrupt {
        shard: u32,
        file: String,
        offset: u64,
        reason: String,
        shipped: u64,
    },
    #[error("shard {shard}: a single command or transaction in {file} exceeds {limit} bytes at offset {offset}")]
    TooLarge {
        shard: u32,
        file: String,
        offset: u64,
        limit: usize,
    },
    #[error("shard {shard}: reading {file}: {source}")]
    Io {
        shard: u32,
        file: String,
        source: std::io::Error,
    },
    #[error("shard {shard}: {source}")]
    Repo { shard: u32, source: RepoError },
    /// Storing a new chain's base failed. Whatever the cause (the store went away in the middle
    /// of a multi-second upload, a reset connection), the chain start is owed and retried with
    /// backoff: the old chain is drained, nothing is lost by waiting, and giving up would stop
    /// the shard until a restart.
    #[error("shard {shard}: storing the base of a new chain: {source}")]
    BaseUpload { shard: u32, source: RepoError },
}

impl TailError {
    /// Worth retrying (what [`Tailer::run`] retries with backoff).
    pub fn is_transient(&self) -> bool {
        self.transient()
    }

    fn transient(&self) -> bool {
        match self {
            TailError::Repo { source, .. } => source.is_transient(),
            TailError::BaseUpload { .. } => true,
            // A file that vanished, or a directory made unreadable (a permissions change, a
            // mount over it): the operator can fix it without restarting us, and the pinned
            // descriptors keep what was already open. Retry and say so; stopping the shard
            // would leave it stopped after the fix.
            TailError::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ),
            _ => false,
        }
    }
}

struct Open {
    head: ChainHead,
    /// Logical offset up to which the stream is stored.
    end: u64,
}

pub struct Tailer {
    pub shard: u32,
    pub follower: Box<dyn Follower>,
    pub repo: Repo,
    pub instance: String,
    pub layout: ServerLayout,
    pub server_version: Option<String>,
    pub settings: ShipSettings,
    pub shared: SharedRef,
    pub events: mpsc::Sender<Event>,
    chain: Option<Open>,
    pending: Vec<u8>,
    /// Length of the prefix of `pending` already known to end at a safe cut.
    scanned: usize,
    /// When a read last reached the end of the file (unix ms): what follows is younger.
    read_to_end_ms: i64,
    seen: Option<(i64, i64)>,
    last_ship: Instant,
    limit: usize,
    /// A new chain is owed (its start failed transiently): retried before anything else.
    owed_chain: Option<String>,
    /// Stopped at invalid AOF bytes: only watching for the files to be replaced.
    halted: bool,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Tailer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        shard: u32,
        follower: Box<dyn Follower>,
        repo: Repo,
        instance: String,
        layout: ServerLayout,
        server_version: Option<String>,
        settings: ShipSettings,
        shared: SharedRef,
        events: mpsc::Sender<Event>,
    ) -> Self {
        let limit = settings.segment_max;
        Tailer {
            shard,
            follower,
            repo,
            instance,
            layout,
            server_version,
            settings,
            shared,
            events,
            chain: None,
            pending: Vec::new(),
            scanned: 0,
            read_to_end_ms: now_ms(),
            seen: None,
            last_ship: Instant::now(),
            limit,
            owed_chain: None,
            halted: false,
        }
    }

    fn io(&self, source: std::io::Error) -> TailError {
        TailError::Io {
            shard: self.shard,
            file: self.follower.describe(),
            source,
        }
    }

    fn repo_err(&self, source: RepoError) -> TailError {
        TailError::Repo {
            shard: self.shard,
            source,
        }
    }

    /// The loop. Returns when cancelled (after a final flush) or on a permanent error.
    pub async fn run(
        mut self,
        cancel: CancellationToken,
        mut wake: watch::Receiver<u64>,
    ) -> Result<(), TailError> {
        let file = self.follower.describe();
        self.shared.update(self.shard, |s| s.file = file);
        let mut backoff = Backoff::new(Duration::from_millis(200), MAX_BACKOFF);
        let mut delay = Duration::ZERO;
        loop {
            // While bytes wait for their upload, file events are not needed: the due read will
            // take everything written meanwhile. Under load this keeps a tailer to about two
            // passes per interval instead of one per write.
            let listen = self.pending.is_empty();
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = wake.changed(), if listen => {}
                _ = tokio::time::sleep(delay) => {}
            }
            match self.step(false).await {
                Ok(()) => {
                    backoff = Backoff::new(Duration::from_millis(200), MAX_BACKOFF);
                    if !self.halted {
                        self.shared.update(self.shard, |s| s.last_error = None);
                    }
                    delay = self.next_wake();
                }
                Err(e) if e.transient() => {
                    Counters::add(&self.shared.counters.upload_retries, 1);
                    delay = backoff.next_delay();
                    tracing::warn!(shard = self.shard, error = %e, retry_in = ?delay, "shipping is behind; will retry");
                    let msg = e.to_string();
                    self.shared.update(self.shard, |s| {
                        s.state = "retrying".into();
                        s.last_error = Some(msg);
                    });
                }
                Err(e) => {
                    self.stopped(&e).await;
                    // Invalid bytes are the server's to repair or rewrite: keep watching the
                    // files, and ship again from a new chain once they are replaced.
                    if !matches!(e, TailError::Corrupt { .. }) {
                        return Err(e);
                    }
                    self.halted = true;
                    delay = self.settings.poll;
                }
            }
            self.report();
        }
        // Shutdown: store what is complete, within the daemon's deadline.
        if self.chain.is_some() && !self.halted {
            if let Err(e) = self.ship_available(true).await {
                tracing::warn!(shard = self.shard, error = %e, "final flush failed; the next start continues from the repository");
            }
        }
        self.shared
            .update(self.shard, |s| s.state = "stopped".into());
        self.report();
        Ok(())
    }

    async fn stopped(&mut self, e: &TailError) {
        tracing::error!(shard = self.shard, error = %e, "shard stopped");
        let msg = e.to_string();
        Counters::add(&self.shared.counters.upload_errors, 1);
        self.shared.update(self.shard, |s| {
            s.state = "stopped".into();
            s.last_error = Some(msg.clone());
        });
        let _ = self
            .events
            .send(Event::Stopped {
                shard: self.shard,
                error: msg,
            })
            .await;
    }

    /// When to look again without an event: at the due upload of pending bytes, or the poll tick.
    fn next_wake(&self) -> Duration {
        if self.pending.is_empty() {
            self.settings.poll
        } else {
            self.settings
                .interval
                .saturating_sub(self.last_ship.elapsed())
                .max(Duration::from_millis(10))
        }
    }

    /// One pass: set up the chain if needed, react to what the files show, ship.
    pub async fn step(&mut self, force: bool) -> Result<(), TailError> {
        if self.halted {
            // Stopped at invalid bytes: nothing more is read from these files. A rewrite (or
            // a repaired, truncated file) replaces them; then a new chain starts from there.
            match self.follower.check().map_err(|e| self.io(e))? {
                Check::NewChain(reason) => {
                    tracing::info!(shard = self.shard, %reason, "the AOF was replaced after the invalid bytes; shipping again on a new chain");
                    self.halted = false;
                    self.pending.clear();
                    self.seen = None;
                    self.start_chain(&reason).await?;
                    self.shared.update(self.shard, |s| s.last_error = None);
                }
                _ => return Ok(()),
            }
        }
        if let Some(reason) = self.owed_chain.clone() {
            self.start_chain(&reason).await?;
        }
        if self.chain.is_none() && !self.resume().await? {
            match self.follower.check().map_err(|e| self.io(e))? {
                Check::Missing(msg) => {
                    self.set_state("missing", Some(msg));
                    return Ok(());
                }
                Check::Wait(msg) => {
                    self.set_state("waiting", Some(msg));
                    return Ok(());
                }
                _ => self.start_chain("start").await?,
            }
        }
        match self.follower.check().map_err(|e| self.io(e))? {
            Check::Continue => {
                self.set_state("following", None);
                self.ship_available(force).await
            }
            Check::NewChain(reason) => {
                // A file truncated in place (kevy SAVE) may already hold new bytes at the old
                // offsets: draining it would read them as the old chain's. Its data is in the
                // new base, so only a replaced file (its own inode, pinned) is drained.
                if reason == "save" || reason == "truncated" {
                    self.pending.clear();
                    self.scanned = 0;
                } else {
                    self.ship_available(true).await?;
                }
                if !self.pending.is_empty() {
                    tracing::warn!(
                        shard = self.shard,
                        bytes = self.pending.len(),
                        "the replaced file ended inside a command; those bytes belong to no whole command and are dropped"
                    );
                }
                self.start_chain(&reason).await
            }
            Check::Wait(msg) => {
                self.set_state("waiting", Some(msg));
                Ok(())
            }
            Check::Missing(msg) => {
                self.set_state("missing", Some(msg));
                Ok(())
            }
        }
    }

    fn set_state(&self, state: &str, note: Option<String>) {
        let state = state.to_string();
        self.shared.update(self.shard, |s| {
            if s.state != state {
                if let Some(n) = &note {
                    tracing::info!(shard = s.shard, state = %state, "{n}");
                }
            }
            s.state = state;
        });
    }

    /// After a restart: continue the newest chain if the files are provably the same.
    async fn resume(&mut self) -> Result<bool, TailError> {
        let shard = ShardId(self.shard);
        let ids = self
            .repo
            .chain_ids(&self.instance, shard)
            .await
            .map_err(|e| self.repo_err(e))?;
        for id in ids.iter().rev() {
            let Some(head) = self
                .repo
                .chain_head(&self.instance, shard, id)
                .await
                .map_err(|e| self.repo_err(e))?
            else {
                continue; // a chain whose head was never written: abandoned during its base upload
            };
            let segs = self
                .repo
                .segments(&self.instance, shard, id)
                .await
                .map_err(|e| self.repo_err(e))?;
            let segs: Vec<_> = segs.into_iter().map(|(s, _)| s).collect();
            let run = crate::repo::run::longest_run(head.stream_start, &segs);
            let end = run.end;
            let last = run.segments.last().cloned();
            let ok = self
                .follower
                .resume(&head, end, last.as_ref())
                .map_err(|e| self.io(e))?;
            if ok {
                tracing::info!(shard = self.shard, chain = %head.chain, offset = end, "continuing the chain in the repository");
                let event = Event::ChainStarted {
                    shard: self.shard,
                    head: Box::new(head.clone()),
                    reason: "resumed".into(),
                };
                let _ = self.events.send(event).await;
                self.install(head, end);
                return Ok(true);
            }
            tracing::info!(shard = self.shard, chain = %head.chain, "the files changed since the last shipped chain; starting a new one");
            return Ok(false);
        }
        Ok(false)
    }

    fn install(&mut self, head: ChainHead, end: u64) {
        let (chain, started) = (head.chain.clone(), head.created_ms);
        // The compaction rule's base: the chain's base files plus the stream as it stands now.
        let stream_start = self.follower.stream_len().max(end);
        let base_size = head.base.iter().map(|b| b.size).sum::<u64>() + stream_start;
        self.chain = Some(Open { head, end });
        self.pending.clear();
        self.scanned = 0;
        self.seen = None;
        self.shared.update(self.shard, |s| {
            s.chain = Some(chain);
            s.chain_started_ms = Some(started);
            s.shipped_offset = end;
            s.base_size = base_size;
            s.stream_start = stream_start;
        });
    }

    /// Pins the follower's files, stores the base, then the head: the chain exists from then on.
    async fn start_chain(&mut self, reason: &str) -> Result<(), TailError> {
        // Until the new head is stored, the old chain must not be read on: the follower has
        // already pinned the new files.
        self.owed_chain = Some(reason.to_string());
        let start = self.follower.start_chain(reason).map_err(|e| self.io(e))?;
        let created_ms = now_ms();
        let chain = keys::new_chain_id(created_ms);
        let shard = ShardId(self.shard);
        let dir = keys::chain_dir(&self.instance, shard, &chain);
        let mut base = Vec::new();
        for (n, part) in start.base.into_iter().enumerate() {
            let object = keys::base_object(n, self.repo.codec());
            let key = format!("{dir}{object}");
            let (size, crc32c) = self
                .repo
                .put_file(&key, part.file, Some(part.len))
                .await
                .map_err(|source| TailError::BaseUpload {
                    shard: self.shard,
                    source,
                })?;
            Counters::add(&self.shared.counters.bytes_shipped, size);
            base.push(BasePart {
                format: part.format,
                object,
                file_name: part.file_name,
                size,
                crc32c,
            });
        }
        let head = ChainHead {
            format_version: FORMAT_VERSION,
            instance: self.instance.clone(),
            shard: self.shard,
            chain,
            created_ms,
            layout: self.layout.clone(),
            server_version: self.server_version.clone(),
            base,
            stream_start: start.stream_start,
            reason: reason.to_string(),
            source_identity: start.identity,
        };
        self.repo
            .put_chain_head(&head)
            .await
            .map_err(|e| self.repo_err(e))?;
        tracing::info!(shard = self.shard, chain = %head.chain, reason, base_parts = head.base.len(), "new chain");
        self.shared.update(self.shard, |s| s.chains_started += 1);
        let _ = self
            .events
            .send(Event::ChainStarted {
                shard: self.shard,
                head: Box::new(head.clone()),
                reason: reason.to_string(),
            })
            .await;
        self.install(head, start.stream_start);
        self.owed_chain = None;
        Ok(())
    }

    /// Reads what is new and stores whole commands: every `interval` (RPO), when a segment is
    /// full, or at once when `force` (drain before a new chain, shutdown).
    async fn ship_available(&mut self, force: bool) -> Result<(), TailError> {
        loop {
            if self.owed_chain.is_some() {
                return Ok(());
            }
            let Some(open) = self.chain.as_ref() else {
                return Ok(());
            };
            let at = open.end + self.pending.len() as u64;
            let room = self.limit.saturating_sub(self.pending.len());
            let data = if room > 0 {
                self.follower.read(at, room).map_err(|e| self.io(e))?
            } else {
                Vec::new()
            };
            let got = data.len();
            if got < room {
                self.read_to_end_ms = now_ms();
            }
            if got > 0 {
                let now = now_ms();
                self.seen = Some(self.seen.map_or((now, now), |(first, _)| (first, now)));
                self.pending.extend_from_slice(&data);
            }
            if self.pending.is_empty() {
                return Ok(());
            }
            let start = open.end;
            // Only the bytes after the known safe prefix are scanned: under a steady load a
            // tailer wakes on every write, and rescanning the whole pending buffer each time
            // would cost quadratic CPU.
            let known = self.scanned.min(self.pending.len());
            let safe = match safe_prefix(&self.pending[known..], start + known as u64) {
                Ok(more) => known + more.len,
                Err(AofError::Invalid { offset, reason }) => {
                    return Err(self.corrupt(start, offset, reason).await);
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

    /// Stores the first `len` pending bytes (whole commands, from logical offset `start`) as one
    /// segment and moves the chain's end past them.
    async fn store(&mut self, start: u64, len: usize) -> Result<(), TailError> {
        let seen = self.seen.unwrap_or((now_ms(), now_ms()));
        let t0 = Instant::now();
        let seg = self
            .repo
            .put_segment(
                &self.instance,
                ShardId(self.shard),
                &self.chain_id(),
                start,
                &self.pending[..len],
                seen,
            )
            .await
            .map_err(|e| self.repo_err(e))?;
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

    /// Invalid bytes at logical `offset`: the whole commands before them are good data and are
    /// stored first (a corruption in the middle of an AOF must not cost what precedes it), then
    /// the shard stops, naming the file and the offset. A transient store error is returned
    /// instead, so the next pass tries again.
    async fn corrupt(&mut self, start: u64, offset: u64, reason: String) -> TailError {
        let good = (offset.saturating_sub(start) as usize).min(self.pending.len());
        if let Ok(safe) = safe_prefix(&self.pending[..good], start) {
            if safe.len > 0 {
                if let Err(e) = self.store(start, safe.len).await {
                    return e;
                }
            }
        }
        TailError::Corrupt {
            shard: self.shard,
            file: self.follower.describe(),
            offset,
            reason,
            shipped: self.chain.as_ref().map_or(start, |o| o.end),
        }
    }

    /// Stops reading until the files are replaced, as [`Tailer::run`] does after a `Corrupt`
    /// error (for the follower simulation, which drives [`Tailer::step`] itself).
    pub fn halt(&mut self) {
        self.halted = true;
    }

    /// The head of the chain being shipped, once there is one.
    pub fn head(&self) -> Option<&ChainHead> {
        self.chain.as_ref().map(|o| &o.head)
    }

    fn chain_id(&self) -> String {
        self.chain
            .as_ref()
            .map(|o| o.head.chain.clone())
            .unwrap_or_default()
    }

    /// Lag for `status`: bytes on disk not yet stored, and how long the oldest has waited.
    fn report(&mut self) {
        let len = self.follower.stream_len();
        let end = self.chain.as_ref().map_or(0, |o| o.end);
        let lag_bytes = len.saturating_sub(end);
        // An upper bound on the age of the oldest byte not stored: bytes read are as old as
        // when they were first seen; bytes not read yet were written after the last read that
        // reached the end of the file.
        let lag_seconds = if lag_bytes == 0 {
            0.0
        } else {
            let oldest = match self.seen {
                Some((first, _)) => first.min(self.read_to_end_ms),
                None => self.read_to_end_ms,
            };
            (now_ms() - oldest).max(0) as f64 / 1000.0
        };
        self.shared.update(self.shard, |s| {
            s.stream_len = len;
            s.lag_bytes = lag_bytes;
            s.lag_seconds = lag_seconds;
        });
    }
}
