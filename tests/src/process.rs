//! Child processes of the harness: spawned with their output in a log file, stopped for sure.
//!
//! [`Spawned`] owns one server (or agent) process. Its stdout and stderr go, appended, to a log
//! file that failure messages quote ([`log_tail`]). Dropping it sends SIGTERM, waits a short
//! grace, then SIGKILLs. Because a test binary can also die without running any destructor
//! (a panic in a static, SIGKILL, Ctrl-C) every process gets a *watchdog*: a tiny `sh` whose
//! stdin is a pipe from us. When this process dies the pipe closes, the watchdog's `read`
//! returns, and it SIGKILLs the orphan and removes the given paths. On a normal drop the
//! watchdog is killed first, so it never acts on a pid that may have been reused.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// How many log lines an error message quotes.
pub const LOG_TAIL_LINES: usize = 40;

/// A running child process with a log file and a watchdog.
#[derive(Debug)]
pub struct Spawned {
    name: String,
    child: Child,
    watchdog: Option<Child>,
    log_path: PathBuf,
    /// Length of the log when this process started: what it wrote is after this.
    log_start: u64,
    exit: Option<ExitStatus>,
}

impl Spawned {
    /// Starts `cmd` with stdin from /dev/null and stdout/stderr appended to `log_path`.
    /// `cleanup` are paths the watchdog removes if this process dies without dropping the guard.
    pub fn spawn(
        name: &str,
        mut cmd: Command,
        log_path: &Path,
        cleanup: &[PathBuf],
    ) -> Result<Self> {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .with_context(|| format!("opening log file {}", log_path.display()))?;
        writeln!(log, "=== harness: starting {name}: {cmd:?}")
            .with_context(|| format!("writing {}", log_path.display()))?;
        let log_start = log
            .metadata()
            .with_context(|| format!("stat {}", log_path.display()))?
            .len();
        let err = log
            .try_clone()
            .with_context(|| format!("duplicating log file {}", log_path.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err));
        let program = cmd.get_program().to_string_lossy().into_owned();
        let child = cmd.spawn().with_context(|| {
            format!("starting {name} ({program}): is it installed? (scripts/install-deps.sh)")
        })?;
        let watchdog = spawn_watchdog(child.id(), cleanup);
        Ok(Self {
            name: name.to_string(),
            child,
            watchdog,
            log_path: log_path.to_path_buf(),
            log_start,
            exit: None,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The exit status if the process has ended (without blocking).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exit = Some(status);
                // Reaped: the pid is free for reuse, so the watchdog must never act on it.
                self.disarm_watchdog();
            }
        }
        self.exit
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. Returns the exit status.
    pub fn terminate(&mut self, grace: Duration) -> Option<ExitStatus> {
        self.disarm_watchdog();
        if self.exited().is_some() {
            return self.exit;
        }
        signal(self.pid(), "TERM");
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return self.exit;
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.kill()
    }

    /// SIGKILL and reap. Returns the exit status.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        self.disarm_watchdog();
        if self.exited().is_none() {
            let _ = self.child.kill();
            if let Ok(status) = self.child.wait() {
                self.exit = Some(status);
            }
        }
        self.exit
    }

    /// Waits for the process to end by itself, up to `timeout`.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                self.disarm_watchdog();
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal by name (`TERM`, `INT`, `STOP`, `CONT`, ...) unless the process has ended.
    pub fn send_signal(&mut self, name: &str) {
        if self.exited().is_none() {
            signal(self.pid(), name);
        }
    }

    fn disarm_watchdog(&mut self) {
        if let Some(mut dog) = self.watchdog.take() {
            let _ = dog.kill();
            let _ = dog.wait();
        }
    }

    /// What this process wrote to the log (not earlier runs on the same log).
    pub fn own_log(&self) -> String {
        let all = std::fs::read(&self.log_path).unwrap_or_default();
        let start = usize::try_from(self.log_start).unwrap_or(0).min(all.len());
        String::from_utf8_lossy(&all[start..]).into_owned()
    }

    /// The last lines of the log, for error messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path, LOG_TAIL_LINES)
    }

    /// An error saying the process ended, with its status and log tail.
    pub fn exited_error(&mut self) -> Option<anyhow::Error> {
        let status = self.exited()?;
        Some(anyhow::anyhow!(
            "{} exited with {status}; log {}:\n{}",
            self.name,
            self.log_path.display(),
            self.log_tail()
        ))
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.terminate(Duration::from_secs(2));
    }
}

/// Sends `kill -<name> <pid>` through the shell builtin (the workspace forbids `unsafe`, so no
/// libc calls; `sh` is everywhere).
fn signal(pid: u32, name: &str) {
    let _ = Command::new("sh")
        .args([
            "-c",
            "kill -s \"$1\" \"$2\" 2>/dev/null",
            "sh",
            name,
            &pid.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// See the module docs. Failing to start a watchdog is not fatal: the guard still works.
fn spawn_watchdog(pid: u32, cleanup: &[PathBuf]) -> Option<Child> {
    let script = "trap '' INT HUP TERM; read _line; kill -9 \"$1\" 2>/dev/null; shift; \
                  [ \"$#\" -gt 0 ] && rm -rf -- \"$@\"; exit 0";
    let mut cmd = Command::new("sh");
    cmd.args(["-c", script, "aofvault-test-watchdog", &pid.to_string()])
        .args(cleanup)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.spawn().ok()
}

/// The last `lines` lines of a log file (or a note that it cannot be read).
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            all[start..].join("\n")
        }
        Err(e) => format!("(cannot read log {}: {e})", path.display()),
    }
}

/// Reads a whole log file, lossily; empty if missing.
pub fn read_log(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Appends a harness note to a log file (best effort).
pub fn note(path: &Path, text: &str) {
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "=== harness: {text}");
    }
}

/// Creates an empty file (a log) so tails work before the child writes.
pub fn touch(path: &Path) -> Result<()> {
    File::create(path).with_context(|| format!("creating {}", path.display()))?;
    Ok(())
}

/// Polls `check` every 50 ms until it returns `Ok(true)` or `timeout` passes. An `Err` from
/// `check` counts as "not yet" and is quoted in the timeout error.
pub fn wait_until<F>(timeout: Duration, what: &str, mut check: F) -> Result<()>
where
    F: FnMut() -> Result<bool>,
{
    let deadline = Instant::now() + timeout;
    let mut last_err: Option<anyhow::Error> = None;
    loop {
        match check() {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() >= deadline {
            let detail = last_err
                .map(|e| format!(": last error: {e:#}"))
                .unwrap_or_default();
            anyhow::bail!("timed out after {timeout:?} waiting for {what}{detail}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}
