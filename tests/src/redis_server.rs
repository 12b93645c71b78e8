//! [`RedisServer`]: a throwaway `redis-server` 7 with the AOF on, one per test (or another
//! binary of the same family — redis 6.2/8.0, valkey — through [`RedisServer::start_bin`]).
//!
//! It runs with `--appendonly yes --save ''` (AOF only, no RDB snapshots behind the test's back),
//! bound to 127.0.0.1 on a free port, its data in a temp dir (or a directory the test gives,
//! for restores) and its output in a log file that readiness errors quote.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::server::{Launcher, ServerCore};

/// The `redis-server` binary: `$REDIS_SERVER_BIN` or `redis-server` on the PATH.
pub fn redis_server_bin() -> String {
    std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".to_string())
}

/// A running redis-server, killed on drop. See the module docs.
#[derive(Debug)]
pub struct RedisServer {
    core: ServerCore,
}

impl RedisServer {
    /// Starts redis-server on a fresh directory.
    pub fn start() -> Result<Self> {
        Self::start_with(&[])
    }

    /// Starts redis-server on a fresh directory with extra config arguments, e.g.
    /// `["--aof-timestamp-enabled", "yes"]`.
    pub fn start_with(args: &[&str]) -> Result<Self> {
        Ok(Self {
            core: ServerCore::start("redis-server", None, launcher(redis_server_bin(), args))?,
        })
    }

    /// Starts another server binary of the Redis family (redis 6.2/8.0, valkey-server) with the
    /// same options, on a fresh directory or on `dir` (see [`crate::flavor`]).
    pub fn start_bin(bin: &Path, dir: Option<&Path>, args: &[&str]) -> Result<Self> {
        let bin = bin.display().to_string();
        Ok(Self {
            core: ServerCore::start("redis-server", dir, launcher(bin, args))?,
        })
    }

    /// Starts redis-server on an existing directory (a restored one): it loads what it finds.
    /// With the AOF on (the default here) Redis 7 loads `appendonlydir/` and ignores a lone
    /// `dump.rdb`; pass `["--appendonly", "no"]` to load an RDB-only directory.
    pub fn start_on_dir(dir: &Path, args: &[&str]) -> Result<Self> {
        Ok(Self {
            core: ServerCore::start(
                "redis-server",
                Some(dir),
                launcher(redis_server_bin(), args),
            )?,
        })
    }

    pub fn port(&self) -> u16 {
        self.core.port()
    }

    /// `redis://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        self.core.url()
    }

    /// The data directory (`dir`): `appendonlydir/` lives here.
    pub fn dir(&self) -> &Path {
        self.core.dir()
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

    /// The pid while running.
    pub fn pid(&self) -> Option<u32> {
        self.core.pid()
    }

    pub fn is_running(&mut self) -> bool {
        self.core.is_running()
    }

    /// Graceful stop (SIGTERM: Redis flushes its AOF), then restart on the same port and dir.
    /// Also starts a killed or stopped server again.
    pub fn restart(&mut self) -> Result<()> {
        self.core.start_again()
    }

    /// Graceful stop without restart (`restart` brings it back).
    pub fn stop(&mut self) {
        self.core.stop();
    }

    /// SIGKILL, like a crash; `restart` brings it back.
    pub fn kill(&mut self) {
        self.core.kill();
    }
}

fn launcher(bin: String, extra: &[&str]) -> Launcher {
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    Box::new(move |port: u16, dir: &Path, root: &Path| {
        let mut cmd = Command::new(&bin);
        cmd.current_dir(root)
            .arg("--port")
            .arg(port.to_string())
            .arg("--dir")
            .arg(dir)
            .args(["--appendonly", "yes", "--save", "", "--daemonize", "no"])
            .args(["--bind", "127.0.0.1", "--protected-mode", "yes"])
            .args(["--logfile", ""])
            .args(&extra);
        cmd
    })
}
