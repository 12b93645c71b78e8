//! One writer per instance: a lease document in the repository, changed only by conditional
//! writes ([`Repo::put_if`]: `If-None-Match`/`If-Match` on object stores, a locked
//! compare-and-swap on `file://`).
//!
//! Rules (docs/ARCHITECTURE.md, "Replication groups"):
//! - **Taking** it is one conditional write against the version that was read: of two agents
//!   that read the same free or stale lease, exactly one wins; the other is told who won.
//! - **Renewing** is a conditional write against the holder's own last version. If it fails,
//!   the document is read again: still the holder's token (the reply of a write that succeeded
//!   was lost) — carry on; another token — the lease is lost.
//! - **Giving it back** writes the document with `released: true` (conditionally): nothing is
//!   ever deleted, so no contender can slip in between a read and a delete.
//! - **Stale** means the document did not change for its TTL *as seen on the reader's own
//!   monotonic clock* ([`Observer`]), never a wall-clock time written by another host. One
//!   exception: a holder on this very host whose process is gone (an agent killed with -9 and
//!   restarted takes its lease back at once).
//! - The holder trusts its lease only for part of the TTL after it *sent* its last successful
//!   renewal ([`Fence`]): the repository handle it ships with refuses writes past that.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{keys, Expect, Fence, Repo, RepoError, Version};

/// How long an unreadable lease document must stay unchanged before it is taken over.
pub(super) const UNREADABLE_TTL: Duration = Duration::from_secs(600);

/// The part of the TTL a holder trusts after sending a renewal that succeeded.
const TRUST: f64 = 0.75;

/// What the holder's server said at its last contact: what the other agents of a group need to
/// decide (is the holder's server still the primary, still reachable).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServerReport {
    /// The server's address as configured (no credentials).
    pub address: String,
    /// `master`, `slave` or `unknown` (as `INFO replication` says; `unknown` when unreachable).
    pub role: String,
    /// The primary it replicates from (`host:port`), for a replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    /// `run_id` from `INFO server`: the same server process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    pub reachable: bool,
    /// When the holder last heard from its server (its wall clock; for people, not decisions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaseDoc {
    pub holder: String,
    pub host: String,
    pub pid: u32,
    pub token: String,
    /// The group member holding it (`[repository] node`).
    #[serde(default)]
    pub node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerReport>,
    pub acquired_ms: i64,
    pub renewed_ms: i64,
    pub ttl_ms: i64,
    /// Given back on a clean stop or a step-down: free to take.
    #[serde(default)]
    pub released: bool,
    /// How many times the lease changed hands (0 for its first holder).
    #[serde(default)]
    pub handovers: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("instance {instance} is already served by another agent: {holder} (lease renewed {age_s}s ago, expires after {ttl_s}s without renewal); stop it first, or use another --instance")]
    Held {
        instance: String,
        holder: String,
        age_s: i64,
        ttl_s: i64,
    },
    #[error("lost the lease on instance {instance} to {holder}")]
    Lost { instance: String, holder: String },
    #[error("another agent took the lease on instance {instance} first: {holder}")]
    Contended { instance: String, holder: String },
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// Who asks for the lease.
#[derive(Debug, Clone)]
pub struct Claimant {
    pub node: String,
    pub ttl: Duration,
    pub server: Option<ServerReport>,
    /// The token a take writes (fresh for each claimant).
    pub token: String,
}

impl Claimant {
    pub fn new(node: &str, ttl: Duration, server: Option<ServerReport>) -> Claimant {
        Claimant {
            node: node.to_string(),
            ttl,
            server,
            token: format!("{:016x}", rand::random::<u64>()),
        }
    }
}

/// A held lease.
#[derive(Debug)]
pub struct Lease {
    repo: Repo,
    instance: String,
    doc: LeaseDoc,
    version: Version,
    fence: Arc<Fence>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub(super) fn this_host() -> String {
    hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown-host".into())
}

pub(super) fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn body(doc: &LeaseDoc) -> Bytes {
    Bytes::from(serde_json::to_vec_pretty(doc).unwrap_or_default())
}

impl Lease {
    /// Takes the lease as `look` found it (free, released or stale): one conditional write.
    /// `Contended` if another agent wrote it since the look.
    pub async fn take(
        repo: &Repo,
        instance: &str,
        claimant: &Claimant,
        look: &Look,
    ) -> Result<Lease, LeaseError> {
        let key = keys::lease(instance);
        let (host, pid) = (this_host(), std::process::id());
        let now = now_ms();
        let handovers = match look.found.doc() {
            Some(prev) if prev.node != claimant.node => prev.handovers + 1,
            Some(prev) => prev.handovers,
            None => 0,
        };
        let doc = LeaseDoc {
            holder: format!("{} on {host} pid {pid}", claimant.node),
            host,
            pid,
            token: claimant.token.clone(),
            node: claimant.node.clone(),
            server: claimant.server.clone(),
            acquired_ms: now,
            renewed_ms: now,
            ttl_ms: claimant.ttl.as_millis() as i64,
            released: false,
            handovers,
        };
        let sent = Instant::now();
        match repo.put_if(&key, body(&doc), &look.expect).await {
            Ok(version) => {
                let fence = Arc::new(Fence::default());
                fence.open_until(sent, claimant.ttl.mul_f64(TRUST));
                Ok(Lease {
                    repo: repo.clone(),
                    instance: instance.to_string(),
                    doc,
                    version,
                    fence,
                })
            }
            Err(RepoError::Precondition { .. }) => {
                let holder = match repo.get_opt(&key).await? {
                    Some(b) => serde_json::from_slice::<LeaseDoc>(&b)
                        .map(|d| d.holder)
                        .unwrap_or_else(|_| "unknown".into()),
                    None => "unknown".into(),
                };
                Err(LeaseError::Contended {
                    instance: instance.to_string(),
                    holder,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Takes the lease for a standalone agent (`run` with no group, `backup`): at once when
    /// free, released or provably stale; a holder that looks alive is refused (`Held`). A lease
    /// whose holder's own clock says it is old is watched for its TTL first: taken only if it
    /// does not change meanwhile.
    pub async fn acquire(
        repo: &Repo,
        instance: &str,
        claimant: &Claimant,
    ) -> Result<Lease, LeaseError> {
        let mut observer = Observer::new(instance);
        let watch_until = Instant::now() + claimant.ttl + Duration::from_secs(1);
        loop {
            let look = observer.look(repo).await?;
            match &look.found {
                Found::Held { doc, .. } => {
                    let age_ms = now_ms() - doc.renewed_ms;
                    if age_ms < doc.ttl_ms || Instant::now() >= watch_until {
                        return Err(held(instance, doc));
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                found => {
                    if let Found::Stale { doc, why } = found {
                        tracing::warn!(instance, previous = %doc.holder, %why, "taking over a stale lease");
                    }
                    return Lease::take(repo, instance, claimant, &look).await;
                }
            }
        }
    }

    /// Renews the lease (with what the holder's server says now); `Lost` if another agent
    /// took it.
    pub async fn renew(&mut self, server: Option<ServerReport>) -> Result<(), LeaseError> {
        let mut next = self.doc.clone();
        next.renewed_ms = now_ms();
        if server.is_some() {
            next.server = server;
        }
        let sent = Instant::now();
        self.write(next).await?;
        self.fence.open_until(sent, self.ttl().mul_f64(TRUST));
        Ok(())
    }

    /// Gives the lease back (clean stop, step-down): no write through this lease's fence
    /// passes any more, and the document says `released`.
    pub async fn release(mut self) -> Result<(), LeaseError> {
        self.fence.close();
        let mut next = self.doc.clone();
        next.released = true;
        next.renewed_ms = now_ms();
        match self.write(next).await {
            Ok(()) | Err(LeaseError::Lost { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A conditional write of the holder's next document. A refused write is read back: the
    /// holder's own token there means an earlier write succeeded and its reply was lost.
    async fn write(&mut self, next: LeaseDoc) -> Result<(), LeaseError> {
        let key = keys::lease(&self.instance);
        let expect = Expect::Version(self.version.clone());
        match self.repo.put_if(&key, body(&next), &expect).await {
            Ok(v) => {
                self.version = v;
                self.doc = next;
                Ok(())
            }
            Err(RepoError::Precondition { .. }) => {
                let Some((bytes, version)) = self.repo.get_versioned(&key).await? else {
                    return Err(self.lost("nobody (the document was deleted)".into()));
                };
                match serde_json::from_slice::<LeaseDoc>(&bytes) {
                    Ok(cur) if cur.token == self.doc.token && !cur.released => {
                        // Ours: adopt its version and write again.
                        self.version = version;
                        self.doc = cur;
                        let expect = Expect::Version(self.version.clone());
                        let v = self.repo.put_if(&key, body(&next), &expect).await;
                        match v {
                            Ok(v) => {
                                self.version = v;
                                self.doc = next;
                                Ok(())
                            }
                            Err(RepoError::Precondition { .. }) => {
                                Err(self.lost("another agent".into()))
                            }
                            Err(e) => Err(e.into()),
                        }
                    }
                    Ok(cur) => {
                        self.fence.close();
                        Err(self.lost(cur.holder))
                    }
                    Err(_) => Err(self.lost("an unreadable document".into())),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    fn lost(&self, holder: String) -> LeaseError {
        self.fence.close();
        LeaseError::Lost {
            instance: self.instance.clone(),
            holder,
        }
    }

    pub fn ttl(&self) -> Duration {
        Duration::from_millis(self.doc.ttl_ms as u64)
    }

    pub fn doc(&self) -> &LeaseDoc {
        &self.doc
    }

    /// The fence a repository handle carries to write only while this lease holds.
    pub fn fence(&self) -> Arc<Fence> {
        self.fence.clone()
    }
}

fn held(instance: &str, doc: &LeaseDoc) -> LeaseError {
    LeaseError::Held {
        instance: instance.to_string(),
        holder: doc.holder.clone(),
        age_s: (now_ms() - doc.renewed_ms) / 1000,
        ttl_s: doc.ttl_ms / 1000,
    }
}

mod observe;
#[cfg(test)]
mod tests;

pub use observe::{Found, Look, Observer};
