//! PLACEHOLDER (the owner replaces this whole file): entry points with their final signatures.
#![allow(unused_variables, dead_code)]

pub async fn run(cfg: &aofvault_config::Config, args: &crate::cli::ListArgs, out: &mut dyn std::io::Write) -> anyhow::Result<u8> { anyhow::bail!("not implemented yet") }
