//! The human summary of `inspect`: what is counted while streaming, and how it is written.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::Result;
use aofvault_formats::json::rfc3339_ms;
use aofvault_formats::rdb::ChecksumStatus;

/// What the summary reports, gathered while streaming.
#[derive(Default)]
pub(super) struct Summary {
    pub(super) keys_by_type: BTreeMap<&'static str, u64>,
    pub(super) keys_by_db: BTreeMap<u32, u64>,
    pub(super) with_expiry: u64,
    pub(super) aux: u64,
    pub(super) functions: u64,
    pub(super) commands: u64,
    pub(super) by_command: BTreeMap<String, u64>,
    pub(super) first_ts: Option<i64>,
    pub(super) last_ts: Option<i64>,
    pub(super) rdb_version: Option<u32>,
    pub(super) checksum: Option<ChecksumStatus>,
    /// (offset, bytes) left after the last safe cut of an AOF.
    pub(super) tail: Option<(u64, u64)>,
}

/// Writes the summary of a file of `format` (an AOF when `is_aof`).
pub(super) fn write_summary(
    out: &mut dyn Write,
    s: &Summary,
    path: &Path,
    format: &str,
    is_aof: bool,
) -> Result<()> {
    writeln!(out, "file:      {}", path.display())?;
    writeln!(out, "format:    {format}")?;
    if let (Some(v), true) = (s.rdb_version, is_aof) {
        writeln!(out, "preamble:  RDB version {v}")?;
    }
    if let Some(c) = s.checksum {
        let text = match c {
            ChecksumStatus::Verified => "verified (CRC-64 matches)",
            ChecksumStatus::NotPresent => "not present",
            ChecksumStatus::Pending => "not reached",
        };
        writeln!(out, "checksum:  {text}")?;
    }
    let keys: u64 = s.keys_by_type.values().sum();
    if keys > 0 || !is_aof {
        let by_type: Vec<_> = s
            .keys_by_type
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        writeln!(out, "keys:      {keys} ({})", by_type.join(", "))?;
        writeln!(out, "expiring:  {}", s.with_expiry)?;
        if s.keys_by_db.len() > 1 || s.keys_by_db.keys().any(|&db| db != 0) {
            let dbs: Vec<_> = s
                .keys_by_db
                .iter()
                .map(|(db, n)| format!("db{db} {n}"))
                .collect();
            writeln!(out, "databases: {}", dbs.join(", "))?;
        }
    }
    if s.aux > 0 || s.functions > 0 {
        writeln!(
            out,
            "aux:       {} fields, {} function libraries",
            s.aux, s.functions
        )?;
    }
    if is_aof {
        let mut top: Vec<_> = s.by_command.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let shown: Vec<_> = top
            .iter()
            .take(10)
            .map(|(c, n)| format!("{c} {n}"))
            .collect();
        let more = if top.len() > 10 { ", …" } else { "" };
        writeln!(
            out,
            "commands:  {} ({}{more})",
            s.commands,
            shown.join(", ")
        )?;
    }
    if let (Some(first), Some(last)) = (s.first_ts, s.last_ts) {
        writeln!(
            out,
            "#TS:       {} .. {}",
            rfc3339_ms(first.saturating_mul(1000)),
            rfc3339_ms(last.saturating_mul(1000))
        )?;
    }
    if let Some((offset, bytes)) = s.tail {
        writeln!(
            out,
            "tail:      {bytes} bytes from byte {offset} are not a whole command outside MULTI \
             (still being written, or cut off)"
        )?;
    }
    Ok(())
}
