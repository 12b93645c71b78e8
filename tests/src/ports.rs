//! Free TCP ports on 127.0.0.1 for the servers the tests start.
//!
//! Several test binaries (and several engineers) run at once on one machine, so a port must not
//! only be free now but unlikely to be picked by anyone else a moment later. Ports are drawn at
//! random from 20000–32767, below Linux's ephemeral range (32768–60999) where outgoing
//! connections get their local ports, checked by binding them, and never handed out twice by
//! one process. A server that still loses the race fails with "Address already in use"; the
//! guards then retry on another port.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

const LOW: u16 = 20_000;
const HIGH: u16 = 32_767;

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static SET: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    SET.get_or_init(|| Mutex::new(HashSet::new()))
}

/// A small per-process random sequence: seeded from the pid and the clock so that
/// concurrent processes draw different ports.
fn next_random() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        nanos ^ (u64::from(std::process::id()) << 32)
    };
    let prev = STATE.fetch_add(0x9E37_79B9_7F4A_7C15 ^ seed, Ordering::Relaxed);
    crate::workload::splitmix64(prev ^ seed)
}

/// A port on 127.0.0.1 that was free a moment ago and that this process has not handed out
/// before. Panics only if no port of the range can be bound at all.
pub fn free_port() -> u16 {
    let span = u64::from(HIGH - LOW) + 1;
    for _ in 0..10_000 {
        let port = LOW + (next_random() % span) as u16;
        let mut taken = match handed_out().lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if taken.contains(&port) {
            continue;
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            taken.insert(port);
            return port;
        }
    }
    panic!("no free TCP port in {LOW}..={HIGH} on 127.0.0.1");
}

/// Whether a server's log says it could not bind its port (so a retry on another port helps).
pub(crate) fn log_says_port_taken(log: &str) -> bool {
    let lower = log.to_ascii_lowercase();
    lower.contains("address already in use") || lower.contains("addrinuse")
}
