//! Looking at a lease over time: what a reader decides from one look (free, released, held,
//! stale), judged on its own monotonic clock.

use std::time::{Duration, Instant};

use super::{alive, this_host, LeaseDoc, LeaseError, UNREADABLE_TTL};
use crate::repo::{keys, Expect, Repo, Version};

/// What one look at the lease found.
#[derive(Debug, Clone)]
pub enum Found {
    /// No lease document yet.
    Free,
    /// Given back by its last holder.
    Released(LeaseDoc),
    /// Held, and renewed within its TTL as far as this reader can tell.
    Held {
        doc: LeaseDoc,
        unchanged_for: Duration,
    },
    /// Held on paper only: unchanged for its TTL on this reader's clock, or its holder's
    /// process on this host is gone.
    Stale { doc: LeaseDoc, why: String },
}

impl Found {
    pub fn doc(&self) -> Option<&LeaseDoc> {
        match self {
            Found::Free => None,
            Found::Released(d) | Found::Held { doc: d, .. } | Found::Stale { doc: d, .. } => {
                Some(d)
            }
        }
    }

    /// Free, released or stale: a claimant may try to take it.
    pub fn is_takeable(&self) -> bool {
        !matches!(self, Found::Held { .. })
    }
}

/// A look, with the version a take compares against.
#[derive(Debug, Clone)]
pub struct Look {
    pub found: Found,
    pub(super) expect: Expect,
}

/// Watches one instance's lease over time, on this process's monotonic clock.
#[derive(Debug)]
pub struct Observer {
    instance: String,
    /// The version last read, and since when it has been the same.
    seen: Option<(Version, Instant)>,
    /// The token of this observer's last attempt to take the lease.
    pending: Option<String>,
}

impl Observer {
    pub fn new(instance: &str) -> Observer {
        Observer {
            instance: instance.to_string(),
            seen: None,
            pending: None,
        }
    }

    /// Notes the token of an attempt to take the lease whose outcome is unknown (a lost reply):
    /// the next look treats a document holding it as this agent's own.
    pub fn attempted(&mut self, token: &str) {
        self.pending = Some(token.to_string());
    }

    /// Reads the lease and judges it.
    pub async fn look(&mut self, repo: &Repo) -> Result<Look, LeaseError> {
        let key = keys::lease(&self.instance);
        let Some((bytes, version)) = repo.get_versioned(&key).await? else {
            self.seen = None;
            return Ok(Look {
                found: Found::Free,
                expect: Expect::Absent,
            });
        };
        let since = match &self.seen {
            Some((v, since)) if *v == version => *since,
            _ => Instant::now(),
        };
        self.seen = Some((version.clone(), since));
        let expect = Expect::Version(version);
        let doc: LeaseDoc = match serde_json::from_slice(&bytes) {
            Ok(d) => d,
            Err(e) => {
                // Damaged (or from a future agent): whoever wrote it may be alive, so it is
                // judged as a lease with the longest TTL an agent accepts, by its changes alone.
                tracing::warn!(key = %key, error = %e, "the lease document is unreadable");
                LeaseDoc {
                    holder: format!("an unreadable lease document ({e})"),
                    host: String::new(),
                    pid: 0,
                    token: String::new(),
                    node: String::new(),
                    server: None,
                    acquired_ms: 0,
                    renewed_ms: 0,
                    ttl_ms: UNREADABLE_TTL.as_millis() as i64,
                    released: false,
                    handovers: 0,
                }
            }
        };
        let unchanged_for = since.elapsed();
        let found = if doc.released {
            Found::Released(doc)
        } else if self.pending.as_deref() == Some(doc.token.as_str()) {
            // This observer's own take landed, but its reply was lost: take it again.
            let why = "written by this agent's last attempt (its reply was lost)".to_string();
            Found::Stale { doc, why }
        } else if doc.host == this_host() && doc.pid != std::process::id() && !alive(doc.pid) {
            let why = format!("its holder (pid {} on this host) is gone", doc.pid);
            Found::Stale { doc, why }
        } else if unchanged_for >= Duration::from_millis(doc.ttl_ms.max(0) as u64) {
            let why = format!(
                "unchanged for {:.0}s (its TTL is {}s)",
                unchanged_for.as_secs_f64(),
                doc.ttl_ms / 1000
            );
            Found::Stale { doc, why }
        } else {
            Found::Held { doc, unchanged_for }
        };
        Ok(Look { found, expect })
    }
}
