//! The oracle's checks, asked by the driver: at a checkpoint (a restore holds only what the
//! server held) and at the end (the store heals, the agent drains, the restore equals the
//! server).

use std::time::Duration;

use super::driver::{Broke, Sim, INSTANCE};
use super::oracle;

impl Sim {
    /// A restore now must show a state the server held at some moment, per shard.
    pub async fn checkpoint(&mut self) -> Result<(), Broke> {
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
    pub async fn finish(&mut self) -> Result<(), Broke> {
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
