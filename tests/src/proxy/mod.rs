//! [`FaultProxy`]: a TCP proxy on 127.0.0.1 that breaks the path to a server on demand.
//!
//! Put it between the agent and redis-server/kevy or the S3 gateway, point the agent at
//! [`FaultProxy::addr`], and switch [`Mode`] while the test runs: the agent must notice, fall
//! behind, say so, and recover — never corrupt or skip data. One accept thread hands each
//! connection to two pump threads (client→server, server→client) that relay bytes and look at
//! the mode between reads, so a mode change reaches existing connections within ~20 ms.
//! In `Http503Burst` the client→server pump follows HTTP request boundaries (see `http`) to
//! answer the next requests itself. [`Stats`] count what went through.

mod conn;
mod http;

use std::io::ErrorKind;
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use anyhow::{Context, Result};

use conn::serve;

/// How often pumps and the accept loop look at the mode.
const TICK: Duration = Duration::from_millis(20);

/// What the proxy does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Relay everything.
    Pass,
    /// Close existing connections and every new one right after accepting it.
    Reset,
    /// Keep connections open but relay nothing (bytes wait; new connections are accepted).
    Stall,
    /// Relay at most this many bytes per second, per direction and connection.
    Slow(u64),
    /// Answer the next `n` HTTP requests with `503 Slow Down` + `Connection: close`, then Pass
    /// (for HTTP targets: the S3 gateway).
    Http503Burst(u32),
    /// Refuse: the listening socket is closed (connection refused) and open connections closed.
    Down,
}

/// Counters since the proxy started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted.
    pub connections: u64,
    /// Connections currently open.
    pub active: u64,
    /// Bytes relayed client → server.
    pub bytes_up: u64,
    /// Bytes relayed server → client.
    pub bytes_down: u64,
    /// Requests answered with the canned 503.
    pub http_503s: u64,
    /// Connections closed by `Reset` or `Down`.
    pub resets: u64,
}

#[derive(Debug)]
struct Shared {
    mode: Mutex<Mode>,
    burst_left: AtomicI64,
    shutdown: AtomicBool,
    connections: AtomicU64,
    active: AtomicI64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    http_503s: AtomicU64,
    resets: AtomicU64,
}

impl Shared {
    fn mode(&self) -> Mode {
        match self.mode.lock() {
            Ok(m) => *m,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    /// Claims one 503 from the burst budget.
    fn claim_503(&self) -> bool {
        matches!(self.mode(), Mode::Http503Burst(_))
            && self
                .burst_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    (n > 0).then(|| n - 1)
                })
                .is_ok()
    }
}

/// The proxy; stops (and closes every connection) on drop. See the module docs.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on a free 127.0.0.1 port and relays to `target`, in `Pass` mode.
    pub fn start(target: SocketAddr) -> Result<Self> {
        let mut last = None;
        for _ in 0..10 {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, crate::free_port()));
            match TcpListener::bind(addr) {
                Ok(listener) => return Self::with_listener(listener, addr, target),
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .map(anyhow::Error::from)
            .unwrap_or_else(|| anyhow::anyhow!("no port")))
        .context("binding the fault proxy")
    }

    fn with_listener(listener: TcpListener, addr: SocketAddr, target: SocketAddr) -> Result<Self> {
        listener
            .set_nonblocking(true)
            .context("non-blocking listener")?;
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Pass),
            burst_left: AtomicI64::new(0),
            shutdown: AtomicBool::new(false),
            connections: AtomicU64::new(0),
            active: AtomicI64::new(0),
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
            http_503s: AtomicU64::new(0),
            resets: AtomicU64::new(0),
        });
        let acceptor = {
            let shared = shared.clone();
            thread::Builder::new()
                .name(format!("fault-proxy-{}", addr.port()))
                .spawn(move || accept_loop(Some(listener), addr, target, &shared))
                .context("starting the proxy thread")?
        };
        Ok(Self {
            addr,
            target,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where it relays to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// `redis://127.0.0.1:PORT` through the proxy.
    pub fn redis_url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT` through the proxy (an S3 endpoint).
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Switches the mode; existing connections follow within a few milliseconds.
    pub fn set_mode(&self, mode: Mode) {
        if let Mode::Http503Burst(n) = mode {
            self.shared.burst_left.store(i64::from(n), Ordering::SeqCst);
        }
        match self.shared.mode.lock() {
            Ok(mut m) => *m = mode,
            Err(poisoned) => *poisoned.into_inner() = mode,
        }
    }

    /// The current mode (`Http503Burst` reports what is left of the burst).
    pub fn mode(&self) -> Mode {
        match self.shared.mode() {
            Mode::Http503Burst(_) => {
                let left = self.shared.burst_left.load(Ordering::SeqCst).max(0);
                Mode::Http503Burst(u32::try_from(left).unwrap_or(u32::MAX))
            }
            other => other,
        }
    }

    pub fn stats(&self) -> Stats {
        let s = &self.shared;
        Stats {
            connections: s.connections.load(Ordering::SeqCst),
            active: u64::try_from(s.active.load(Ordering::SeqCst)).unwrap_or(0),
            bytes_up: s.bytes_up.load(Ordering::SeqCst),
            bytes_down: s.bytes_down.load(Ordering::SeqCst),
            http_503s: s.http_503s.load(Ordering::SeqCst),
            resets: s.resets.load(Ordering::SeqCst),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

/// Accepts connections; closes the listener while `Down` and binds it again after.
fn accept_loop(
    mut listener: Option<TcpListener>,
    addr: SocketAddr,
    target: SocketAddr,
    shared: &Arc<Shared>,
) {
    while !shared.stopping() {
        let mode = shared.mode();
        if mode == Mode::Down {
            listener = None;
            thread::sleep(TICK);
            continue;
        }
        let Some(l) = listener.as_ref() else {
            // Back from Down: the port is ours again (std sets SO_REUSEADDR).
            match TcpListener::bind(addr).and_then(|l| l.set_nonblocking(true).map(|()| l)) {
                Ok(l) => listener = Some(l),
                Err(_) => thread::sleep(TICK),
            }
            continue;
        };
        match l.accept() {
            Ok((client, _)) => {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                if mode == Mode::Reset {
                    shared.resets.fetch_add(1, Ordering::SeqCst);
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let shared = shared.clone();
                let _ = thread::Builder::new()
                    .name("fault-proxy-conn".into())
                    .spawn(move || serve(client, target, &shared));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(TICK),
            Err(_) => thread::sleep(TICK),
        }
    }
}
