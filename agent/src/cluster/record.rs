//! The agent's side of cluster membership: read the server's view of the cluster every
//! [`POLL`] and record it in the repository when it changed ([`super::doc`]).
//!
//! It runs beside the shipping, on its own connection, and never stops the daemon: a server
//! that does not answer, or answers that it is not in cluster mode, is logged and asked again.

use std::path::PathBuf;
use std::time::Duration;

use aofvault_config::Config;
use tokio_util::sync::CancellationToken;

use super::doc::{self, TopologyDoc};
use super::group;
use super::nodes::View;
use crate::repo::Repo;
use crate::server::Server;

/// How often the view is read: a change (reshard, failover) is recorded at most this late.
pub const POLL: Duration = Duration::from_secs(1);

/// What one agent records.
pub struct Recorder {
    cluster: String,
    instance: String,
    state_dir: PathBuf,
    group: Option<String>,
    last: Option<View>,
}

impl Recorder {
    pub fn new(cluster: &str, instance: &str, state_dir: PathBuf) -> Recorder {
        Recorder {
            cluster: cluster.to_string(),
            instance: instance.to_string(),
            state_dir,
            group: None,
            last: None,
        }
    }

    /// The group, once known.
    pub fn group(&self) -> Option<&str> {
        self.group.as_deref()
    }

    /// Reads the view once; records it if it differs from the last one recorded. Returns the
    /// document written, if any.
    pub async fn step(
        &mut self,
        server: &mut Server,
        repo: &Repo,
        now_ms: i64,
    ) -> anyhow::Result<Option<TopologyDoc>> {
        let text = server.text(&["CLUSTER", "NODES"]).await?;
        let view = View::parse(&text)?;
        if self.last.as_ref() == Some(&view) {
            return Ok(None);
        }
        if self.group.is_none() {
            // Redis < 7.2 does not know the command: no shard id then.
            let shard_id = server.text(&["CLUSTER", "MYSHARDID"]).await.ok();
            self.group =
                group::resolve(&self.state_dir, &self.cluster, &view, shard_id.as_deref())?;
        }
        let Some(group) = self.group.clone() else {
            anyhow::bail!("the server's view names neither itself nor its primary");
        };
        let d = TopologyDoc {
            format: doc::FORMAT,
            cluster: self.cluster.clone(),
            node: view.myself.clone(),
            instance: self.instance.clone(),
            group,
            seen_ms: now_ms,
            poll_ms: POLL.as_millis() as u64,
            view: view.clone(),
        };
        doc::store(repo, &d).await?;
        tracing::info!(cluster = %self.cluster, node = %d.node, group = %d.group, "cluster topology recorded");
        self.last = Some(view);
        Ok(Some(d))
    }
}

/// Starts the recorder when `[source] cluster` is set; it stops with `cancel`.
pub fn spawn(
    cfg: &Config,
    repo: Repo,
    cancel: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let cluster = cfg.source.cluster.clone()?;
    let cfg = cfg.clone();
    Some(tokio::spawn(async move {
        let mut rec = Recorder::new(&cluster, &cfg.repository.instance, cfg.state.dir.clone());
        let mut server: Option<Server> = None;
        let mut said = false;
        loop {
            if server.is_none() {
                server = Server::connect(&cfg).await.ok().flatten();
            }
            if let Some(s) = server.as_mut() {
                match rec.step(s, &repo, crate::context::now_ms()).await {
                    Ok(_) => said = false,
                    Err(e) if !said => {
                        tracing::warn!(cluster = %cluster, error = %format!("{e:#}"), "cannot record the cluster topology (will retry)");
                        said = true;
                    }
                    Err(_) => {}
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }))
}
