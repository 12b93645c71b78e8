//! The daemon's status, written to the state directory every second (crash-safe: temporary
//! file, fsync, rename, fsync of the directory) and read by `aofvault status`.
//!
//! One file per instance, `status-<instance>.json`, naming its instance inside too. `status`
//! reads the configured instance's file; when the configuration only *derived* the instance
//! name (e.g. `<host>-local` because `--server` was left out), [`choose`] looks for the agent
//! actually writing to this state directory instead.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::status::{GroupStatus, ShardStatus};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NextRun {
    pub job: String,
    pub schedule: String,
    pub next: Option<String>,
    pub last: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusDoc {
    pub instance: String,
    pub repository: String,
    pub pid: u32,
    pub written_ms: i64,
    pub shards: Vec<ShardStatus>,
    pub schedules: Vec<NextRun>,
    /// Its place in the replication group (absent in documents of older agents).
    #[serde(default)]
    pub group: Option<GroupStatus>,
}

/// A status younger than this, from a live process, is a running agent's.
const FRESH_MS: i64 = 10_000;

impl StatusDoc {
    /// Seconds since the daemon wrote it.
    pub fn age_s(&self, now_ms: i64) -> f64 {
        (now_ms - self.written_ms) as f64 / 1000.0
    }

    /// Whether its writer still runs: the process exists and the status is fresh.
    pub fn is_live(&self, now_ms: i64) -> bool {
        std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
            && now_ms - self.written_ms < FRESH_MS
    }

    /// The document for now; `schedules` are the next runs of the daemon's schedule.
    /// The same, with the agent's group status.
    pub fn with_group(mut self, group: GroupStatus) -> Self {
        self.group = Some(group);
        self
    }

    pub fn new(
        instance: &str,
        repository: &str,
        shards: &[ShardStatus],
        schedules: Vec<NextRun>,
    ) -> Self {
        StatusDoc {
            instance: instance.to_string(),
            repository: repository.to_string(),
            pid: std::process::id(),
            written_ms: chrono::Utc::now().timestamp_millis(),
            shards: shards.to_vec(),
            schedules,
            group: None,
        }
    }
}

pub fn path(state_dir: &Path, instance: &str) -> PathBuf {
    state_dir.join(format!("status-{instance}.json"))
}

/// Writes `data` to `path` atomically and durably.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

pub fn write(state_dir: &Path, instance: &str, doc: &StatusDoc) -> std::io::Result<()> {
    let json = serde_json::to_vec_pretty(doc).map_err(std::io::Error::other)?;
    write_atomic(&path(state_dir, instance), &json)
}

pub fn read(state_dir: &Path, instance: &str) -> std::io::Result<StatusDoc> {
    let bytes = std::fs::read(path(state_dir, instance))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Every readable status file in `state_dir` (files that are not one, or do not parse, are
/// skipped), sorted by instance. A missing directory holds none.
pub fn all(state_dir: &Path) -> std::io::Result<Vec<StatusDoc>> {
    let entries = match std::fs::read_dir(state_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut docs = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        let Some(instance) = name
            .to_str()
            .and_then(|n| n.strip_prefix("status-"))
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        if let Ok(doc) = read(state_dir, instance) {
            docs.push(doc);
        }
    }
    docs.sort_by(|a, b| a.instance.cmp(&b.instance));
    Ok(docs)
}

/// Which status `aofvault status` shows.
#[derive(Debug)]
pub enum Choice {
    Found(Box<StatusDoc>),
    /// No status file: for the named instance, or at all.
    Missing,
    /// Several agents could be meant: their instances (the running ones, if any runs).
    Ambiguous(Vec<String>),
}

/// Picks the status of `instance`; if there is none and the configuration did not name the
/// instance (`named` false), the agent writing to `state_dir`: the only running one, else the
/// only one there.
pub fn choose(
    state_dir: &Path,
    instance: &str,
    named: bool,
    now_ms: i64,
) -> std::io::Result<Choice> {
    match read(state_dir, instance) {
        Ok(doc) => return Ok(Choice::Found(Box::new(doc))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if named {
        return Ok(Choice::Missing);
    }
    Ok(pick(all(state_dir)?, now_ms))
}

fn pick(docs: Vec<StatusDoc>, now_ms: i64) -> Choice {
    let (live, stale): (Vec<StatusDoc>, Vec<StatusDoc>) =
        docs.into_iter().partition(|d| d.is_live(now_ms));
    let mut candidates = if live.is_empty() { stale } else { live };
    match candidates.len() {
        0 => Choice::Missing,
        1 => Choice::Found(Box::new(candidates.remove(0))),
        _ => Choice::Ambiguous(candidates.into_iter().map(|d| d.instance).collect()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn doc(instance: &str, pid: u32, written_ms: i64) -> StatusDoc {
        StatusDoc {
            instance: instance.into(),
            repository: "file:///r".into(),
            pid,
            written_ms,
            shards: Vec::new(),
            schedules: Vec::new(),
            group: None,
        }
    }

    #[test]
    fn a_derived_instance_finds_the_agent_writing_here() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id();
        write(dir.path(), "db1-6380", &doc("db1-6380", me, NOW)).unwrap();
        std::fs::write(dir.path().join("status-x.tmp"), b"partial").unwrap();
        std::fs::write(dir.path().join("status-bad.json"), b"{").unwrap();
        let found = |named| choose(dir.path(), "db1-local", named, NOW).unwrap();
        assert!(matches!(found(false), Choice::Found(d) if d.instance == "db1-6380"));
        // A named instance is never swapped for another.
        assert!(matches!(found(true), Choice::Missing));
        // Its own file wins when there is one.
        write(
            dir.path(),
            "db1-local",
            &doc("db1-local", u32::MAX, NOW - 60_000),
        )
        .unwrap();
        assert!(matches!(found(false), Choice::Found(d) if d.instance == "db1-local"));
    }

    #[test]
    fn the_running_agent_wins_over_stale_files_and_two_are_ambiguous() {
        let me = std::process::id();
        let gone = u32::MAX; // no such process
        let stale = doc("old", gone, NOW - 3_600_000);
        let running = doc("db1-6380", me, NOW - 1_000);
        assert!(
            matches!(pick(vec![stale.clone(), running.clone()], NOW), Choice::Found(d) if d.instance == "db1-6380")
        );
        assert!(matches!(pick(vec![stale.clone()], NOW), Choice::Found(d) if d.instance == "old"));
        let other = doc("db1-6381", me, NOW - 500);
        match pick(vec![stale.clone(), running, other], NOW) {
            Choice::Ambiguous(names) => assert_eq!(names, vec!["db1-6380", "db1-6381"]),
            c => panic!("{c:?}"),
        }
        match pick(vec![stale, doc("older", gone, NOW - 7_200_000)], NOW) {
            Choice::Ambiguous(names) => assert_eq!(names, vec!["old", "older"]),
            c => panic!("{c:?}"),
        }
        assert!(matches!(pick(Vec::new(), NOW), Choice::Missing));
    }
}
