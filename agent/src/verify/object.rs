//! Checking one object: download it once into a scratch file (decrypting and decompressing as
//! it arrives), weigh what the documents claim about it against what it holds, and decode it in
//! full — a base to its last entry and trailer, a segment to its last byte, which must end a
//! whole command outside any `MULTI`.
//!
//! Weighing the claims: when at least one claim matches the object's size and CRC-32C, the
//! object is sound and every claim that does not match names its document (a damaged record);
//! when none matches, the object is named. A base no readable document describes is decoded with
//! its format sniffed from its first bytes.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use anyhow::Context;
use aofvault_formats::kevy::{KevySnapReader, SNAPSHOT_MAGIC};
use aofvault_formats::model::Record;
use aofvault_formats::rdb::RdbReader;
use aofvault_formats::vault::BaseFormat;

use super::finding::{as_finding, finding, Finding};
use super::plan::{Kind, Target};
use crate::repo::Repo;
use crate::restore::fetch::create_private;
use crate::restore::stream::{for_each_item, Item};

/// What checking one object found.
#[derive(Debug, Default)]
pub(super) struct Checked {
    pub findings: Vec<Finding>,
    /// Plain bytes downloaded (0 when it could not be).
    pub bytes: u64,
    pub base_keys: u64,
    pub commands: u64,
}

/// Downloads, weighs and decodes one object, using `path` as scratch space.
pub(super) async fn check_object(
    repo: &Repo,
    key: &str,
    target: &Target,
    path: &Path,
) -> anyhow::Result<Checked> {
    let file = create_private(path)?;
    let writer = std::io::BufWriter::with_capacity(1 << 20, file);
    let (crc, len) = match repo.download_plain(key, writer).await {
        Ok((crc, len, w)) => {
            w.into_inner()
                .map_err(|e| e.into_error())
                .context("writing the scratch copy")?;
            (crc, len)
        }
        Err(err) => {
            let _ = std::fs::remove_file(path);
            return Ok(Checked {
                findings: vec![as_finding(key, err)?],
                ..Checked::default()
            });
        }
    };
    let mut out = Checked {
        bytes: len,
        ..Checked::default()
    };
    let (good, bad): (Vec<_>, Vec<_>) = target
        .claims
        .iter()
        .partition(|c| c.crc == crc && c.size == len);
    if let Some(first) = target.claims.first() {
        if good.is_empty() {
            let problem = if first.size != len {
                format!("{len} bytes where {} were recorded", first.size)
            } else {
                format!("checksum {crc:08x} where {:08x} was recorded", first.crc)
            };
            let _ = std::fs::remove_file(path);
            out.findings.push(finding(key, problem));
            return Ok(out);
        }
    }
    for c in bad {
        out.findings.push(finding(
            &c.by,
            format!(
                "{key}: {} bytes with CRC-32C {:08x} were recorded here, but the object holds {len} bytes with {crc:08x}, as {} records",
                c.size, c.crc, good.first().map(|g| g.by.as_str()).unwrap_or("?")
            ),
        ));
    }
    let (p, kind) = (path.to_path_buf(), target.kind);
    let decoded = tokio::task::spawn_blocking(move || decode(&p, kind))
        .await
        .context("decode task")?;
    let _ = std::fs::remove_file(path);
    match decoded {
        Ok((keys_n, commands)) => {
            out.base_keys = keys_n;
            out.commands = commands;
        }
        Err(err) => out
            .findings
            .push(finding(key, format!("does not decode: {err:#}"))),
    }
    Ok(out)
}

/// A base's format from its first bytes (no readable document says it).
fn sniff(path: &Path) -> anyhow::Result<BaseFormat> {
    let mut head = [0u8; 9];
    let mut f = File::open(path)?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..])? {
            0 => break,
            m => n += m,
        }
    }
    let head = &head[..n];
    Ok(if head.starts_with(SNAPSHOT_MAGIC) {
        BaseFormat::KevySnap
    } else if aofvault_formats::detect::is_rdb_head(head) {
        BaseFormat::Rdb
    } else {
        BaseFormat::Resp
    })
}

/// Decodes a downloaded object completely: (base keys, commands).
fn decode(path: &Path, kind: Kind) -> anyhow::Result<(u64, u64)> {
    let format = match kind {
        Kind::Base(Some(f)) => f,
        Kind::Base(None) => sniff(path)?,
        Kind::Torn => return Ok((0, 0)),
        Kind::Segment { start } => {
            let reader = BufReader::with_capacity(1 << 20, File::open(path)?);
            let end = for_each_item(reader, start, |item, _| match item {
                Item::Command(_) | Item::Timestamp(_) => Ok(()),
            })?;
            if end.open_multi {
                anyhow::bail!("it ends inside MULTI … EXEC (a segment must end at a safe point)");
            }
            return Ok((0, end.commands));
        }
    };
    let reader = BufReader::with_capacity(1 << 20, File::open(path)?);
    match format {
        BaseFormat::KevySnap => {
            let mut r = KevySnapReader::new(reader, crate::context::now_ms())?;
            let mut n = 0;
            while r.next_entry()?.is_some() {
                n += 1;
            }
            Ok((n, 0))
        }
        BaseFormat::Rdb => {
            let mut r = RdbReader::new(reader)?;
            let mut n = 0;
            while let Some(rec) = r.next_record()? {
                n += u64::from(matches!(rec, Record::Entry(_)));
            }
            let offset = r.offset();
            let tail = for_each_item(r.into_inner(), offset, |_, _| Ok(()))?;
            Ok((n, tail.commands))
        }
        BaseFormat::Resp => {
            let end = for_each_item(reader, 0, |_, _| Ok(()))?;
            Ok((0, end.commands))
        }
    }
}
