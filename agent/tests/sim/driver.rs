//! The driver: one seed, start to end. It builds a [`Scenario`] from the seed, then
//! interleaves server operations, tailer steps, store faults, the clock and snapshot
//! publishing; at checkpoints and at the end it asks the oracle. Everything random comes
//! from the seed; the clock is tokio's, paused and moved by hand.

use std::sync::Arc;
use std::time::Duration;

use aofvault::repo::Repo;
use aofvault::ship::tailer::TailError;
use aofvault::ship::Event;
use aofvault::source::ChainReason;
use aofvault_formats::vault::ChainHead;
use object_store::memory::InMemory;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::agent::Agent;
use super::kevy::Kevy;
use super::logs::{self, LogBuf};
use super::redis::{Redis7, Single};
use super::scenario::{files_dir, Failure, Scenario, ServerKind, Summary};
use super::server::{Server, Trace};
use super::store::FaultyStore;

pub const INSTANCE: &str = "sim";

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
    out.map(|summary| Summary {
        digest: sim.trace.digest(),
        ..summary
    })
    .map_err(|(invariant, message)| {
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

/// (invariant, message)
pub type Broke = (&'static str, String);

pub struct Sim {
    pub scenario: Scenario,
    pub rng: StdRng,
    pub _dir: tempfile::TempDir,
    pub server: Box<dyn Server>,
    pub store: Arc<FaultyStore>,
    /// The agent's view: through the faulty store.
    pub repo: Repo,
    /// The oracle's view: the same objects, no faults.
    pub truth: Repo,
    pub agent: Agent,
    pub trace: Trace,
    pub summary: Summary,
    pub last_real_ms: i64,
    pub logs: LogBuf,
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
    pub async fn advance(&mut self, d: Duration) -> Result<(), Broke> {
        self.server
            .settle(&mut self.trace)
            .map_err(|e| ("server", e.to_string()))?;
        self.trace.log(format!("clock +{d:?}"));
        tokio::time::advance(d).await;
        Ok(())
    }

    /// One `Tailer::step`, handled as `Tailer::run` handles its result.
    pub async fn tailer_step(&mut self, shard: usize, force: bool) -> Result<(), Broke> {
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
                if self.agent.published_start && reason != ChainReason::Resumed {
                    self.agent
                        .snapshot_due
                        .get_or_insert(reason.as_str().to_string());
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
    pub async fn tick(&mut self) {
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
}
