//! [`KevyServer`]: a throwaway kevy 1.19 with N shards (one AOF per shard), one per test.
//!
//! kevy reads its config from CLI flags, `KEVY_*` variables and an auto-detected `kevy.toml`
//! (cwd, /etc/kevy, XDG). To make every run the same the guard clears those variables, runs in
//! its own temp dir and passes an explicit `--config` it writes there (AOF on, `everysec`).
//!
//! kevy buffers AOF writes for up to about a second and neither SIGTERM nor SHUTDOWN flushes
//! that buffer (measured on 1.19). So [`KevyServer::restart`] first waits until the AOF files
//! stop growing; [`KevyServer::kill`] does not, like a real crash.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::server::{Launcher, ServerCore};

/// The default config: AOF on, fsync every second (kevy's default), log to stderr.
pub const DEFAULT_KEVY_TOML: &str = "[persistence]\naof = true\nappendfsync = \"everysec\"\n\n\
                                     [log]\nlevel = \"info\"\noutput = \"stderr\"\n";

/// How long the AOF files must stay the same size to count as flushed.
const SETTLE_QUIET: Duration = Duration::from_millis(1500);
/// Give up waiting for quiet files after this long (a writer may still be running).
const SETTLE_MAX: Duration = Duration::from_secs(15);

/// The `kevy` binary: `$KEVY_BIN`, else `~/.cargo/bin/kevy` if present, else `kevy` on the PATH.
pub fn kevy_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("KEVY_BIN") {
        return PathBuf::from(bin);
    }
    if let Some(home) = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
    {
        let bin = home.join("bin").join("kevy");
        if bin.is_file() {
            return bin;
        }
    }
    PathBuf::from("kevy")
}

/// A running kevy, killed on drop. See the module docs.
#[derive(Debug)]
pub struct KevyServer {
    core: ServerCore,
    shards: u32,
}

impl KevyServer {
    /// Starts kevy with `shards` shards (`--threads`) on a fresh directory.
    pub fn start(shards: u32) -> Result<Self> {
        Self::start_with_toml(None, shards, DEFAULT_KEVY_TOML)
    }

    /// Starts kevy on an existing directory (a restored one): it loads what it finds.
    pub fn start_on_dir(dir: &Path, shards: u32) -> Result<Self> {
        Self::start_with_toml(Some(dir), shards, DEFAULT_KEVY_TOML)
    }

    /// Starts kevy with a config file of your own (e.g. `appendfsync = "always"`); CLI flags
    /// still set bind, port, dir and threads.
    pub fn start_with_toml(dir: Option<&Path>, shards: u32, toml: &str) -> Result<Self> {
        anyhow::ensure!(shards > 0, "kevy needs at least one shard");
        let core = ServerCore::start("kevy", dir, launcher(shards, toml.to_string()))?;
        Ok(Self { core, shards })
    }

    pub fn shards(&self) -> u32 {
        self.shards
    }

    pub fn port(&self) -> u16 {
        self.core.port()
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        self.core.url()
    }

    /// The data directory: `aof-{i}.aof`, `dump-{i}.rdb`, `shards.meta`.
    pub fn dir(&self) -> &Path {
        self.core.dir()
    }

    /// `<dir>/aof-{i}.aof` for each shard.
    pub fn aof_paths(&self) -> Vec<PathBuf> {
        (0..self.shards)
            .map(|i| self.dir().join(format!("aof-{i}.aof")))
            .collect()
    }

    /// A new connection (read/write timeouts of 60 s).
    pub fn conn(&self) -> Result<redis::Connection> {
        self.core.conn()
    }

    /// Everything the server printed (across restarts).
    pub fn log(&self) -> String {
        self.core.log()
    }

    pub fn log_path(&self) -> &Path {
        self.core.log_path()
    }

    pub fn pid(&self) -> Option<u32> {
        self.core.pid()
    }

    pub fn is_running(&mut self) -> bool {
        self.core.is_running()
    }

    /// Waits until every AOF file has kept its size for 1.5 s (at most 15 s): then the writes
    /// acknowledged before the call are in the files.
    pub fn wait_aof_flushed(&self) -> Result<()> {
        let start = Instant::now();
        let mut last = self.aof_sizes()?;
        let mut quiet_since = Instant::now();
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let now = self.aof_sizes()?;
            if now != last {
                last = now;
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() >= SETTLE_QUIET {
                return Ok(());
            }
            if start.elapsed() >= SETTLE_MAX {
                return Ok(());
            }
        }
    }

    fn aof_sizes(&self) -> Result<Vec<u64>> {
        self.aof_paths()
            .iter()
            .map(|p| match std::fs::metadata(p) {
                Ok(m) => Ok(m.len()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
                Err(e) => Err(e).with_context(|| format!("stat {}", p.display())),
            })
            .collect()
    }

    /// Waits for the AOF to be flushed, stops gracefully and starts again on the same port and
    /// dir. Also starts a killed or stopped server again.
    pub fn restart(&mut self) -> Result<()> {
        if self.core.is_running() {
            self.wait_aof_flushed()?;
        }
        self.core.start_again()
    }

    /// Waits for the AOF to be flushed, then stops gracefully (`restart` brings it back).
    pub fn stop(&mut self) {
        if self.core.is_running() {
            // A stat error only shortens the wait; the stop itself cannot fail.
            let _ = self.wait_aof_flushed();
        }
        self.core.stop();
    }

    /// SIGKILL, like a crash (the last second of writes may be lost); `restart` brings it back.
    pub fn kill(&mut self) {
        self.core.kill();
    }
}

fn launcher(shards: u32, toml: String) -> Launcher {
    Box::new(move |port: u16, dir: &Path, root: &Path| {
        let config = root.join("kevy.toml");
        // The builder cannot fail; a write error shows up as kevy failing to read its config.
        let _ = std::fs::write(&config, &toml);
        let mut cmd = Command::new(kevy_bin());
        cmd.current_dir(root);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("KEVY_") {
                cmd.env_remove(&key);
            }
        }
        cmd.env_remove("XDG_CONFIG_HOME")
            .arg("--config")
            .arg(&config)
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(port.to_string())
            .arg("--dir")
            .arg(dir)
            .arg("--threads")
            .arg(shards.to_string());
        cmd
    })
}
