//! One shard's shipping loop: wake on a file event, a poll tick or a due upload; check the
//! files with the follower; read what is new; store whole commands up to the last safe cut.
//!
//! Invariants: the chain's segments (and torn ranges) are contiguous from `stream_start`; a
//! segment is stored before `end` moves past it; a failed store is retried with exactly the same
//! object before anything more is read (a retry that read more would store an overlapping
//! object); a new chain is started only after the old one's pinned files were drained.
//! Transient store errors keep the bytes in memory and retry with backoff (the lag grows and is
//! reported). Invalid AOF bytes are looked at closely ([`invalid`]): a file that changed under
//! the read position is read again; a crash's torn frame followed by a restart's commands is
//! stepped over and recorded; anything else stops the shard, naming file and offset, after the
//! whole commands before them are stored — and, when the agent knows the server, it asks for a
//! rewrite and ships again from the new chain (state `recovering`).
//!
//! The data path, one file per step: this file is the loop (wake, check, dispatch) and the
//! shard's reported state; [`chain`] takes a chain up again or starts one; [`segment`] reads,
//! cuts and stores; [`invalid`] handles bytes that stop parsing; [`error`] says which failures
//! pass.

mod chain;
mod error;
mod invalid;
mod segment;

pub use error::TailError;

use std::time::Duration;

// tokio's clock: real time in the daemon, driven by the follower simulation in its tests.
use tokio::time::Instant;

use aofvault_formats::vault::{ChainHead, ServerLayout};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::Event;
use crate::repo::{Repo, RepoError};
use crate::source::{ChainReason, ChainStart, Check, Follower};
use crate::status::{Counters, Recovery, SharedRef};

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

/// A chain whose files are pinned and whose base and head are still to be stored.
struct Owed {
    reason: ChainReason,
    start: ChainStart,
}

/// One store attempt, kept until it succeeds: a retry sends exactly these bytes under exactly
/// this name.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    start: u64,
    len: usize,
    seen: (i64, i64),
    torn: bool,
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
    /// A new chain is owed: its files are pinned, its base and head not stored yet (an upload
    /// failed transiently). Retried before anything else.
    owed: Option<Owed>,
    /// Stopped at invalid AOF bytes: only watching for the files to be replaced.
    halted: bool,
    /// The store attempt that has not succeeded yet.
    inflight: Option<Attempt>,
    /// Whether the daemon can ask the server for a rewrite ([`Tailer::with_recovery`]).
    can_recover: bool,
    /// Waiting for the server's rewrite: the reason. The old files are not drained then.
    recovering: Option<String>,
    /// This agent's name in its replication group, written into the chains it starts.
    node: Option<String>,
    /// Why the first chain of this run starts when the repository's cannot be taken up:
    /// `start`, or `failover` when the last chain is another member's.
    first_reason: ChainReason,
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
            owed: None,
            halted: false,
            inflight: None,
            can_recover: false,
            recovering: None,
            node: None,
            first_reason: ChainReason::Start,
        }
    }

    /// Whether the daemon knows the server and can ask it for a rewrite when the shard cannot go
    /// on from its files (invalid bytes, an AOF cut short with nothing to explain it). Without
    /// it, invalid bytes stop the shard until the server rewrites by itself.
    pub fn with_recovery(mut self, on: bool) -> Self {
        self.can_recover = on;
        self
    }

    /// The group member this agent is (see [`ChainHead::node`]).
    pub fn with_node(mut self, node: &str) -> Self {
        self.node = Some(node.to_string());
        self
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
                    // Invalid bytes are the server's to repair or rewrite: keep watching the
                    // files, and ship again from a new chain once they are replaced.
                    let TailError::Corrupt { offset, .. } = e else {
                        self.stopped(&e).await;
                        return Err(e);
                    };
                    self.halted = true;
                    if self.can_recover {
                        self.ask_server(offset, e.to_string()).await;
                    } else {
                        self.stopped(&e).await;
                    }
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

    /// Asks the daemon for a server rewrite; the shard reads nothing until a new chain starts.
    async fn ask_server(&mut self, offset: u64, reason: String) {
        if self.recovering.as_deref() == Some(reason.as_str()) {
            return;
        }
        tracing::warn!(shard = self.shard, offset, %reason, "shard recovering: asking the server to rewrite its AOF; shipping resumes on the new chain");
        let since_ms = now_ms();
        self.shared.update(self.shard, |s| {
            s.state = "recovering".into();
            s.last_error = Some(reason.clone());
            s.recovery = Some(Recovery {
                offset,
                reason: reason.clone(),
                since_ms,
            });
        });
        self.recovering = Some(reason.clone());
        let _ = self
            .events
            .send(Event::NeedRewrite {
                shard: self.shard,
                reason,
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
                    self.scanned = 0;
                    self.seen = None;
                    self.inflight = None;
                    self.start_chain(reason).await?;
                    self.shared.update(self.shard, |s| s.last_error = None);
                }
                _ => return Ok(()),
            }
        }
        if self.owed.is_some() {
            self.store_owed_chain().await?;
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
                _ => self.start_chain(self.first_reason).await?,
            }
        }
        self.settle_tail().await?;
        match self.follower.check().map_err(|e| self.io(e))? {
            Check::Continue if self.recovering.is_some() => Ok(()),
            Check::Continue => {
                self.set_state("following", None);
                self.ship_available(force).await
            }
            Check::AskServer(why) if self.can_recover => {
                let end = self.chain.as_ref().map_or(0, |o| o.end);
                self.ask_server(end, why).await;
                Ok(())
            }
            Check::AskServer(why) => {
                tracing::warn!(shard = self.shard, %why, "no server to ask for a rewrite (--server): starting a new chain from the files as they are");
                self.pending.clear();
                self.scanned = 0;
                self.start_chain(ChainReason::Truncated).await
            }
            Check::NewChain(reason) => {
                // Not while recovering either: the old file is the one that could not be read on.
                if !reason.drains_old_files() || self.recovering.is_some() {
                    self.pending.clear();
                    self.scanned = 0;
                    self.inflight = None;
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
                self.start_chain(reason).await
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

    /// Stops reading until the files are replaced, as [`Tailer::run`] does after a `Corrupt`
    /// error without a server to ask (for the follower simulation, which drives
    /// [`Tailer::step`] itself).
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
