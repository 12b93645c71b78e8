//! The `aofvault` binary: parses the command line, loads the configuration, sets up logging
//! and the runtime, runs the command, and maps errors to the exit codes documented in
//! `aofvault::exit`.

use std::process::ExitCode;

use aofvault::cli::{Cli, Command, ConfigCommand};
use clap::Parser;

// Decoding a snapshot to the neutral form allocates once per element (and frees as much);
// mimalloc's thread-local free lists do that in about a third fewer instructions than glibc's
// malloc (BENCHMARKS.md, "RDB decoding"), and it returns freed memory to the system promptly.
// It is built without transparent huge pages (the workspace's `no_thp` feature): see Cargo.toml.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands that need no configuration file.
    let needs_config = !matches!(
        cli.command,
        Command::Inspect(_) | Command::Config(_) | Command::Completions(_) | Command::Man
    );
    let require_source = matches!(cli.command, Command::Run(_) | Command::Backup(_));
    let cfg = if needs_config {
        match aofvault::settings::load(&cli.global, require_source) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("aofvault: {e:#}");
                return ExitCode::from(aofvault::exit::USAGE);
            }
        }
    } else {
        None
    };
    let log = cfg.as_ref().map(|c| c.log.clone()).unwrap_or_default();
    if !matches!(
        cli.command,
        Command::Config(ConfigCommand::Example) | Command::Completions(_) | Command::Man
    ) {
        if let Err(e) = aofvault::logging::init(&log) {
            eprintln!("aofvault: cannot set up logging: {e:#}");
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("aofvault: cannot start the runtime: {e}");
            return ExitCode::from(aofvault::exit::ERROR);
        }
    };
    match runtime.block_on(aofvault::cmd::dispatch(cli, cfg)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            aofvault::logging::report_fatal(&e);
            ExitCode::from(aofvault::outcome::code_for(&e))
        }
    }
}
