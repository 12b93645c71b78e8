//! What the repository would restore, as a running server to read: a plan restored with
//! `restore --to-dir`'s own code into a temporary directory, and a scratch server of the
//! backup's kind (kevy with the same shard count, or `redis-server`) started on it, on a free
//! 127.0.0.1 port. The check then reads exactly what the files give once the server loads them —
//! kevy's own start-up replay included — not what the agent believes they hold.
//!
//! The binaries: `$KEVY_BIN`, else `kevy` on `PATH`, else `~/.cargo/bin/kevy`; `$REDIS_SERVER_BIN`,
//! else `redis-server` on `PATH`. Without one the check cannot run, and says which it needs.
//! The server is killed and the directory removed when the [`Scratch`] is dropped. A scratch
//! `redis-server` older than the backup's server (a Redis 7.0 checking a Redis 8.0 or Valkey 8.1
//! backup) gets the files in a form its version loads (`restore --for`, from its `--version`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aofvault_formats::vault::ServerLayout;
use tokio::process::{Child, Command};

use crate::repo::plan::Plan;
use crate::repo::Repo;
use crate::restore::fetch::StagingDir;
use crate::restore::to_dir::{self, DirOptions};
use crate::restore::translate::Kind;

/// How long a scratch server may take to load what was restored.
const READY_TIMEOUT: Duration = Duration::from_secs(600);

/// A scratch server holding a restored plan.
pub struct Scratch {
    // Dropped first: the server is killed before its directory goes.
    child: Child,
    dir: StagingDir,
    pub url: String,
    pub kind: Kind,
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn kevy_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KEVY_BIN") {
        return Some(PathBuf::from(p));
    }
    on_path("kevy").or_else(|| {
        let home = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
        Some(home.join("bin").join("kevy")).filter(|p| p.is_file())
    })
}

fn redis_bin() -> Option<PathBuf> {
    std::env::var_os("REDIS_SERVER_BIN")
        .map(PathBuf::from)
        .or_else(|| on_path("redis-server"))
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("looking for a free port")?;
    Ok(l.local_addr()?.port())
}

impl Scratch {
    /// Restores `plan` into a temporary directory and starts a server of its kind on it.
    pub async fn restore(repo: &Repo, plan: &Plan) -> anyhow::Result<Scratch> {
        let kind = if plan.layout.is_kevy() {
            Kind::Kevy
        } else {
            Kind::Redis
        };
        let bin = match kind {
            Kind::Kevy => kevy_bin().context(
                "the drift check needs a kevy binary for its scratch server: set KEVY_BIN or put kevy on PATH",
            )?,
            Kind::Redis => redis_bin().context(
                "the drift check needs redis-server for its scratch server: set REDIS_SERVER_BIN or put it on PATH",
            )?,
        };
        let dir = StagingDir::temp()?;
        let data = dir.path().join("data");
        to_dir::prepare(&data)?;
        let opts = DirOptions {
            target: kind,
            shards: plan.layout.shards(),
            force: false,
            server: match kind {
                Kind::Redis => scratch_version(&bin).await,
                Kind::Kevy => None,
            },
        };
        to_dir::restore(repo, plan, &data, opts)
            .await
            .context("restoring the latest state for the scratch server")?;
        let port = free_port()?;
        let log = dir.path().join("server.log");
        let mut cmd = match kind {
            Kind::Kevy => kevy_command(&bin, dir.path(), &data, port, plan.layout.shards())?,
            Kind::Redis => redis_command(&bin, &data, port, &plan.layout),
        };
        let log_file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = cmd
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting the scratch server {}", bin.display()))?;
        let mut scratch = Scratch {
            child,
            dir,
            url: format!("redis://127.0.0.1:{port}"),
            kind,
        };
        scratch.wait_ready().await.with_context(|| {
            format!(
                "the scratch {kind} server did not start (its log: {})",
                scratch.log_tail()
            )
        })?;
        Ok(scratch)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("it exited with {status}");
            }
            let attempt = async {
                let client = redis::Client::open(self.url.as_str())?;
                let mut c = client.get_multiplexed_async_connection().await?;
                redis::cmd("PING").query_async::<String>(&mut c).await
            };
            match tokio::time::timeout(Duration::from_secs(5), attempt).await {
                Ok(Ok(_)) => return Ok(()),
                _ if Instant::now() >= deadline => bail!("not ready after {READY_TIMEOUT:?}"),
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

/// kevy with its own config file: AOF on (so that it replays the restored AOFs), nothing from
/// the environment.
fn kevy_command(
    bin: &Path,
    root: &Path,
    data: &Path,
    port: u16,
    shards: u32,
) -> anyhow::Result<Command> {
    let config = root.join("kevy.toml");
    std::fs::write(
        &config,
        "[persistence]\naof = true\nappendfsync = \"no\"\n\n[log]\nlevel = \"warn\"\noutput = \"stderr\"\n",
    )
    .with_context(|| format!("writing {}", config.display()))?;
    let mut cmd = Command::new(bin);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("KEVY_") {
            cmd.env_remove(&key);
        }
    }
    cmd.env_remove("XDG_CONFIG_HOME")
        .arg("--config")
        .arg(&config)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--dir"])
        .arg(data)
        .args(["--threads", &shards.to_string()]);
    Ok(cmd)
}

/// redis-server loading the restored AOF layout, saving nothing.
/// The scratch binary's product and version, from `--version` (`None` when it does not say).
async fn scratch_version(bin: &Path) -> Option<crate::restore::translate::target::TargetServer> {
    let out = Command::new(bin).arg("--version").output().await.ok()?;
    crate::restore::translate::target::TargetServer::from_version_line(&String::from_utf8_lossy(
        &out.stdout,
    ))
}

fn redis_command(bin: &Path, data: &Path, port: u16, layout: &ServerLayout) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--daemonize", "no", "--protected-mode", "yes"])
        .args(["--appendonly", "yes", "--appendfsync", "no", "--dir"])
        .arg(data);
    match layout {
        ServerLayout::RedisMultiPart { aof_name, aof_dir } => {
            cmd.args(["--appendfilename", aof_name, "--appenddirname", aof_dir]);
        }
        ServerLayout::RedisSingle { aof_name } => {
            cmd.args(["--appendfilename", aof_name]);
        }
        ServerLayout::Kevy { .. } => {}
    }
    cmd
}
