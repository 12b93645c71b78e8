//! The growth trigger: when a shard's AOF has grown `rewrite_percentage` past its base (and is
//! at least `rewrite_min_size`), ask the server for `BGREWRITEAOF` — the rule Redis and kevy
//! use themselves — and let the follower ship the compacted file as a new chain.
//!
//! It does not fight the server: one rewrite at a time, a cool-down after each, nothing while
//! the server is already rewriting or saving (including rewrites it started itself), and a
//! failed command is logged, counted and tried again after the cool-down — never fatal.
//!
//! It also *recovers* shards: a tailer that cannot go on from its files (invalid bytes, an AOF
//! cut short with nothing to explain it) asks for a rewrite ([`Compactor::need_rewrite`]); the
//! new file starts a new chain, which withdraws the request ([`Compactor::chain_started`]).
//! Recovery is not a growth decision: it runs even with compaction disabled, and its pace is
//! its own — a short backoff after a failure, a re-ask if no new chain came — never
//! `compact.cooldown`, which would leave a shard unshipped for minutes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aofvault_config::Config;

use crate::server::Server;
use crate::ship::backoff::Backoff;
use crate::source::Layout;
use crate::status::{Counters, SharedRef};

pub struct Compactor {
    enabled: bool,
    percentage: u64,
    min_size: u64,
    cooldown: Duration,
    every: Duration,
    last_check: Option<Instant>,
    last_trigger: Option<Instant>,
    in_flight: bool,
    /// Shards waiting for a rewrite to recover, and why.
    recover: BTreeMap<u32, String>,
    /// Not before this instant is the server asked again for a recovery rewrite.
    recover_next: Option<Instant>,
    recover_backoff: Backoff,
}

/// If a recovery rewrite was accepted but the shard has not started a new chain after this
/// long, the server is asked again.
const RECOVER_REASK: Duration = Duration::from_secs(20);

fn recover_backoff() -> Backoff {
    Backoff::new(Duration::from_secs(1), Duration::from_secs(15))
}

/// The rule: `(aof - base) * 100 / base >= percentage` and `aof >= min_size`.
pub fn should_rewrite(aof_size: u64, base_size: u64, percentage: u64, min_size: u64) -> bool {
    let base = base_size.max(1);
    aof_size >= min_size
        && aof_size > base
        && (aof_size - base).saturating_mul(100) / base >= percentage
}

/// True when `INFO persistence` shows a rewrite or a save in progress.
fn busy(info: &std::collections::HashMap<String, String>) -> bool {
    [
        "aof_rewrite_in_progress",
        "rdb_bgsave_in_progress",
        "aof_rewrite_scheduled",
    ]
    .iter()
    .any(|k| info.get(*k).is_some_and(|v| v.trim() == "1"))
}

impl Compactor {
    pub fn new(cfg: &Config) -> Self {
        Compactor {
            enabled: cfg.compact.enabled && cfg.compact.rewrite_percentage > 0,
            percentage: cfg.compact.rewrite_percentage,
            min_size: cfg.compact.rewrite_min_size,
            cooldown: cfg.compact.cooldown,
            every: cfg.compact.check_interval,
            last_check: None,
            last_trigger: None,
            in_flight: false,
            recover: BTreeMap::new(),
            recover_next: None,
            recover_backoff: recover_backoff(),
        }
    }

    /// Takes the new configuration's settings, keeping what is in progress (a reload must not
    /// forget a shard waiting to recover).
    pub fn reconfigure(&mut self, cfg: &Config) {
        let fresh = Compactor::new(cfg);
        self.enabled = fresh.enabled;
        self.percentage = fresh.percentage;
        self.min_size = fresh.min_size;
        self.cooldown = fresh.cooldown;
        self.every = fresh.every;
    }

    /// A shard cannot go on from its files: ask the server for a rewrite at the next tick.
    pub fn need_rewrite(&mut self, shard: u32, reason: String) {
        if self.recover.is_empty() {
            self.recover_next = None;
            self.recover_backoff = recover_backoff();
        }
        self.recover.insert(shard, reason);
    }

    /// A shard started a new chain: it needs no recovery rewrite any more.
    pub fn chain_started(&mut self, shard: u32) {
        if self.recover.remove(&shard).is_some() && self.recover.is_empty() {
            self.recover_next = None;
        }
    }

    /// The recovery rewrite, when one is owed and due.
    async fn recover_tick(&mut self, server: &mut Server, shared: &SharedRef) {
        let info = match server.info("persistence").await {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "cannot reach the server to ask for a recovery rewrite; will retry");
                self.recover_next = Some(Instant::now() + self.recover_backoff.next_delay());
                return;
            }
        };
        if busy(&info) {
            // A rewrite or save is running: its new files may be what the shard needs.
            return;
        }
        let (shards, reasons): (Vec<u32>, Vec<&String>) = self.recover.iter().unzip();
        tracing::warn!(?shards, reason = %reasons.first().map_or("", |r| r.as_str()), "asking the server for BGREWRITEAOF to recover");
        match server.bgrewriteaof().await {
            Ok(reply) => {
                Counters::add(&shared.counters.recovery_rewrites, 1);
                tracing::info!(%reply, "BGREWRITEAOF accepted (recovery)");
                self.recover_next = Some(Instant::now() + RECOVER_REASK);
                self.last_trigger = Some(Instant::now());
            }
            Err(e) => {
                Counters::add(&shared.counters.rewrites_failed, 1);
                let retry = self.recover_backoff.next_delay();
                tracing::warn!(error = %format!("{e:#}"), retry_after = ?retry, "BGREWRITEAOF for recovery failed");
                self.recover_next = Some(Instant::now() + retry);
            }
        }
    }

    /// Sizes (aof, base) per shard. Redis reports them in INFO; kevy does not, so they come from
    /// the files: the stream grown since the chain began, over the chain's starting size.
    fn sizes(
        info: &std::collections::HashMap<String, String>,
        layout: &Layout,
        shared: &SharedRef,
    ) -> Vec<(u64, u64)> {
        let num = |k: &str| info.get(k).and_then(|v| v.trim().parse::<u64>().ok());
        if let (Layout::RedisMultiPart { .. }, Some(cur), Some(base)) =
            (layout, num("aof_current_size"), num("aof_base_size"))
        {
            return vec![(cur, base)];
        }
        shared
            .snapshot()
            .iter()
            .map(|s| {
                (
                    s.base_size + s.stream_len.saturating_sub(s.stream_start),
                    s.base_size,
                )
            })
            .collect()
    }

    pub async fn tick(&mut self, server: &mut Server, layout: &Layout, shared: &SharedRef) {
        if !self.recover.is_empty() && self.recover_next.is_none_or(|t| Instant::now() >= t) {
            self.recover_tick(server, shared).await;
            return;
        }
        if !self.enabled || self.last_check.is_some_and(|t| t.elapsed() < self.every) {
            return;
        }
        self.last_check = Some(Instant::now());
        let info = match server.info("persistence").await {
            Ok(i) => i,
            Err(e) => {
                tracing::debug!(error = %format!("{e:#}"), "INFO persistence failed; compaction check skipped");
                return;
            }
        };
        if busy(&info) {
            return;
        }
        if self.in_flight {
            self.in_flight = false;
            tracing::info!("rewrite finished");
        }
        if self
            .last_trigger
            .is_some_and(|t| t.elapsed() < self.cooldown)
        {
            return;
        }
        let sizes = Self::sizes(&info, layout, shared);
        let Some((shard, (aof, base))) = sizes
            .iter()
            .enumerate()
            .find(|(_, (aof, base))| should_rewrite(*aof, *base, self.percentage, self.min_size))
        else {
            return;
        };
        tracing::info!(
            shard,
            aof_size = aof,
            base_size = base,
            percentage = self.percentage,
            "AOF grew past the threshold; asking for BGREWRITEAOF"
        );
        self.last_trigger = Some(Instant::now());
        match server.bgrewriteaof().await {
            Ok(reply) => {
                self.in_flight = true;
                Counters::add(&shared.counters.rewrites_triggered, 1);
                tracing::info!(%reply, "BGREWRITEAOF accepted");
            }
            Err(e) => {
                Counters::add(&shared.counters.rewrites_failed, 1);
                tracing::warn!(error = %format!("{e:#}"), retry_after = ?self.cooldown, "BGREWRITEAOF failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::should_rewrite;

    #[test]
    fn the_rule_matches_redis() {
        assert!(!should_rewrite(100, 100, 100, 0));
        assert!(should_rewrite(200, 100, 100, 0));
        assert!(!should_rewrite(199, 100, 100, 0));
        assert!(
            !should_rewrite(200, 100, 100, 201),
            "below the minimum size"
        );
        assert!(should_rewrite(150, 100, 50, 0));
        assert!(
            should_rewrite(10, 0, 100, 0),
            "an empty base counts as one byte"
        );
    }
}
