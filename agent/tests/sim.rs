//! The follower simulation: deterministic, seed-driven runs of the agent's real follower and
//! shipper against simulated servers and a faulty store, checked by an oracle.
//!
//! The map (`tests/sim/`):
//! - `model.rs` — the oracle's keyspace (`SET`, `INCR`, `RPUSH`, `DEL`), the workload, and
//!   each shard's history of states;
//! - `server.rs` — the `Server` trait and what every simulated server shares (writes, frames
//!   split in two, crashes, the trace);
//! - `kevy.rs`, `redis.rs` — kevy 1.19 (1–2 shards), Redis 7 multi-part, Redis ≤ 6 single file,
//!   each changing real files in a temp dir the way the server does;
//! - `store.rs` — `InMemory` behind faults: failed requests, stalls, lost replies;
//! - `oracle.rs` — a restore with the library's own reading code, replayed into the model;
//! - `logs.rs` — the agent's log lines, captured into the trace;
//! - `driver.rs` — one seed: the scenario, the interleaving, the invariants.
//!
//! `AOFVAULT_SIM_SEEDS=<n>` runs seeds 0..n (default 40), `AOFVAULT_SIM_FIRST=<k>` starts at
//! `k`; `AOFVAULT_SIM_SEED=<n>` replays one seed and prints its whole trace. A failing seed
//! prints the invariant, the step, and the trace that led there.

#[path = "sim/driver.rs"]
mod driver;
#[path = "sim/kevy.rs"]
mod kevy;
#[path = "sim/logs.rs"]
mod logs;
#[path = "sim/model.rs"]
mod model;
#[path = "sim/oracle.rs"]
mod oracle;
#[path = "sim/redis.rs"]
mod redis;
#[path = "sim/server.rs"]
mod server;
#[path = "sim/store.rs"]
mod store;

use std::time::Instant;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

#[test]
fn follower_simulation() {
    if let Some(seed) = env_u64("AOFVAULT_SIM_SEED") {
        match driver::run_seed(seed) {
            Ok(s) => println!("seed {seed} passed: {s:?}"),
            Err(f) => panic!("{}", f.report(None)),
        }
        return;
    }
    let first = env_u64("AOFVAULT_SIM_FIRST").unwrap_or(0);
    let count = env_u64("AOFVAULT_SIM_SEEDS").unwrap_or(40);
    let started = Instant::now();
    let mut failures = Vec::new();
    for seed in first..first + count {
        if let Err(f) = driver::run_seed(seed) {
            println!(
                "SIM-FAIL seed {seed} ({:?}): `{}` at step {}: {}",
                f.scenario.server, f.invariant, f.step, f.message
            );
            failures.push(f);
        }
    }
    println!(
        "SIM-SUMMARY seeds={count} first={first} failed={} seconds={:.1}",
        failures.len(),
        started.elapsed().as_secs_f64()
    );
    if let Some(f) = failures.first() {
        panic!(
            "{} of {count} seeds failed; the first:\n{}",
            failures.len(),
            f.report(Some(80))
        );
    }
}
