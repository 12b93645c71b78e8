//! Talking to the server (the `redis` crate): `INFO`, `CONFIG GET`, `BGREWRITEAOF`, with the
//! configured credentials, TLS and timeouts. A server that restarted (crash, upgrade) closed our
//! connection: a command that fails is sent once more on a new connection, so the agent can
//! still ask the restarted server for the rewrite that recovers a shard.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use aofvault_config::Config;
use redis::aio::MultiplexedConnection;

/// A connection to the followed server.
pub struct Server {
    client: redis::Client,
    /// `None` until a first connection succeeds (a server down when the agent started).
    conn: Option<MultiplexedConnection>,
    url: String,
    timeout: Duration,
    connect_timeout: Duration,
}

/// The URL without credentials, for messages.
pub fn display_url(url: &url::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_password(None);
    let _ = u.set_username("");
    u.to_string()
}

impl Server {
    /// Connects to `source.url` (None when no server is configured).
    pub async fn connect(cfg: &Config) -> anyhow::Result<Option<Server>> {
        let Some(mut server) = Server::offline(cfg)? else {
            return Ok(None);
        };
        server.conn = Some(open(&server.client, server.connect_timeout, &server.url).await?);
        Ok(Some(server))
    }

    /// A handle on `source.url` that connects at its first command (None when no server is
    /// configured): for a server that does not answer yet.
    pub fn offline(cfg: &Config) -> anyhow::Result<Option<Server>> {
        let Some(url) = &cfg.source.url else {
            return Ok(None);
        };
        let mut u = url.clone();
        if let Some(user) = &cfg.source.username {
            let _ = u.set_username(user);
        }
        if let Some(pw) = &cfg.source.password {
            let _ = u.set_password(Some(pw.expose()));
        }
        let shown = display_url(url);
        let client = redis::Client::open(u.as_str())
            .with_context(|| format!("invalid server URL {shown}"))?;
        Ok(Some(Server {
            client,
            conn: None,
            url: shown,
            timeout: cfg.source.command_timeout,
            connect_timeout: cfg.source.connect_timeout,
        }))
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    async fn cmd<T: redis::FromRedisValue>(&mut self, cmd: redis::Cmd) -> anyhow::Result<T> {
        if self.conn.is_none() {
            self.conn = Some(open(&self.client, self.connect_timeout, &self.url).await?);
        }
        match self.once(&cmd).await {
            Ok(v) => Ok(v),
            Err(first) => {
                // The server may have restarted since the connection was made.
                match open(&self.client, self.connect_timeout, &self.url).await {
                    Ok(conn) => {
                        tracing::debug!(server = %self.url, error = %format!("{first:#}"), "reconnected to the server");
                        self.conn = Some(conn);
                        self.once(&cmd).await
                    }
                    Err(_) => Err(first),
                }
            }
        }
    }

    async fn once<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> anyhow::Result<T> {
        let Some(conn) = self.conn.as_mut() else {
            anyhow::bail!("not connected to {}", self.url);
        };
        let fut = cmd.query_async::<T>(conn);
        tokio::time::timeout(self.timeout, fut)
            .await
            .with_context(|| format!("{} did not answer within {:?}", self.url, self.timeout))?
            .with_context(|| format!("command to {} failed", self.url))
    }

    /// `INFO <section>` as key → value.
    pub async fn info(&mut self, section: &str) -> anyhow::Result<HashMap<String, String>> {
        let text: String = self.cmd(redis::cmd("INFO").arg(section).clone()).await?;
        Ok(parse_info(&text))
    }

    /// `CONFIG GET name` (None when the server does not know it).
    pub async fn config_get(&mut self, name: &str) -> anyhow::Result<Option<String>> {
        let v: Vec<String> = self
            .cmd(redis::cmd("CONFIG").arg("GET").arg(name).clone())
            .await
            .unwrap_or_default();
        Ok(v.get(1).cloned())
    }

    /// A command whose reply is text (`CLUSTER NODES`, `CLUSTER MYSHARDID`).
    pub async fn text(&mut self, args: &[&str]) -> anyhow::Result<String> {
        let mut cmd = redis::Cmd::new();
        for a in args {
            cmd.arg(*a);
        }
        self.cmd(cmd).await
    }

    /// `ACL LIST`: the server's users as ACL rule lines (an error on servers without ACLs).
    pub async fn acl_list(&mut self) -> anyhow::Result<Vec<String>> {
        self.cmd(redis::cmd("ACL").arg("LIST").clone()).await
    }

    pub async fn bgrewriteaof(&mut self) -> anyhow::Result<String> {
        self.cmd(redis::cmd("BGREWRITEAOF")).await
    }

    /// `redis_version` (Redis/Valkey) or `kevy_version`, when INFO says.
    pub async fn version(&mut self) -> Option<String> {
        let info = self.info("server").await.ok()?;
        info.get("redis_version")
            .or_else(|| info.get("kevy_version"))
            .or_else(|| info.get("valkey_version"))
            .cloned()
    }
}

/// A new connection, within `timeout`.
async fn open(
    client: &redis::Client,
    timeout: Duration,
    shown: &str,
) -> anyhow::Result<MultiplexedConnection> {
    tokio::time::timeout(timeout, client.get_multiplexed_async_connection())
        .await
        .with_context(|| format!("connecting to {shown} timed out"))?
        .with_context(|| format!("cannot connect to {shown}"))
}

/// Parses INFO text: `key:value` lines, `#` comments.
pub fn parse_info(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.trim_end_matches('\r').split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
