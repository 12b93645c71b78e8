//! `aofvault run`: the daemon ([`follow`] is its main loop for one shard layout).
//!
//! Start-up: open the repository (unreachable ≠ empty), take the instance lease, find the
//! server's files, then one [`Tailer`] task per shard under one cancellation tree. The main loop
//! renews the lease, publishes snapshots (at start, when a chain begins, on schedule), writes the
//! status file, feeds sd_notify, and runs compaction and the other schedules. SIGTERM cancels the
//! tree: every tailer stores what is complete, then the lease is released — within the shutdown
//! deadline, after which what is left is logged and abandoned (the next start continues from
//! the repository).

mod follow;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use aofvault_config::{Config, SourceKind};
use notify::Watcher;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::context::{now_ms, open_repo};
use crate::notify::Notifier;
use crate::repo::lease::{Lease, LeaseError};
use crate::repo::Repo;
use crate::server::Server;
use crate::ship::tailer::{ShipSettings, Tailer};
use crate::ship::Event;
use crate::source::{discover, Layout, Want};
use crate::status::Shared;

/// A way to re-read the configuration on SIGHUP.
pub type Reload = Box<dyn Fn() -> anyhow::Result<Config> + Send + Sync>;

/// Where the server keeps its files, resolved once (from the config, or asked of the server).
#[derive(Debug, Clone)]
pub(crate) struct SourcePlace {
    dir: PathBuf,
    want: Want,
    aof_dir: String,
    aof_name: String,
}

/// The daemon's long-lived state: what outlives a change of shard layout.
pub(crate) struct Daemon {
    cfg: Config,
    repo: Repo,
    instance: String,
    lease: Lease,
    server: Option<Server>,
    server_version: Option<String>,
    place: SourcePlace,
    notifier: Notifier,
    shutdown: CancellationToken,
    hup: mpsc::Receiver<()>,
    reload: Reload,
}

impl Daemon {
    fn discover(&self) -> anyhow::Result<Option<Layout>> {
        let p = &self.place;
        discover(&p.dir, p.want, &p.aof_dir, &p.aof_name)
    }
}

/// Runs until `shutdown` is cancelled or a fatal error.
pub async fn run(
    cfg: Config,
    shutdown: CancellationToken,
    hup: mpsc::Receiver<()>,
    reload: Reload,
) -> anyhow::Result<()> {
    let notifier = Notifier::new();
    let repo = open_repo(&cfg)?;
    let instance = cfg.repository.instance.clone();
    connect_repo(&repo, &shutdown, &notifier).await?;
    let lease = Lease::acquire(&repo, &instance, Duration::from_secs(30)).await?;
    tracing::info!(repository = repo.url(), instance = %instance, "lease taken");

    // From here every way out gives the lease back, a failed start-up included: left behind,
    // it would make the next start take over a "stale" lease, or refuse another agent for
    // the lease's TTL.
    let (server, server_version, place) = match connect_source(&cfg).await {
        Ok(found) => found,
        Err(e) => {
            release(lease).await;
            return Err(e);
        }
    };
    // `--cluster NAME`: the topology recorder runs beside the shipping (crate::cluster).
    let _topology = crate::cluster::record::spawn(&cfg, repo.clone(), shutdown.child_token());
    let mut d = Daemon {
        cfg,
        repo,
        instance,
        lease,
        server,
        server_version,
        place,
        notifier,
        shutdown,
        hup,
        reload,
    };
    let result = follow_layouts(&mut d).await;
    release(d.lease).await;
    tracing::info!("stopped");
    result
}

/// Connects to the server (if configured; unreachable is not fatal) and resolves its files.
async fn connect_source(
    cfg: &Config,
) -> anyhow::Result<(Option<Server>, Option<String>, SourcePlace)> {
    let mut server = match Server::connect(cfg).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "server not reachable; following the files only (no compaction)");
            None
        }
    };
    let server_version = match server.as_mut() {
        Some(s) => s.version().await,
        None => None,
    };
    let place = source_place(cfg, server.as_mut()).await?;
    Ok((server, server_version, place))
}

/// Follows one shard layout after another until shutdown or a fatal error.
async fn follow_layouts(d: &mut Daemon) -> anyhow::Result<()> {
    let mut next = wait_layout(d).await?;
    loop {
        let Some(layout) = next.take() else {
            return Ok(());
        };
        match d.follow(layout).await? {
            follow::Outcome::Shutdown => return Ok(()),
            follow::Outcome::LayoutChanged(l) => next = Some(l),
        }
    }
}

/// Gives the lease back; a failure is logged (the lease then expires after its TTL).
async fn release(lease: Lease) {
    if let Err(e) = lease.release().await {
        tracing::warn!(error = %e, "could not release the lease; it expires after its TTL");
    }
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

/// Resolves where the files are: the configured directory, or the server's `CONFIG GET dir`,
/// and the server's AOF names (`appenddirname`, `appendfilename`) when it can tell.
async fn source_place(
    cfg: &Config,
    mut server: Option<&mut Server>,
) -> anyhow::Result<SourcePlace> {
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
        if let Some(d) = srv
            .config_get("appenddirname")
            .await?
            .filter(|d| !d.is_empty())
        {
            aof_dir = d;
        }
        if let Some(n) = srv
            .config_get("appendfilename")
            .await?
            .filter(|n| !n.is_empty())
        {
            aof_name = n;
        }
    }
    let dir = dir.context(
        "no source directory: set [source] dir, pass --source DIR, or --server URL to ask the server",
    )?;
    Ok(SourcePlace {
        dir,
        want,
        aof_dir,
        aof_name,
    })
}

/// Waits (saying why) until there are files to follow; `None` if stopped meanwhile. The lease
/// is renewed meanwhile: a wait longer than its TTL must not let another agent take it.
async fn wait_layout(d: &mut Daemon) -> anyhow::Result<Option<Layout>> {
    let mut said = false;
    let mut renew = tokio::time::interval(d.lease.ttl() / 3);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    renew.tick().await; // the first tick is at once: the lease was just taken
    loop {
        if let Some(layout) = d.discover()? {
            return Ok(Some(layout));
        }
        if !said {
            let dir = d.place.dir.display();
            tracing::warn!(dir = %dir, "no AOF found yet (is appendonly enabled?); watching");
            d.notifier
                .status(&format!("no AOF in {dir} (is appendonly enabled?)"));
            said = true;
        }
        tokio::select! {
            _ = d.shutdown.cancelled() => return Ok(None),
            _ = renew.tick() => match d.lease.renew().await {
                Ok(()) => {}
                Err(e @ LeaseError::Lost { .. }) => return Err(e.into()),
                Err(e) => tracing::warn!(error = %e, "cannot renew the lease (will retry)"),
            },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

pub(crate) fn watched_dir(layout: &Layout) -> PathBuf {
    match layout {
        Layout::Kevy { dir, .. } => dir.clone(),
        Layout::RedisMultiPart { aof_dir, .. } => aof_dir.clone(),
        Layout::RedisSingle { path } => path.parent().map(Path::to_path_buf).unwrap_or_default(),
    }
}

/// A file watcher that bumps `wake` on any event; `None` (polling only) if it cannot watch.
pub(crate) fn watch_dir(
    dir: PathBuf,
    wake: watch::Sender<u64>,
) -> Option<notify::RecommendedWatcher> {
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
        let mut server = match Server::connect(cfg).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "server not reachable; backing up from the files alone");
                None
            }
        };
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
    release(lease).await;
    result
}

async fn find_layout_once(cfg: &Config, server: Option<&mut Server>) -> anyhow::Result<Layout> {
    let p = source_place(cfg, server).await?;
    discover(&p.dir, p.want, &p.aof_dir, &p.aof_name)?.with_context(|| {
        format!(
            "no AOF found in {} (is appendonly enabled?)",
            p.dir.display()
        )
    })
}
