//! Riding out a flaky repository: whole-object retries above the object store client's own.
//!
//! The S3 client retries a request a few times (a burst of four `503 Slow Down` already beats
//! it); above that, a restore retries the whole operation — one object's download from its
//! first byte, or the plan's reads of documents and listings — with capped, jittered backoff
//! ([`crate::ship::backoff::Backoff`]) until [`Retry::deadline`] has passed since the first
//! failure. Only failures that may pass are retried ([`worth_retrying`]): a missing object, a
//! size or CRC-32C mismatch, a wrong key or refused credentials fail at once. What gives up
//! keeps the [`RepoError`] in its chain, so the restore exits 4 (repository unreachable) with
//! the object named.

use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use aofvault_config::units::format_duration;
// tokio's clock, so that tests can run a long outage in no time.
use tokio::time::Instant;

use super::progress::Progress;
use crate::repo::RepoError;
use crate::ship::backoff::Backoff;

/// The first wait after a failure; it doubles (±25 %) up to [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_millis(500);
/// The longest wait between two attempts.
const MAX_WAIT: Duration = Duration::from_secs(10);
/// The deadline when neither the configuration nor the command line gives one.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(120);

/// How long a failing operation is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Time from an operation's first failure after which it is not tried again.
    pub deadline: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            deadline: DEFAULT_DEADLINE,
        }
    }
}

/// Whether `e` may pass if asked again: the store was unreachable, timed out, reset the
/// connection or answered 5xx ([`RepoError::is_transient`]) — but not when it refused the
/// credentials or the request, which no wait fixes.
pub fn worth_retrying(e: &RepoError) -> bool {
    if let RepoError::Unreachable { source, .. } = e {
        use object_store::Error as E;
        if matches!(
            **source,
            E::PermissionDenied { .. }
                | E::Unauthenticated { .. }
                | E::NotSupported { .. }
                | E::NotImplemented { .. }
                | E::InvalidPath { .. }
                | E::UnknownConfigurationKey { .. }
        ) {
            return false;
        }
    }
    e.is_transient()
}

/// [`worth_retrying`] for an error chain (the plan's reads return `anyhow` errors).
fn chain_worth_retrying(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<RepoError>())
        .any(worth_retrying)
}

impl Retry {
    /// Downloads (or otherwise reads) one object: `attempt` is run again, from scratch, while
    /// it fails in a way worth retrying and the deadline allows. `key` names the object in
    /// logs and in the final error; `progress` shows "retrying" meanwhile.
    pub async fn object<T, F, Fut>(
        &self,
        key: &str,
        progress: Option<&Progress>,
        mut attempt: F,
    ) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<T>>,
    {
        self.run(&format!("object {key}"), progress, &mut attempt)
            .await
    }

    /// Reads of the repository that do not belong to one object (the plan: marker, listings,
    /// manifests), run again as a whole while they fail in a way worth retrying.
    pub async fn reads<T, F, Fut>(&self, what: &str, mut attempt: F) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<T>>,
    {
        self.run(what, None, &mut attempt).await
    }

    async fn run<T, F, Fut>(
        &self,
        what: &str,
        progress: Option<&Progress>,
        attempt: &mut F,
    ) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<T>>,
    {
        let mut backoff = Backoff::new(FIRST_WAIT, MAX_WAIT);
        let mut first_failure: Option<Instant> = None;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let e = match attempt().await {
                Ok(v) => {
                    if attempts > 1 {
                        tracing::info!(what, attempts, "the repository answered again");
                        if let Some(p) = progress {
                            p.recovered();
                        }
                    }
                    return Ok(v);
                }
                Err(e) if chain_worth_retrying(&e) => e,
                Err(e) => return Err(e),
            };
            let since = *first_failure.get_or_insert_with(Instant::now);
            let left = self.deadline.saturating_sub(since.elapsed());
            if left.is_zero() {
                return Err(e).with_context(|| {
                    format!(
                        "{what}: the repository still failed after {attempts} attempt(s) over {} (retry deadline {}; `restore --retry-deadline` or `[restore] retry_deadline` allows longer)",
                        format_duration(Duration::from_secs(since.elapsed().as_secs())),
                        format_duration(self.deadline)
                    )
                });
            }
            let wait = backoff.next_delay().min(left);
            tracing::warn!(
                what,
                attempt = attempts,
                retry_in_ms = wait.as_millis() as u64,
                error = format!("{e:#}"),
                "the repository failed; trying again from the start"
            );
            if let Some(p) = progress {
                p.retrying(what, attempts);
            }
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn unreachable(source: object_store::Error) -> anyhow::Error {
        RepoError::Unreachable {
            url: "s3://b".into(),
            source: Box::new(source),
        }
        .into()
    }

    fn generic() -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: "503 Slow Down".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_until_they_pass() {
        let retry = Retry::default();
        let mut calls = 0;
        let got = retry
            .object("k", None, || {
                calls += 1;
                let n = calls;
                async move {
                    if n < 6 {
                        Err(unreachable(generic()))
                    } else {
                        Ok(n)
                    }
                }
            })
            .await
            .unwrap();
        assert_eq!(got, 6);
    }

    #[tokio::test(start_paused = true)]
    async fn a_store_down_past_the_deadline_gives_up_naming_the_object() {
        let retry = Retry {
            deadline: Duration::from_secs(5),
        };
        let started = tokio::time::Instant::now();
        let mut calls = 0;
        let e = retry
            .object("inst/seg-1.zst", None, || {
                calls += 1;
                async { Err::<(), _>(unreachable(generic())) }
            })
            .await
            .unwrap_err();
        assert!(calls > 2, "{calls}");
        assert!(started.elapsed() >= Duration::from_secs(5));
        assert!(format!("{e:#}").contains("inst/seg-1.zst"), "{e:#}");
        assert!(e
            .chain()
            .any(|c| matches!(c.downcast_ref(), Some(RepoError::Unreachable { .. }))));
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_failures_are_not_retried() {
        let retry = Retry::default();
        for err in [
            RepoError::Corrupt {
                key: "k".into(),
                reason: "checksum".into(),
            }
            .into(),
            RepoError::NotFound { key: "k".into() }.into(),
            unreachable(object_store::Error::PermissionDenied {
                path: "k".into(),
                source: "403".into(),
            }),
        ] {
            let mut calls = 0;
            let mut err = Some(err);
            let r = retry
                .object("k", None, || {
                    calls += 1;
                    let e = err.take();
                    async move { Err::<(), _>(e.unwrap_or_else(|| anyhow::anyhow!("again"))) }
                })
                .await;
            assert!(r.is_err());
            assert_eq!(calls, 1);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_deadline_tries_once() {
        let retry = Retry {
            deadline: Duration::ZERO,
        };
        let mut calls = 0;
        let r = retry
            .reads("the plan", || {
                calls += 1;
                async { Err::<(), _>(unreachable(generic())) }
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }
}
