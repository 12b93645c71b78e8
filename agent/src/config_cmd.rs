//! PLACEHOLDER (the owner replaces this whole file): entry points with their final signatures.
#![allow(unused_variables, dead_code)]

use std::io::Write;
pub fn check(global: &crate::cli::GlobalArgs, args: &crate::cli::ConfigCheckArgs, out: &mut dyn Write) -> anyhow::Result<u8> { anyhow::bail!("not implemented yet") }
pub fn example(out: &mut dyn Write) -> anyhow::Result<()> { anyhow::bail!("not implemented yet") }
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) -> anyhow::Result<()> { anyhow::bail!("not implemented yet") }
pub fn man(out: &mut dyn Write) -> anyhow::Result<()> { anyhow::bail!("not implemented yet") }
