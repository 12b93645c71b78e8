//! What redis-server and kevy guards share: a port, a data directory, a log, a process.
//!
//! [`ServerCore`] starts a RESP server through a command builder, waits until it answers PING
//! (quoting the log tail if it dies or never answers), retries on another port when the one it
//! drew was taken meanwhile, and restarts it on the same port and directory. The public guards
//! ([`crate::RedisServer`], [`crate::KevyServer`]) add what is particular to each server.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result};
use tempfile::TempDir;

use crate::ports::{free_port, log_says_port_taken};
use crate::process::{self, Spawned};

/// How long a server may take to answer PING after start (includes loading its data).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful stop (SIGTERM) may take before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Grace on drop: tests end quickly; the data is thrown away anyway.
const DROP_GRACE: Duration = Duration::from_secs(2);
/// Start attempts when the drawn port turns out to be taken.
const PORT_ATTEMPTS: usize = 5;

/// Builds the command line for a port and a data directory; the working directory is `root`.
pub(crate) type Launcher = Box<dyn Fn(u16, &Path, &Path) -> Command + Send + Sync>;

pub(crate) struct ServerCore {
    name: &'static str,
    port: u16,
    data_dir: PathBuf,
    proc: Option<Spawned>,
    launcher: Launcher,
    log_path: PathBuf,
    /// Holds the log (and the data directory unless the caller gave one). Dropped last.
    root: TempDir,
}

impl std::fmt::Debug for ServerCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCore")
            .field("name", &self.name)
            .field("port", &self.port)
            .field("data_dir", &self.data_dir)
            .field("root", &self.root.path())
            .finish()
    }
}

impl ServerCore {
    /// Starts a server in a fresh temp dir; `data_dir` (if given) is used instead of
    /// `<root>/data`.
    pub fn start(name: &'static str, data_dir: Option<&Path>, launcher: Launcher) -> Result<Self> {
        let root = tempfile::Builder::new()
            .prefix(&format!("aofvault-{name}-"))
            .tempdir()
            .context("creating a temp dir for the server")?;
        let data_dir = match data_dir {
            Some(dir) => {
                anyhow::ensure!(dir.is_dir(), "{} is not a directory", dir.display());
                dir.to_path_buf()
            }
            None => {
                let dir = root.path().join("data");
                std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
                dir
            }
        };
        let log_path = root.path().join(format!("{name}.log"));
        process::touch(&log_path)?;
        let mut core = Self {
            name,
            port: 0,
            data_dir,
            proc: None,
            launcher,
            log_path,
            root,
        };
        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            core.port = free_port();
            match core.launch() {
                Ok(()) => return Ok(core),
                Err(LaunchError::PortTaken(e)) => last_err = Some(e),
                Err(LaunchError::Other(e)) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("no port")))
            .with_context(|| format!("{name}: every port tried was taken"))
    }

    fn launch(&mut self) -> Result<(), LaunchError> {
        let cmd = (self.launcher)(self.port, &self.data_dir, self.root.path());
        let cleanup = vec![self.root.path().to_path_buf()];
        let proc =
            Spawned::spawn(self.name, cmd, &self.log_path, &cleanup).map_err(LaunchError::Other)?;
        self.proc = Some(proc);
        match self.wait_ready() {
            Ok(()) => Ok(()),
            Err(e) => {
                let taken = self
                    .proc
                    .as_ref()
                    .map(|p| log_says_port_taken(&p.own_log()))
                    .unwrap_or(false);
                if let Some(mut p) = self.proc.take() {
                    p.kill();
                }
                if taken {
                    Err(LaunchError::PortTaken(e))
                } else {
                    Err(LaunchError::Other(e))
                }
            }
        }
    }

    fn wait_ready(&mut self) -> Result<()> {
        let url = self.url();
        let name = self.name;
        let port = self.port;
        let Some(proc) = self.proc.as_mut() else {
            anyhow::bail!("{name} is not running");
        };
        let mut died = None;
        let waited = process::wait_until(
            READY_TIMEOUT,
            &format!("{name} on port {port} to answer PING"),
            || {
                if let Some(e) = proc.exited_error() {
                    died = Some(e);
                    return Ok(true);
                }
                ping(&url)
            },
        );
        if let Some(e) = died {
            return Err(e);
        }
        waited.map_err(|e| {
            anyhow::anyhow!(
                "{e:#}; log {}:\n{}",
                self.log_path.display(),
                process::log_tail(&self.log_path, process::LOG_TAIL_LINES)
            )
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn log(&self) -> String {
        process::read_log(&self.log_path)
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Spawned::pid)
    }

    pub fn is_running(&mut self) -> bool {
        match self.proc.as_mut() {
            Some(p) => p.exited().is_none(),
            None => false,
        }
    }

    pub fn conn(&self) -> Result<redis::Connection> {
        connect(&self.url()).with_context(|| {
            format!(
                "connecting to {} at {}; log tail:\n{}",
                self.name,
                self.url(),
                process::log_tail(&self.log_path, process::LOG_TAIL_LINES)
            )
        })
    }

    /// Graceful stop (SIGTERM, then SIGKILL after a grace). Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            process::note(&self.log_path, "stopping (SIGTERM)");
            p.terminate(STOP_GRACE);
        }
    }

    /// SIGKILL, like a crash. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            process::note(&self.log_path, "killing (SIGKILL)");
            p.kill();
        }
    }

    /// Starts again on the same port and directory (after `stop`/`kill`, or stops first).
    pub fn start_again(&mut self) -> Result<()> {
        self.stop();
        // The port may linger briefly (TIME_WAIT is fine with SO_REUSEADDR; a slow exit is not).
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            match self.launch() {
                Ok(()) => return Ok(()),
                Err(LaunchError::PortTaken(e)) => {
                    last = Some(e);
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(LaunchError::Other(e)) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("restart failed")))
            .with_context(|| format!("{}: port {} stayed taken", self.name, self.port))
    }
}

impl Drop for ServerCore {
    fn drop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.terminate(DROP_GRACE);
        }
    }
}

enum LaunchError {
    PortTaken(anyhow::Error),
    Other(anyhow::Error),
}

/// Opens a sync connection with timeouts, so a hung server fails a test instead of hanging it.
pub fn connect(url: &str) -> Result<redis::Connection> {
    let client = redis::Client::open(url).with_context(|| format!("bad URL {url}"))?;
    let conn = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .with_context(|| format!("connecting to {url}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .context("setting read timeout")?;
    conn.set_write_timeout(Some(Duration::from_secs(60)))
        .context("setting write timeout")?;
    Ok(conn)
}

/// One PING with short timeouts: `Ok(true)` on PONG; errors (refused, LOADING) mean "not yet".
fn ping(url: &str) -> Result<bool> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_connection_with_timeout(Duration::from_millis(500))?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    let pong: String = redis::cmd("PING").query(&mut conn)?;
    Ok(pong == "PONG")
}
