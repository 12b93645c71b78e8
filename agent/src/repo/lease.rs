//! One writer per instance: a lease object in the repository, taken with a create-only put.
//!
//! The holder renews it while it runs and deletes it on a clean stop. Another agent finding a
//! live lease exits with an error naming the holder. A lease is stale — and may be taken over —
//! when its renewal is older than its time-to-live, or when its holder ran on this very host and
//! that process no longer exists (an agent killed with -9 restarts at once, not after the TTL).

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{keys, Repo, RepoError};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaseDoc {
    pub holder: String,
    pub host: String,
    pub pid: u32,
    pub token: String,
    pub acquired_ms: i64,
    pub renewed_ms: i64,
    pub ttl_ms: i64,
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
    #[error(transparent)]
    Repo(#[from] RepoError),
}

/// A held lease.
#[derive(Debug)]
pub struct Lease {
    repo: Repo,
    instance: String,
    doc: LeaseDoc,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn this_host() -> String {
    hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown-host".into())
}

fn process_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

impl Lease {
    /// Takes the lease of `instance`, or says who holds it.
    pub async fn acquire(repo: &Repo, instance: &str, ttl: Duration) -> Result<Lease, LeaseError> {
        let key = keys::lease(instance);
        let host = this_host();
        let pid = std::process::id();
        let now = now_ms();
        let doc = LeaseDoc {
            holder: format!("{host} pid {pid}"),
            host: host.clone(),
            pid,
            token: format!("{:016x}", rand::random::<u64>()),
            acquired_ms: now,
            renewed_ms: now,
            ttl_ms: ttl.as_millis() as i64,
        };
        for _ in 0..3 {
            let body = Bytes::from(serde_json::to_vec_pretty(&doc).unwrap_or_default());
            match repo.put_new(&key, body).await {
                Ok(()) => {
                    return Ok(Lease {
                        repo: repo.clone(),
                        instance: instance.to_string(),
                        doc,
                    })
                }
                Err(RepoError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            let Some(bytes) = repo.get_opt(&key).await? else {
                continue;
            };
            let other: Option<LeaseDoc> = serde_json::from_slice(&bytes).ok();
            let stale = match &other {
                None => true,
                Some(o) => {
                    now_ms() - o.renewed_ms > o.ttl_ms
                        || (o.host == host && (o.pid == pid || !process_alive(o.pid)))
                }
            };
            if !stale {
                let o = other.unwrap_or_else(|| doc.clone());
                return Err(LeaseError::Held {
                    instance: instance.to_string(),
                    holder: o.holder,
                    age_s: (now_ms() - o.renewed_ms) / 1000,
                    ttl_s: o.ttl_ms / 1000,
                });
            }
            tracing::warn!(instance, previous = ?other.map(|o| o.holder), "taking over a stale lease");
            repo.delete(&key).await?;
        }
        Err(LeaseError::Held {
            instance: instance.to_string(),
            holder: "unknown (contended)".into(),
            age_s: 0,
            ttl_s: 0,
        })
    }

    /// Renews the lease; fails if someone else took it meanwhile.
    pub async fn renew(&mut self) -> Result<(), LeaseError> {
        let key = keys::lease(&self.instance);
        if let Some(bytes) = self.repo.get_opt(&key).await? {
            if let Ok(cur) = serde_json::from_slice::<LeaseDoc>(&bytes) {
                if cur.token != self.doc.token {
                    return Err(LeaseError::Lost {
                        instance: self.instance.clone(),
                        holder: cur.holder,
                    });
                }
            }
        }
        self.doc.renewed_ms = now_ms();
        let body = Bytes::from(serde_json::to_vec_pretty(&self.doc).unwrap_or_default());
        self.repo.put_overwrite(&key, body).await?;
        Ok(())
    }

    /// Gives the lease back (clean shutdown).
    pub async fn release(self) -> Result<(), LeaseError> {
        let key = keys::lease(&self.instance);
        if let Some(bytes) = self.repo.get_opt(&key).await? {
            if serde_json::from_slice::<LeaseDoc>(&bytes)
                .map(|d| d.token == self.doc.token)
                .unwrap_or(false)
            {
                self.repo.delete(&key).await?;
            }
        }
        Ok(())
    }

    pub fn ttl(&self) -> Duration {
        Duration::from_millis(self.doc.ttl_ms as u64)
    }
}
