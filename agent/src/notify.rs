//! sd_notify: telling systemd (`Type=notify`) that the agent is ready, what it is doing, that
//! it is still making progress (the watchdog), and that it is reloading or stopping.
//!
//! [`Notifier`] reads `NOTIFY_SOCKET` and `WATCHDOG_USEC`/`WATCHDOG_PID` once, when it is
//! created, and sends each message as one datagram, formatted by the `sd-notify` crate's
//! [`NotifyState`]. (It sends itself rather than through `sd_notify::notify`, which re-reads
//! the environment on every call and cannot reach an abstract `@socket`.) Without
//! `NOTIFY_SOCKET` (not under systemd) every call is a no-op. A failed send is logged once and
//! otherwise ignored: notifications must never stop the agent. Tests point a notifier at their
//! own socket with [`Notifier::to_socket`] instead of changing the process environment.

use std::ffi::OsString;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;

/// Sends sd_notify messages to the service manager, if there is one.
#[derive(Debug)]
pub struct Notifier {
    socket: Option<OsString>,
    watchdog: Option<Duration>,
    warned: AtomicBool,
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier::new()
    }
}

impl Notifier {
    /// From the environment systemd sets: `NOTIFY_SOCKET`, and `WATCHDOG_USEC` unless
    /// `WATCHDOG_PID` names another process.
    pub fn new() -> Self {
        let var = |name: &str| std::env::var(name).ok();
        Notifier {
            socket: std::env::var_os("NOTIFY_SOCKET").filter(|s| !s.is_empty()),
            watchdog: watchdog_period(
                var("WATCHDOG_USEC"),
                var("WATCHDOG_PID"),
                std::process::id(),
            ),
            warned: AtomicBool::new(false),
        }
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Self {
        Notifier {
            socket: None,
            watchdog: None,
            warned: AtomicBool::new(false),
        }
    }

    /// A notifier that sends to `socket` (a path, or `@name` for an abstract socket), with an
    /// optional watchdog period: for tests.
    pub fn to_socket(socket: impl Into<PathBuf>, watchdog: Option<Duration>) -> Self {
        Notifier {
            socket: Some(socket.into().into_os_string()),
            watchdog,
            warned: AtomicBool::new(false),
        }
    }

    /// Whether messages go anywhere.
    pub fn is_enabled(&self) -> bool {
        self.socket.is_some()
    }

    /// `READY=1`: start-up checks passed (also sent after a reload completes).
    pub fn ready(&self) {
        self.send(&[NotifyState::Ready]);
    }

    /// `STATUS=...`: one line for `systemctl status` (newlines are replaced by spaces).
    pub fn status(&self, text: &str) {
        let line = text.replace(['\n', '\r'], " ");
        self.send(&[NotifyState::Status(&line)]);
    }

    /// `WATCHDOG=1`: send only while shipping makes progress, at least every
    /// [`Notifier::watchdog_interval`].
    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    /// `STOPPING=1`: shutdown has begun.
    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping]);
    }

    /// `RELOADING=1` with the monotonic timestamp newer systemd versions ask for; follow it
    /// with [`Notifier::ready`] once the new configuration is in force (or rejected).
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    /// `EXTEND_TIMEOUT_USEC=...`: ask for more time during a long start-up or stop.
    pub fn extend_timeout(&self, by: Duration) {
        let usec = u32::try_from(by.as_micros()).unwrap_or(u32::MAX);
        self.send(&[NotifyState::ExtendTimeoutUsec(usec)]);
    }

    /// How often to send [`Notifier::watchdog`]: half of systemd's `WatchdogSec`, as
    /// sd_watchdog_enabled(3) recommends; `None` when the watchdog is off.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|period| period / 2)
    }

    fn send(&self, states: &[NotifyState]) {
        let Some(socket) = &self.socket else { return };
        let message: String = states.iter().map(|s| format!("{s}\n")).collect();
        if let Err(e) = send_datagram(socket, message.as_bytes()) {
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(error = %e, socket = ?socket, "cannot notify systemd (further failures not logged)");
            }
        }
    }
}

/// The watchdog period, as sd_watchdog_enabled(3) reads it: `WATCHDOG_USEC` applies unless
/// `WATCHDOG_PID` is set to another process (a test harness may leave it unset, as it cannot
/// know the child's pid in advance).
fn watchdog_period(usec: Option<String>, pid: Option<String>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(own_pid) {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    Some(Duration::from_micros(usec)).filter(|period| !period.is_zero())
}

fn send_datagram(socket: &OsString, message: &[u8]) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let bytes = socket.as_encoded_bytes();
    let sent = match bytes.strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            sock.send_to_addr(message, &addr)?
        }
        None => sock.send_to(message, socket)?,
    };
    if sent == message.len() {
        Ok(())
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            "short datagram",
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn receive(sock: &UnixDatagram) -> String {
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn messages_reach_the_socket_in_sd_notify_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        let notifier = Notifier::to_socket(&path, Some(Duration::from_secs(30)));
        assert!(notifier.is_enabled());

        notifier.ready();
        assert_eq!(receive(&listener), "READY=1\n");
        notifier.status("1 shard(s),\nlag 0 bytes");
        assert_eq!(receive(&listener), "STATUS=1 shard(s), lag 0 bytes\n");
        notifier.watchdog();
        assert_eq!(receive(&listener), "WATCHDOG=1\n");
        notifier.reloading();
        let reloading = receive(&listener);
        assert!(reloading.starts_with("RELOADING=1\n"), "{reloading}");
        notifier.stopping();
        assert_eq!(receive(&listener), "STOPPING=1\n");
        assert_eq!(notifier.watchdog_interval(), Some(Duration::from_secs(15)));
    }

    #[test]
    fn abstract_sockets_work_too() {
        let name = format!("aofvault-notify-test-{}", std::process::id());
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        Notifier::to_socket(format!("@{name}"), None).ready();
        assert_eq!(receive(&listener), "READY=1\n");
    }

    #[test]
    fn watchdog_period_follows_sd_watchdog_enabled() {
        let some = |s: &str| Some(s.to_string());
        let thirty = Some(Duration::from_secs(30));
        assert_eq!(watchdog_period(some("30000000"), some("42"), 42), thirty);
        assert_eq!(watchdog_period(some("30000000"), None, 42), thirty);
        assert_eq!(watchdog_period(some("30000000"), some("43"), 42), None);
        assert_eq!(watchdog_period(some("0"), None, 42), None);
        assert_eq!(watchdog_period(some("soon"), None, 42), None);
        assert_eq!(watchdog_period(None, some("42"), 42), None);
    }

    #[test]
    fn without_a_socket_everything_is_a_no_op() {
        let notifier = Notifier::disabled();
        assert!(!notifier.is_enabled());
        notifier.ready();
        notifier.status("x");
        assert_eq!(notifier.watchdog_interval(), None);
    }

    #[test]
    fn a_missing_socket_is_not_an_error() {
        let notifier = Notifier::to_socket("/nonexistent/notify.sock", None);
        notifier.ready();
        notifier.ready();
        assert!(notifier.warned.load(Ordering::Relaxed));
    }
}
