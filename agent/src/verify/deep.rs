//! `verify --deep`: prove a snapshot restores by restoring it — into a scratch `redis-server`
//! started on a free 127.0.0.1 port in a temporary directory (no persistence), through the
//! same live replay `restore --to` uses (kevy backups are translated for Redis). It reports the
//! key counts per database and per type, and every error reply as a finding.
//!
//! Without a `redis-server` binary (`$REDIS_SERVER_BIN`, else on `PATH`) there is no scratch
//! server: the report says so plainly instead of pretending the check ran.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::repo::plan::{self, Selection};
use crate::repo::Repo;
use crate::restore::fetch::StagingDir;
use crate::restore::live::{self, Outcome};

/// What the replay showed.
#[derive(Debug, Default, Serialize)]
pub struct DeepReport {
    /// False when no scratch server could be started; `note` says why.
    pub ran: bool,
    pub note: String,
    pub snapshot: Option<String>,
    pub commands: u64,
    pub error_replies: u64,
    pub first_errors: Vec<String>,
    /// db → keys.
    pub keyspace: Vec<(String, u64)>,
    /// type → keys, all databases.
    pub types: BTreeMap<String, u64>,
}

fn redis_server_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REDIS_SERVER_BIN") {
        return Some(PathBuf::from(p));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("redis-server"))
        .find(|p| p.is_file())
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("looking for a free port")?;
    Ok(l.local_addr()?.port())
}

/// Replays `selection` of `instance` into a scratch server and counts what arrived.
pub async fn deep(repo: &Repo, instance: &str, selection: Selection) -> anyhow::Result<DeepReport> {
    let Some(bin) = redis_server_bin() else {
        return Ok(DeepReport {
            note: "no scratch server available: redis-server is not on PATH (set REDIS_SERVER_BIN); the replay was NOT checked".into(),
            ..DeepReport::default()
        });
    };
    let plan = plan::plan(repo, instance, selection).await?;
    let dir = StagingDir::temp()?;
    let port = free_port()?;
    let mut child = tokio::process::Command::new(&bin)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .args(["--daemonize", "no", "--protected-mode", "yes", "--dir"])
        .arg(dir.path())
        .arg("--logfile")
        .arg(dir.path().join("redis.log"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting the scratch server {}", bin.display()))?;
    let url = format!("redis://127.0.0.1:{port}");
    let result = async {
        wait_ready(&url).await?;
        let report = match live::replay(repo, &plan, &url, false).await? {
            Outcome::Done(r) => r,
            Outcome::NotEmpty(_) => anyhow::bail!(
                "the scratch server at {url} is not empty (another process took the port?)"
            ),
        };
        let types = count_types(&url, &report.keyspace).await?;
        Ok(DeepReport {
            ran: true,
            note: format!("replayed into a scratch redis-server on port {port}"),
            snapshot: Some(plan.snapshot.clone()),
            commands: report.commands,
            error_replies: report.errors,
            first_errors: report.first_errors,
            keyspace: report.keyspace,
            types,
        })
    }
    .await;
    let _ = child.kill().await;
    result.with_context(|| {
        let log = std::fs::read_to_string(dir.path().join("redis.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(5).collect();
        format!(
            "deep check with a scratch redis-server (last log lines: {:?})",
            tail
        )
    })
}

async fn wait_ready(url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let attempt = async {
            let client = redis::Client::open(url)?;
            let mut c = client.get_multiplexed_async_connection().await?;
            redis::cmd("PING").query_async::<String>(&mut c).await
        };
        match attempt.await {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(e).context("the scratch redis-server did not start")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// SCAN + TYPE over every database that has keys.
async fn count_types(
    url: &str,
    keyspace: &[(String, u64)],
) -> anyhow::Result<BTreeMap<String, u64>> {
    let client = redis::Client::open(url)?;
    let mut c = client.get_multiplexed_async_connection().await?;
    let mut types = BTreeMap::new();
    for (db, _) in keyspace {
        let n: u32 = db.trim_start_matches("db").parse().unwrap_or(0);
        redis::cmd("SELECT")
            .arg(n)
            .query_async::<()>(&mut c)
            .await?;
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut c)
                .await?;
            let mut pipe = redis::pipe();
            for k in &keys {
                pipe.cmd("TYPE").arg(k);
            }
            let names: Vec<String> = if keys.is_empty() {
                Vec::new()
            } else {
                pipe.query_async(&mut c).await?
            };
            for t in names {
                *types.entry(t).or_insert(0) += 1;
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
    }
    Ok(types)
}
