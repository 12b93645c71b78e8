//! What prune decided and did ([`Report`]), and how it tells the operator: one line per
//! snapshot decision and per deletion (or would-be deletion), then a summary, as text or JSON;
//! the scheduled prune says the same in the log.

use std::io::Write;

use serde::Serialize;

use super::gc::{ChainPlan, Fate};

/// What the policy decided for one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotFate {
    Keep,
    /// Dropped by the policy, but younger than the grace period.
    Spare,
    Delete,
    /// The manifest cannot be parsed: left alone, and chains are not collected.
    Unreadable,
}

#[derive(Debug, Clone, Serialize)]
pub struct SnapshotLine {
    pub id: String,
    pub created_ms: Option<i64>,
    pub fate: SnapshotFate,
    pub reasons: Vec<&'static str>,
}

/// One object deleted (or, with `--dry-run`, that would be).
#[derive(Debug, Clone, Serialize)]
pub struct Deletion {
    pub key: String,
    pub size: u64,
    pub reason: String,
    /// Deleted now (false in a dry run, or when it failed).
    pub deleted: bool,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    pub snapshots_kept: usize,
    pub snapshots_spared: usize,
    pub snapshots_deleted: usize,
    pub chains_kept: usize,
    pub chains_deleted: usize,
    pub objects_deleted: usize,
    pub bytes_freed: u64,
    pub failures: usize,
}

/// Everything one prune decided and did.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub instance: String,
    pub policy: String,
    pub gc_grace_ms: i64,
    pub now_ms: i64,
    pub dry_run: bool,
    /// Set when prune decided not to look (no rules).
    pub note: Option<String>,
    pub snapshots: Vec<SnapshotLine>,
    pub chains: Vec<ChainPlan>,
    pub deletions: Vec<Deletion>,
    pub warnings: Vec<String>,
    pub summary: Summary,
}

impl Report {
    /// Whether everything went as planned (no failed deletion, no unreadable manifest).
    pub fn clean(&self) -> bool {
        self.summary.failures == 0 && self.warnings.is_empty()
    }

    /// Counts the decisions and deletions into [`Summary`].
    pub fn summarize(&mut self) {
        let mut s = Summary::default();
        for line in &self.snapshots {
            match line.fate {
                SnapshotFate::Keep | SnapshotFate::Unreadable => s.snapshots_kept += 1,
                SnapshotFate::Spare => s.snapshots_spared += 1,
                SnapshotFate::Delete => s.snapshots_deleted += 1,
            }
        }
        for c in &self.chains {
            match c.fate {
                Fate::Keep => s.chains_kept += 1,
                Fate::Delete => s.chains_deleted += 1,
            }
        }
        for d in &self.deletions {
            if d.error.is_some() {
                s.failures += 1;
            } else {
                s.objects_deleted += 1;
                s.bytes_freed += d.size;
            }
        }
        self.summary = s;
    }
}

/// `1.5 MiB`-style sizes.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn fate_word(f: SnapshotFate) -> &'static str {
    match f {
        SnapshotFate::Keep => "keep",
        SnapshotFate::Spare => "spare",
        SnapshotFate::Delete => "drop",
        SnapshotFate::Unreadable => "UNREADABLE",
    }
}

/// The one-line summary, shared by the text output and the log.
pub fn summary_line(r: &Report) -> String {
    let s = &r.summary;
    let (deleted, freed) = if r.dry_run {
        ("would be deleted", "would be freed")
    } else {
        ("deleted", "freed")
    };
    format!(
        "{} snapshot(s) kept, {} spared (younger than gc_grace), {} {deleted}; \
         {} chain(s) kept, {} {deleted}; {} object(s), {} {freed}",
        s.snapshots_kept,
        s.snapshots_spared,
        s.snapshots_deleted,
        s.chains_kept,
        s.chains_deleted,
        s.objects_deleted,
        bytes(s.bytes_freed),
    )
}

/// The human-readable report of `aofvault prune`.
pub fn text(r: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    let mode = if r.dry_run {
        " (dry run: nothing is deleted)"
    } else {
        ""
    };
    writeln!(
        out,
        "prune of instance {}: {}, gc_grace {}s{mode}",
        r.instance,
        r.policy,
        r.gc_grace_ms / 1000
    )?;
    if let Some(note) = &r.note {
        writeln!(out, "{note}")?;
        return Ok(());
    }
    for s in &r.snapshots {
        writeln!(
            out,
            "snapshot {} {:<5} {}",
            s.id,
            fate_word(s.fate),
            s.reasons.join(", ")
        )?;
    }
    for c in r.chains.iter().filter(|c| c.fate == Fate::Keep) {
        writeln!(out, "chain {}/{} keep  {}", c.shard, c.chain, c.reason)?;
    }
    for d in &r.deletions {
        let verb = match (&d.error, d.deleted) {
            (Some(_), _) => "FAILED to delete",
            (None, true) => "deleted",
            (None, false) => "would delete",
        };
        write!(out, "{verb} {} ({}): {}", d.key, bytes(d.size), d.reason)?;
        match &d.error {
            Some(e) => writeln!(out, ": {e}")?,
            None => writeln!(out)?,
        }
    }
    for w in &r.warnings {
        writeln!(out, "warning: {w}")?;
    }
    writeln!(out, "{}", summary_line(r))?;
    Ok(())
}

/// The scheduled prune's report, in the log: each deletion at info, failures and warnings at
/// error, the summary last.
pub fn log(r: &Report) {
    for d in &r.deletions {
        match &d.error {
            Some(e) => {
                tracing::error!(key = %d.key, reason = %d.reason, error = %e, "prune: cannot delete")
            }
            None => {
                tracing::info!(key = %d.key, size = d.size, reason = %d.reason, "prune: deleted")
            }
        }
    }
    for w in &r.warnings {
        tracing::error!("prune: {w}");
    }
    tracing::info!(instance = %r.instance, policy = %r.policy, "prune: {}", summary_line(r));
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn sizes() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
    }
}
