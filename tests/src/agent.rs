//! Running the real `aofvault` binary: to completion ([`run`]) or as a daemon ([`spawn`]).
//!
//! Tests exercise the binary users run, not the library, so exit codes, flags and logs are
//! covered too. [`bin`] finds it (`$AOFVAULT_BIN`, else the newest build under the target dir)
//! and builds it once per test binary if there is none or if a source file is newer than it
//! (a stale binary would test old code). Both ways of running write the output
//! to files (no pipe can fill up and block the agent) and run in a temp working directory so
//! nothing lands in the source tree.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

use crate::process::{self, Spawned};

/// How long [`run`] waits before killing a command that hangs.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(300);
/// How long [`AgentProcess::terminate`] waits after SIGTERM before SIGKILL.
pub const TERMINATE_GRACE: Duration = Duration::from_secs(60);

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                crate::workspace_root().join(dir)
            }
        }
        None => crate::workspace_root().join("target"),
    }
}

fn newest_build() -> Option<PathBuf> {
    let target = target_dir();
    ["debug", "release"]
        .iter()
        .map(|profile| target.join(profile).join("aofvault"))
        .filter_map(|p| {
            let modified = std::fs::metadata(&p).and_then(|m| m.modified()).ok()?;
            Some((modified, p))
        })
        .max_by_key(|(modified, _)| *modified)
        .map(|(_, p)| p)
}

/// The newest modification time of the sources the binary is built from.
fn newest_source() -> Option<SystemTime> {
    fn walk(path: &Path, newest: &mut Option<SystemTime>) {
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(path) {
                for entry in entries.flatten() {
                    walk(&entry.path(), newest);
                }
            }
        } else if let Ok(modified) = meta.modified() {
            *newest = (*newest).max(Some(modified));
        }
    }
    let root = crate::workspace_root();
    let mut newest = None;
    for part in [
        "agent/src",
        "agent/Cargo.toml",
        "formats/src",
        "formats/Cargo.toml",
    ] {
        walk(&root.join(part), &mut newest);
    }
    for part in [
        "config/src",
        "config/Cargo.toml",
        "Cargo.toml",
        "Cargo.lock",
    ] {
        walk(&root.join(part), &mut newest);
    }
    newest
}

/// Path of the `aofvault` binary: `$AOFVAULT_BIN`, else the newest of
/// `<target>/{debug,release}/aofvault`; if there is none, or a source file is newer, runs
/// `cargo build -p aofvault` once. Panics if it cannot be found or built (every agent test
/// needs it).
pub fn bin() -> PathBuf {
    static BIN: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    let found = BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("AOFVAULT_BIN") {
            return Ok(PathBuf::from(bin));
        }
        if let Some(bin) = newest_build() {
            let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
            if built.is_some() && newest_source() <= built {
                return Ok(bin);
            }
        }
        build().map_err(|e| format!("{e:#}"))
    });
    match found {
        Ok(path) => path.clone(),
        Err(e) => panic!("no aofvault binary: {e}"),
    }
}

fn build() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(crate::workspace_root())
        .args(["build", "-p", "aofvault"])
        .status()
        .context("running cargo build -p aofvault")?;
    if !status.success() {
        bail!("cargo build -p aofvault failed: {status}");
    }
    newest_build().context("cargo build -p aofvault succeeded but no binary was found")
}

/// What a finished `aofvault` command returned.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The exit code (`None` if killed by a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// `self` if the command succeeded, else an error quoting both streams.
    pub fn ok(self) -> Result<Self> {
        if self.success() {
            Ok(self)
        } else {
            bail!(
                "aofvault failed with {}\n--- stdout\n{}\n--- stderr\n{}",
                self.status,
                self.stdout,
                self.stderr
            )
        }
    }

    /// stdout parsed as JSON (for `--json` commands).
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_str(&self.stdout)
            .with_context(|| format!("stdout is not JSON:\n{}", self.stdout))
    }
}

fn command(program: &Path, args: &[&str], env: &[(String, String)], cwd: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(cwd).args(args).env("RUST_BACKTRACE", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs `aofvault <args>` to completion with extra env vars (at most [`RUN_TIMEOUT`]).
pub fn run(args: &[&str], env: &[(String, String)]) -> Result<Output> {
    run_with_timeout(args, env, RUN_TIMEOUT)
}

/// [`run`] with another time limit; a command still running then is killed and is an error.
pub fn run_with_timeout(
    args: &[&str],
    env: &[(String, String)],
    timeout: Duration,
) -> Result<Output> {
    run_program(&bin(), args, env, timeout)
}

/// Runs any program the way [`run`] runs aofvault (output captured, time-limited, temp cwd).
pub fn run_program(
    program: &Path,
    args: &[&str],
    env: &[(String, String)],
    timeout: Duration,
) -> Result<Output> {
    let dir = tempfile::Builder::new()
        .prefix("aofvault-run-")
        .tempdir()
        .context("temp dir for aofvault run")?;
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let out = std::fs::File::create(&out_path).context("creating stdout file")?;
    let err = std::fs::File::create(&err_path).context("creating stderr file")?;
    let mut child = command(program, args, env, dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .with_context(|| format!("starting {} {}", program.display(), args.join(" ")))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for the command")? {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{} {} still running after {timeout:?}; killed\n--- stdout\n{}\n--- stderr\n{}",
                program.display(),
                args.join(" "),
                process::read_log(&out_path),
                process::read_log(&err_path)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output {
        status,
        stdout: process::read_log(&out_path),
        stderr: process::read_log(&err_path),
    })
}

/// A running `aofvault` (usually `run`), stdout and stderr captured to one log file.
/// Dropping it sends SIGTERM and SIGKILLs after 2 s.
#[derive(Debug)]
pub struct AgentProcess {
    proc: Spawned,
    log_path: PathBuf,
    _dir: TempDir,
}

/// Starts `aofvault <args>` in the background with extra env vars.
pub fn spawn(args: &[&str], env: &[(String, String)]) -> Result<AgentProcess> {
    spawn_program(&bin(), args, env)
}

/// Starts any program the way [`spawn`] starts aofvault.
pub fn spawn_program(
    program: &Path,
    args: &[&str],
    env: &[(String, String)],
) -> Result<AgentProcess> {
    let dir = tempfile::Builder::new()
        .prefix("aofvault-agent-")
        .tempdir()
        .context("temp dir for the agent")?;
    let log_path = dir.path().join("agent.log");
    let cmd = command(program, args, env, dir.path());
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let proc = Spawned::spawn(
        name.as_deref().unwrap_or("aofvault"),
        cmd,
        &log_path,
        &[dir.path().to_path_buf()],
    )?;
    Ok(AgentProcess {
        proc,
        log_path,
        _dir: dir,
    })
}

impl AgentProcess {
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Everything it printed so far (stdout and stderr interleaved).
    pub fn logs(&self) -> String {
        self.proc.own_log()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.proc.exited().is_none()
    }

    /// The exit status if it has ended.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.proc.exited()
    }

    /// SIGKILL, like a crash or an OOM kill.
    pub fn kill9(&mut self) -> Option<ExitStatus> {
        self.proc.kill()
    }

    /// SIGTERM and wait for a clean exit (up to [`TERMINATE_GRACE`], then SIGKILL and error).
    pub fn terminate(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.proc.exited() {
            return Ok(status);
        }
        self.proc.send_signal("TERM");
        match self.proc.wait_timeout(TERMINATE_GRACE) {
            Some(status) => Ok(status),
            None => {
                self.proc.kill();
                bail!(
                    "aofvault did not exit within {TERMINATE_GRACE:?} of SIGTERM; killed. Log tail:\n{}",
                    self.proc.log_tail()
                )
            }
        }
    }

    /// Sends any signal by name (`STOP`/`CONT` freeze and thaw it, `HUP`, `INT`, ...).
    pub fn signal(&mut self, name: &str) {
        self.proc.send_signal(name);
    }

    /// Waits (up to `timeout`) until its log contains `needle`; errors with the log tail, or
    /// at once if the process ends first.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.logs().contains(needle) {
                return Ok(());
            }
            if let Some(e) = self.proc.exited_error() {
                return Err(e.context(format!("aofvault exited before logging {needle:?}")));
            }
            if Instant::now() >= deadline {
                bail!(
                    "aofvault did not log {needle:?} within {timeout:?}; log tail:\n{}",
                    self.proc.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to exit by itself (up to `timeout`).
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        self.proc.wait_timeout(timeout).with_context(|| {
            format!(
                "aofvault still running after {timeout:?}; log tail:\n{}",
                self.proc.log_tail()
            )
        })
    }
}
