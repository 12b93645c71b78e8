//! `aofvault inspect FILE [--json | --resp]`: decode one server file and describe it.
//!
//! The format is detected from the file's first bytes ([`aofvault_formats::detect`]); the file
//! is then streamed through the matching decoder — never read whole — and every record or
//! command goes to one [`Output`], which either counts it for the human summary, writes it as
//! one element of a JSON array (`docs/INSPECT.md` documents the shape), or writes the RESP
//! commands that recreate it. Corrupt input stops with an error naming the file and the byte
//! offset; a half-written command at the end of an AOF is normal and only reported.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use aofvault_formats::aof;
use aofvault_formats::aof_manifest::{AofFileType, AofManifest};
use aofvault_formats::detect::{detect, FileFormat};
use aofvault_formats::json::{bytes_json, record_json, rfc3339_ms};
use aofvault_formats::kevy::KevySnapReader;
use aofvault_formats::model::Record;
use aofvault_formats::rdb::{ChecksumStatus, RdbReader};
use aofvault_formats::render::{record_commands, Dialect};
use aofvault_formats::resp::encode_command;
use serde_json::json;

/// Bytes read from an AOF at a time.
const CHUNK: u64 = 1 << 20;
/// A manifest is a few lines; anything larger is not one.
const MAX_MANIFEST: u64 = 1 << 20;

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

fn manifest(r: impl Read, path: &Path, mode: Mode, out: &mut dyn Write) -> Result<()> {
    let mut text = Vec::new();
    r.take(MAX_MANIFEST)
        .read_to_end(&mut text)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let m =
        AofManifest::parse(&text).with_context(|| format!("{}: bad manifest", path.display()))?;
    let role = |t: AofFileType| match t {
        AofFileType::Base => "base",
        AofFileType::History => "history",
        AofFileType::Incr => "incr",
    };
    match mode {
        Mode::Json => {
            let files: Vec<_> = m
                .entries
                .iter()
                .map(|e| json!({"file": e.name, "seq": e.seq, "type": role(e.file_type)}))
                .collect();
            serde_json::to_writer_pretty(&mut *out, &files)?;
            writeln!(out)?;
        }
        Mode::Resp => bail!("{}: a manifest holds no commands (--resp)", path.display()),
        Mode::Summary => {
            writeln!(out, "file:      {}", path.display())?;
            writeln!(out, "format:    Redis AOF manifest")?;
            writeln!(out, "files:     {}", m.entries.len())?;
            for e in &m.entries {
                writeln!(
                    out,
                    "  {:<8} seq {:<6} {}",
                    role(e.file_type),
                    e.seq,
                    e.name
                )?;
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Summary,
    Json,
    Resp,
}

/// What the summary reports, gathered while streaming.
#[derive(Default)]
struct Summary {
    keys_by_type: BTreeMap<&'static str, u64>,
    keys_by_db: BTreeMap<u32, u64>,
    with_expiry: u64,
    aux: u64,
    functions: u64,
    commands: u64,
    by_command: BTreeMap<String, u64>,
    first_ts: Option<i64>,
    last_ts: Option<i64>,
    rdb_version: Option<u32>,
    checksum: Option<ChecksumStatus>,
    /// (offset, bytes) left after the last safe cut of an AOF.
    tail: Option<(u64, u64)>,
}

/// Where records and commands go, per mode.
struct Output<'a> {
    mode: Mode,
    out: &'a mut dyn Write,
    dialect: Dialect,
    summary: Summary,
    json_items: u64,
    /// The database the RESP output has selected (Redis dialect).
    db: u32,
}

impl<'a> Output<'a> {
    fn new(mode: Mode, out: &'a mut dyn Write) -> Self {
        Output {
            mode,
            out,
            dialect: Dialect::Kevy,
            summary: Summary::default(),
            json_items: 0,
            db: 0,
        }
    }

    fn json_item(&mut self, value: &serde_json::Value) -> Result<()> {
        self.out
            .write_all(if self.json_items == 0 { b"[\n" } else { b",\n" })?;
        serde_json::to_writer(&mut *self.out, value)?;
        self.json_items += 1;
        Ok(())
    }

    fn record(&mut self, record: &Record) -> Result<()> {
        let s = &mut self.summary;
        match record {
            Record::Entry(e) => {
                *s.keys_by_type.entry(e.value.type_name()).or_default() += 1;
                *s.keys_by_db.entry(e.db).or_default() += 1;
                s.with_expiry += u64::from(e.expire_at_ms.is_some());
            }
            Record::Aux { .. } => s.aux += 1,
            Record::Function { .. } => s.functions += 1,
        }
        match self.mode {
            Mode::Summary => Ok(()),
            Mode::Json => self.json_item(&record_json(record)),
            Mode::Resp => {
                let mut buf = Vec::new();
                if let (Record::Entry(e), Dialect::Redis) = (record, self.dialect) {
                    if e.db != self.db {
                        encode_command(
                            &[b"SELECT".to_vec(), e.db.to_string().into_bytes()],
                            &mut buf,
                        );
                        self.db = e.db;
                    }
                }
                for cmd in record_commands(record, self.dialect) {
                    encode_command(&cmd, &mut buf);
                }
                Ok(self.out.write_all(&buf)?)
            }
        }
    }

    fn command(&mut self, args: &[&[u8]]) -> Result<()> {
        self.summary.commands += 1;
        match self.mode {
            Mode::Summary => {
                let name = args
                    .first()
                    .map(|a| a.to_ascii_uppercase())
                    .unwrap_or_default();
                let name = String::from_utf8_lossy(&name).into_owned();
                *self.summary.by_command.entry(name).or_default() += 1;
                Ok(())
            }
            Mode::Json => {
                let arr: Vec<_> = args.iter().map(|a| bytes_json(a)).collect();
                self.json_item(&serde_json::Value::Array(arr))
            }
            Mode::Resp => {
                let mut buf = Vec::new();
                encode_command(args, &mut buf);
                Ok(self.out.write_all(&buf)?)
            }
        }
    }

    fn finish(self, path: &Path, format: &str, is_aof: bool) -> Result<()> {
        match self.mode {
            Mode::Json => {
                let close: &[u8] = if self.json_items == 0 {
                    b"[]\n"
                } else {
                    b"\n]\n"
                };
                self.out.write_all(close)?;
            }
            Mode::Resp => {}
            Mode::Summary => write_summary(self.out, &self.summary, path, format, is_aof)?,
        }
        Ok(self.out.flush()?)
    }
}

fn write_summary(
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use aofvault_formats::kevy::write_snapshot;
    use aofvault_formats::model::{Entry, Value};

    fn inspect_bytes(path: &Path, json: bool, resp: bool) -> Result<Vec<u8>> {
        let args = crate::cli::InspectArgs {
            file: path.to_path_buf(),
            json,
            resp,
        };
        let mut out = Vec::new();
        run(&args, &mut out)?;
        Ok(out)
    }

    fn inspect(path: &Path, json: bool, resp: bool) -> Result<String> {
        inspect_bytes(path, json, resp).map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    fn cmd(args: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_command(args, &mut out);
        out
    }

    #[test]
    fn kevy_snapshot_summary_json_and_resp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dump-0.rdb");
        let entries = [
            Entry {
                db: 0,
                key: b"s".to_vec(),
                value: Value::String(b"v".to_vec()),
                expire_at_ms: Some(1_700_000_000_000),
            },
            Entry {
                db: 0,
                key: b"l".to_vec(),
                value: Value::List(vec![b"\xff".to_vec()]),
                expire_at_ms: None,
            },
        ];
        write_snapshot(File::create(&path).unwrap(), &entries).unwrap();
        let summary = inspect(&path, false, false).unwrap();
        assert!(
            summary.contains("kevy snapshot (KEVYSNAP), version 4"),
            "{summary}"
        );
        assert!(
            summary.contains("keys:      2 (list 1, string 1)"),
            "{summary}"
        );
        assert!(summary.contains("expiring:  1"), "{summary}");
        let json: serde_json::Value =
            serde_json::from_str(&inspect(&path, true, false).unwrap()).unwrap();
        assert_eq!(json[0]["expiration"], "2023-11-14T22:13:20.000Z");
        assert_eq!(json[1]["values"][0], json!({"base64": "/w=="}));
        let resp = inspect_bytes(&path, false, true).unwrap();
        let mut want = cmd(&["SET", "s", "v"]);
        want.extend(cmd(&["PEXPIREAT", "s", "1700000000000"]));
        want.extend_from_slice(b"*3\r\n$5\r\nRPUSH\r\n$1\r\nl\r\n$1\r\n\xff\r\n");
        assert_eq!(resp, want);
    }

    #[test]
    fn aof_commands_timestamps_and_an_unfinished_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("appendonly.aof.1.incr.aof");
        let mut bytes = b"#TS:1700000000\r\n".to_vec();
        bytes.extend(cmd(&["SET", "a", "1"]));
        bytes.extend(cmd(&["set", "b", "2"]));
        bytes.extend(cmd(&["MULTI"]));
        std::fs::write(&path, &bytes).unwrap();
        let summary = inspect(&path, false, false).unwrap();
        assert!(summary.contains("format:    Redis AOF"), "{summary}");
        assert!(summary.contains("commands:  2 (SET 2)"), "{summary}");
        assert!(summary.contains("2023-11-14T22:13:20.000Z"), "{summary}");
        assert!(
            summary.contains(&format!("15 bytes from byte {}", bytes.len() - 15)),
            "{summary}"
        );
        let json: serde_json::Value =
            serde_json::from_str(&inspect(&path, true, false).unwrap()).unwrap();
        assert_eq!(json, json!([["SET", "a", "1"], ["set", "b", "2"]]));
    }

    #[test]
    fn corrupt_input_names_the_file_and_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aof-0.aof");
        let mut bytes = b"KEVYAOF1\n".to_vec();
        bytes.extend(cmd(&["SET", "a", "1"]));
        let bad_at = bytes.len();
        bytes.extend_from_slice(b"*2\r\n$3\r\nDEL\r\n?1\r\na\r\n");
        std::fs::write(&path, &bytes).unwrap();
        let err = format!("{:#}", inspect(&path, false, false).unwrap_err());
        assert!(err.contains("aof-0.aof"), "{err}");
        assert!(err.contains(&format!("byte {}", bad_at + 13)), "{err}");

        let snap = dir.path().join("dump-0.rdb");
        std::fs::write(&snap, b"KEVYSNAP\x04\x01\x00\xff\xff\xff\xff").unwrap();
        let err = format!("{:#}", inspect(&snap, false, false).unwrap_err());
        assert!(
            err.contains("dump-0.rdb") && err.contains("byte 15"),
            "{err}"
        );
    }

    #[test]
    fn manifest_lists_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("appendonly.aof.manifest");
        std::fs::write(
            &path,
            "file a.rdb seq 1 type b\nfile a.1.incr.aof seq 1 type i\n",
        )
        .unwrap();
        let summary = inspect(&path, false, false).unwrap();
        assert!(summary.contains("base     seq 1      a.rdb"), "{summary}");
        let json: serde_json::Value =
            serde_json::from_str(&inspect(&path, true, false).unwrap()).unwrap();
        assert_eq!(
            json[1],
            json!({"file": "a.1.incr.aof", "seq": 1, "type": "incr"})
        );
    }
}
