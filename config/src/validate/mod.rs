//! Stage two: [`RawConfig`] → [`Config`], every default filled in, every mistake collected.
//!
//! Each section has one function that reads its raw values through [`Check`]; a check that
//! fails records a [`crate::ConfigError`] and returns the default, so the pass runs to the end
//! and reports everything. The source and repository sections, which read files and the
//! environment, live in their own modules.

mod check;
pub(crate) mod cloud;
pub(crate) mod encryption;
pub(crate) mod repository;
pub(crate) mod source;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::env::Env;
use crate::error::{ConfigErrors, ErrorKind};
use crate::model::{
    Compact, Config, Drift, Log, LogFormat, Metrics, Restore, Retention, Schedules, Ship, Shutdown,
    State,
};
use crate::raw::{
    RawCompact, RawConfig, RawDrift, RawLog, RawMetrics, RawRetention, RawSchedule, RawShip,
    RawState,
};

pub(crate) use check::Check;

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86400);
const MILLI: Duration = Duration::from_millis(1);
const MIB: u64 = 1 << 20;

/// Where an agent keeps its state when neither `[state] dir` nor `$STATE_DIRECTORY` says.
pub const SYSTEM_STATE_DIR: &str = "/var/lib/aofvault";

impl RawConfig {
    /// Checks every value, fills every default, and returns the configuration or every
    /// mistake found. Reads the files the configuration names (`password_file`, ...), the
    /// variables in `env`, the host name (for the default instance, unless `env` has
    /// `HOSTNAME`) and, only when no state directory is given, whether /var/lib/aofvault is
    /// writable. Writes nothing (the writability probe removes its file at once).
    pub fn validate(self, env: &Env) -> Result<Config, ConfigErrors> {
        let mut check = Check::new(env);
        for rejected in &self.rejected {
            check.push_error(rejected.clone());
        }
        let source = source::validate(self.source, &mut check);
        let state = state(self.state, &mut check);
        let repository = repository::validate(self.repository, &source, &state, &mut check);
        let ship = ship(self.ship, &mut check);
        let compact = compact(self.compact, source.url.is_some(), &mut check);
        let schedule = schedules(self.schedule, &mut check);
        let retention = retention(self.retention, &mut check);
        let metrics = metrics(self.metrics, &mut check);
        let log = log(self.log, &mut check);
        let shutdown = Shutdown {
            deadline: check.duration(
                "shutdown.deadline",
                self.shutdown.deadline.as_deref(),
                20 * SECOND,
                SECOND..=10 * MINUTE,
            ),
        };
        let drift = drift(self.drift, &mut check);
        let restore = Restore {
            retry_deadline: check.duration(
                "restore.retry_deadline",
                self.restore.retry_deadline.as_deref(),
                2 * MINUTE,
                Duration::ZERO..=DAY,
            ),
        };
        check.finish(Config {
            source,
            repository,
            ship,
            compact,
            schedule,
            retention,
            metrics,
            log,
            state,
            shutdown,
            drift,
            restore,
        })
    }
}

fn drift(raw: RawDrift, check: &mut Check) -> Drift {
    let sample = check.int("drift.sample", raw.sample, 0, 0..=100_000_000);
    let rate = check.int("drift.rate", raw.rate, 1000, 1..=1_000_000);
    Drift {
        sample: u64::try_from(sample).unwrap_or(0),
        rate: u32::try_from(rate).unwrap_or(1000),
        settle: check.duration(
            "drift.settle",
            raw.settle.as_deref(),
            10 * SECOND,
            Duration::ZERO..=10 * MINUTE,
        ),
    }
}

fn ship(raw: RawShip, check: &mut Check) -> Ship {
    let concurrency = check.int("ship.upload_concurrency", raw.upload_concurrency, 4, 1..=64);
    Ship {
        interval: check.duration(
            "ship.interval",
            raw.interval.as_deref(),
            SECOND,
            10 * MILLI..=HOUR,
        ),
        segment_max: check.size(
            "ship.segment_max",
            raw.segment_max.as_ref(),
            16 * MIB,
            4096..=5 << 30,
        ),
        poll_interval: check.duration(
            "ship.poll_interval",
            raw.poll_interval.as_deref(),
            SECOND,
            10 * MILLI..=HOUR,
        ),
        upload_concurrency: usize::try_from(concurrency).unwrap_or(4),
    }
}

fn compact(raw: RawCompact, has_server_url: bool, check: &mut Check) -> Compact {
    if raw.enabled == Some(true) && !has_server_url {
        check.push(
            ErrorKind::Conflict,
            "compact.enabled",
            Some("true".into()),
            "compaction sends BGREWRITEAOF to the server: set source.url (or --server) too",
        );
    }
    let percentage = check.int(
        "compact.rewrite_percentage",
        raw.rewrite_percentage,
        100,
        1..=10_000,
    );
    Compact {
        enabled: raw.enabled.unwrap_or(has_server_url),
        rewrite_percentage: u64::try_from(percentage).unwrap_or(100),
        rewrite_min_size: check.size(
            "compact.rewrite_min_size",
            raw.rewrite_min_size.as_ref(),
            64 * MIB,
            0..=1 << 50,
        ),
        cooldown: check.duration(
            "compact.cooldown",
            raw.cooldown.as_deref(),
            5 * MINUTE,
            Duration::ZERO..=7 * DAY,
        ),
        check_interval: check.duration(
            "compact.check_interval",
            raw.check_interval.as_deref(),
            10 * SECOND,
            100 * MILLI..=HOUR,
        ),
    }
}

fn schedules(raw: RawSchedule, check: &mut Check) -> Schedules {
    Schedules {
        snapshot: check.schedule(
            "schedule.snapshot",
            raw.snapshot.as_deref(),
            Some("every 6h"),
        ),
        verify: check.schedule("schedule.verify", raw.verify.as_deref(), None),
        prune: check.schedule("schedule.prune", raw.prune.as_deref(), Some("every 1h")),
        drift_check: check.schedule("schedule.drift_check", raw.drift_check.as_deref(), None),
    }
}

fn retention(raw: RawRetention, check: &mut Check) -> Retention {
    let mut count = |path: &str, value: Option<i64>| {
        check
            .opt_int(path, value, 1..=1_000_000)
            .and_then(|n| u32::try_from(n).ok())
    };
    let keep_last = count("retention.keep_last", raw.keep_last);
    let keep_daily = count("retention.keep_daily", raw.keep_daily);
    let keep_weekly = count("retention.keep_weekly", raw.keep_weekly);
    let keep_monthly = count("retention.keep_monthly", raw.keep_monthly);
    Retention {
        keep_last,
        keep_within: check.opt_duration(
            "retention.keep_within",
            raw.keep_within.as_deref(),
            SECOND..=36_500 * DAY,
        ),
        keep_daily,
        keep_weekly,
        keep_monthly,
        gc_grace: check.duration(
            "retention.gc_grace",
            raw.gc_grace.as_deref(),
            HOUR,
            Duration::ZERO..=365 * DAY,
        ),
    }
}

fn metrics(raw: RawMetrics, check: &mut Check) -> Metrics {
    let listen = match raw.listen.as_deref().map(str::trim) {
        None | Some("") | Some("off") => None,
        Some(text) => match text.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                check.push(
                    ErrorKind::InvalidValue,
                    "metrics.listen",
                    Some(format!("{text:?}")),
                    "not an address:port; write e.g. \"127.0.0.1:9465\" or \"[::1]:9465\", or \"off\"",
                );
                None
            }
        },
    };
    Metrics { listen }
}

fn log(raw: RawLog, check: &mut Check) -> Log {
    let level = raw.level.unwrap_or_else(|| "info".to_string());
    if let Err(message) = check_log_level(&level) {
        check.push(
            ErrorKind::InvalidValue,
            "log.level",
            Some(format!("{level:?}")),
            message,
        );
    }
    let format = check.choice(
        "log.format",
        raw.format.as_deref(),
        LogFormat::Text,
        &[("text", LogFormat::Text), ("json", LogFormat::Json)],
    );
    Log { level, format }
}

/// Accepts `info` or `warn,aofvault=debug`: bare words must be levels, targets need `=level`.
pub fn check_log_level(filter: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    for directive in filter.split(',').map(str::trim) {
        let level = directive
            .rsplit_once('=')
            .map_or(directive, |(_, level)| level);
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "`{directive}` is not a level or target=level; levels are {}",
                LEVELS.join(", ")
            ));
        }
    }
    Ok(())
}

fn state(raw: RawState, check: &mut Check) -> State {
    if let Some(dir) = check.absolute("state.dir", raw.dir) {
        return State { dir };
    }
    match default_state_dir(check.env()) {
        Some(dir) => State { dir },
        None => {
            check.push(
                ErrorKind::Missing,
                "state.dir",
                None,
                "no default state directory ($STATE_DIRECTORY, /var/lib/aofvault, \
                 $XDG_STATE_HOME and $HOME are all unavailable): set [state] dir or --state-dir",
            );
            State {
                dir: PathBuf::from(SYSTEM_STATE_DIR),
            }
        }
    }
}

/// `$STATE_DIRECTORY` (systemd), else `/var/lib/aofvault` if writable, else
/// `$XDG_STATE_HOME/aofvault`, else `~/.local/state/aofvault`.
fn default_state_dir(env: &Env) -> Option<PathBuf> {
    if let Some(dirs) = env.get("STATE_DIRECTORY") {
        // systemd passes a colon-separated list when several StateDirectory= are set.
        let first = dirs.split(':').next().unwrap_or(dirs);
        return Some(PathBuf::from(first));
    }
    if dir_is_writable(Path::new(SYSTEM_STATE_DIR)) {
        return Some(PathBuf::from(SYSTEM_STATE_DIR));
    }
    if let Some(xdg) = env
        .get("XDG_STATE_HOME")
        .filter(|p| Path::new(p).is_absolute())
    {
        return Some(Path::new(xdg).join("aofvault"));
    }
    env.get("HOME")
        .filter(|p| Path::new(p).is_absolute())
        .map(|home| Path::new(home).join(".local/state/aofvault"))
}

/// Whether this process can create files in `dir`, by trying (permission bits alone do not
/// say, with ACLs, read-only mounts and root).
fn dir_is_writable(dir: &Path) -> bool {
    if !dir.is_dir() {
        return false;
    }
    let probe = dir.join(format!(".aofvault-write-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => std::fs::remove_file(&probe).is_ok(),
        Err(_) => false,
    }
}
