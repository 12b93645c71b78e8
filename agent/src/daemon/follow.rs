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
use crate::ship::tailer::{ShipSettings, Tailer};
use crate::ship::Event;
use crate::source::{ChainReason, Layout};
use crate::status::file as status_file;
use crate::status::{Counters, Shared, SharedRef};
use crate::{compact, schedule};

/// How a follow ended.
pub enum Outcome {
    Shutdown,
    LayoutChanged(Layout),
    /// This agent stops shipping for its group (its server is no longer the primary), and why.
    StepDown(String),
}

/// How long a step-down waits for the shards to ship what is on disk (a primary that died
/// left its last writes there).
const DRAIN: Duration = Duration::from_secs(5);

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
        let shards = layout.shards();
        let mut st = Loop::new(self, &layout);
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
                st.record.clone(),
                self.server_version.clone(),
                self.settings(),
                st.shared.clone(),
                events_tx.clone(),
            )
            .with_recovery(self.server.is_some())
            .with_node(self.group.node());
            tracker.spawn(t.run(tailers.clone(), wake_rx.clone()));
        }
        tracker.close();
        self.board.set_shared(st.shared.clone());
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut renew = tokio::time::interval(self.group.renew_every());
        renew.tick().await; // the first tick is at once: the lease was just taken or renewed
        let mut layout_check = tokio::time::interval(LAYOUT_CHECK);
        let shutdown = self.shutdown.clone();
        let outcome = loop {
            tokio::select! {
                _ = shutdown.cancelled() => break Outcome::Shutdown,
                Some(()) = self.hup.recv() => self.reload_config(&mut st),
                Some(ev) = events.recv() => st.on_event(ev),
                _ = renew.tick() => {
                    if let Some(why) = self.hold().await {
                        tracing::warn!(%why, "stepping down: shipping what is on disk, then giving the lease back");
                        self.board.update_group(|g| g.state = "stepping down".into());
                        drain(&st.shared).await;
                        break Outcome::StepDown(why);
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
                _ = tick.tick() => self.on_tick(&mut st, &layout).await,
            }
        };
        if matches!(outcome, Outcome::Shutdown) {
            self.notifier.stopping();
            tracing::info!("stopping: storing what is complete");
        }
        tailers.cancel();
        self.finish(st, tracker).await;
        Ok(outcome)
    }

    /// SIGHUP: the new configuration, or the running one kept when the new one is invalid.
    fn reload_config(&mut self, st: &mut Loop) {
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
                st.sched = schedule::Runner::new(&new, &new.state.dir, &self.instance);
                st.compactor.reconfigure(&new);
                self.cfg = new;
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "the new configuration is invalid; keeping the running one")
            }
        }
        self.notifier.ready();
    }

    /// Every second: snapshots owed, scheduled jobs, compaction, and what the agent reports.
    async fn on_tick(&mut self, st: &mut Loop, layout: &Layout) {
        if !st.published_start && st.all_heads() {
            let reason = st.start_reason;
            st.published_start = self
                .publish(&st.shared, &st.record, &st.heads, reason)
                .await;
        }
        if let Some((when, reason)) = st.snapshot_due.clone() {
            if Instant::now() >= when
                && self
                    .publish(&st.shared, &st.record, &st.heads, &reason)
                    .await
            {
                st.snapshot_due = None;
            }
        }
        if st.published_start {
            self.run_due_jobs(st);
        }
        if let Some(srv) = self.server.as_mut() {
            st.compactor.tick(srv, layout, &st.shared).await;
        }
        self.report(st);
    }

    /// Starts the scheduled jobs that are due, beside the loop (a long prune or verify never
    /// delays the lease renewal), one run of each job at a time.
    fn run_due_jobs(&mut self, st: &mut Loop) {
        for job in st.sched.due() {
            match job {
                schedule::Job::Snapshot => {
                    st.snapshot_due
                        .get_or_insert((Instant::now(), "scheduled".into()));
                }
                other if st.jobs.get(&other).is_some_and(|h| !h.is_finished()) => {
                    tracing::warn!(
                        job = other.name(),
                        "still running from its last turn; this turn is skipped"
                    );
                }
                other => {
                    let (c, r, i) = (self.cfg.clone(), self.repo.clone(), self.instance.clone());
                    let (sh, stop) = (st.shared.clone(), st.job_cancel.clone());
                    let handle = st.job_tracker.spawn(async move {
                        tokio::select! {
                            _ = stop.cancelled() => tracing::info!(job = other.name(), "scheduled job cancelled by shutdown"),
                            _ = schedule::run_job(other, &c, &r, &i, &sh.counters) => {}
                        }
                    });
                    st.jobs.insert(other, handle);
                }
            }
            st.sched.done(job);
        }
    }

    /// The watchdog, sd_notify's status and ready, and the status file.
    fn report(&mut self, st: &mut Loop) {
        let statuses = st.shared.snapshot();
        let shipped: u64 = statuses.iter().map(|s| s.bytes_shipped).sum();
        let lag: u64 = statuses.iter().map(|s| s.lag_bytes).sum();
        let lag_s = statuses.iter().map(|s| s.lag_seconds).fold(0.0, f64::max);
        if shipped != st.last_progress.0 || lag == 0 {
            st.last_progress = (shipped, Instant::now());
        }
        // The watchdog is fed only while shipping makes progress (or has nothing to do).
        if st.last_progress.1.elapsed() < Duration::from_secs(60) {
            self.notifier.watchdog();
        }
        if !st.ready && st.all_heads() {
            self.notifier.ready();
            st.ready = true;
        }
        let shards = statuses.len();
        self.notifier
            .status(&format!("{shards} shard(s), lag {lag} bytes / {lag_s:.1}s"));
        let doc = status_file::StatusDoc::new(
            &self.instance,
            self.repo.url(),
            &statuses,
            st.sched.next_runs(),
        )
        .with_group(self.board.group());
        status_file::write(&self.cfg.state.dir, &self.instance, &doc)
            .unwrap_or_else(|e| tracing::warn!(error = %e, "cannot write the status file"));
    }

    /// After the loop: the tailers and jobs end within the deadline, a snapshot still owed is
    /// published, and the status file says so.
    async fn finish(&mut self, st: Loop, tracker: TaskTracker) {
        st.job_cancel.cancel();
        st.job_tracker.close();
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
        if tokio::time::timeout(deadline, st.job_tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                ?deadline,
                "a scheduled job did not end within the shutdown deadline"
            );
        }
        // A chain that began since the last manifest gets one now, so that "latest" names it.
        if let Some((_, reason)) = &st.snapshot_due {
            if st.all_heads() {
                self.publish(&st.shared, &st.record, &st.heads, reason)
                    .await;
            }
        }
        let doc = status_file::StatusDoc::new(
            &self.instance,
            self.repo.url(),
            &st.shared.snapshot(),
            st.sched.next_runs(),
        )
        .with_group(self.board.group());
        status_file::write(&self.cfg.state.dir, &self.instance, &doc).ok();
    }
}

/// Waits (within [`DRAIN`]) until every shard has shipped what its files hold.
async fn drain(shared: &SharedRef) {
    let until = Instant::now() + DRAIN;
    while Instant::now() < until {
        if shared.snapshot().iter().all(|s| s.lag_bytes == 0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tracing::warn!(
        ?DRAIN,
        "the shards did not ship everything on disk before the step-down"
    );
}

/// What the main loop keeps between its turns.
struct Loop {
    record: aofvault_formats::vault::ServerLayout,
    shared: SharedRef,
    heads: Vec<Option<ChainHead>>,
    published_start: bool,
    /// The first snapshot's reason: `start`, or `failover` when this agent took over.
    start_reason: &'static str,
    /// A snapshot owed: from when, and why.
    snapshot_due: Option<(Instant, String)>,
    sched: schedule::Runner,
    compactor: compact::Compactor,
    ready: bool,
    /// Bytes shipped so far, and when that last changed.
    last_progress: (u64, Instant),
    // Scheduled jobs run beside the loop, on their own tracker under the daemon's cancellation
    // tree: shutdown cancels them and waits for them.
    jobs: HashMap<schedule::Job, tokio::task::JoinHandle<()>>,
    job_tracker: TaskTracker,
    job_cancel: tokio_util::sync::CancellationToken,
}

impl Loop {
    fn new(d: &Daemon, layout: &Layout) -> Loop {
        Loop {
            record: layout.record(),
            shared: Shared::new(layout.shards()),
            heads: vec![None; layout.shards() as usize],
            published_start: false,
            start_reason: "start",
            snapshot_due: None,
            sched: schedule::Runner::new(&d.cfg, &d.cfg.state.dir, &d.instance),
            compactor: compact::Compactor::new(&d.cfg),
            ready: false,
            last_progress: (0, Instant::now()),
            jobs: HashMap::new(),
            job_tracker: TaskTracker::new(),
            job_cancel: d.shutdown.child_token(),
        }
    }

    fn all_heads(&self) -> bool {
        self.heads.iter().all(Option::is_some)
    }

    /// What a tailer says.
    fn on_event(&mut self, ev: Event) {
        match ev {
            Event::ChainStarted {
                shard,
                head,
                reason,
            } => {
                self.compactor.chain_started(shard);
                self.heads[shard as usize] = Some(*head);
                if reason == ChainReason::Failover {
                    self.start_reason = "failover";
                }
                if self.published_start && reason != ChainReason::Resumed {
                    // Published at the next tick: one manifest for the shards a multi-shard
                    // rewrite renews within the same second.
                    self.snapshot_due
                        .get_or_insert((Instant::now(), reason.as_str().to_string()));
                }
            }
            Event::Stopped { shard, error } => {
                tracing::error!(shard, %error, "a shard stopped shipping; the others go on");
            }
            Event::NeedRewrite { shard, reason } => self.compactor.need_rewrite(shard, reason),
        }
    }
}
