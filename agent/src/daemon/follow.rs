//! Following one layout: a tailer per shard under a child cancellation token, and the main
//! loop — lease renewal, snapshots, scheduled jobs, compaction, status, sd_notify, SIGHUP —
//! until shutdown or until the server's shard layout changes (then the caller starts over with
//! the new layout, and every shard begins a new chain).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use aofvault_formats::vault::ChainHead;
use tokio::sync::{mpsc, watch};
use tokio_util::task::TaskTracker;

use super::{watch_dir, watched_dir, Daemon};
use crate::context::now_ms;
use crate::repo::lease::LeaseError;
use crate::ship::status::{Counters, Shared, SharedRef};
use crate::ship::tailer::{ShipSettings, Tailer};
use crate::ship::Event;
use crate::source::{ChainReason, Layout};
use crate::{compact, metrics, schedule, status_file};

/// How a follow ended.
pub enum Outcome {
    Shutdown,
    LayoutChanged(Layout),
}

/// How often the layout is looked at again (kevy reshards on restart with another shard count).
const LAYOUT_CHECK: Duration = Duration::from_secs(5);

impl Daemon {
    pub(super) fn settings(&self) -> ShipSettings {
        ShipSettings {
            interval: self.cfg.ship.interval,
            segment_max: self.cfg.ship.segment_max as usize,
            poll: self.cfg.ship.poll_interval,
        }
    }

    async fn publish(
        &self,
        shared: &SharedRef,
        record: &aofvault_formats::vault::ServerLayout,
        heads: &[Option<ChainHead>],
        reason: &str,
    ) -> bool {
        let hs: Vec<ChainHead> = heads.iter().flatten().cloned().collect();
        match crate::snapshot::publish(
            &self.repo,
            &self.instance,
            record,
            self.server_version.clone(),
            &hs,
            reason,
        )
        .await
        {
            Ok(_) => {
                Counters::add(&shared.counters.snapshots_published, 1);
                shared
                    .counters
                    .last_snapshot_ms
                    .store(now_ms() as u64, Ordering::Relaxed);
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, reason, "cannot publish a snapshot yet; will retry");
                false
            }
        }
    }

    pub(super) async fn follow(&mut self, layout: Layout) -> anyhow::Result<Outcome> {
        tracing::info!(?layout, "following");
        let record = layout.record();
        let shards = layout.shards();
        let shared = Shared::new(shards);
        // File events only wake the tailers; they re-read the files themselves.
        let (wake_tx, wake_rx) = watch::channel(0u64);
        let _watcher = watch_dir(watched_dir(&layout), wake_tx);
        let tracker = TaskTracker::new();
        let tailers = self.shutdown.child_token();
        let (events_tx, mut events) = mpsc::channel::<Event>(64);
        for shard in 0..shards {
            let t = Tailer::new(
                shard,
                layout.follower(shard),
                self.repo.clone(),
                self.instance.clone(),
                record.clone(),
                self.server_version.clone(),
                self.settings(),
                shared.clone(),
                events_tx.clone(),
            )
            .with_recovery(self.server.is_some());
            tracker.spawn(t.run(tailers.clone(), wake_rx.clone()));
        }
        tracker.close();
        let metrics_stop = tailers.child_token();
        if let Some(addr) = self.cfg.metrics.listen {
            metrics::serve(addr, shared.clone(), metrics_stop.clone()).await?;
        }

        let mut heads: Vec<Option<ChainHead>> = vec![None; shards as usize];
        let mut published_start = false;
        let mut snapshot_due: Option<(Instant, String)> = None;
        let mut sched = schedule::Runner::new(&self.cfg, &self.cfg.state.dir, &self.instance);
        let mut compactor = compact::Compactor::new(&self.cfg);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut renew = tokio::time::interval(self.lease.ttl() / 3);
        let mut layout_check = tokio::time::interval(LAYOUT_CHECK);
        let mut ready = false;
        let mut last_progress = (0u64, Instant::now());
        // Scheduled jobs run beside the loop, on their own tracker under the daemon's
        // cancellation tree: shutdown cancels them and waits for them.
        let mut jobs: HashMap<schedule::Job, tokio::task::JoinHandle<()>> = HashMap::new();
        let job_tracker = TaskTracker::new();
        let job_cancel = self.shutdown.child_token();
        let shutdown = self.shutdown.clone();
        let outcome = loop {
            tokio::select! {
                _ = shutdown.cancelled() => break Outcome::Shutdown,
                Some(()) = self.hup.recv() => {
                    self.notifier.reloading();
                    match (self.reload)() {
                        Ok(new) => {
                            if let Err(e) = crate::logging::set_level(&new.log.level) {
                                tracing::warn!(error = %e, "cannot apply the new log level");
                            }
                            let later = crate::settings::sections_needing_restart(&self.cfg, &new);
                            if later.is_empty() {
                                tracing::info!("configuration reloaded");
                            } else {
                                tracing::warn!(sections = ?later, "configuration reloaded; these sections take effect at the next start");
                            }
                            sched = schedule::Runner::new(&new, &new.state.dir, &self.instance);
                            compactor.reconfigure(&new);
                            self.cfg = new;
                        }
                        Err(e) => tracing::error!(error = %format!("{e:#}"), "the new configuration is invalid; keeping the running one"),
                    }
                    self.notifier.ready();
                }
                Some(ev) = events.recv() => match ev {
                    Event::ChainStarted { shard, head, reason } => {
                        compactor.chain_started(shard);
                        heads[shard as usize] = Some(*head);
                        if published_start && reason != ChainReason::Resumed {
                            // Published at the next tick: one manifest for the shards a
                            // multi-shard rewrite renews within the same second.
                            snapshot_due.get_or_insert((Instant::now(), reason.as_str().to_string()));
                        }
                    }
                    Event::Stopped { shard, error } => {
                        tracing::error!(shard, %error, "a shard stopped shipping; the others go on");
                    }
                    Event::NeedRewrite { shard, reason } => {
                        compactor.need_rewrite(shard, reason);
                    }
                },
                _ = renew.tick() => {
                    match self.lease.renew().await {
                        Ok(()) => {}
                        Err(e @ LeaseError::Lost { .. }) => {
                            tailers.cancel();
                            return Err(e.into());
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot renew the lease (will retry)"),
                    }
                }
                _ = layout_check.tick() => {
                    if let Ok(Some(now)) = self.discover() {
                        if now != layout {
                            tracing::warn!(from = ?layout, to = ?now, "the server's shard layout changed; every shard starts a new chain");
                            break Outcome::LayoutChanged(now);
                        }
                    }
                }
                _ = tick.tick() => {
                    if !published_start && heads.iter().all(Option::is_some) {
                        published_start = self.publish(&shared, &record, &heads, "start").await;
                    }
                    if let Some((when, reason)) = snapshot_due.clone() {
                        if Instant::now() >= when && self.publish(&shared, &record, &heads, &reason).await {
                            snapshot_due = None;
                        }
                    }
                    if published_start {
                        for job in sched.due() {
                            match job {
                                schedule::Job::Snapshot => {
                                    snapshot_due.get_or_insert((Instant::now(), "scheduled".into()));
                                }
                                // Jobs run beside the loop, so a long prune or verify never
                                // delays the lease renewal; one run of each job at a time.
                                other if jobs.get(&other).is_some_and(|h| !h.is_finished()) => {
                                    tracing::warn!(job = other.name(), "still running from its last turn; this turn is skipped");
                                }
                                other => {
                                    let (c, r, i) = (self.cfg.clone(), self.repo.clone(), self.instance.clone());
                                    let (sh, stop) = (shared.clone(), job_cancel.clone());
                                    jobs.insert(other, job_tracker.spawn(async move {
                                        tokio::select! {
                                            _ = stop.cancelled() => tracing::info!(job = other.name(), "scheduled job cancelled by shutdown"),
                                            _ = schedule::run_job(other, &c, &r, &i, &sh.counters) => {}
                                        }
                                    }));
                                }
                            }
                            sched.done(job);
                        }
                    }
                    if let Some(srv) = self.server.as_mut() {
                        compactor.tick(srv, &layout, &shared).await;
                    }
                    let statuses = shared.snapshot();
                    let shipped: u64 = statuses.iter().map(|s| s.bytes_shipped).sum();
                    let lag: u64 = statuses.iter().map(|s| s.lag_bytes).sum();
                    let lag_s = statuses.iter().map(|s| s.lag_seconds).fold(0.0, f64::max);
                    if shipped != last_progress.0 || lag == 0 {
                        last_progress = (shipped, Instant::now());
                    }
                    // The watchdog is fed only while shipping makes progress (or has nothing to do).
                    if last_progress.1.elapsed() < Duration::from_secs(60) {
                        self.notifier.watchdog();
                    }
                    if !ready && heads.iter().all(Option::is_some) {
                        self.notifier.ready();
                        ready = true;
                    }
                    self.notifier.status(&format!("{shards} shard(s), lag {lag} bytes / {lag_s:.1}s"));
                    let doc = status_file::StatusDoc::new(&self.instance, self.repo.url(), &statuses, &sched);
                    status_file::write(&self.cfg.state.dir, &self.instance, &doc)
                        .unwrap_or_else(|e| tracing::warn!(error = %e, "cannot write the status file"));
                }
            }
        };

        if matches!(outcome, Outcome::Shutdown) {
            self.notifier.stopping();
            tracing::info!("stopping: storing what is complete");
        }
        tailers.cancel();
        job_cancel.cancel();
        job_tracker.close();
        let deadline = self.cfg.shutdown.deadline;
        if tokio::time::timeout(deadline, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                ?deadline,
                "shutdown deadline reached; unstored bytes will be shipped by the next start"
            );
        }
        if tokio::time::timeout(deadline, job_tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                ?deadline,
                "a scheduled job did not end within the shutdown deadline"
            );
        }
        // A chain that began since the last manifest gets one now, so that "latest" names it.
        if let Some((_, reason)) = snapshot_due {
            if heads.iter().all(Option::is_some) {
                self.publish(&shared, &record, &heads, &reason).await;
            }
        }
        let doc = status_file::StatusDoc::new(
            &self.instance,
            self.repo.url(),
            &shared.snapshot(),
            &sched,
        );
        status_file::write(&self.cfg.state.dir, &self.instance, &doc).ok();
        Ok(outcome)
    }
}
