//! Deterministic write workloads that every server under test accepts (kevy 1.19, Redis 7).
//!
//! A seed fixes the whole command sequence: [`commands`] turns `(seed, n, keys)` into the same
//! commands every time, [`mixed`] sends them pipelined, and [`background`] sends an endless
//! stream from a thread until stopped. Each key has one fixed type (its name says which), so no
//! command meets a WRONGTYPE error; commands touch one key each (kevy's AOF drops cross-shard
//! multi-key writes); TTLs are long (10–60 minutes) so that keys do not expire while a test
//! compares a restore with its source. Some values are binary (NUL, CR LF, 0xFF) to exercise
//! RESP framing.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};

/// Commands per pipeline in [`mixed`].
const PIPELINE: usize = 200;

/// One step of the SplitMix64 generator: a tiny, well-mixed PRNG whose output never changes
/// between versions of any crate (tests depend on the exact sequence).
pub fn splitmix64(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A seeded deterministic random source.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix64(self.0)
    }

    /// Uniform in `0..n` (`n > 0`; 0 gives 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

/// The six key families; a key's index decides its family.
const FAMILIES: [&str; 6] = ["str", "cnt", "list", "set", "hash", "zset"];

/// The name of key number `i` of a workload: `wl:{family}:{i}`.
pub fn key_name(i: u64) -> String {
    let family = FAMILIES[(i % FAMILIES.len() as u64) as usize];
    format!("wl:{family}:{i}")
}

fn value(rng: &mut Rng) -> Vec<u8> {
    let n = rng.next_u64();
    match n % 10 {
        0 => {
            let mut v = b"bin\x00\r\n\xff-".to_vec();
            v.extend_from_slice(&n.to_le_bytes());
            v
        }
        1 => vec![b'x'; 100 + (n % 900) as usize],
        _ => format!("v{}", n % 100_000).into_bytes(),
    }
}

fn member(rng: &mut Rng) -> String {
    format!("m{}", rng.below(20))
}

/// The next command of the sequence.
fn next_command(rng: &mut Rng, keys: usize) -> redis::Cmd {
    let i = rng.below(keys.max(1) as u64);
    let key = key_name(i);
    let roll = rng.below(100);
    // 4 % DEL and 4 % EXPIRE on any family; the rest is the family's own writes.
    if roll < 4 {
        return redis::cmd("DEL").arg(&key).clone();
    }
    if roll < 8 {
        let secs = 600 + rng.below(3000);
        return redis::cmd("EXPIRE").arg(&key).arg(secs).clone();
    }
    let mut cmd;
    match i % FAMILIES.len() as u64 {
        0 => {
            cmd = redis::cmd("SET");
            cmd.arg(&key).arg(value(rng));
            if rng.below(4) == 0 {
                cmd.arg("EX").arg(600 + rng.below(3000));
            }
        }
        1 => {
            cmd = redis::cmd("INCR");
            cmd.arg(&key);
        }
        2 => {
            let op = rng.below(3);
            cmd = redis::cmd(["RPUSH", "LPUSH", "LPOP"][op as usize]);
            cmd.arg(&key);
            if op < 2 {
                cmd.arg(value(rng));
            }
        }
        3 => {
            cmd = if rng.below(4) == 0 {
                redis::cmd("SREM")
            } else {
                redis::cmd("SADD")
            };
            cmd.arg(&key).arg(member(rng));
        }
        4 => {
            if rng.below(4) == 0 {
                cmd = redis::cmd("HDEL");
                cmd.arg(&key).arg(member(rng));
            } else {
                cmd = redis::cmd("HSET");
                cmd.arg(&key).arg(member(rng)).arg(value(rng));
            }
        }
        _ => {
            if rng.below(4) == 0 {
                cmd = redis::cmd("ZREM");
                cmd.arg(&key).arg(member(rng));
            } else {
                let score = rng.below(2001) as f64 / 4.0 - 250.0;
                cmd = redis::cmd("ZADD");
                cmd.arg(&key).arg(score).arg(member(rng));
            }
        }
    }
    cmd
}

/// The first `n` commands of the sequence for `seed` over `keys` keys.
pub fn commands(seed: u64, n: usize, keys: usize) -> Vec<redis::Cmd> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| next_command(&mut rng, keys)).collect()
}

/// Sends `n` deterministic mixed writes (see the module docs), pipelined; fails on the first
/// error reply.
pub fn mixed(conn: &mut redis::Connection, seed: u64, n: usize, keys: usize) -> Result<()> {
    let all = commands(seed, n, keys);
    for (chunk_no, chunk) in all.chunks(PIPELINE).enumerate() {
        let mut pipe = redis::pipe();
        for cmd in chunk {
            pipe.add_command(cmd.clone()).ignore();
        }
        pipe.query::<()>(conn).with_context(|| {
            format!(
                "workload seed {seed}: pipeline {chunk_no} (commands {}..{}) failed",
                chunk_no * PIPELINE,
                chunk_no * PIPELINE + chunk.len()
            )
        })?;
    }
    Ok(())
}

/// A writer thread started by [`background`].
#[derive(Debug)]
pub struct Background {
    stop: Arc<AtomicBool>,
    written: Arc<AtomicUsize>,
    errors: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    /// Commands acknowledged so far.
    pub fn written(&self) -> usize {
        self.written.load(Ordering::SeqCst)
    }

    /// Failed commands or connections so far (the writer reconnects and goes on).
    pub fn errors(&self) -> usize {
        self.errors.load(Ordering::SeqCst)
    }

    /// Stops the writer and waits for it; returns the number of commands acknowledged.
    pub fn stop(mut self) -> usize {
        self.halt();
        self.written()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Starts a thread that sends the endless command sequence of `seed` to `url`, one command at
/// a time, until [`Background::stop`]. On errors (server down) it counts them, waits 100 ms,
/// reconnects and continues with the next command.
pub fn background(url: String, seed: u64, keys: usize) -> Background {
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let thread = {
        let (stop, written, errors) = (stop.clone(), written.clone(), errors.clone());
        std::thread::spawn(move || {
            let mut rng = Rng::new(seed);
            let mut conn: Option<redis::Connection> = None;
            while !stop.load(Ordering::SeqCst) {
                if conn.is_none() {
                    match crate::server::connect(&url) {
                        Ok(c) => conn = Some(c),
                        Err(_) => {
                            errors.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(100));
                            continue;
                        }
                    }
                }
                let cmd = next_command(&mut rng, keys);
                let Some(c) = conn.as_mut() else { continue };
                match cmd.query::<redis::Value>(c) {
                    Ok(_) => {
                        written.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::SeqCst);
                        conn = None;
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }
        })
    };
    Background {
        stop,
        written,
        errors,
        thread: Some(thread),
    }
}
