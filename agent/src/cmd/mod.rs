//! The dispatcher every subcommand goes through — it only dispatches. Subcommands without a
//! folder of their own have a file here: [`run`], [`backup`], [`status`], [`list`], [`config`],
//! [`log`], [`diff`];
//! the others live in their folders (`restore/`, `verify/`, `prune/`, `drift/`, `inspect`).

pub mod backup;
pub mod config;
pub mod diff;
pub mod list;
pub mod log;
pub mod run;
pub mod status;

use anyhow::Context;
use aofvault_config::Config;

use crate::cli::{Cli, Command, ConfigCommand};
use crate::exit;

/// Runs one parsed command line; returns the exit code.
pub async fn dispatch(cli: Cli, cfg: Option<Config>) -> anyhow::Result<u8> {
    let mut out = std::io::stdout().lock();
    let need = |c: Option<Config>| c.context("no configuration");
    let result = match cli.command {
        Command::Run(_) => run::run(cli.global.clone(), need(cfg)?)
            .await
            .map(|_| exit::OK),
        Command::Backup(a) => backup::backup(&need(cfg)?, &a, &mut out).await,
        Command::List(a) => match &cli.global.cluster {
            Some(name) => crate::cluster::list::run(&need(cfg)?, name, &a, &mut out).await,
            None => list::run(&need(cfg)?, &a, &mut out).await,
        },
        Command::Restore(a) => match &cli.global.cluster {
            Some(name) => crate::cluster::restore::run(&need(cfg)?, name, &a).await,
            None => crate::restore::run(&need(cfg)?, &a).await,
        },
        Command::Log(a) => log::run(&need(cfg)?, &a, &mut out).await,
        Command::Diff(a) => diff::run(&need(cfg)?, &a, &mut out).await,
        Command::Verify(a) => crate::verify::run(&need(cfg)?, &a, &mut out).await,
        Command::Prune(a) => crate::prune::run(&need(cfg)?, &a, &mut out).await,
        Command::Status(a) => {
            let named = crate::settings::names_instance(&cli.global);
            status::status(&need(cfg)?, named, &a, &mut out)
        }
        Command::Inspect(a) => crate::inspect::run(&a, &mut out).map(|_| exit::OK),
        Command::Config(ConfigCommand::Check(a)) => config::check(&cli.global, &a, &mut out),
        Command::Config(ConfigCommand::Example) => config::example(&mut out).map(|_| exit::OK),
        Command::Completions(a) => {
            crate::cli::docs::completions(a.shell, &mut out).map(|_| exit::OK)
        }
        Command::Man => crate::cli::docs::man(&mut out).map(|_| exit::OK),
    };
    result
}
