//! Sending the commands of a live replay: batches of already-encoded RESP commands, several on
//! the wire at once, every reply read back and every error reply kept.
//!
//! The decoder thread encodes commands straight into a batch buffer ([`BatchSink`]); nothing
//! is parsed twice. A plain `redis://` target gets the batches over a bare TCP connection
//! ([`send_tcp`]): one task writes batches while another reads their replies, as
//! `redis-cli --pipe` does, with at most [`IN_FLIGHT`] batches between the two. Other targets
//! (`rediss://`, unix sockets) go through the `redis` crate ([`send_client`]), which handles
//! TLS; it is slower, because each batch becomes a `redis::Pipeline` again.

use std::time::Duration;

use anyhow::{bail, Context};
use aofvault_formats::resp;
use futures::stream::FuturesOrdered;
use futures::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::restore::feed::Sink;
use crate::restore::progress::Progress;
use crate::restore::translate::label;

/// Commands per batch.
const BATCH: usize = 1000;
/// A batch is also closed once it holds this many bytes.
const BATCH_BYTES: usize = 512 << 10;
/// Batches on the wire (sent, replies not yet read) per connection.
pub const IN_FLIGHT: usize = 4;
/// Error replies kept for the report, per connection.
const KEEP_ERRORS: usize = 10;

/// Encoded commands and where each one starts.
#[derive(Default)]
pub struct Batch {
    /// The source shard the commands come from (for messages).
    shard: u32,
    bytes: Vec<u8>,
    starts: Vec<u32>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// The arguments of command `i` (for messages).
    pub fn args(&self, i: usize) -> Vec<&[u8]> {
        let start = self.starts.get(i).map_or(0, |&s| s as usize);
        match resp::decode_command(&self.bytes[start..], 0) {
            Ok(Some((args, _))) => args,
            _ => Vec::new(),
        }
    }
}

/// Builds batches on the decoder thread and hands them over.
pub struct BatchSink {
    tx: mpsc::Sender<Batch>,
    shard: u32,
    batch: Batch,
    progress: Progress,
    /// Bytes consumed since the last report (reported per batch, not per command).
    consumed: u64,
}

impl BatchSink {
    pub fn new(tx: mpsc::Sender<Batch>, shard: u32, progress: Progress) -> BatchSink {
        BatchSink {
            tx,
            shard,
            batch: Batch {
                shard,
                ..Batch::default()
            },
            progress,
            consumed: 0,
        }
    }

    /// Sends the batch being built (call once more at the end).
    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.progress.add_bytes(std::mem::take(&mut self.consumed));
        if self.batch.starts.is_empty() {
            return Ok(());
        }
        let next = Batch {
            shard: self.shard,
            ..Batch::default()
        };
        let full = std::mem::replace(&mut self.batch, next);
        self.tx
            .blocking_send(full)
            .map_err(|_| anyhow::anyhow!("the replay stopped"))
    }
}

impl BatchSink {
    /// Appends one command, written into the batch by `put`.
    fn push(&mut self, put: impl FnOnce(&mut Vec<u8>)) -> anyhow::Result<()> {
        let start = u32::try_from(self.batch.bytes.len()).context("batch too large")?;
        self.batch.starts.push(start);
        put(&mut self.batch.bytes);
        if self.batch.starts.len() >= BATCH || self.batch.bytes.len() >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }
}

impl Sink for BatchSink {
    fn command(&mut self, args: &[&[u8]]) -> anyhow::Result<()> {
        self.push(|bytes| resp::encode_command(args, bytes))
    }

    /// The stored frame is already the RESP the target reads: appended as it is.
    fn raw(&mut self, _args: &[&[u8]], frame: &[u8]) -> anyhow::Result<()> {
        self.push(|bytes| bytes.extend_from_slice(frame))
    }

    fn consumed(&mut self, n: u64) {
        self.consumed += n;
    }
}

/// What one connection sent.
#[derive(Default)]
pub struct Sent {
    pub commands: u64,
    pub errors: u64,
    pub first_errors: Vec<String>,
    /// Commands a cluster node answered with `MOVED` or `ASK`, with the reply, in order: a
    /// cluster replay sends them again where the reply says (`super::cluster`); anywhere
    /// else they count as errors.
    pub redirected: Vec<(Vec<Vec<u8>>, String)>,
}

impl Sent {
    fn error(&mut self, batch: &Batch, i: usize, message: &str) {
        let shard = batch.shard;
        self.errors += 1;
        if self.first_errors.len() < KEEP_ERRORS {
            self.first_errors.push(format!(
                "shard {shard}: `{}`: {message}",
                label(&batch.args(i))
            ));
        }
    }
}

/// Where a plain TCP replay connects, and how it logs in.
#[derive(Debug, Clone)]
pub struct TcpTarget {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: u32,
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl TcpTarget {
    /// A `redis://` URL as a plain TCP target; `None` for other schemes (TLS, unix sockets).
    pub fn from_url(url: &str) -> Option<TcpTarget> {
        let u = url::Url::parse(url).ok()?;
        if u.scheme() != "redis" {
            return None;
        }
        let host = match u.host()? {
            url::Host::Domain(d) => d.to_string(),
            url::Host::Ipv4(a) => a.to_string(),
            url::Host::Ipv6(a) => a.to_string(),
        };
        let username = Some(percent_decode(u.username())).filter(|s| !s.is_empty());
        let password = u.password().map(percent_decode);
        let db = u.path().trim_start_matches('/').parse().unwrap_or(0);
        Some(TcpTarget {
            host,
            port: u.port().unwrap_or(6379),
            username,
            password,
            db,
        })
    }
}

/// Reads one reply; returns the message of a top-level error reply.
async fn read_reply<R: AsyncBufRead + Unpin>(
    r: &mut R,
    line: &mut Vec<u8>,
    skip: &mut Vec<u8>,
) -> anyhow::Result<Option<String>> {
    let mut pending = 1u64;
    let mut top_error = None;
    let mut first = true;
    while pending > 0 {
        pending -= 1;
        line.clear();
        if r.read_until(b'\n', line).await? == 0 {
            bail!("the target closed the connection");
        }
        let text = line.strip_suffix(b"\r\n").unwrap_or(line);
        let number = || -> anyhow::Result<i64> {
            std::str::from_utf8(&text[1..])
                .ok()
                .and_then(|t| t.parse().ok())
                .context("a malformed reply from the target")
        };
        match text.first() {
            Some(b'+' | b':' | b'_' | b',' | b'#' | b'(') => {}
            Some(b'-') => {
                if first {
                    top_error = Some(String::from_utf8_lossy(&text[1..]).into_owned());
                }
            }
            Some(b'$' | b'!' | b'=') => {
                let n = number()?;
                if n >= 0 {
                    skip.resize(n as usize + 2, 0);
                    r.read_exact(skip).await?;
                }
            }
            Some(b'*' | b'~' | b'>') => pending += number()?.max(0) as u64,
            Some(b'%' | b'|') => pending += 2 * number()?.max(0) as u64,
            _ => bail!(
                "an unexpected reply from the target: {:?}",
                String::from_utf8_lossy(text)
            ),
        }
        first = false;
    }
    Ok(top_error)
}

/// Whether an error reply is a cluster redirection (its code, the first word, is `MOVED` or
/// `ASK`: part of the protocol, not message text).
pub fn is_redirect(reply: &str) -> bool {
    matches!(reply.split(' ').next(), Some("MOVED" | "ASK"))
}

/// A logged-in bare TCP connection.
pub struct TcpConn {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
}

/// Connects to `target`, logs in and selects its database.
pub async fn open_tcp(target: &TcpTarget) -> anyhow::Result<TcpConn> {
    let connect = tokio::net::TcpStream::connect((target.host.as_str(), target.port));
    let stream = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .context("connecting timed out")??;
    stream.set_nodelay(true)?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::with_capacity(64 << 10, r);
    let (mut line, mut skip) = (Vec::new(), Vec::new());
    let mut hello: Vec<Vec<&[u8]>> = Vec::new();
    let db = target.db.to_string();
    if let Some(pw) = &target.password {
        hello.push(match &target.username {
            Some(u) => vec![b"AUTH", u.as_bytes(), pw.as_bytes()],
            None => vec![b"AUTH", pw.as_bytes()],
        });
    }
    if target.db != 0 {
        hello.push(vec![b"SELECT", db.as_bytes()]);
    }
    for cmd in &hello {
        let mut buf = Vec::new();
        resp::encode_command(cmd, &mut buf);
        w.write_all(&buf).await?;
        if let Some(e) = read_reply(&mut r, &mut line, &mut skip).await? {
            bail!("`{}` was refused: {e}", String::from_utf8_lossy(cmd[0]));
        }
    }
    Ok(TcpConn { r, w })
}

/// Replays batches over a bare TCP connection (see the module doc).
pub async fn send_tcp(
    conn: TcpConn,
    mut rx: mpsc::Receiver<Batch>,
    progress: Progress,
) -> anyhow::Result<Sent> {
    let TcpConn { mut r, mut w } = conn;
    let (mut line, mut skip) = (Vec::new(), Vec::new());
    let (done_tx, mut done_rx) = mpsc::channel::<Batch>(IN_FLIGHT);
    let writer = async move {
        while let Some(batch) = rx.recv().await {
            w.write_all(&batch.bytes)
                .await
                .context("writing to the target")?;
            if done_tx.send(batch).await.is_err() {
                break;
            }
        }
        drop(done_tx);
        anyhow::Ok(w)
    };
    let reader = async {
        let mut sent = Sent::default();
        while let Some(batch) = done_rx.recv().await {
            let mut i = 0;
            while i < batch.len() {
                // Most replies are `+OK`: take those straight from the buffer.
                let oks = r
                    .buffer()
                    .chunks_exact(5)
                    .take(batch.len() - i)
                    .take_while(|c| *c == b"+OK\r\n")
                    .count();
                if oks > 0 {
                    std::pin::Pin::new(&mut r).consume(oks * 5);
                    i += oks;
                    continue;
                }
                if let Some(e) = read_reply(&mut r, &mut line, &mut skip).await? {
                    if is_redirect(&e) {
                        let args = batch.args(i).iter().map(|a| a.to_vec()).collect();
                        sent.redirected.push((args, e));
                    } else {
                        sent.error(&batch, i, &e);
                    }
                }
                i += 1;
            }
            sent.commands += batch.len() as u64;
            progress.add_commands(batch.len() as u64);
        }
        anyhow::Ok(sent)
    };
    let (written, read) = tokio::join!(writer, reader);
    let sent = read?;
    written?;
    Ok(sent)
}

/// Replays batches through the `redis` crate (TLS, unix sockets).
pub async fn send_client(
    conn: MultiplexedConnection,
    mut rx: mpsc::Receiver<Batch>,
    progress: Progress,
) -> anyhow::Result<Sent> {
    let mut sent = Sent::default();
    let mut inflight = FuturesOrdered::new();
    let mut open = true;
    loop {
        // Polling `inflight` is what puts a pushed batch on the wire: keep polling it while
        // waiting for the decoder.
        let (batch, result) = tokio::select! {
            biased;
            Some(done) = inflight.next(), if !inflight.is_empty() => done,
            next = rx.recv(), if open && inflight.len() < IN_FLIGHT => {
                match next {
                    Some(batch) => {
                        let mut c = conn.clone();
                        inflight.push_back(async move {
                            let mut pipe = redis::Pipeline::with_capacity(batch.len());
                            for i in 0..batch.len() {
                                let mut cmd = redis::Cmd::new();
                                for a in batch.args(i) {
                                    cmd.arg(a);
                                }
                                pipe.add_command(cmd);
                            }
                            let r = c.send_packed_commands(&pipe, 0, batch.len()).await;
                            (batch, r)
                        });
                    }
                    None => open = false,
                }
                continue;
            }
            else => break,
        };
        let replies = result.context("the target stopped answering")?;
        for (i, reply) in replies.iter().enumerate() {
            if let Value::ServerError(e) = reply {
                sent.error(&batch, i, &e.to_string());
            }
        }
        sent.commands += batch.len() as u64;
        progress.add_commands(batch.len() as u64);
    }
    Ok(sent)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replies_are_counted_and_top_level_errors_found() {
        let wire = b"+OK\r\n-ERR wrong\r\n*2\r\n$1\r\na\r\n*1\r\n-ERR inner\r\n$-1\r\n:5\r\n$3\r\nx\r\n\r\n";
        let mut r = BufReader::new(&wire[..]);
        let (mut line, mut skip) = (Vec::new(), Vec::new());
        let mut got = Vec::new();
        for _ in 0..6 {
            got.push(read_reply(&mut r, &mut line, &mut skip).await.unwrap());
        }
        assert_eq!(
            got,
            vec![None, Some("ERR wrong".into()), None, None, None, None]
        );
        assert!(
            read_reply(&mut r, &mut line, &mut skip).await.is_err(),
            "end of stream"
        );
    }

    #[test]
    fn urls_become_tcp_targets() {
        let t = TcpTarget::from_url("redis://us%65r:p%40ss@127.0.0.1:7000/3").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.db), ("127.0.0.1", 7000, 3));
        assert_eq!(
            (t.username.as_deref(), t.password.as_deref()),
            (Some("user"), Some("p@ss"))
        );
        assert!(TcpTarget::from_url("rediss://h:1").is_none());
        assert_eq!(TcpTarget::from_url("redis://h").unwrap().port, 6379);
    }
}
