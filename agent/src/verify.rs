//! PLACEHOLDER (the owner replaces this whole file): entry points with their final signatures.
#![allow(unused_variables, dead_code)]

pub async fn run(cfg: &aofvault_config::Config, args: &crate::cli::VerifyArgs, out: &mut dyn std::io::Write) -> anyhow::Result<u8> { anyhow::bail!("not implemented yet") }
pub async fn scheduled(repo: &crate::repo::Repo, instance: &str) -> anyhow::Result<()> { anyhow::bail!("not implemented yet") }
