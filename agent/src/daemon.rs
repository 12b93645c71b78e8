//! `aofvault run`: the daemon.
//!
//! Start-up: open the repository (unreachable ≠ empty), take the instance lease, find the
//! server's files, then one [`Tailer`] task per shard under one cancellation tree. The main loop
//! renews the lease, publishes snapshots (at start, when a chain begins, on schedule), writes the
//! status file, feeds sd_notify, and runs compaction and the other schedules. SIGTERM cancels the
//! tree: every tailer stores what is complete, then the lease is released — within the shutdown
//! deadline, after which what is left is logged and abandoned (the next start continues from
//! the repository).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use aofvault_config::{Config, SourceKind};
use aofvault_formats::vault::ChainHead;
use notify::Watcher;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::context::{now_ms, open_repo};
use crate::notify::Notifier;
use crate::repo::lease::Lease;
use crate::repo::Repo;
use crate::server::Server;
use crate::ship::status::{Counters, Shared};
use crate::ship::tailer::{ShipSettings, Tailer};
use crate::ship::Event;
use crate::source::{discover, Layout, Want};
use crate::{compact, metrics, schedule, status_file};

/// A way to re-read the configuration on SIGHUP.
pub type Reload = Box<dyn Fn() -> anyhow::Result<Config> + Send + Sync>;

/// Runs until `shutdown` is cancelled or a fatal error.
pub async fn run(
    cfg: Config,
    shutdown: CancellationToken,
    mut hup: mpsc::Receiver<()>,
    reload: Reload,
) -> anyhow::Result<()> {
    let notifier = Notifier::new();
    let repo = open_repo(&cfg)?;
    let instance = cfg.repository.instance.clone();
    connect_repo(&repo, &shutdown, &notifier).await?;
    let mut lease = Lease::acquire(&repo, &instance, Duration::from_secs(30)).await?;
    tracing::info!(repository = repo.url(), instance = %instance, "lease taken");

    let mut server = match Server::connect(&cfg).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "server not reachable; following the files only (no compaction) until it is");
            None
        }
    };
    let server_version = match server.as_mut() {
        Some(s) => s.version().await,
        None => None,
    };
    let layout = find_layout(&cfg, server.as_mut(), &shutdown, &notifier).await?;
    let Some(layout) = layout else {
        lease.release().await.ok();
        return Ok(());
    };
    tracing::info!(?layout, "following");
    let record = layout.record();
    let shards = layout.shards();
    let shared = Shared::new(shards);

    // File events only wake the tailers; they re-read the files themselves.
    let (wake_tx, wake_rx) = watch::channel(0u64);
    let _watcher = watch_dir(watched_dir(&layout), wake_tx);

    let tracker = TaskTracker::new();
    let tailers = shutdown.child_token();
    let (events_tx, mut events) = mpsc::channel::<Event>(64);
    let settings = ShipSettings {
        interval: cfg.ship.interval,
        segment_max: cfg.ship.segment_max as usize,
        poll: cfg.ship.poll_interval,
    };
    for shard in 0..shards {
        let t = Tailer::new(
            shard,
            layout.follower(shard),
            repo.clone(),
            instance.clone(),
            record.clone(),
            server_version.clone(),
            settings.clone(),
            shared.clone(),
            events_tx.clone(),
        );
        tracker.spawn(t.run(tailers.clone(), wake_rx.clone()));
    }
    tracker.close();

    if let Some(addr) = cfg.metrics.listen {
        metrics::serve(addr, shared.clone(), shutdown.clone()).await?;
    }

    let mut heads: Vec<Option<ChainHead>> = vec![None; shards as usize];
    let mut published_start = false;
    let mut snapshot_due: Option<(Instant, String)> = None;
    let mut sched = schedule::Runner::new(&cfg, &cfg.state.dir, &instance);
    let mut compactor = compact::Compactor::new(&cfg);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut renew = tokio::time::interval(lease.ttl() / 3);
    let mut cfg = cfg;
    let mut ready = false;
    let mut last_progress = (0u64, Instant::now());
    let mut jobs: std::collections::HashMap<schedule::Job, tokio::task::JoinHandle<()>> =
        Default::default();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(()) = hup.recv() => {
                notifier.reloading();
                match reload() {
                    Ok(new) => {
                        if let Err(e) = crate::logging::set_level(&new.log.level) {
                            tracing::warn!(error = %e, "cannot apply the new log level");
                        }
                        let later = crate::settings::sections_needing_restart(&cfg, &new);
                        if later.is_empty() {
                            tracing::info!("configuration reloaded");
                        } else {
                            tracing::warn!(sections = ?later, "configuration reloaded; these sections take effect at the next start");
                        }
                        sched = schedule::Runner::new(&new, &new.state.dir, &instance);
                        compactor = compact::Compactor::new(&new);
                        cfg = new;
                    }
                    Err(e) => tracing::error!(error = %format!("{e:#}"), "the new configuration is invalid; keeping the running one"),
                }
                notifier.ready();
            }
            Some(ev) = events.recv() => match ev {
                Event::ChainStarted { shard, head, reason } => {
                    heads[shard as usize] = Some(*head);
                    if published_start && reason != "resumed" {
                        snapshot_due.get_or_insert((Instant::now() + Duration::from_secs(2), reason));
                    }
                }
                Event::Stopped { shard, error } => {
                    tracing::error!(shard, %error, "a shard stopped shipping; the others go on");
                }
            },
            _ = renew.tick() => {
                if let Err(e) = lease.renew().await {
                    match e {
                        crate::repo::lease::LeaseError::Lost { .. } => {
                            tailers.cancel();
                            return Err(e.into());
                        }
                        e => tracing::warn!(error = %e, "cannot renew the lease (will retry)"),
                    }
                }
            }
            _ = tick.tick() => {
                if !published_start && heads.iter().all(Option::is_some) {
                    let hs: Vec<ChainHead> = heads.iter().flatten().cloned().collect();
                    match crate::snapshot::publish(&repo, &instance, &record, server_version.clone(), &hs, "start").await {
                        Ok(_) => {
                            published_start = true;
                            Counters::add(&shared.counters.snapshots_published, 1);
                            shared.counters.last_snapshot_ms.store(now_ms() as u64, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot publish the start snapshot yet"),
                    }
                }
                if let Some((when, reason)) = snapshot_due.clone() {
                    if Instant::now() >= when {
                        let hs: Vec<ChainHead> = heads.iter().flatten().cloned().collect();
                        match crate::snapshot::publish(&repo, &instance, &record, server_version.clone(), &hs, &reason).await {
                            Ok(_) => {
                                snapshot_due = None;
                                Counters::add(&shared.counters.snapshots_published, 1);
                                shared.counters.last_snapshot_ms.store(now_ms() as u64, std::sync::atomic::Ordering::Relaxed);
                            }
                            Err(e) => tracing::warn!(error = %e, "cannot publish a snapshot yet; will retry"),
                        }
                    }
                }
                if published_start {
                    for job in sched.due() {
                        match job {
                            schedule::Job::Snapshot => { snapshot_due.get_or_insert((Instant::now(), "scheduled".into())); }
                            // Jobs run beside the loop, so a long prune or verify never delays the
                            // lease renewal; one run of each job at a time.
                            other if jobs.get(&other).is_some_and(|h| !h.is_finished()) => {
                                tracing::warn!(job = other.name(), "still running from its last turn; this turn is skipped");
                            }
                            other => {
                                let (c, r, i) = (cfg.clone(), repo.clone(), instance.clone());
                                jobs.insert(other, tokio::spawn(async move { schedule::run_job(other, &c, &r, &i).await }));
                            }
                        }
                        sched.done(job);
                    }
                }
                if let Some(srv) = server.as_mut() {
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
                    notifier.watchdog();
                }
                if !ready && heads.iter().all(Option::is_some) {
                    notifier.ready();
                    ready = true;
                }
                notifier.status(&format!("{shards} shard(s), lag {lag} bytes / {lag_s:.1}s"));
                status_file::write(&cfg.state.dir, &instance, &status_file::StatusDoc::new(&instance, repo.url(), &statuses, &sched))
                    .unwrap_or_else(|e| tracing::warn!(error = %e, "cannot write the status file"));
            }
        }
    }

    notifier.stopping();
    tracing::info!("stopping: storing what is complete");
    tailers.cancel();
    let deadline = cfg.shutdown.deadline;
    if tokio::time::timeout(deadline, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            ?deadline,
            "shutdown deadline reached; unstored bytes will be shipped by the next start"
        );
    }
    let statuses = shared.snapshot();
    status_file::write(
        &cfg.state.dir,
        &instance,
        &status_file::StatusDoc::new(&instance, repo.url(), &statuses, &sched),
    )
    .ok();
    lease.release().await.ok();
    tracing::info!("stopped");
    Ok(())
}

/// Waits for the repository: unreachable is retried (and said), a newer format is fatal.
async fn connect_repo(
    repo: &Repo,
    shutdown: &CancellationToken,
    notifier: &Notifier,
) -> anyhow::Result<()> {
    let mut backoff =
        crate::ship::backoff::Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    loop {
        match repo.ensure_format(now_ms()).await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_transient() => {
                let wait = backoff.next_delay();
                tracing::error!(error = %e, retry_in = ?wait, "repository unreachable");
                notifier.status(&format!("repository unreachable: {e}"));
                tokio::select! {
                    _ = shutdown.cancelled() => anyhow::bail!("stopped while waiting for the repository"),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Finds the files to follow; waits (saying why) while there are none.
async fn find_layout(
    cfg: &Config,
    mut server: Option<&mut Server>,
    shutdown: &CancellationToken,
    notifier: &Notifier,
) -> anyhow::Result<Option<Layout>> {
    let want = match cfg.source.kind {
        SourceKind::Auto => Want::Auto,
        SourceKind::Kevy => Want::Kevy,
        SourceKind::Redis => Want::Redis,
    };
    let (mut dir, mut aof_dir, mut aof_name) = (
        cfg.source.dir.clone(),
        "appendonlydir".to_string(),
        "appendonly.aof".to_string(),
    );
    if let Some(srv) = server.as_mut() {
        if dir.is_none() {
            dir = srv.config_get("dir").await?.map(PathBuf::from);
        }
        if let Some(d) = srv.config_get("appenddirname").await? {
            aof_dir = d;
        }
        if let Some(n) = srv.config_get("appendfilename").await? {
            aof_name = n;
        }
    }
    let dir = dir.context("no source directory: set [source] dir, pass --source DIR, or --server URL to ask the server")?;
    let mut said = false;
    loop {
        if let Some(layout) = discover(&dir, want, &aof_dir, &aof_name)? {
            return Ok(Some(layout));
        }
        if !said {
            tracing::warn!(dir = %dir.display(), "no AOF found yet (is appendonly enabled?); watching");
            notifier.status(&format!(
                "no AOF in {} (is appendonly enabled?)",
                dir.display()
            ));
            said = true;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(None),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

fn watched_dir(layout: &Layout) -> PathBuf {
    match layout {
        Layout::Kevy { dir, .. } => dir.clone(),
        Layout::RedisMultiPart { aof_dir, .. } => aof_dir.clone(),
    }
}

/// A file watcher that bumps `wake` on any event; `None` (polling only) if it cannot watch.
fn watch_dir(dir: PathBuf, wake: watch::Sender<u64>) -> Option<notify::RecommendedWatcher> {
    let wake = Arc::new(wake);
    let w = wake.clone();
    let mut watcher =
        match notify::recommended_watcher(move |_ev: notify::Result<notify::Event>| {
            w.send_modify(|n| *n = n.wrapping_add(1));
        }) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "file events unavailable; polling only");
                return None;
            }
        };
    if let Err(e) = watcher.watch(Path::new(&dir), notify::RecursiveMode::NonRecursive) {
        tracing::warn!(error = %e, dir = %dir.display(), "cannot watch; polling only");
        return None;
    }
    Some(watcher)
}

/// `aofvault backup`: under the lease, bring every shard's chain up to the end of its files,
/// then publish a snapshot. Fails if a daemon already holds the instance.
pub async fn backup_once(
    cfg: &Config,
) -> anyhow::Result<aofvault_formats::vault::SnapshotManifest> {
    let repo = open_repo(cfg)?;
    repo.ensure_format(now_ms()).await?;
    let instance = cfg.repository.instance.clone();
    let lease = Lease::acquire(&repo, &instance, Duration::from_secs(30)).await?;
    let result = async {
        let mut server = Server::connect(cfg).await.unwrap_or(None);
        let server_version = match server.as_mut() {
            Some(s) => s.version().await,
            None => None,
        };
        let layout = find_layout_once(cfg, server.as_mut()).await?;
        let record = layout.record();
        let shared = Shared::new(layout.shards());
        let (events_tx, _events) = mpsc::channel::<Event>(64);
        let settings = ShipSettings {
            interval: cfg.ship.interval,
            segment_max: cfg.ship.segment_max as usize,
            poll: cfg.ship.poll_interval,
        };
        let mut heads = Vec::new();
        for shard in 0..layout.shards() {
            let mut t = Tailer::new(
                shard,
                layout.follower(shard),
                repo.clone(),
                instance.clone(),
                record.clone(),
                server_version.clone(),
                settings.clone(),
                shared.clone(),
                events_tx.clone(),
            );
            let started = Instant::now();
            loop {
                t.step(true).await?;
                if let Some(h) = t.head() {
                    heads.push(h.clone());
                    break;
                }
                if started.elapsed() > Duration::from_secs(10) {
                    anyhow::bail!("shard {shard}: {}", shared.snapshot()[shard as usize].state);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(
            crate::snapshot::publish(&repo, &instance, &record, server_version, &heads, "backup")
                .await?,
        )
    }
    .await;
    lease.release().await.ok();
    result
}

async fn find_layout_once(cfg: &Config, server: Option<&mut Server>) -> anyhow::Result<Layout> {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        cancel.cancel();
    });
    find_layout(cfg, server, &token, &Notifier::new())
        .await?
        .context("no AOF found in the source directory (is appendonly enabled?)")
}
