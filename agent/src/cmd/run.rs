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
    // Snapshots capture the followed server's ACL users and config file (server_config).
    crate::server_config::register(&cfg);
    let reload: crate::daemon::Reload = Box::new(move || {
        let cfg = crate::settings::load(&global, true)?;
        crate::server_config::register(&cfg);
        Ok(cfg)
    });
    crate::daemon::run(cfg, shutdown, hup_rx, reload).await
}
