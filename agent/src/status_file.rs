//! The daemon's status, written to the state directory every second (crash-safe: temporary
//! file, fsync, rename, fsync of the directory) and read by `aofvault status`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::schedule::Runner;
use crate::ship::status::ShardStatus;

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
}

impl StatusDoc {
    pub fn new(instance: &str, repository: &str, shards: &[ShardStatus], sched: &Runner) -> Self {
        StatusDoc {
            instance: instance.to_string(),
            repository: repository.to_string(),
            pid: std::process::id(),
            written_ms: chrono::Utc::now().timestamp_millis(),
            shards: shards.to_vec(),
            schedules: sched.next_runs(),
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
