//! One proxied connection: two pumps relaying bytes and obeying the [`Mode`].
//!
//! Each pump reads with a short timeout so that it looks at the mode between reads: it closes
//! both sockets on `Reset`/`Down`, stops reading on `Stall` (so TCP backpressure builds up as
//! with a hung peer), throttles on `Slow`, and — client→server only — answers a request with
//! the canned 503 when a burst is on and a new request begins.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::http::{head_end, parse_head, slow_down_response, RequestTracker};
use super::{Mode, Shared, TICK};

/// How long to wait for the body of a request that gets a 503.
const SWALLOW_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection: connect upstream, run both pumps, wait for them.
pub(super) fn serve(client: TcpStream, target: SocketAddr, shared: &Arc<Shared>) {
    let _ = client.set_nonblocking(false);
    let upstream = match TcpStream::connect_timeout(&target, Duration::from_secs(5)) {
        Ok(s) => s,
        Err(_) => {
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    shared.active.fetch_add(1, Ordering::SeqCst);
    let down = {
        let shared = shared.clone();
        thread::spawn(move || pump(u2, c2, Direction::Down, &shared))
    };
    pump(client, upstream, Direction::Up, shared);
    let _ = down.join();
    shared.active.fetch_sub(1, Ordering::SeqCst);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// client → server
    Up,
    /// server → client
    Down,
}

fn close_both(a: &TcpStream, b: &TcpStream) {
    let _ = a.shutdown(Shutdown::Both);
    let _ = b.shutdown(Shutdown::Both);
}

/// Relays `src` → `dst` following the mode until either side closes.
fn pump(mut src: TcpStream, mut dst: TcpStream, dir: Direction, shared: &Shared) {
    let _ = src.set_read_timeout(Some(TICK));
    let mut tracker = (dir == Direction::Up).then(RequestTracker::new);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if shared.stopping() {
            close_both(&src, &dst);
            return;
        }
        let mode = shared.mode();
        let limit = match mode {
            Mode::Reset | Mode::Down => {
                if dir == Direction::Up {
                    shared.resets.fetch_add(1, Ordering::SeqCst);
                }
                close_both(&src, &dst);
                return;
            }
            Mode::Stall => {
                thread::sleep(TICK);
                continue;
            }
            // A tick's worth of bytes per read, at least one.
            Mode::Slow(bps) => usize::try_from((bps / 50).max(1))
                .unwrap_or(1)
                .min(buf.len()),
            Mode::Pass | Mode::Http503Burst(_) => buf.len(),
        };
        let n = match src.read(&mut buf[..limit]) {
            Ok(0) => {
                let _ = dst.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(_) => {
                close_both(&src, &dst);
                return;
            }
        };
        if let Some(t) = tracker.as_mut() {
            if t.at_boundary() && shared.claim_503() {
                answer_503(&mut src, &buf[..n], shared);
                close_both(&src, &dst);
                return;
            }
            t.feed(&buf[..n]);
        }
        if dst.write_all(&buf[..n]).is_err() {
            close_both(&src, &dst);
            return;
        }
        let counter = match dir {
            Direction::Up => &shared.bytes_up,
            Direction::Down => &shared.bytes_down,
        };
        counter.fetch_add(n as u64, Ordering::SeqCst);
        if let Mode::Slow(bps) = mode {
            let secs = n as f64 / bps.max(1) as f64;
            thread::sleep(Duration::from_secs_f64(secs.min(5.0)));
        }
    }
}

/// Reads the rest of the request that starts with `first` (head, then body unless the client
/// waits for `100 Continue`) and answers it with the canned 503.
fn answer_503(client: &mut TcpStream, first: &[u8], shared: &Shared) {
    let deadline = Instant::now() + SWALLOW_TIMEOUT;
    let mut seen = first.to_vec();
    let mut chunk = [0u8; 16 * 1024];
    let head_len = loop {
        if let Some(end) = head_end(&seen) {
            break Some(end);
        }
        if Instant::now() >= deadline {
            break None;
        }
        match client.read(&mut chunk) {
            Ok(0) => break None,
            Ok(n) => seen.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => break None,
        }
    };
    if let Some(end) = head_len {
        let head = parse_head(&seen[..end]);
        if !head.expect_continue && !head.chunked {
            let mut left = head
                .content_length
                .saturating_sub((seen.len() - end) as u64);
            while left > 0 && Instant::now() < deadline {
                match client.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => left = left.saturating_sub(n as u64),
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                        ) => {}
                    Err(_) => break,
                }
            }
        }
    }
    shared.http_503s.fetch_add(1, Ordering::SeqCst);
    let _ = client.write_all(&slow_down_response());
    let _ = client.flush();
}
