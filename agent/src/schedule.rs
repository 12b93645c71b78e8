//! The daemon's own clock for periodic jobs — snapshots, verification, pruning, drift checks —
//! with no cron.
//!
//! The time of each job's last run is kept in the state directory. On start, a job whose next
//! run (after its last run) has already passed is due at once — once, however many runs were
//! missed — and is then scheduled from now.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use aofvault_config::{Config, Schedule};
use chrono::{DateTime, Utc};

use crate::repo::Repo;
use crate::status::file::NextRun;
use crate::status::Counters;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Job {
    Snapshot,
    Verify,
    Prune,
    DriftCheck,
}

impl Job {
    pub fn name(self) -> &'static str {
        match self {
            Job::Snapshot => "snapshot",
            Job::Verify => "verify",
            Job::Prune => "prune",
            Job::DriftCheck => "drift_check",
        }
    }
}

struct Entry {
    job: Job,
    schedule: Schedule,
    next: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
}

pub struct Runner {
    entries: Vec<Entry>,
    path: PathBuf,
}

fn load(path: &Path) -> BTreeMap<String, i64> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

impl Runner {
    pub fn new(cfg: &Config, state_dir: &Path, instance: &str) -> Runner {
        Self::with_clock(cfg, state_dir, instance, Utc::now())
    }

    pub fn with_clock(
        cfg: &Config,
        state_dir: &Path,
        instance: &str,
        now: DateTime<Utc>,
    ) -> Runner {
        let path = state_dir.join(format!("schedule-{instance}.json"));
        let last_runs = load(&path);
        let s = &cfg.schedule;
        let mut entries = Vec::new();
        for (job, sched) in [
            (Job::Snapshot, &s.snapshot),
            (Job::Verify, &s.verify),
            (Job::Prune, &s.prune),
            (Job::DriftCheck, &s.drift_check),
        ] {
            let Some(schedule) = sched.clone() else {
                continue;
            };
            let last = last_runs
                .get(job.name())
                .and_then(|ms| DateTime::<Utc>::from_timestamp_millis(*ms));
            // Missed runs collapse into one: the first run after the last one, if already past,
            // is due now; otherwise the schedule goes on from its last run.
            let next = match last {
                Some(l) => schedule.next_after(l),
                None => schedule.next_after(now),
            };
            entries.push(Entry {
                job,
                schedule,
                next,
                last,
            });
        }
        Runner { entries, path }
    }

    /// Jobs due now.
    pub fn due(&self) -> Vec<Job> {
        self.due_at(Utc::now())
    }

    pub fn due_at(&self, now: DateTime<Utc>) -> Vec<Job> {
        self.entries
            .iter()
            .filter(|e| e.next.is_some_and(|n| n <= now))
            .map(|e| e.job)
            .collect()
    }

    /// Records a run of `job` now and schedules the next one.
    pub fn done(&mut self, job: Job) {
        self.done_at(job, Utc::now())
    }

    pub fn done_at(&mut self, job: Job, now: DateTime<Utc>) {
        for e in self.entries.iter_mut().filter(|e| e.job == job) {
            e.last = Some(now);
            e.next = e.schedule.next_after(now);
        }
        let map: BTreeMap<String, i64> = self
            .entries
            .iter()
            .filter_map(|e| {
                e.last
                    .map(|l| (e.job.name().to_string(), l.timestamp_millis()))
            })
            .collect();
        if let Ok(json) = serde_json::to_vec_pretty(&map) {
            if let Err(e) = crate::status::file::write_atomic(&self.path, &json) {
                tracing::warn!(error = %e, path = %self.path.display(), "cannot record the schedule state");
            }
        }
    }

    pub fn next_runs(&self) -> Vec<NextRun> {
        self.entries
            .iter()
            .map(|e| NextRun {
                job: e.job.name().to_string(),
                schedule: e.schedule.to_string(),
                next: e.next.map(|n| n.to_rfc3339()),
                last: e.last.map(|n| n.to_rfc3339()),
            })
            .collect()
    }
}

/// Runs a scheduled job other than the snapshot (which the daemon publishes itself). Failures
/// are logged and counted, never fatal to the daemon.
/// Runs one scheduled job to its end; its outcome goes to the log and, for the drift check, to
/// the `drift_keys` metric in `counters`.
pub async fn run_job(job: Job, cfg: &Config, repo: &Repo, instance: &str, counters: &Counters) {
    tracing::info!(job = job.name(), "scheduled job starting");
    let result = match job {
        Job::Snapshot => Ok(()),
        Job::Verify => crate::verify::scheduled(repo, instance).await,
        Job::Prune => crate::prune::scheduled(cfg, repo, instance).await,
        Job::DriftCheck => crate::drift::scheduled(cfg, repo, instance)
            .await
            .map(|keys| counters.drift_keys.store(keys, Ordering::Relaxed)),
    };
    match result {
        Ok(()) => tracing::info!(job = job.name(), "scheduled job done"),
        Err(e) => {
            tracing::error!(job = job.name(), error = %format!("{e:#}"), "scheduled job failed")
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn cfg(snapshot: &str) -> Config {
        let toml = format!("[source]\ndir = \"/tmp\"\n[state]\ndir = \"/tmp\"\n[schedule]\nsnapshot = \"{snapshot}\"\nprune = \"every 1h\"\n");
        aofvault_config::parse(&toml, "t")
            .unwrap()
            .validate(&aofvault_config::Env::empty())
            .unwrap()
    }

    #[test]
    fn missed_runs_are_caught_up_once() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg("every 10s");
        let t0 = Utc.timestamp_opt(1_800_000_000, 0).unwrap();
        let mut r = Runner::with_clock(&c, dir.path(), "i", t0);
        let snap = |r: &Runner, t| r.due_at(t).contains(&Job::Snapshot);
        assert!(!snap(&r, t0), "nothing is due at the first start");
        let t1 = t0 + chrono::Duration::seconds(10);
        assert!(snap(&r, t1));
        r.done_at(Job::Snapshot, t1);
        assert!(!snap(&r, t1 + chrono::Duration::seconds(9)));
        // Down for 95 s: nine runs missed. At restart, one is due; after it, the next is 10 s later.
        let t2 = t1 + chrono::Duration::seconds(95);
        let mut r = Runner::with_clock(&c, dir.path(), "i", t2);
        assert!(snap(&r, t2));
        r.done_at(Job::Snapshot, t2);
        assert!(
            !snap(&r, t2 + chrono::Duration::seconds(1)),
            "caught up once, not nine times"
        );
        assert!(snap(&r, t2 + chrono::Duration::seconds(10)));
    }

    #[test]
    fn cron_schedules_run_at_their_times() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg("0 */6 * * *");
        let t0 = Utc.with_ymd_and_hms(2026, 11, 26, 1, 30, 0).unwrap();
        let r = Runner::with_clock(&c, dir.path(), "i", t0);
        let snap = |t| r.due_at(t).contains(&Job::Snapshot);
        assert!(!snap(
            Utc.with_ymd_and_hms(2026, 11, 26, 5, 59, 59).unwrap()
        ));
        assert!(snap(Utc.with_ymd_and_hms(2026, 11, 26, 6, 0, 0).unwrap()));
    }
}
