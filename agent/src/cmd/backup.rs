//! `aofvault backup`: one snapshot now, then exit (no daemon running).

use std::io::Write;

use aofvault_config::Config;

use crate::cli::BackupArgs;
use crate::exit;

/// `aofvault backup`: ship everything up to now and publish a snapshot, then exit.
pub async fn backup(cfg: &Config, args: &BackupArgs, out: &mut dyn Write) -> anyhow::Result<u8> {
    // The snapshot captures the server's ACL users and config file (server_config).
    crate::server_config::register(cfg);
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
