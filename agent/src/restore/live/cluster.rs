//! Replaying one or several plans into any target: a plain server, or a Redis Cluster whose
//! primaries each get their own connection and the commands of the slots they serve
//! ([`super::route`]).
//!
//! Several plans are the groups of a cluster source (`restore --cluster`); they are replayed
//! in *phases* (`crate::cluster::history`): within a phase every input runs in parallel, each
//! kept to its slots by a [`SlotFilter`]; a phase starts once the previous one's every reply
//! was read, so a later phase's writes land after an earlier one's. One plan into a cluster
//! target (a plain `restore --to`) is one phase without a filter.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc;

use super::route::{Router, SlotFilter, TargetMap, CROSS_SLOT};
use super::send::{is_redirect, open_tcp, send_tcp, Batch, BatchSink, Sent, TcpTarget, IN_FLIGHT};
use super::{gather, open, open_senders, url_text, Consumer, Outcome, Producer, Report, Target};
use crate::cluster::history::SlotSet;
use crate::repo::plan::Plan;
use crate::repo::Repo;
use crate::restore::feed::{feed_shard, feed_shard_with, FeedOptions, FeedStats};
use crate::restore::fetch::{fetch, StagedShard, StagingDir};
use crate::restore::progress::Progress;
use crate::restore::retry::Retry;
use crate::restore::translate::field_ttl::Support;
use crate::restore::translate::Kind;

/// What one phase replays of one plan: the plan's index and the slots kept (`None`: all).
pub type Part = (usize, Option<Arc<SlotSet>>);

/// Where the commands go.
enum Shape {
    Single,
    Cluster {
        map: Arc<TargetMap>,
        nodes: Vec<TcpTarget>,
    },
}

/// Whether the server behind `target` runs in cluster mode (`INFO cluster`).
pub async fn is_cluster(target: &mut Target) -> anyhow::Result<bool> {
    let text: String = redis::cmd("INFO")
        .arg("cluster")
        .query_async(&mut target.conn)
        .await
        .unwrap_or_default();
    let info = crate::server::parse_info(&text);
    Ok(info.get("cluster_enabled").is_some_and(|v| v == "1"))
}

async fn shape(target: &mut Target, url: &str) -> anyhow::Result<Shape> {
    if !is_cluster(target).await? {
        return Ok(Shape::Single);
    }
    let map = TargetMap::read(&mut target.conn).await?;
    let login = TcpTarget::from_url(url).with_context(|| {
        format!(
            "{}: a cluster target is reached over plain redis:// only (one connection per primary)",
            url_text(url)
        )
    })?;
    let mut nodes = Vec::new();
    for addr in &map.nodes {
        let (host, port) = addr
            .rsplit_once(':')
            .with_context(|| format!("a cluster node without a port: {addr}"))?;
        nodes.push(TcpTarget {
            host: if host.is_empty() {
                login.host.clone()
            } else {
                host.to_string()
            },
            port: port
                .parse()
                .with_context(|| format!("a bad port: {addr}"))?,
            db: 0,
            ..login.clone()
        });
    }
    tracing::info!(
        primaries = nodes.len(),
        "the target is a cluster: commands are routed by hash slot"
    );
    Ok(Shape::Cluster {
        map: Arc::new(map),
        nodes,
    })
}

/// Keys per database of the target: every primary's, summed, for a cluster.
async fn counts(target: &mut Target, shape: &Shape) -> anyhow::Result<Vec<(String, u64)>> {
    let Shape::Cluster { nodes, .. } = shape else {
        return super::counts::key_counts(&mut target.conn, target.home_db).await;
    };
    let mut total = 0u64;
    for n in nodes {
        let node = open(&node_url(n, &format!("{}:{}", n.host, n.port))?).await?;
        total += node.keyspace.iter().map(|(_, k)| k).sum::<u64>();
    }
    Ok(if total > 0 {
        vec![("db0".to_string(), total)]
    } else {
        Vec::new()
    })
}

/// Fetches `plans`, then replays `phases` of them into `url` (see the module doc).
pub async fn replay_into(
    repo: &Repo,
    plans: &[&Plan],
    phases: Vec<Vec<Part>>,
    url: &str,
    force: bool,
    thin: bool,
    retry: &Retry,
) -> anyhow::Result<Outcome> {
    let mut target = open(url).await?;
    let mut shape = shape(&mut target, url).await?;
    let before = counts(&mut target, &shape).await?;
    if !before.is_empty() && !force {
        return Ok(Outcome::NotEmpty(before));
    }
    let staging = StagingDir::temp()?;
    let total: u64 = plans.iter().map(|p| p.total_bytes()).sum();
    let fetch_progress = Progress::new("fetch", total);
    let mut staged: Vec<Vec<StagedShard>> = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        let dir = staging.path().join(i.to_string());
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        staged.push(fetch(repo, plan, &dir, b"", &fetch_progress, retry).await?);
    }
    fetch_progress.finish();
    let started = std::time::Instant::now();
    let progress = Progress::new("replay", total);
    let shards: usize = staged.iter().map(Vec::len).sum();
    let mut report = Report {
        target_kind: Some(target.kind),
        target_server: Some(target.server),
        ..Report::default()
    };
    for (n, phase) in phases.into_iter().enumerate() {
        let mut inputs = Vec::new();
        for (i, keep) in phase {
            let (Some(plan), Some(shards)) = (plans.get(i), staged.get(i)) else {
                continue;
            };
            let opts = FeedOptions {
                field_ttl: Support::of(&target.server),
                thin,
                // Several groups of one cluster: each node's FLUSHALL emptied its own slots
                // only. A lone plan's flush empties everything, as it did at the source.
                local_flush: plans.len() > 1,
                ..FeedOptions::new(
                    if plan.layout.is_kevy() {
                        Kind::Kevy
                    } else {
                        Kind::Redis
                    },
                    target.kind,
                    true,
                    crate::context::now_ms(),
                )
            };
            for s in shards {
                inputs.push((s.clone(), keep.clone(), opts));
            }
        }
        tracing::debug!(phase = n, inputs = inputs.len(), "replay phase");
        if n > 0 && matches!(shape, Shape::Cluster { .. }) {
            // The target may have resharded meanwhile (its MOVED replies were followed one by
            // one): each phase routes by a fresh slot map.
            shape = self::shape(&mut target, url).await?;
        }
        let failure = match &shape {
            Shape::Single => {
                let opts_merge = shards > 1;
                let (senders, consumers) =
                    open_senders(&target, url, inputs.len().max(1), IN_FLIGHT, &progress).await?;
                let producers = inputs
                    .into_iter()
                    .enumerate()
                    .map(|(i, (s, keep, mut opts))| {
                        opts.merge = opts_merge;
                        let tx = senders[i % senders.len()].clone();
                        single_decoder(s, keep, opts, tx, &progress)
                    })
                    .collect();
                drop(senders);
                gather(consumers, producers, &mut report).await?
            }
            Shape::Cluster { map, nodes } => {
                let (senders, consumers) = open_nodes(nodes, inputs.len(), &progress).await?;
                let producers = inputs
                    .into_iter()
                    .map(|(s, keep, opts)| {
                        routed_decoder(s, keep, opts, &senders, map.clone(), &progress)
                    })
                    .collect();
                drop(senders);
                gather(consumers, producers, &mut report).await?
            }
        };
        if let Some(e) = failure {
            progress.finish();
            return Err(e);
        }
    }
    progress.add_keys(report.base_keys);
    progress.finish();
    drop(staging);
    report.first_errors.truncate(10);
    report.seconds = started.elapsed().as_secs_f64();
    report.keyspace = counts(&mut target, &shape).await?;
    Ok(Outcome::Done(report))
}

/// One connection (and sending task) per primary of a cluster target.
async fn open_nodes(
    nodes: &[TcpTarget],
    inputs: usize,
    progress: &Progress,
) -> anyhow::Result<(Vec<mpsc::Sender<Batch>>, Vec<Consumer>)> {
    let mut senders = Vec::new();
    let mut consumers = Vec::new();
    for n in nodes {
        let (tx, rx) = mpsc::channel::<Batch>(IN_FLIGHT * inputs.max(1));
        let conn = open_tcp(n)
            .await
            .with_context(|| format!("cannot connect to cluster node {}:{}", n.host, n.port))?;
        senders.push(tx);
        let (login, progress) = (n.clone(), progress.clone());
        consumers.push(tokio::spawn(async move {
            let mut sent = send_tcp(conn, rx, progress).await?;
            follow_redirects(&mut sent, &login).await?;
            Ok(sent)
        }));
    }
    Ok((senders, consumers))
}

/// Redirections one command may follow.
const MAX_REDIRECTS: usize = 16;

/// Sends the commands a node answered with `MOVED`/`ASK` again, in their order, to the node
/// each reply names (`ASKING` first for `ASK`), following further redirections; what still
/// fails is counted as an error reply.
async fn follow_redirects(sent: &mut Sent, login: &TcpTarget) -> anyhow::Result<()> {
    let pending = std::mem::take(&mut sent.redirected);
    if pending.is_empty() {
        return Ok(());
    }
    tracing::info!(
        commands = pending.len(),
        "the target cluster redirected commands (MOVED/ASK): sending them where it says"
    );
    let mut conns: HashMap<String, MultiplexedConnection> = HashMap::new();
    for (args, first) in pending {
        let mut reply = first;
        let mut done = false;
        for _ in 0..MAX_REDIRECTS {
            let mut words = reply.split(' ');
            let (Some(code), Some(_slot), Some(addr)) = (words.next(), words.next(), words.next())
            else {
                break;
            };
            let conn = match conns.get_mut(addr) {
                Some(c) => c,
                None => {
                    let c = node_connection(login, addr).await?;
                    conns.entry(addr.to_string()).or_insert(c)
                }
            };
            let mut pipe = redis::Pipeline::new();
            if code == "ASK" {
                pipe.cmd("ASKING");
            }
            let mut cmd = redis::Cmd::new();
            for a in &args {
                cmd.arg(a.as_slice());
            }
            pipe.add_command(cmd);
            let n = if code == "ASK" { 2 } else { 1 };
            let replies = conn
                .send_packed_commands(&pipe, 0, n)
                .await
                .with_context(|| format!("sending a redirected command to {addr}"))?;
            match replies.last() {
                Some(redis::Value::ServerError(e)) => {
                    reply = format!("{} {}", e.code(), e.details().unwrap_or_default());
                    if !is_redirect(&reply) {
                        break;
                    }
                }
                _ => {
                    done = true;
                    break;
                }
            }
        }
        if !done {
            sent.errors += 1;
            if sent.first_errors.len() < 10 {
                let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
                sent.first_errors.push(format!(
                    "`{}`: {reply}",
                    crate::restore::translate::label(&refs)
                ));
            }
        }
    }
    Ok(())
}

/// `redis://[user:password@]addr` (credentials percent-encoded).
fn node_url(login: &TcpTarget, addr: &str) -> anyhow::Result<String> {
    let mut u = url::Url::parse(&format!("redis://{addr}"))
        .with_context(|| format!("a cluster node address {addr:?}"))?;
    if let Some(user) = &login.username {
        let _ = u.set_username(user);
    }
    if let Some(pw) = &login.password {
        let _ = u.set_password(Some(pw));
    }
    Ok(u.to_string())
}

/// A connection to the cluster node at `addr`, with the target's credentials.
async fn node_connection(login: &TcpTarget, addr: &str) -> anyhow::Result<MultiplexedConnection> {
    let client = redis::Client::open(node_url(login, addr)?)?;
    client
        .get_multiplexed_async_connection_with_config(&super::config())
        .await
        .with_context(|| format!("connecting to cluster node {addr}"))
}

/// A decoder thread feeding one connection, kept to `keep`'s slots when given.
fn single_decoder(
    s: StagedShard,
    keep: Option<Arc<SlotSet>>,
    opts: FeedOptions,
    tx: mpsc::Sender<Batch>,
    progress: &Progress,
) -> Producer {
    let shard = s.shard;
    let p = progress.clone();
    let task = tokio::task::spawn_blocking(move || -> anyhow::Result<FeedStats> {
        let mut sink = BatchSink::new(tx, shard, p);
        let stats = match keep {
            Some(keep) => feed_shard(
                &s,
                &opts,
                &mut SlotFilter {
                    inner: &mut sink,
                    keep,
                },
            )?,
            None => feed_shard(&s, &opts, &mut sink)?,
        };
        sink.flush()?;
        Ok(stats)
    });
    (shard, task)
}

/// A decoder thread routing by slot to every primary's connection.
fn routed_decoder(
    s: StagedShard,
    keep: Option<Arc<SlotSet>>,
    opts: FeedOptions,
    senders: &[mpsc::Sender<Batch>],
    map: Arc<TargetMap>,
    progress: &Progress,
) -> Producer {
    let shard = s.shard;
    let sinks: Vec<BatchSink> = senders
        .iter()
        .map(|tx| BatchSink::new(tx.clone(), shard, progress.clone()))
        .collect();
    let task = tokio::task::spawn_blocking(move || -> anyhow::Result<FeedStats> {
        let mut router = Router::new(sinks, map);
        let mut stats = match keep {
            Some(keep) => feed_shard(
                &s,
                &opts,
                &mut SlotFilter {
                    inner: &mut router,
                    keep,
                },
            )?,
            // Without phases (a source that is not a cluster), a RENAME's keys may hash to two
            // slots: renames are replayed as their effect, under the keys' final names.
            None => feed_shard_with(&s, &opts, true, &mut router)?,
        };
        router.flush()?;
        if router.dropped.count > 0 {
            tracing::warn!(shard, count = router.dropped.count, first = ?router.dropped.first, "{CROSS_SLOT}");
            stats.lossy += router.dropped.count;
            stats.lossy_reason.get_or_insert(CROSS_SLOT);
        }
        Ok(stats)
    });
    (shard, task)
}
