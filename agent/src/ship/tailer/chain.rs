//! The chain step of the shipping path: taking the repository's newest chain up again after a
//! restart ([`Tailer::resume`], only when the follower proves the files are the same), and
//! starting a new one ([`Tailer::start_chain`]: pin, store the base, then the head).

use aofvault_formats::vault::{BasePart, ChainHead, FORMAT_VERSION};

use std::io::{Seek, SeekFrom};

use super::{now_ms, Open, Owed, TailError, Tailer};
use crate::repo::{keys, ShardId};
use crate::ship::Event;
use crate::source::ChainReason;
use crate::status::Counters;

impl Tailer {
    /// After a restart: continue the newest chain if the files are provably the same.
    pub(super) async fn resume(&mut self) -> Result<bool, TailError> {
        let shard = ShardId(self.shard);
        let ids = self
            .repo
            .chain_ids(&self.instance, shard)
            .await
            .map_err(|e| self.repo_err(e))?;
        for id in ids.iter().rev() {
            let Some(head) = self
                .repo
                .chain_head(&self.instance, shard, id)
                .await
                .map_err(|e| self.repo_err(e))?
            else {
                continue; // a chain whose head was never written: abandoned during its base upload
            };
            let segs = self
                .repo
                .segments(&self.instance, shard, id)
                .await
                .map_err(|e| self.repo_err(e))?;
            let segs: Vec<_> = segs.into_iter().map(|(s, _)| s).collect();
            let run = crate::repo::run::longest_run(head.stream_start, &segs);
            let end = run.end;
            let last = run.segments.last().cloned();
            // A chain recorded under another shard layout (kevy resharded at restart) is never
            // taken up: its head would describe the wrong server.
            let ok = head.layout == self.layout
                && self
                    .follower
                    .resume(&head, end, last.as_ref())
                    .map_err(|e| self.io(e))?;
            if ok {
                tracing::info!(shard = self.shard, chain = %head.chain, offset = end, "continuing the chain in the repository");
                let event = Event::ChainStarted {
                    shard: self.shard,
                    head: Box::new(head.clone()),
                    reason: ChainReason::Resumed,
                };
                let _ = self.events.send(event).await;
                self.install(head, end);
                return Ok(true);
            }
            if head.node.is_some() && head.node != self.node {
                // Another member of the group shipped last: this agent's server took over.
                tracing::info!(shard = self.shard, chain = %head.chain, from = head.node.as_deref().unwrap_or_default(), "the last chain is another member's; starting a failover chain");
                self.first_reason = ChainReason::Failover;
            } else {
                tracing::info!(shard = self.shard, chain = %head.chain, "the files changed since the last shipped chain; starting a new one");
            }
            return Ok(false);
        }
        Ok(false)
    }

    fn install(&mut self, head: ChainHead, end: u64) {
        let (chain, started) = (head.chain.clone(), head.created_ms);
        // The compaction rule's base: the chain's base files plus the stream as it stands now.
        let stream_start = self.follower.stream_len().max(end);
        let base_size = head.base.iter().map(|b| b.size).sum::<u64>() + stream_start;
        self.chain = Some(Open { head, end });
        self.pending.clear();
        self.scanned = 0;
        self.seen = None;
        self.inflight = None;
        self.shared.update(self.shard, |s| {
            s.chain = Some(chain);
            s.chain_started_ms = Some(started);
            s.shipped_offset = end;
            s.base_size = base_size;
            s.stream_start = stream_start;
        });
    }

    /// Pins the follower's files, stores the base, then the head: the chain exists from then on.
    pub(super) async fn start_chain(&mut self, reason: ChainReason) -> Result<(), TailError> {
        // Pinned once: a retry after a failed upload stores the very files that were pinned for
        // this reason, not whatever the server has written since (a BGSAVE in between would
        // otherwise get a rewrite's "no base"). A failed pin owes nothing: the next check
        // decides afresh.
        if self.owed.is_none() {
            let start = self.follower.start_chain(reason).map_err(|e| self.io(e))?;
            self.owed = Some(Owed { reason, start });
        }
        self.store_owed_chain().await
    }

    /// Stores the owed chain's base, then its head: the chain exists from then on. Until then
    /// the old chain is not read on (the follower has already pinned the new files).
    pub(super) async fn store_owed_chain(&mut self) -> Result<(), TailError> {
        let Some(owed) = self.owed.as_ref() else {
            return Ok(());
        };
        let reason = owed.reason;
        let stream_start = owed.start.stream_start;
        let identity = owed.start.identity.clone();
        let mut parts = Vec::with_capacity(owed.start.base.len());
        for part in &owed.start.base {
            // Each attempt reads the pinned descriptor from its start.
            let mut file = part.file.try_clone().map_err(|e| self.io(e))?;
            file.seek(SeekFrom::Start(0)).map_err(|e| self.io(e))?;
            parts.push((file, part.len, part.format, part.file_name.clone()));
        }
        let created_ms = now_ms();
        let chain = keys::new_chain_id(created_ms);
        let shard = ShardId(self.shard);
        let dir = keys::chain_dir(&self.instance, shard, &chain);
        let mut base = Vec::new();
        for (n, (file, len, format, file_name)) in parts.into_iter().enumerate() {
            let object = keys::base_object(n, self.repo.codec());
            let key = keys::object(&dir, &object);
            let (size, crc32c) =
                self.repo
                    .put_file(&key, file, Some(len))
                    .await
                    .map_err(|source| TailError::BaseUpload {
                        shard: self.shard,
                        source,
                    })?;
            Counters::add(&self.shared.counters.bytes_shipped, size);
            base.push(BasePart {
                format,
                object,
                file_name,
                size,
                crc32c,
            });
        }
        let head = ChainHead {
            format_version: FORMAT_VERSION,
            instance: self.instance.clone(),
            shard: self.shard,
            chain,
            created_ms,
            layout: self.layout.clone(),
            server_version: self.server_version.clone(),
            base,
            stream_start,
            reason: reason.as_str().to_string(),
            source_identity: identity,
            node: self.node.clone(),
        };
        self.repo
            .put_chain_head(&head)
            .await
            .map_err(|e| self.repo_err(e))?;
        tracing::info!(shard = self.shard, chain = %head.chain, %reason, base_parts = head.base.len(), "new chain");
        self.shared.update(self.shard, |s| s.chains_started += 1);
        let _ = self
            .events
            .send(Event::ChainStarted {
                shard: self.shard,
                head: Box::new(head.clone()),
                reason,
            })
            .await;
        self.install(head, stream_start);
        self.owed = None;
        if let Some(why) = self.recovering.take() {
            tracing::info!(shard = self.shard, %why, "recovered: shipping again on a new chain");
            self.shared.update(self.shard, |s| {
                s.recovery = None;
                s.last_error = None;
            });
        }
        Ok(())
    }
}
