//! What a seed decides before its first step ([`Scenario`]), what a failing seed reports
//! ([`Failure`]), and where the simulated servers keep their files.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::store::Faults;

/// Which server a seed simulates.
#[derive(Debug, Clone, Copy)]
pub enum ServerKind {
    Kevy { shards: u32 },
    Redis7,
    Redis6,
}

/// Everything a seed decides before its first step.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub server: ServerKind,
    pub faults: Faults,
    pub segment_max: usize,
    pub steps: usize,
    pub agent_restarts: bool,
    /// kevy crashes tear frames anywhere (`AOFVAULT_SIM_TORN_ANYWHERE=1`), not only in their
    /// first line: a known hazard of kevy 1.19's files, off by default.
    pub torn_anywhere: bool,
}

impl Scenario {
    pub fn from_seed(seed: u64) -> Scenario {
        let mut r = StdRng::seed_from_u64(seed);
        let server = match r.gen_range(0..6) {
            0 | 1 => ServerKind::Kevy { shards: 1 },
            2 => ServerKind::Kevy { shards: 2 },
            3 | 4 => ServerKind::Redis7,
            _ => ServerKind::Redis6,
        };
        let faults = match r.gen_range(0..3) {
            0 => Faults::default(),
            1 => Faults {
                fail: 0.25,
                stall: 0.1,
                lose_reply: 0.0,
            },
            _ => Faults {
                fail: 0.1,
                stall: 0.05,
                lose_reply: 0.2,
            },
        };
        Scenario {
            server,
            faults,
            segment_max: [96, 256, 1024][r.gen_range(0..3)],
            steps: r.gen_range(120..260),
            agent_restarts: r.gen_bool(0.5),
            torn_anywhere: std::env::var("AOFVAULT_SIM_TORN_ANYWHERE").is_ok_and(|v| v == "1"),
        }
    }
}

/// A broken invariant: which, where, and how the seed got there.
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub scenario: Scenario,
    pub invariant: &'static str,
    pub step: usize,
    pub message: String,
    pub trace: Vec<String>,
}

impl Failure {
    /// [`Trace::digest`](super::server::Trace::digest) of the failing seed's trace.
    pub fn digest(&self) -> u64 {
        super::server::Trace {
            lines: self.trace.clone(),
            step: self.step,
        }
        .digest()
    }

    /// The report a failing seed prints: the last `tail` trace lines (all with `None`).
    pub fn report(&self, tail: Option<usize>) -> String {
        let skip = tail.map_or(0, |n| self.trace.len().saturating_sub(n));
        let mut out = format!(
            "seed {} ({:?}): invariant `{}` broke at step {}: {}\n  replay: AOFVAULT_SIM_SEED={} cargo test -p aofvault --test sim -- --nocapture\n  trace{}:\n",
            self.seed,
            self.scenario,
            self.invariant,
            self.step,
            self.message,
            self.seed,
            if skip > 0 { format!(" (last {} of {} lines)", self.trace.len() - skip, self.trace.len()) } else { String::new() },
        );
        for l in &self.trace[skip..] {
            out.push_str("    ");
            out.push_str(l);
            out.push('\n');
        }
        out
    }
}

/// What a passing seed did (for the summary line).
#[derive(Debug, Default)]
pub struct Summary {
    pub steps: usize,
    pub chains: usize,
    pub snapshots: usize,
    /// [`Trace::digest`](super::server::Trace::digest) of the seed's trace.
    pub digest: u64,
}

/// Where the simulated servers' files go: `AOFVAULT_SIM_DIR`, else `/dev/shm`, else the
/// temp dir. A tmpfs never reuses an inode number and its timestamps only order events the
/// seed already orders, so a seed replays exactly; on a disk file system the kernel may hand
/// a freed inode number to the next file, at its own pace — closer to production, but a
/// seed's failure may then not replay.
pub fn files_dir() -> std::path::PathBuf {
    if let Some(d) = std::env::var_os("AOFVAULT_SIM_DIR") {
        return d.into();
    }
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        return shm.to_path_buf();
    }
    std::env::temp_dir()
}
