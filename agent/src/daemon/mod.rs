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
use crate::group::{Group, Verdict};
use crate::metrics;
use crate::notify::Notifier;
use crate::repo::lease::{Claimant, Lease};
use crate::repo::Repo;
use crate::server::Server;
use crate::ship::tailer::{ShipSettings, Tailer};
use crate::ship::Event;
use crate::source::{discover, Layout, Want};
use crate::status::{Board, BoardRef, Shared};

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

/// The daemon's long-lived state: what outlives a change of shard layout and a turn in the
/// replication group.
pub(crate) struct Daemon {
    cfg: Config,
    /// The repository as opened: reads, the lease and the member records.
    base_repo: Repo,
    /// The repository the shippers write through: `base_repo` behind the lease's fence.
    repo: Repo,
    instance: String,
    /// Held while this agent ships (its turn in the group).
    lease: Option<Lease>,
    group: Group,
    board: BoardRef,
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

    /// The holder's periodic turn (renewal, server role); `Some(why)` when it must step down.
    /// A lost lease is a step-down too: another agent ships now.
    pub(super) async fn hold(&mut self) -> Option<String> {
        let lease = self.lease.as_mut()?;
        match self.group.hold(lease, &mut self.server).await {
            Ok(Verdict::Keep) => None,
            Ok(Verdict::StepDown(why)) => Some(why),
            Err(e) => {
                tracing::error!(error = %e, "the lease is lost: shipping stops");
                Some(e.to_string())
            }
        }
    }
}

/// How a turn of shipping ended.
pub(crate) enum Turn {
    Shutdown,
    StepDown(String),
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
    let (server, server_version, place) = connect_source(&cfg).await?;
    // `--cluster NAME`: the topology recorder runs beside the shipping, standing by or not
    // (crate::cluster).
    let _topology = crate::cluster::record::spawn(&cfg, repo.clone(), shutdown.child_token());
    let board = Board::new(&cfg.repository.node);
    if let Some(addr) = cfg.metrics.listen {
        metrics::serve(addr, board.clone(), shutdown.child_token()).await?;
    }
    let group = Group::new(&cfg, repo.clone(), board.clone(), server.as_ref());
    let mut d = Daemon {
        cfg,
        base_repo: repo.clone(),
        repo,
        instance,
        lease: None,
        group,
        board,
        server,
        server_version,
        place,
        notifier,
        shutdown,
        hup,
        reload,
    };
    let result = take_turns(&mut d).await;
    if let Some(lease) = d.lease.take() {
        release(lease).await;
    }
    tracing::info!("stopped");
    result
}

/// Stands by, ships while this agent holds the lease, steps down, and again — until shutdown
/// or a fatal error. Every way out of a turn gives the lease back.
async fn take_turns(d: &mut Daemon) -> anyhow::Result<()> {
    loop {
        let Some(lease) = d.group.wait_turn(&mut d.server, &d.shutdown).await? else {
            return Ok(());
        };
        d.repo = d.base_repo.clone().with_fence(lease.fence());
        d.lease = Some(lease);
        if d.server_version.is_none() {
            if let Some(s) = d.server.as_mut() {
                d.server_version = s.version().await;
            }
        }
        let turn = follow_layouts(d).await;
        if let Some(lease) = d.lease.take() {
            d.group.gave_back(&lease.doc().token);
            release(lease).await;
        }
        match turn? {
            Turn::Shutdown => return Ok(()),
            Turn::StepDown(why) => d.group.stepped_down(&why),
        }
    }
}

/// Connects to the server (if configured; unreachable is not fatal) and resolves its files.
async fn connect_source(
    cfg: &Config,
) -> anyhow::Result<(Option<Server>, Option<String>, SourcePlace)> {
    let mut server = match Server::connect(cfg).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "server not reachable; following the files only until it answers");
            Server::offline(cfg)?
        }
    };
    let server_version = match server.as_mut() {
        Some(s) => s.version().await,
        None => None,
    };
    let place = source_place(cfg, server.as_mut()).await?;
    Ok((server, server_version, place))
}

/// Follows one shard layout after another until shutdown, a step-down or a fatal error.
async fn follow_layouts(d: &mut Daemon) -> anyhow::Result<Turn> {
    let mut next = match wait_layout(d).await? {
        Ok(layout) => layout,
        Err(turn) => return Ok(turn),
    };
    loop {
        match d.follow(next).await? {
            follow::Outcome::Shutdown => return Ok(Turn::Shutdown),
            follow::Outcome::StepDown(why) => return Ok(Turn::StepDown(why)),
            follow::Outcome::LayoutChanged(l) => next = l,
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

/// Waits (saying why) until there are files to follow, or the turn ends (shutdown, step-down).
/// The lease is renewed meanwhile: a wait longer than its TTL must not let another agent take
/// it.
async fn wait_layout(d: &mut Daemon) -> anyhow::Result<Result<Layout, Turn>> {
    let mut said = false;
    let mut renew = tokio::time::interval(d.group.renew_every());
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    renew.tick().await; // the first tick is at once: the lease was just taken
    loop {
        if let Some(layout) = d.discover()? {
            return Ok(Ok(layout));
        }
        if !said {
            let dir = d.place.dir.display();
            tracing::warn!(dir = %dir, "no AOF found yet (is appendonly enabled?); watching");
            d.notifier
                .status(&format!("no AOF in {dir} (is appendonly enabled?)"));
            said = true;
        }
        tokio::select! {
            _ = d.shutdown.cancelled() => return Ok(Err(Turn::Shutdown)),
            _ = renew.tick() => if let Some(why) = d.hold().await {
                return Ok(Err(Turn::StepDown(why)));
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
    let claimant = Claimant::new(&cfg.repository.node, cfg.repository.lease_ttl, None);
    let lease = Lease::acquire(&repo, &instance, &claimant).await?;
    let repo = repo.with_fence(lease.fence());
    // The lease is renewed beside the backup, however long it takes.
    let every = (cfg.repository.lease_ttl / 5).max(Duration::from_millis(500));
    let stop = CancellationToken::new();
    let renewer = tokio::spawn(renew_until(lease, every, stop.clone()));
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
        if let Some(srv) = server.as_mut() {
            crate::server_config::capture_for_snapshot(srv, &repo, &instance).await;
        }
        Ok(
            crate::snapshot::publish(&repo, &instance, &record, server_version, &heads, "backup")
                .await?,
        )
    }
    .await;
    stop.cancel();
    if let Ok(lease) = renewer.await {
        release(lease).await;
    }
    result
}

/// Renews `lease` every `every` until `stop`, then hands it back.
async fn renew_until(mut lease: Lease, every: Duration, stop: CancellationToken) -> Lease {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return lease,
            _ = tokio::time::sleep(every) => {
                if let Err(e) = lease.renew(None).await {
                    tracing::warn!(error = %e, "cannot renew the lease");
                }
            }
        }
    }
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
