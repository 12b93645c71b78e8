//! The result of a drift check, as JSON (`--json`, the [`Report`] itself) or as text: the key
//! counts per database and per type on both sides, what was compared at what cost to the live
//! server, then one line per differing key, named.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use aofvault_formats::json::rfc3339_ms;
use serde::Serialize;

use super::read::Difference;
use super::Options;
use crate::repo::plan::Plan;

/// How a key differs between the server and what a restore gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// In the server, missing from what a restore gives.
    Missing,
    /// In what a restore gives, gone from the server.
    Stale,
    Type,
    Value,
    Ttl,
}

impl From<Difference> for Problem {
    fn from(d: Difference) -> Problem {
        match d {
            Difference::Type => Problem::Type,
            Difference::Value => Problem::Value,
            Difference::Ttl => Problem::Ttl,
        }
    }
}

/// One key that differs persistently.
#[derive(Debug, Clone, Serialize)]
pub struct Divergence {
    pub db: u32,
    /// The key, escaped for display.
    pub key: String,
    pub problem: Problem,
    /// What the server holds (type, size, TTL), if anything.
    pub server: Option<String>,
    /// What a restore gives, if anything.
    pub backup: Option<String>,
}

/// A key named in the report.
#[derive(Debug, Clone, Serialize)]
pub struct KeyRef {
    pub db: u32,
    pub key: String,
}

impl KeyRef {
    pub fn new(db: u32, key: &[u8]) -> KeyRef {
        KeyRef {
            db,
            key: super::digest::key_text(key),
        }
    }
}

/// Everything a drift check found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub instance: String,
    /// The live server (without credentials).
    pub server: String,
    pub server_version: Option<String>,
    /// The snapshot the first restore started from, and the moment its plan covers.
    pub snapshot: String,
    pub covers_until: String,
    /// "full" or "sample".
    pub mode: &'static str,
    pub sample: u64,
    /// The configured limit and what the check sent to the live server.
    pub rate_limit: u32,
    pub server_commands: u64,
    pub seconds: f64,
    /// db → keys (`DBSIZE`), per side.
    pub server_keys: BTreeMap<String, u64>,
    pub backup_keys: BTreeMap<String, u64>,
    /// type → keys; on the server side only the sampled keys in sample mode.
    pub server_types: BTreeMap<String, u64>,
    pub backup_types: BTreeMap<String, u64>,
    pub compared: u64,
    /// KeyRing that differed at first and were read again after the repository caught up.
    pub rechecked: u64,
    /// Of those, the ones that then agreed.
    pub resolved: u64,
    /// Of those, the ones written during the re-check (not compared).
    pub changing: Vec<KeyRef>,
    pub recheck_snapshot: Option<String>,
    /// How far the repository was from covering the re-check when it was restored again.
    pub repository_behind_ms: Option<i64>,
    pub divergences: Vec<Divergence>,
}

impl Report {
    pub fn new(
        instance: &str,
        url: &str,
        info: &HashMap<String, String>,
        plan: &Plan,
        opts: &Options,
    ) -> Report {
        let server_version = ["kevy_version", "valkey_version", "redis_version"]
            .iter()
            .find_map(|k| info.get(*k).map(|v| format!("{} {v}", &k[..k.len() - 8])));
        Report {
            instance: instance.to_string(),
            server: crate::restore::live::url_text(url),
            server_version,
            snapshot: plan.snapshot.clone(),
            covers_until: rfc3339_ms(plan.covers_until_ms()),
            mode: if opts.sample == 0 { "full" } else { "sample" },
            sample: opts.sample,
            rate_limit: opts.rate,
            server_commands: 0,
            seconds: 0.0,
            server_keys: BTreeMap::new(),
            backup_keys: BTreeMap::new(),
            server_types: BTreeMap::new(),
            backup_types: BTreeMap::new(),
            compared: 0,
            rechecked: 0,
            resolved: 0,
            changing: Vec::new(),
            recheck_snapshot: None,
            repository_behind_ms: None,
            divergences: Vec::new(),
        }
    }
}

fn counts(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The report as text.
pub fn text(r: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    for d in &r.divergences {
        let what = match d.problem {
            Problem::Missing => "in the server, MISSING from what a restore gives",
            Problem::Stale => "STALE: in what a restore gives, no longer in the server",
            Problem::Type => "the TYPE differs",
            Problem::Value => "the VALUE differs",
            Problem::Ttl => "the TTL differs",
        };
        writeln!(
            out,
            "DRIFT db {} key \"{}\": {what} (server: {}; restore: {})",
            d.db,
            d.key,
            d.server.as_deref().unwrap_or("no such key"),
            d.backup.as_deref().unwrap_or("no such key"),
        )?;
    }
    for k in &r.changing {
        writeln!(
            out,
            "changing: db {} key \"{}\" was written during the re-check; not compared",
            k.db, k.key
        )?;
    }
    writeln!(
        out,
        "drift check of instance {} against {} ({}): latest state {} (snapshot {})",
        r.instance,
        r.server,
        r.server_version.as_deref().unwrap_or("unknown server"),
        r.covers_until,
        r.snapshot
    )?;
    writeln!(
        out,
        "keys: server {}, restore {}; types: server {}{}, restore {}",
        counts(&r.server_keys),
        counts(&r.backup_keys),
        counts(&r.server_types),
        if r.mode == "sample" { " (sampled)" } else { "" },
        counts(&r.backup_types)
    )?;
    writeln!(
        out,
        "compared {} keys ({}), re-checked {} ({} agreed, {} changing); {} commands to the server in {:.1}s (limit {}/s)",
        r.compared,
        if r.mode == "sample" { format!("sample of {} per side", r.sample) } else { "every key".into() },
        r.rechecked,
        r.resolved,
        r.changing.len(),
        r.server_commands,
        r.seconds,
        r.rate_limit
    )?;
    if let Some(ms) = r.repository_behind_ms {
        writeln!(
            out,
            "note: the repository was {:.1}s short of the re-check when it was restored again (is the agent shipping?)",
            ms as f64 / 1000.0
        )?;
    }
    if r.divergences.is_empty() {
        writeln!(out, "no drift")
    } else {
        writeln!(out, "{} KEY(S) DIFFER", r.divergences.len())
    }
}
