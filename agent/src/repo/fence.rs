//! The writer's fence: an agent writes to an instance only while its lease is known to hold.
//!
//! Another agent takes a lease over only after seeing it unchanged for its whole TTL on its own
//! clock. So the holder may trust its lease until (the moment it *sent* its last successful
//! renewal) + (a part of the TTL), measured on its own monotonic clock — never on a wall clock
//! compared across hosts. Past that moment every write of the repository handle that carries
//! the fence is refused (`RepoError::Fenced`, transient: the shipper keeps the object and
//! retries it once the lease is renewed, or stops when it is lost). A paused process (a stalled
//! VM, a stopped container) that wakes after another agent took over therefore writes nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Open until a moment, extended by each renewal.
#[derive(Debug)]
pub struct Fence {
    origin: Instant,
    /// Nanoseconds after `origin` until which writes are allowed (0: closed).
    until: AtomicU64,
}

impl Default for Fence {
    fn default() -> Self {
        Fence {
            origin: Instant::now(),
            until: AtomicU64::new(0),
        }
    }
}

impl Fence {
    /// Allows writes until `sent + trust` (`sent`: when the renewal that succeeded was sent).
    pub fn open_until(&self, sent: Instant, trust: Duration) {
        let at = (sent + trust).saturating_duration_since(self.origin);
        self.until.fetch_max(at.as_nanos() as u64, Ordering::SeqCst);
    }

    /// Refuses every write from now on (the lease was given back or lost).
    pub fn close(&self) {
        self.until.store(0, Ordering::SeqCst);
    }

    pub fn is_open(&self) -> bool {
        let now = Instant::now()
            .saturating_duration_since(self.origin)
            .as_nanos() as u64;
        now < self.until.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn opens_until_the_trusted_moment_and_closes() {
        let f = Fence::default();
        assert!(!f.is_open(), "a new fence is closed");
        f.open_until(Instant::now(), Duration::from_secs(60));
        assert!(f.is_open());
        // An older renewal never shortens the window.
        f.open_until(Instant::now(), Duration::ZERO);
        assert!(f.is_open());
        f.close();
        assert!(!f.is_open());
        f.open_until(
            Instant::now() - Duration::from_secs(10),
            Duration::from_secs(5),
        );
        assert!(!f.is_open(), "a renewal sent too long ago opens nothing");
    }
}
