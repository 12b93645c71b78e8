//! Where `inspect` sends each record and command, per output form: one element of a JSON array,
//! the RESP commands that recreate it, or a count for the summary.

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use aofvault_formats::json::{bytes_json, record_json};
use aofvault_formats::model::Record;
use aofvault_formats::render::{record_commands, Dialect};
use aofvault_formats::resp::encode_command;

use super::summary::{write_summary, Summary};
use super::Mode;

/// Where records and commands go, per mode.
pub(super) struct Output<'a> {
    mode: Mode,
    out: &'a mut dyn Write,
    pub(super) dialect: Dialect,
    pub(super) summary: Summary,
    json_items: u64,
    /// The database the RESP output has selected (Redis dialect).
    db: u32,
}

impl<'a> Output<'a> {
    pub(super) fn new(mode: Mode, out: &'a mut dyn Write) -> Self {
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

    pub(super) fn record(&mut self, record: &Record) -> Result<()> {
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

    pub(super) fn command(&mut self, args: &[&[u8]]) -> Result<()> {
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

    pub(super) fn finish(self, path: &Path, format: &str, is_aof: bool) -> Result<()> {
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
