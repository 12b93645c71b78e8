//! `aofvault run`: the daemon in this process, with SIGTERM/SIGINT → shutdown and SIGHUP → reload.

use aofvault_config::Config;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::GlobalArgs;

/// `aofvault run`: the daemon, with SIGTERM/SIGINT → shutdown and SIGHUP → reload.
pub async fn run(global: GlobalArgs, cfg: Config) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let shutdown = CancellationToken::new();
    let (hup_tx, hup_rx) = mpsc::channel(4);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let token = shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM"); token.cancel(); }
                _ = int.recv() => { tracing::info!("SIGINT"); token.cancel(); }
                _ = hup.recv() => { tracing::info!("SIGHUP: reloading the configuration"); let _ = hup_tx.send(()).await; }
            }
        }
    });
    let cfg = cluster_instance(&global, cfg).await?;
    let instance = cfg.repository.instance.clone();
    let reload: crate::daemon::Reload = Box::new(move || {
        // The instance stays the one the agent started with (a cluster group's, say).
        let mut cfg = crate::settings::load(&global, true)?;
        cfg.repository.instance = instance.clone();
        Ok(cfg)
    });
    crate::daemon::run(cfg, shutdown, hup_rx, reload).await
}

/// With `--cluster NAME` and no instance named, the agents of one shard (its primary and its
/// replicas) share the instance `<NAME>-<group>`: the shard's id (Redis ≥ 7.2) or the id of the
/// primary first seen, kept in the state directory (`crate::cluster::group`).
async fn cluster_instance(global: &GlobalArgs, mut cfg: Config) -> anyhow::Result<Config> {
    let Some(cluster) = cfg.source.cluster.clone() else {
        return Ok(cfg);
    };
    if crate::settings::names_instance(global) {
        return Ok(cfg);
    }
    match crate::cluster::group::for_config(&cfg).await {
        Ok(Some(group)) => {
            let mut name = format!("{cluster}-{group}");
            name.truncate(128);
            tracing::info!(instance = %name, "instance derived from the cluster shard");
            cfg.repository.instance = name;
        }
        Ok(None) => {}
        Err(e) => anyhow::bail!(
            "--cluster {cluster}: cannot tell this node's shard to name the instance ({e:#}); name it with --instance"
        ),
    }
    Ok(cfg)
}
