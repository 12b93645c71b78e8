//! The shipped systemd units: `systemd-analyze verify` accepts both without a warning,
//! `systemd-analyze security --offline=true` rates each at 2.5 or below, and the directives
//! the agent relies on are there (notify, watchdog, a stop timeout above the agent's own
//! shutdown deadline).
//!
//! Skips, saying why, only when `systemd-analyze` is not installed (`apt-get install systemd`).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use aofvault_config::{units::parse_duration, Config, Env};

/// Highest `systemd-analyze security` exposure the units may have.
const MAX_EXPOSURE: f64 = 2.5;

/// Where the units install the binary; replaced by a stand-in so `verify` finds it.
const INSTALLED_BINARY: &str = "/usr/local/bin/aofvault";

const UNITS: [&str; 2] = ["aofvault.service", "aofvault@.service"];

fn systemd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../systemd")
}

fn have_systemd_analyze() -> bool {
    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(out) => out.status.success(),
        Err(_) => {
            eprintln!("SKIPPED: systemd-analyze is not installed (apt-get install systemd)");
            false
        }
    }
}

/// Copies the units into `dir` with `ExecStart` pointing at an executable stand-in (verify
/// checks the binary exists; everything else is checked as shipped).
fn stage_units(dir: &Path) {
    let stand_in = dir.join("aofvault");
    std::fs::write(&stand_in, "#!/bin/sh\nexit 0\n").unwrap();
    let mut perms = std::fs::metadata(&stand_in).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&stand_in, perms).unwrap();
    for unit in UNITS {
        let text = std::fs::read_to_string(systemd_dir().join(unit)).unwrap();
        assert!(
            text.contains(INSTALLED_BINARY),
            "{unit} does not run {INSTALLED_BINARY}"
        );
        let staged = text.replace(INSTALLED_BINARY, stand_in.to_str().unwrap());
        std::fs::write(dir.join(unit), staged).unwrap();
    }
}

/// The unit files to analyse: the plain unit, and an instance of the template.
fn analysed(dir: &Path) -> [PathBuf; 2] {
    [
        dir.join("aofvault.service"),
        dir.join("aofvault@test.service"),
    ]
}

#[test]
fn systemd_analyze_verify_accepts_both_units() {
    if !have_systemd_analyze() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    stage_units(dir.path());
    for unit in analysed(dir.path()) {
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&unit)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "verify {}: {stderr}", unit.display());
        // verify exits 0 on unknown keys and bad values, which it only warns about.
        assert!(
            stderr.trim().is_empty(),
            "verify {} warned:\n{stderr}",
            unit.display()
        );
    }
}

#[test]
fn systemd_analyze_security_rates_both_units_at_most_2_5() {
    if !have_systemd_analyze() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    stage_units(dir.path());
    for unit in analysed(dir.path()) {
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(&unit)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let exposure = stdout
            .lines()
            .find_map(|line| {
                line.split_once("Overall exposure level for ")?
                    .1
                    .split_once(": ")
            })
            .and_then(|(_, rest)| rest.split_whitespace().next()?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no exposure level for {}:\n{stdout}", unit.display()));
        assert!(
            exposure <= MAX_EXPOSURE,
            "{} exposure {exposure} > {MAX_EXPOSURE}:\n{stdout}",
            unit.display()
        );
    }
}

/// The value of `key=` in a unit, first occurrence.
fn directive<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .map(str::trim)
}

#[test]
fn units_carry_the_directives_the_agent_relies_on() {
    let default_deadline =
        Config::from_toml("", "empty", &Env::empty().with("STATE_DIRECTORY", "/x"))
            .unwrap()
            .shutdown
            .deadline;
    for unit in UNITS {
        let text = std::fs::read_to_string(systemd_dir().join(unit)).unwrap();
        for (key, want) in [
            ("Type", "notify"),
            ("NotifyAccess", "main"),
            ("Restart", "on-failure"),
            ("User", "aofvault"),
            ("Group", "aofvault"),
            ("NoNewPrivileges", "yes"),
            ("PrivateTmp", "yes"),
            ("ProtectSystem", "strict"),
            ("CapabilityBoundingSet", ""),
            ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ] {
            assert_eq!(directive(&text, key), Some(want), "{unit}: {key}=");
        }
        let stop = parse_duration(directive(&text, "TimeoutStopSec").unwrap()).unwrap();
        assert!(
            stop > default_deadline + Duration::from_secs(5),
            "{unit}: TimeoutStopSec {stop:?} must leave room above the {default_deadline:?} shutdown deadline"
        );
        let watchdog = parse_duration(directive(&text, "WatchdogSec").unwrap()).unwrap();
        assert!(
            watchdog >= Duration::from_secs(10),
            "{unit}: WatchdogSec {watchdog:?}"
        );
        assert!(directive(&text, "StateDirectory").is_some_and(|d| d.starts_with("aofvault")));
    }
    let template = std::fs::read_to_string(systemd_dir().join("aofvault@.service")).unwrap();
    assert!(template.contains("--config /etc/aofvault/%i.toml"));
    assert_eq!(directive(&template, "StateDirectory"), Some("aofvault/%i"));
}

#[test]
fn sysusers_snippet_creates_the_unit_user() {
    let text = std::fs::read_to_string(systemd_dir().join("aofvault.sysusers.conf")).unwrap();
    let entry = text
        .lines()
        .find(|line| line.starts_with("u "))
        .expect("a `u` line");
    assert!(entry.starts_with("u aofvault "), "{entry}");
}
