//! A Prometheus `/metrics` endpoint: lag, bytes and objects shipped, upload latency, retries,
//! errors, rewrites, last snapshot time. Plain text over a minimal HTTP/1.1 responder: scrapers
//! send one GET and read one response.

use std::fmt::Write as _;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::status::{BoardRef, Counters, GroupStatus, ShardStatus};

/// Renders every metric in the Prometheus text format.
pub fn render(board: &BoardRef) -> String {
    let shared = board.shared();
    let mut out = String::new();
    write_totals(&mut out, &shared.counters);
    write_group(&mut out, &board.group());
    write_shard_gauges(&mut out, &shared.snapshot());
    out
}

/// The replication group gauges and counters (an agent alone is a group of one).
fn write_group(out: &mut String, g: &GroupStatus) {
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let rows: [Total; 6] = [
        (
            "lease_held",
            "1 while this agent holds the instance's lease (it ships).",
            "gauge",
            flag(g.state == "shipping"),
        ),
        (
            "standby",
            "1 while this agent stands by (its server is a replica, or another agent ships).",
            "gauge",
            flag(g.state == "standby"),
        ),
        (
            "primary_reachable",
            "1 while the server answers (a primary) or its link to its primary is up (a replica).",
            "gauge",
            flag(g.primary_reachable),
        ),
        (
            "split_brain",
            "1 while another server of the group also says role:master.",
            "gauge",
            flag(g.split_brain.is_some()),
        ),
        (
            "lease_takeovers_total",
            "Times this agent took the lease over from another member of its group.",
            "counter",
            g.takeovers as f64,
        ),
        (
            "step_downs_total",
            "Times this agent gave the lease back because its server stopped being the primary.",
            "counter",
            g.step_downs as f64,
        ),
    ];
    write_rows(out, rows);
}

/// One agent-wide metric: its name (after `aofvault_`), help text, Prometheus type and value.
type Total = (&'static str, &'static str, &'static str, f64);

/// The agent-wide counters and gauges, in the order they are rendered.
fn totals(c: &Counters) -> [Total; 13] {
    let get = |v: &std::sync::atomic::AtomicU64| Counters::get(v) as f64;
    [
        (
            "shipped_bytes_total",
            "AOF and base bytes stored in the repository.",
            "counter",
            get(&c.bytes_shipped),
        ),
        (
            "shipped_objects_total",
            "Segments stored.",
            "counter",
            get(&c.objects_shipped),
        ),
        (
            "upload_retries_total",
            "Transient failures retried.",
            "counter",
            get(&c.upload_retries),
        ),
        (
            "errors_total",
            "Permanent failures (a shard stopped).",
            "counter",
            get(&c.upload_errors),
        ),
        (
            "upload_seconds_sum",
            "Total time spent storing segments.",
            "counter",
            get(&c.upload_micros_total) / 1e6,
        ),
        (
            "upload_seconds_count",
            "Segments stored (latency denominator).",
            "counter",
            get(&c.uploads_total),
        ),
        (
            "rewrites_triggered_total",
            "BGREWRITEAOF sent by the agent.",
            "counter",
            get(&c.rewrites_triggered),
        ),
        (
            "rewrites_failed_total",
            "BGREWRITEAOF that failed.",
            "counter",
            get(&c.rewrites_failed),
        ),
        (
            "recovery_rewrites_total",
            "BGREWRITEAOF sent to recover a shard that could not go on from its files.",
            "counter",
            get(&c.recovery_rewrites),
        ),
        (
            "torn_frames_total",
            "Half-written commands left by a server crash, stepped over (recorded in the chain).",
            "counter",
            get(&c.torn_frames),
        ),
        (
            "snapshots_published_total",
            "Snapshot manifests published.",
            "counter",
            get(&c.snapshots_published),
        ),
        (
            "last_snapshot_timestamp_seconds",
            "When the last snapshot was published.",
            "gauge",
            get(&c.last_snapshot_ms) / 1e3,
        ),
        (
            "drift_keys",
            "KeyRing that differed at the last drift check.",
            "gauge",
            get(&c.drift_keys),
        ),
    ]
}

/// Writes the agent-wide counters and gauges, one `# HELP`/`# TYPE`/value block each.
fn write_totals(out: &mut String, c: &Counters) {
    write_rows(out, totals(c));
}

/// One `# HELP`/`# TYPE`/value block per agent-wide metric.
fn write_rows(out: &mut String, rows: impl IntoIterator<Item = Total>) {
    for (name, help, kind, v) in rows {
        let _ = writeln!(
            out,
            "# HELP aofvault_{name} {help}\n# TYPE aofvault_{name} {kind}\naofvault_{name} {v}"
        );
    }
}

/// One per-shard gauge: its name, help text and how to read it from a shard's status.
type ShardGauge = (&'static str, &'static str, fn(&ShardStatus) -> f64);

/// The per-shard gauges, in the order they are rendered.
const SHARD_GAUGES: [ShardGauge; 6] = [
    (
        "lag_bytes",
        "Bytes on disk not yet in the repository.",
        |s| s.lag_bytes as f64,
    ),
    (
        "lag_seconds",
        "Age of the oldest byte not yet in the repository.",
        |s| s.lag_seconds,
    ),
    (
        "shipped_offset_bytes",
        "Offset of the shard's stream stored so far.",
        |s| s.shipped_offset as f64,
    ),
    (
        "last_upload_timestamp_seconds",
        "Last successful segment upload.",
        |s| s.last_upload_ms.unwrap_or(0) as f64 / 1e3,
    ),
    (
        "shard_up",
        "1 while the shard is followed without a permanent error.",
        |s| if s.state == "stopped" { 0.0 } else { 1.0 },
    ),
    (
        "shard_recovering",
        "1 while the shard waits for the server to rewrite its AOF (it ships nothing meanwhile).",
        |s| if s.recovery.is_some() { 1.0 } else { 0.0 },
    ),
];

/// Writes each per-shard gauge once, with one labelled value per shard.
fn write_shard_gauges(out: &mut String, shards: &[ShardStatus]) {
    for (name, help, f) in SHARD_GAUGES {
        let _ = writeln!(
            out,
            "# HELP aofvault_{name} {help}\n# TYPE aofvault_{name} gauge"
        );
        for s in shards {
            let _ = writeln!(out, "aofvault_{name}{{shard=\"{}\"}} {}", s.shard, f(s));
        }
    }
}

/// Serves `/metrics` on `addr` until cancelled.
pub async fn serve(
    addr: SocketAddr,
    board: BoardRef,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for metrics on {addr}: {e}"))?;
    tracing::info!(%addr, "metrics at http://{addr}/metrics");
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = cancel.cancelled() => return,
                a = listener.accept() => a,
            };
            let Ok((mut sock, _)) = accepted else {
                continue;
            };
            let board = board.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let (status, body) = if req.starts_with("GET /metrics") || req.starts_with("GET / ")
                {
                    ("200 OK", render(&board))
                } else {
                    ("404 Not Found", "try /metrics\n".to_string())
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    Ok(())
}
