//! A Prometheus `/metrics` endpoint: lag, bytes and objects shipped, upload latency, retries,
//! errors, rewrites, last snapshot time. Plain text over a minimal HTTP/1.1 responder: scrapers
//! send one GET and read one response.

use std::fmt::Write as _;
use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::ship::status::{Counters, SharedRef};

/// Renders every metric in the Prometheus text format.
pub fn render(shared: &SharedRef) -> String {
    let mut out = String::new();
    let c = &shared.counters;
    let mut counter = |name: &str, help: &str, kind: &str, v: f64| {
        let _ = writeln!(
            out,
            "# HELP aofvault_{name} {help}\n# TYPE aofvault_{name} {kind}\naofvault_{name} {v}"
        );
    };
    counter(
        "shipped_bytes_total",
        "AOF and base bytes stored in the repository.",
        "counter",
        Counters::get(&c.bytes_shipped) as f64,
    );
    counter(
        "shipped_objects_total",
        "Segments stored.",
        "counter",
        Counters::get(&c.objects_shipped) as f64,
    );
    counter(
        "upload_retries_total",
        "Transient failures retried.",
        "counter",
        Counters::get(&c.upload_retries) as f64,
    );
    counter(
        "errors_total",
        "Permanent failures (a shard stopped).",
        "counter",
        Counters::get(&c.upload_errors) as f64,
    );
    let uploads = Counters::get(&c.uploads_total);
    counter(
        "upload_seconds_sum",
        "Total time spent storing segments.",
        "counter",
        Counters::get(&c.upload_micros_total) as f64 / 1e6,
    );
    counter(
        "upload_seconds_count",
        "Segments stored (latency denominator).",
        "counter",
        uploads as f64,
    );
    counter(
        "rewrites_triggered_total",
        "BGREWRITEAOF sent by the agent.",
        "counter",
        Counters::get(&c.rewrites_triggered) as f64,
    );
    counter(
        "rewrites_failed_total",
        "BGREWRITEAOF that failed.",
        "counter",
        Counters::get(&c.rewrites_failed) as f64,
    );
    counter(
        "recovery_rewrites_total",
        "BGREWRITEAOF sent to recover a shard that could not go on from its files.",
        "counter",
        Counters::get(&c.recovery_rewrites) as f64,
    );
    counter(
        "torn_frames_total",
        "Half-written commands left by a server crash, stepped over (recorded in the chain).",
        "counter",
        Counters::get(&c.torn_frames) as f64,
    );
    counter(
        "snapshots_published_total",
        "Snapshot manifests published.",
        "counter",
        Counters::get(&c.snapshots_published) as f64,
    );
    counter(
        "last_snapshot_timestamp_seconds",
        "When the last snapshot was published.",
        "gauge",
        Counters::get(&c.last_snapshot_ms) as f64 / 1e3,
    );
    counter(
        "drift_keys",
        "Keys that differed at the last drift check.",
        "gauge",
        Counters::get(&c.drift_keys) as f64,
    );
    let shards = shared.snapshot();
    for (name, help, f) in [
        (
            "lag_bytes",
            "Bytes on disk not yet in the repository.",
            (|s: &crate::ship::status::ShardStatus| s.lag_bytes as f64) as fn(&_) -> f64,
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
    ] {
        let _ = writeln!(
            out,
            "# HELP aofvault_{name} {help}\n# TYPE aofvault_{name} gauge"
        );
        for s in &shards {
            let _ = writeln!(out, "aofvault_{name}{{shard=\"{}\"}} {}", s.shard, f(s));
        }
    }
    out
}

/// Serves `/metrics` on `addr` until cancelled.
pub async fn serve(
    addr: SocketAddr,
    shared: SharedRef,
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
            let shared = shared.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let (status, body) = if req.starts_with("GET /metrics") || req.starts_with("GET / ")
                {
                    ("200 OK", render(&shared))
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
