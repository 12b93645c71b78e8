//! The subcommands that drive the daemon's parts directly: `run`, `backup`, `status`; and the
//! dispatcher every subcommand goes through.

use std::io::Write;

use anyhow::Context;
use aofvault_config::Config;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::{BackupArgs, Cli, Command, ConfigCommand, GlobalArgs, StatusArgs};
use crate::exit;

/// Runs one parsed command line; returns the exit code.
pub async fn dispatch(cli: Cli, cfg: Option<Config>) -> anyhow::Result<u8> {
    let mut out = std::io::stdout().lock();
    let need = |c: Option<Config>| c.context("no configuration");
    let result = match cli.command {
        Command::Run(_) => run(cli.global.clone(), need(cfg)?).await.map(|_| exit::OK),
        Command::Backup(a) => backup(&need(cfg)?, &a, &mut out).await,
        Command::List(a) => crate::list::run(&need(cfg)?, &a, &mut out).await,
        Command::Restore(a) => crate::restore::run(&need(cfg)?, &a).await,
        Command::Verify(a) => crate::verify::run(&need(cfg)?, &a, &mut out).await,
        Command::Prune(a) => crate::prune::run(&need(cfg)?, &a, &mut out).await,
        Command::Status(a) => {
            let named = crate::settings::names_instance(&cli.global);
            status(&need(cfg)?, named, &a, &mut out)
        }
        Command::Inspect(a) => crate::inspect::run(&a, &mut out).map(|_| exit::OK),
        Command::Config(ConfigCommand::Check(a)) => {
            crate::config_cmd::check(&cli.global, &a, &mut out)
        }
        Command::Config(ConfigCommand::Example) => {
            crate::config_cmd::example(&mut out).map(|_| exit::OK)
        }
        Command::Completions(a) => {
            crate::config_cmd::completions(a.shell, &mut out).map(|_| exit::OK)
        }
        Command::Man => crate::config_cmd::man(&mut out).map(|_| exit::OK),
    };
    result
}

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
    let reload: crate::daemon::Reload = Box::new(move || crate::settings::load(&global, true));
    crate::daemon::run(cfg, shutdown, hup_rx, reload).await
}

/// `aofvault backup`: ship everything up to now and publish a snapshot, then exit.
pub async fn backup(cfg: &Config, args: &BackupArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    let manifest = crate::daemon::backup_once(cfg).await?;
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &manifest)?;
        writeln!(out)?;
    } else {
        let bytes: u64 = manifest.shards.iter().map(|s| s.end - s.stream_start).sum();
        writeln!(
            out,
            "snapshot {} of instance {}: {} shard(s), {} AOF bytes after the bases",
            manifest.id,
            manifest.instance,
            manifest.shards.len(),
            bytes
        )?;
    }
    Ok(exit::OK)
}

/// `aofvault status`: what the running daemon last wrote to its status file. `instance_named`
/// says whether the configuration named the instance; if it only derived one, the agent that
/// writes to this state directory is shown (see [`crate::status_file::choose`]).
pub fn status(
    cfg: &Config,
    instance_named: bool,
    args: &StatusArgs,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    use crate::status_file::{choose, Choice};
    let instance = &cfg.repository.instance;
    let dir = &cfg.state.dir;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let doc = match choose(dir, instance, instance_named, now_ms)
        .with_context(|| format!("reading the status in {}", dir.display()))?
    {
        Choice::Found(doc) => doc,
        Choice::Missing if instance_named => anyhow::bail!(
            "no status for instance {instance} in {} (is `aofvault run` running with this state directory?)",
            crate::status_file::path(dir, instance).display()
        ),
        Choice::Missing => anyhow::bail!(
            "no agent status in {} (is `aofvault run` running with this state directory?)",
            dir.display()
        ),
        Choice::Ambiguous(names) => {
            return Err(anyhow::anyhow!(
                "several agents write their status to {}: {}; say which with --instance NAME",
                dir.display(),
                names.join(", ")
            )
            .context(exit::Failure::Usage))
        }
    };
    let age_s = doc.age_s(now_ms);
    let running = doc.is_live(now_ms);
    if args.json {
        let mut v = serde_json::to_value(&doc)?;
        v["running"] = serde_json::Value::Bool(running);
        v["age_seconds"] = serde_json::json!(age_s);
        serde_json::to_writer_pretty(&mut *out, &v)?;
        writeln!(out)?;
    } else {
        let state = if running {
            "running".to_string()
        } else {
            format!("NOT RUNNING (last status {age_s:.0}s old)")
        };
        writeln!(
            out,
            "instance {} → {}: {state}",
            doc.instance, doc.repository
        )?;
        writeln!(
            out,
            "{:>5}  {:<10} {:<24} {:>14} {:>14} {:>12} {:>8}  last error",
            "shard", "state", "chain", "shipped", "on disk", "lag bytes", "lag s"
        )?;
        for s in &doc.shards {
            writeln!(
                out,
                "{:>5}  {:<10} {:<24} {:>14} {:>14} {:>12} {:>8.1}  {}",
                s.shard,
                s.state,
                s.chain.as_deref().unwrap_or("-"),
                s.shipped_offset,
                s.stream_len,
                s.lag_bytes,
                s.lag_seconds,
                s.last_error.as_deref().unwrap_or("")
            )?;
        }
        for r in &doc.schedules {
            writeln!(
                out,
                "schedule {:<12} {:<16} next {}",
                r.job,
                r.schedule,
                r.next.as_deref().unwrap_or("-")
            )?;
        }
    }
    Ok(if running { exit::OK } else { exit::ERROR })
}
