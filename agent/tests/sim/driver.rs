//! The driver: one seed, start to end. It builds a [`Scenario`] from the seed, then
//! interleaves server operations, tailer steps, store faults, the clock and snapshot
//! publishing; at checkpoints and at the end it asks the oracle. Everything random comes
//! from the seed; the clock is tokio's, paused and moved by hand.

use std::sync::Arc;
use std::time::Duration;

use aofvault::repo::Repo;
use aofvault::ship::status::{Shared, SharedRef};
use aofvault::ship::tailer::{ShipSettings, TailError, Tailer};
use aofvault::ship::Event;
use aofvault_formats::vault::{ChainHead, ServerLayout};
use object_store::memory::InMemory;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;

use super::kevy::Kevy;
use super::logs::{self, LogBuf};
use super::oracle;
use super::redis::{Redis7, Single};
use super::server::{Server, Trace};
use super::store::{Faults, FaultyStore};

const INSTANCE: &str = "sim";

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
}

/// Runs one seed on a current-thread runtime with tokio's clock paused.
pub fn run_seed(seed: u64) -> Result<Summary, Box<Failure>> {
    let scenario = Scenario::from_seed(seed);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let (_logging, logs) = logs::capture();
    let mut sim =
        Sim::new(seed, scenario.clone(), logs).map_err(|e| sim_error(seed, &scenario, e))?;
    let out = rt.block_on(sim.run());
    out.map_err(|(invariant, message)| {
        Box::new(Failure {
            seed,
            scenario,
            invariant,
            step: sim.trace.step,
            message,
            trace: std::mem::take(&mut sim.trace.lines),
        })
    })
}

fn sim_error(seed: u64, scenario: &Scenario, e: std::io::Error) -> Box<Failure> {
    Box::new(Failure {
        seed,
        scenario: scenario.clone(),
        invariant: "setup",
        step: 0,
        message: e.to_string(),
        trace: Vec::new(),
    })
}

/// Where the simulated servers' files go: `AOFVAULT_SIM_DIR`, else `/dev/shm`, else the
/// temp dir. A tmpfs never reuses an inode number and its timestamps only order events the
/// seed already orders, so a seed replays exactly; on a disk file system the kernel may hand
/// a freed inode number to the next file, at its own pace — closer to production, but a
/// seed's failure may then not replay.
fn files_dir() -> std::path::PathBuf {
    if let Some(d) = std::env::var_os("AOFVAULT_SIM_DIR") {
        return d.into();
    }
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        return shm.to_path_buf();
    }
    std::env::temp_dir()
}

/// (invariant, message)
type Broke = (&'static str, String);

/// The agent side: one tailer per shard and what the daemon's loop keeps about them.
struct Agent {
    tailers: Vec<Tailer>,
    events: mpsc::Receiver<Event>,
    shared: SharedRef,
    heads: Vec<Option<ChainHead>>,
    published_start: bool,
    snapshot_due: Option<String>,
    /// Each tailer's last step error (`None` after a step that succeeded).
    last_error: Vec<Option<String>>,
}

impl Agent {
    fn start(server: &dyn Server, repo: &Repo, segment_max: usize) -> Agent {
        let layout = server.layout();
        let record: ServerLayout = layout.record();
        let shards = server.shard_count();
        let shared = Shared::new(shards as u32);
        let (tx, events) = mpsc::channel(1024);
        let settings = ShipSettings {
            interval: Duration::from_secs(1),
            segment_max,
            poll: Duration::from_secs(1),
        };
        let tailers = (0..shards as u32)
            .map(|shard| {
                Tailer::new(
                    shard,
                    layout.follower(shard),
                    repo.clone(),
                    INSTANCE.to_string(),
                    record.clone(),
                    None,
                    settings.clone(),
                    shared.clone(),
                    tx.clone(),
                )
            })
            .collect();
        Agent {
            tailers,
            events,
            shared,
            heads: vec![None; shards],
            published_start: false,
            snapshot_due: None,
            last_error: vec![None; shards],
        }
    }

    fn starting(&self) -> bool {
        self.tailers.iter().any(|t| t.head().is_none())
    }
}

struct Sim {
    scenario: Scenario,
    rng: StdRng,
    _dir: tempfile::TempDir,
    server: Box<dyn Server>,
    store: Arc<FaultyStore>,
    /// The agent's view: through the faulty store.
    repo: Repo,
    /// The oracle's view: the same objects, no faults.
    truth: Repo,
    agent: Agent,
    trace: Trace,
    summary: Summary,
    last_real_ms: i64,
    logs: LogBuf,
}

impl Sim {
    fn new(seed: u64, scenario: Scenario, logs: LogBuf) -> std::io::Result<Sim> {
        let dir = tempfile::tempdir_in(files_dir())?;
        let server: Box<dyn Server> = match scenario.server {
            ServerKind::Kevy { shards } => {
                Box::new(Kevy::create(dir.path(), shards, scenario.torn_anywhere)?)
            }
            ServerKind::Redis7 => Box::new(Redis7::create(dir.path())?),
            ServerKind::Redis6 => Box::new(Single::create(dir.path())?),
        };
        let inner = Arc::new(InMemory::new());
        let store = Arc::new(FaultyStore::new(inner.clone(), scenario.faults, seed));
        let repo = Repo::from_store(store.clone(), "memory://sim", 0);
        let truth = Repo::from_store(inner, "memory://sim", 0);
        let agent = Agent::start(server.as_ref(), &repo, scenario.segment_max);
        Ok(Sim {
            rng: StdRng::seed_from_u64(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            scenario,
            _dir: dir,
            server,
            store,
            repo,
            truth,
            agent,
            trace: Trace::default(),
            summary: Summary::default(),
            last_real_ms: 0,
            logs,
        })
    }

    async fn run(&mut self) -> Result<Summary, Broke> {
        self.truth
            .ensure_format(0)
            .await
            .map_err(|e| ("setup", e.to_string()))?;
        for step in 1..=self.scenario.steps {
            self.trace.step = step;
            // Each step's faults come from the driver's stream: should the agent make one
            // store call more or less somewhere, only that step's faults move.
            self.store.reseed(self.rng.gen());
            let roll = self.rng.gen_range(0..100);
            // While a tailer has no chain yet the files must stay explainable: the agent's
            // start is stepped before the server moves on.
            if self.agent.starting() && roll < 60 {
                let shard = self.rng.gen_range(0..self.agent.tailers.len());
                self.tailer_step(shard, false).await?;
                continue;
            }
            match roll {
                0..=44 => self
                    .server
                    .op(&mut self.rng, &mut self.trace)
                    .map_err(|e| ("server", e.to_string()))?,
                45..=74 => {
                    let shard = self.rng.gen_range(0..self.agent.tailers.len());
                    let force = self.rng.gen_bool(0.1);
                    self.tailer_step(shard, force).await?;
                }
                75..=88 => {
                    let ms = self.rng.gen_range(10..2500);
                    self.advance(Duration::from_millis(ms)).await?;
                }
                89..=93 => {
                    if self.rng.gen_bool(0.3) {
                        self.agent.snapshot_due.get_or_insert("scheduled".into());
                    }
                    self.tick().await;
                }
                94..=97 => self.checkpoint().await?,
                _ if self.scenario.agent_restarts && self.server.agent_may_start() => {
                    self.restart_agent().await?;
                }
                _ => self.tailer_step(0, false).await?,
            }
        }
        self.trace.step += 1;
        self.finish().await?;
        self.summary.steps = self.scenario.steps;
        Ok(std::mem::take(&mut self.summary))
    }

    /// Moves tokio's clock (after the server finishes what it does within a tick).
    async fn advance(&mut self, d: Duration) -> Result<(), Broke> {
        self.server
            .settle(&mut self.trace)
            .map_err(|e| ("server", e.to_string()))?;
        self.trace.log(format!("clock +{d:?}"));
        tokio::time::advance(d).await;
        Ok(())
    }

    /// One `Tailer::step`, handled as `Tailer::run` handles its result.
    async fn tailer_step(&mut self, shard: usize, force: bool) -> Result<(), Broke> {
        if self.agent.tailers[shard].head().is_none() && !self.server.agent_may_start() {
            self.server
                .settle(&mut self.trace)
                .map_err(|e| ("server", e.to_string()))?;
            if !self.server.agent_may_start() {
                self.trace.log(format!(
                    "tailer {shard}: not started yet (the files are ambiguous)"
                ));
                return Ok(());
            }
        }
        let r = self.agent.tailers[shard].step(force).await;
        self.agent.last_error[shard] = r.as_ref().err().map(|e| e.to_string());
        let state = self.agent.shared.snapshot()[shard].clone();
        self.weave();
        if r.is_err() {
            // A failed chain start may have left a chain directory without a head; ids sort
            // by the wall clock's millisecond, so the next one must not share it.
            self.next_real_ms().await;
        }
        match r {
            Ok(()) => self.trace.log(format!(
                "tailer {shard}: step{} ok ({}; shipped to {})",
                if force { " (force)" } else { "" },
                state.state,
                state.shipped_offset
            )),
            Err(e) if e.is_transient() => {
                self.trace
                    .log(format!("tailer {shard}: step: transient error: {e}"));
            }
            Err(e @ TailError::Corrupt { .. }) => {
                self.trace.log(format!("tailer {shard}: step: halted: {e}"));
                self.agent.tailers[shard].halt();
            }
            Err(e) => {
                self.trace
                    .log(format!("tailer {shard}: step: stopped: {e}"));
                return Err((
                    "no permanent tailer error",
                    format!("shard {shard} stopped: {e}"),
                ));
            }
        }
        if let Some(id) = self.agent.tailers[shard]
            .head()
            .map(|h| h.source_identity.clone())
        {
            self.server.observed(shard, &id);
        }
        self.drain_events().await;
        Ok(())
    }

    /// Moves the store's faults and the agent's log lines into the trace.
    fn weave(&mut self) {
        for f in self.store.take_log() {
            self.trace.log(format!("  {f}"));
        }
        for l in self.logs.take_lines() {
            self.trace.log(format!("  agent: {}", l.trim()));
        }
    }

    async fn drain_events(&mut self) {
        while let Ok(ev) = self.agent.events.try_recv() {
            if let Event::ChainStarted {
                shard,
                head,
                reason,
            } = ev
            {
                self.trace.log(format!(
                    "  chain {} started on shard {shard} ({reason}, {} base part(s), stream from {})",
                    head.chain,
                    head.base.len(),
                    head.stream_start
                ));
                self.summary.chains += 1;
                self.agent.heads[shard as usize] = Some(*head);
                if self.agent.published_start && reason != "resumed" {
                    self.agent.snapshot_due.get_or_insert(reason);
                }
                // Chain ids start with the wall clock's millisecond: keep them in order.
                self.next_real_ms().await;
            }
        }
    }

    /// Waits for the wall clock's next millisecond (ids of chains and snapshots sort by it).
    async fn next_real_ms(&mut self) {
        loop {
            let now = chrono::Utc::now().timestamp_millis();
            if now > self.last_real_ms {
                self.last_real_ms = now;
                return;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// The daemon's tick: the first snapshot once every shard has a chain, then one for every
    /// new chain (or a scheduled one).
    async fn tick(&mut self) {
        if self.agent.heads.iter().any(Option::is_none) {
            return;
        }
        let reason = if !self.agent.published_start {
            "start".to_string()
        } else if let Some(r) = self.agent.snapshot_due.clone() {
            r
        } else {
            return;
        };
        self.next_real_ms().await;
        let heads: Vec<ChainHead> = self.agent.heads.iter().flatten().cloned().collect();
        let layout = self.server.layout().record();
        let r =
            aofvault::snapshot::publish(&self.repo, INSTANCE, &layout, None, &heads, &reason).await;
        self.weave();
        match r {
            Ok(m) => {
                self.trace
                    .log(format!("snapshot {} published ({reason})", m.id));
                self.summary.snapshots += 1;
                self.agent.published_start = true;
                if reason != "start" {
                    self.agent.snapshot_due = None;
                }
            }
            Err(e) => self
                .trace
                .log(format!("snapshot ({reason}) not published: {e}")),
        }
        self.next_real_ms().await;
    }

    /// The agent stops (flushing first, or killed) and starts again over the same repository.
    async fn restart_agent(&mut self) -> Result<(), Broke> {
        if self.rng.gen_bool(0.5) {
            self.trace.log("agent: stops (final flush)");
            for shard in 0..self.agent.tailers.len() {
                self.tailer_step(shard, true).await?;
            }
        } else {
            self.trace.log("agent: killed");
        }
        self.agent = Agent::start(self.server.as_ref(), &self.repo, self.scenario.segment_max);
        self.trace.log("agent: started");
        Ok(())
    }

    /// A restore now must show a state the server held at some moment, per shard.
    async fn checkpoint(&mut self) -> Result<(), Broke> {
        let shards = self.server.shard_count();
        let restored = oracle::restore_latest(&self.truth, INSTANCE, self.server.kind(), shards)
            .await
            .map_err(|e| ("restore succeeds", e))?;
        let Some(models) = restored else {
            self.trace.log("checkpoint: no snapshot yet");
            return Ok(());
        };
        for (i, m) in models.iter().enumerate() {
            let st = self.server.shard(i);
            if let Some(bad) = st.history.never_held(m) {
                return Err((
                    "a restore holds only what the server held",
                    format!(
                        "shard {i}: the restore holds {bad}, a value the server never had (against the server now: {})",
                        m.diff(&st.model)
                    ),
                ));
            }
            match st.history.when(m) {
                Some(at) => self
                    .trace
                    .log(format!("checkpoint: shard {i} restores the server's state of step {at}")),
                None => self.trace.log(format!(
                    "checkpoint: shard {i} restores a mix of states (a rewrite image partly stored?): {}",
                    m.diff(&st.model)
                )),
            }
        }
        oracle::check_segments(&self.truth, INSTANCE, shards)
            .await
            .map_err(|e| ("segments are written once", e))
    }

    /// The store heals, the server leaves clean files, the agent drains; the restore must then
    /// equal what the server holds.
    async fn finish(&mut self) -> Result<(), Broke> {
        self.trace.log("end: the store heals, the server settles");
        self.store.heal();
        self.server
            .heal(&mut self.rng, &mut self.trace)
            .map_err(|e| ("server", e.to_string()))?;
        let shards = self.agent.tailers.len();
        let mut drained = false;
        let mut calm = 0;
        for _ in 0..30 {
            self.advance(Duration::from_millis(1200)).await?;
            for shard in 0..shards {
                self.tailer_step(shard, true).await?;
            }
            self.tick().await;
            let status = self.agent.shared.snapshot();
            drained = (0..shards).all(|i| {
                let t = &mut self.agent.tailers[i];
                t.head().is_some()
                    && self.agent.last_error[i].is_none()
                    && status[i].state == "following"
                    && status[i].shipped_offset == t.follower.stream_len()
            });
            // Twice in a row: a follower that waits out a grace period looks again.
            calm = if drained { calm + 1 } else { 0 };
            if calm >= 2 && self.agent.snapshot_due.is_none() && self.agent.published_start {
                break;
            }
        }
        if !drained {
            let status = self.agent.shared.snapshot();
            let lag: Vec<String> = status
                .iter()
                .map(|s| {
                    let i = s.shard as usize;
                    format!(
                        "shard {i}: shipped to {} of {}, last step: {}",
                        s.shipped_offset,
                        self.agent.tailers[i].follower.stream_len(),
                        self.agent.last_error[i].as_deref().unwrap_or("ok")
                    )
                })
                .collect();
            return Err((
                "the agent drains once the store heals",
                format!("after 30 rounds: {}", lag.join("; ")),
            ));
        }
        let restored = oracle::restore_latest(&self.truth, INSTANCE, self.server.kind(), shards)
            .await
            .map_err(|e| ("restore succeeds", e))?
            .ok_or_else(|| {
                (
                    "a snapshot exists",
                    "no snapshot was ever published".to_string(),
                )
            })?;
        for (i, m) in restored.iter().enumerate() {
            let st = self.server.shard(i);
            if *m != st.model {
                let when = st
                    .history
                    .when(m)
                    .map_or("a state the server never held".to_string(), |s| {
                        format!("the server's state of step {s}")
                    });
                return Err((
                    "the final restore equals the server",
                    format!("shard {i}: the restore is {when}: {}", m.diff(&st.model)),
                ));
            }
        }
        self.trace.log("end: the restore equals the server");
        oracle::check_segments(&self.truth, INSTANCE, shards)
            .await
            .map_err(|e| ("segments are written once", e))
    }
}
