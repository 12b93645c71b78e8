//! Drift check (`verify --against URL`, `[schedule] drift_check`): compares a live server with
//! what the repository would restore. Not implemented yet: both entry points say so.

use std::io::Write;

use aofvault_config::Config;

pub async fn run(_cfg: &Config, _args: &crate::cli::VerifyArgs, _out: &mut dyn Write) -> anyhow::Result<u8> {
    anyhow::bail!("verify --against is not implemented yet")
}

pub async fn scheduled(_cfg: &Config, _repo: &crate::repo::Repo, _instance: &str) -> anyhow::Result<()> {
    anyhow::bail!("the drift check is not implemented yet")
}
