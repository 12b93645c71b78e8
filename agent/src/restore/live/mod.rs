//! `restore --to URL`: replay a plan into a running server.
//!
//! The target is inspected first: its kind and version (`INFO server` of kevy carries
//! `kevy_version`, Valkey's `valkey_version`; see [`TargetServer::from_info`]) decide the
//! translation — including hash field TTLs the target cannot hold, reported one by one — and a target holding keys is refused
//! unless `--force` (counted with `DBSIZE`: [`counts`]). The plan's completeness was proven
//! before (listings, heads, sizes: [`Plan`]); its objects then download while the replay runs,
//! each shard's decoder reading only what has checked out (CRC-32C and size:
//! [`super::fetch::ready`]), so no unverified byte reaches the target. An object that fails
//! stops the replay with an error naming it; the target then holds part of the backup, as
//! after any failed live restore (the next one refuses it without `--force`).
//!
//! Each source shard is replayed on its own connection, in parallel (kevy shards hold disjoint
//! keys; see [`super::feed`] for the one exception, flushes). Per shard a blocking thread
//! decodes and translates into batches of [`BATCH`] commands; the async side keeps
//! [`IN_FLIGHT`] batches on the wire. Error replies do not stop the replay: they are counted and
//! the first few are reported with the command that got them. At the end the target's key
//! counts per database are read back.

pub mod cluster;
pub mod counts;
pub mod route;
pub mod send;

use std::time::Duration;

use anyhow::Context;
use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use serde::Serialize;
use tokio::sync::mpsc;

use super::feed::{feed_shard, FeedOptions, FeedStats};
use super::fetch::{self, StagedShard, StagingDir};
use super::progress::Progress;
use super::retry::Retry;
use super::translate::field_ttl::{LostFieldTtl, Support};
use super::translate::target::TargetServer;
use super::translate::Kind;
use crate::repo::plan::Plan;
use crate::repo::Repo;
use counts::{key_counts, key_counts_after_replay};
use send::{open_tcp, send_client, send_tcp, Batch, BatchSink, Sent, TcpTarget, IN_FLIGHT};

/// Error replies kept for the report.
const KEEP_ERRORS: usize = 10;
/// Lost hash field TTLs listed in the report (all are counted).
pub const KEEP_LOST_FIELDS: usize = 1000;

/// Connections the replay uses: one per source shard. Measured with 4 kevy shards into a
/// 4-shard kevy: 4 connections replayed in 0.9 s where 1 took 1.25 s; into redis-server the
/// count made no difference (it is single-threaded).
fn connections_for(shards: usize) -> usize {
    shards.max(1)
}

/// An open target.
pub struct Target {
    client: redis::Client,
    conn: MultiplexedConnection,
    pub kind: Kind,
    /// Product and version, from `INFO server`.
    pub server: TargetServer,
    /// The database the URL selects.
    home_db: i64,
    /// `db` → keys, databases holding keys only ([`key_counts`]).
    pub keyspace: Vec<(String, u64)>,
}

/// What a replay did.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub target_kind: Option<Kind>,
    pub commands: u64,
    pub base_keys: u64,
    pub errors: u64,
    pub first_errors: Vec<String>,
    pub lossy: u64,
    pub lossy_reason: Option<&'static str>,
    /// The target's product and version, as `INFO server` gave them.
    pub target_server: Option<TargetServer>,
    /// Hash fields whose TTL the target could not hold (they were restored without it).
    pub field_ttls_lost: u64,
    /// The first [`KEEP_LOST_FIELDS`] of them, key and field named.
    pub lost_field_ttls: Vec<LostFieldTtl>,
    /// Stream commands left out because a later whole overwrite of their key hides them.
    pub thinned: u64,
    pub keyspace: Vec<(String, u64)>,
    pub seconds: f64,
}

fn config() -> AsyncConnectionConfig {
    AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(10)))
        .set_response_timeout(Some(Duration::from_secs(300)))
}

/// The URL without credentials, for messages.
pub fn url_text(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => crate::server::display_url(&u),
        Err(_) => "<invalid URL>".into(),
    }
}

/// Connects to `url` and reads its kind and key counts.
pub async fn open(url: &str) -> anyhow::Result<Target> {
    let client = redis::Client::open(url)
        .with_context(|| format!("invalid target URL {}", url_text(url)))?;
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config())
        .await
        .with_context(|| format!("cannot connect to {}", url_text(url)))?;
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await
        .context("INFO server")?;
    let server = TargetServer::from_info(&crate::server::parse_info(&info));
    let kind = server.kind();
    let home_db = client.get_connection_info().redis_settings().db();
    let keyspace = key_counts(&mut conn, home_db).await?;
    Ok(Target {
        client,
        conn,
        kind,
        server,
        home_db,
        keyspace,
    })
}

/// Outcome of [`replay`].
pub enum Outcome {
    /// The target holds keys and `--force` was not given.
    NotEmpty(Vec<(String, u64)>),
    Done(Report),
}

/// Replays `plan` into `url` as it downloads, retrying store failures for the default time.
pub async fn replay(repo: &Repo, plan: &Plan, url: &str, force: bool) -> anyhow::Result<Outcome> {
    replay_with(repo, plan, url, force, false, &Retry::default()).await
}

/// [`replay`], retrying failed downloads as `retry` says, leaving out hidden writes when
/// `thin` ([`super::thin`]).
pub async fn replay_with(
    repo: &Repo,
    plan: &Plan,
    url: &str,
    force: bool,
    thin: bool,
    retry: &Retry,
) -> anyhow::Result<Outcome> {
    let mut target = open(url).await?;
    if cluster::is_cluster(&mut target).await? {
        // Routed by hash slot to the target's primaries: see `cluster`.
        return cluster::replay_into(
            repo,
            &[plan],
            vec![vec![(0, None)]],
            url,
            force,
            thin,
            retry,
        )
        .await;
    }
    if !target.keyspace.is_empty() && !force {
        return Ok(Outcome::NotEmpty(target.keyspace));
    }
    let source = if plan.layout.is_kevy() {
        Kind::Kevy
    } else {
        Kind::Redis
    };
    let staging = StagingDir::temp()?;
    let fetch_progress = Progress::new("fetch", plan.total_bytes());
    let (staged, downloads) =
        fetch::start(repo, plan, staging.path(), b"", &fetch_progress, retry)?;
    let downloads = async {
        let fetched = downloads.await;
        fetch_progress.finish();
        fetched
    };
    let started = std::time::Instant::now();
    let progress = Progress::new("replay", plan.total_bytes());
    let opts = FeedOptions {
        field_ttl: Support::of(&target.server),
        thin,
        ..FeedOptions::new(
            source,
            target.kind,
            staged.len() > 1,
            crate::context::now_ms(),
        )
    };
    // Each source shard has its own decoder thread and connection (see `connections_for`);
    // shards hold disjoint keys, so their replays need no order between them.
    let connections = connections_for(staged.len());
    let capacity = IN_FLIGHT * staged.len().div_ceil(connections);
    let (senders, consumers) = open_senders(&target, url, connections, capacity, &progress).await?;
    let producers = spawn_decoders(staged, &senders, opts, &progress);
    drop(senders);
    let mut report = Report {
        target_kind: Some(target.kind),
        target_server: Some(target.server),
        ..Report::default()
    };
    let (fetched, failure) = overlap(downloads, gather(consumers, producers, &mut report)).await;
    progress.add_keys(report.base_keys);
    progress.finish();
    drop(staging);
    // A failed download is the cause when the replay failed too (its decoder only saw the
    // fetch stop): it names the object.
    if let Some(fetched) = fetched {
        fetched.context(
            "fetching the backup (no byte of the failed object was sent; the target holds what \
             was replayed before, and a new restore needs --force)",
        )?;
    }
    if let Some(e) = failure? {
        return Err(e);
    }
    report.first_errors.truncate(KEEP_ERRORS);
    report.seconds = started.elapsed().as_secs_f64();
    // Every reply was read: the writes are applied, one reading is the answer.
    report.keyspace = key_counts_after_replay(&mut target.conn, target.home_db).await?;
    Ok(Outcome::Done(report))
}

/// Runs the downloads and the replay together. A download that fails fails its shards'
/// readers, so the replay ends after it and its error is there to name the object; a replay
/// that fails on its own (the target went away) drops the downloads left (`None`): nothing
/// would read them.
async fn overlap<T>(
    downloads: impl std::future::Future<Output = anyhow::Result<()>>,
    replay: impl std::future::Future<Output = anyhow::Result<Option<T>>>,
) -> (Option<anyhow::Result<()>>, anyhow::Result<Option<T>>) {
    tokio::pin!(downloads, replay);
    let mut fetched = None;
    let replayed = loop {
        tokio::select! {
            f = &mut downloads, if fetched.is_none() => fetched = Some(f),
            r = &mut replay => break r,
        }
    };
    let failed = !matches!(replayed, Ok(None));
    if fetched.is_none() && !failed {
        // Every shard was read to its end: what is left is the last range's bookkeeping.
        fetched = Some(downloads.await);
    }
    (fetched, replayed)
}

/// A task sending batches on one connection.
type Consumer = tokio::task::JoinHandle<anyhow::Result<Sent>>;
/// A blocking task decoding one source shard into batches, with the shard it decodes.
type Producer = (u32, tokio::task::JoinHandle<anyhow::Result<FeedStats>>);

/// Opens `connections` connections to the target (raw TCP when the URL allows it, else through
/// the client), each with a task sending what its channel of `capacity` batches receives.
async fn open_senders(
    target: &Target,
    url: &str,
    connections: usize,
    capacity: usize,
    progress: &Progress,
) -> anyhow::Result<(Vec<mpsc::Sender<Batch>>, Vec<Consumer>)> {
    let tcp = TcpTarget::from_url(url);
    let mut senders = Vec::new();
    let mut consumers = Vec::new();
    for _ in 0..connections {
        let (tx, rx) = mpsc::channel::<Batch>(capacity);
        senders.push(tx);
        let consumer = match &tcp {
            Some(t) => {
                let conn = open_tcp(t)
                    .await
                    .with_context(|| format!("cannot connect to {}", url_text(url)))?;
                tokio::spawn(send_tcp(conn, rx, progress.clone()))
            }
            None => {
                let conn = target
                    .client
                    .get_multiplexed_async_connection_with_config(&config())
                    .await
                    .with_context(|| format!("cannot connect to {}", url_text(url)))?;
                tokio::spawn(send_client(conn, rx, progress.clone()))
            }
        };
        consumers.push(consumer);
    }
    Ok((senders, consumers))
}

/// Starts one decoder thread per staged shard, the shards dealt round-robin over `senders`.
fn spawn_decoders(
    staged: Vec<StagedShard>,
    senders: &[mpsc::Sender<Batch>],
    opts: FeedOptions,
    progress: &Progress,
) -> Vec<Producer> {
    let mut producers = Vec::new();
    for (i, s) in staged.into_iter().enumerate() {
        let tx = senders[i % senders.len()].clone();
        let shard = s.shard;
        let p = progress.clone();
        producers.push((
            shard,
            tokio::task::spawn_blocking(move || -> anyhow::Result<FeedStats> {
                let mut sink = BatchSink::new(tx, shard, p);
                let stats = feed_shard(&s, &opts, &mut sink)?;
                sink.flush()?;
                Ok(stats)
            }),
        ));
    }
    producers
}

/// Waits for every task, adding what each did to `report`; returns the first failure. The
/// sender's error is the cause when both failed (the decoder then only saw the channel close),
/// so senders are looked at first.
async fn gather(
    consumers: Vec<Consumer>,
    producers: Vec<Producer>,
    report: &mut Report,
) -> anyhow::Result<Option<anyhow::Error>> {
    let mut failure = None;
    for consumer in consumers {
        match consumer.await.context("replay task")? {
            Ok(sent) => {
                report.commands += sent.commands;
                // Redirections left over (a cluster replay follows them first) are errors.
                report.errors += sent.errors + sent.redirected.len() as u64;
                report.first_errors.extend(sent.first_errors);
            }
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    for (shard, producer) in producers {
        match producer.await.context("decode task")? {
            Ok(stats) => {
                report.base_keys += stats.base_keys;
                report.thinned += stats.thinned;
                report.lossy += stats.lossy;
                report.lossy_reason = report.lossy_reason.or(stats.lossy_reason);
                report.field_ttls_lost += stats.lost_field_ttls.len() as u64;
                let room = KEEP_LOST_FIELDS.saturating_sub(report.lost_field_ttls.len());
                report
                    .lost_field_ttls
                    .extend(stats.lost_field_ttls.into_iter().take(room));
            }
            Err(e) => {
                failure.get_or_insert(e.context(format!("shard {shard}")));
            }
        }
    }
    Ok(failure)
}
