//! `aofvault inspect FILE [--json | --resp]`: decode one server file and describe it.
//!
//! The format is detected from the file's first bytes ([`aofvault_formats::detect`]); the file
//! is then streamed through the matching decoder — never read whole — and every record or
//! command goes to one [`Output`], which either counts it for the human summary, writes it as
//! one element of a JSON array (`docs/INSPECT.md` documents the shape), or writes the RESP
//! commands that recreate it. Corrupt input stops with an error naming the file and the byte
//! offset; a half-written command at the end of an AOF is normal and only reported.
//!
//! - here: detecting the format and streaming the file through its decoder;
//! - `output`: where each record or command goes, per form (JSON array, RESP, summary counts);
//! - `summary`: what the human summary counts and how it is written;
//! - `manifest`: a Redis AOF manifest, which holds file names rather than data.

mod manifest;
mod output;
mod summary;

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use aofvault_formats::aof;
use aofvault_formats::detect::{detect, FileFormat};
use aofvault_formats::kevy::KevySnapReader;
use aofvault_formats::model::Record;
use aofvault_formats::rdb::RdbReader;
use aofvault_formats::render::Dialect;

use manifest::manifest;
use output::Output;

/// Bytes read from an AOF at a time.
const CHUNK: u64 = 1 << 20;

/// Run `inspect` on `args.file`, writing to `out`.
pub fn run(args: &crate::cli::InspectArgs, out: &mut dyn Write) -> Result<()> {
    let path = args.file.as_path();
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut head = Vec::with_capacity(16);
    (&mut file)
        .take(16)
        .read_to_end(&mut head)
        .and_then(|_| file.seek(SeekFrom::Start(0)))
        .with_context(|| format!("cannot read {}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let format = detect(&head, &name);
    let mode = if args.json {
        Mode::Json
    } else if args.resp {
        Mode::Resp
    } else {
        Mode::Summary
    };
    let mut output = Output::new(mode, out);
    let reader = BufReader::with_capacity(1 << 16, file);
    match format {
        FileFormat::Rdb { .. } => {
            output.dialect = Dialect::Redis;
            read_rdb(reader, path, &mut output)?;
        }
        FileFormat::KevySnap { .. } => read_kevy_snapshot(reader, path, &mut output)?,
        FileFormat::KevyAof => read_aof(reader, 0, path, &mut output)?,
        FileFormat::RedisAof { rdb_preamble } => {
            output.dialect = Dialect::Redis;
            if rdb_preamble {
                let (rest, offset) = read_rdb(reader, path, &mut output)?;
                read_aof(rest, offset, path, &mut output)?;
            } else {
                read_aof(reader, 0, path, &mut output)?;
            }
        }
        FileFormat::AofManifest => return manifest(reader, path, mode, out),
        FileFormat::Unknown => bail!(
            "{}: unknown format (first bytes {:?})",
            path.display(),
            head.escape_ascii().to_string()
        ),
    }
    let is_aof = matches!(format, FileFormat::KevyAof | FileFormat::RedisAof { .. });
    output.finish(path, &describe(format), is_aof)
}

fn describe(format: FileFormat) -> String {
    match format {
        FileFormat::Rdb { version } => format!("RDB, version {version}"),
        FileFormat::KevySnap { version } => format!("kevy snapshot (KEVYSNAP), version {version}"),
        FileFormat::KevyAof => "kevy AOF".into(),
        FileFormat::RedisAof { rdb_preamble: true } => "Redis AOF with an RDB preamble".into(),
        FileFormat::RedisAof {
            rdb_preamble: false,
        } => "Redis AOF".into(),
        FileFormat::AofManifest => "Redis AOF manifest".into(),
        FileFormat::Unknown => "unknown".into(),
    }
}

/// Decode an RDB (or an AOF's RDB preamble); returns the reader positioned after it, and that
/// position.
fn read_rdb<R: std::io::BufRead>(r: R, path: &Path, out: &mut Output) -> Result<(R, u64)> {
    let mut rdb =
        RdbReader::new(r).with_context(|| format!("{}: bad RDB header", path.display()))?;
    out.summary.rdb_version = Some(rdb.version());
    loop {
        let record = rdb.next_record().with_context(|| {
            format!(
                "{}: corrupt RDB (decoder stopped at byte {})",
                path.display(),
                rdb.offset()
            )
        })?;
        match record {
            Some(record) => out.record(&record)?,
            None => break,
        }
    }
    out.summary.checksum = Some(rdb.checksum());
    let offset = rdb.offset();
    Ok((rdb.into_inner(), offset))
}

fn read_kevy_snapshot(r: impl Read, path: &Path, out: &mut Output) -> Result<()> {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let mut snap = KevySnapReader::new(r, now_ms)
        .with_context(|| format!("{}: bad kevy snapshot header", path.display()))?;
    out.dialect = Dialect::Kevy;
    while let Some(entry) = snap
        .next_entry()
        .with_context(|| format!("{}: corrupt kevy snapshot", path.display()))?
    {
        out.record(&Record::Entry(entry))?;
    }
    Ok(())
}

/// Stream the RESP part of an AOF, `base` being the file offset of `r`'s first byte.
fn read_aof(mut r: impl Read, mut base: u64, path: &Path, out: &mut Output) -> Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(2 * CHUNK as usize);
    loop {
        let got = (&mut r)
            .take(CHUNK)
            .read_to_end(&mut buf)
            .with_context(|| format!("{}: read error after byte {base}", path.display()))?;
        let prefix = aof::safe_prefix(&buf, base)
            .with_context(|| format!("{}: corrupt AOF", path.display()))?;
        for item in aof::items(&buf[..prefix.len], base) {
            match item.with_context(|| format!("{}: corrupt AOF", path.display()))? {
                aof::AofItem::Command { args, .. } => out.command(&args)?,
                aof::AofItem::Timestamp { unix_secs, .. } => {
                    let s = &mut out.summary;
                    s.first_ts = s.first_ts.or(Some(unix_secs));
                    s.last_ts = Some(unix_secs);
                }
            }
        }
        buf.drain(..prefix.len);
        base += prefix.len as u64;
        if got == 0 {
            if !buf.is_empty() {
                out.summary.tail = Some((base, buf.len() as u64));
            }
            return Ok(());
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Summary,
    Json,
    Resp,
}

#[cfg(test)]
mod tests;
