//! Decoding what a chain holds into the events the history tools walk: a base file's keys (in
//! the neutral form, from the RDB / KEVYSNAP decoders, or the commands of a RESP base), and an
//! AOF stream's commands with the database they ran in and their `#TS:` time when the server
//! writes annotations (Redis `aof-timestamp-enabled`).

use std::io::{BufReader, Read};
use std::path::Path;

use anyhow::Context;
use aofvault_formats::kevy::KevySnapReader;
use aofvault_formats::model::{Entry, Record};
use aofvault_formats::rdb::RdbReader;
use aofvault_formats::vault::BaseFormat;

use crate::restore::stream::{for_each_item, Item};

/// Read buffer for bases.
const BASE_BUFFER: usize = 1 << 20;

/// Where a stream's reader is: the selected database and the last `#TS:` seen (unix seconds).
#[derive(Debug, Clone, Copy, Default)]
pub struct Cursor {
    pub db: u32,
    pub ts: Option<i64>,
}

impl Cursor {
    /// Follows one item; returns the command's arguments when it is a command other than
    /// `SELECT` (which only moves the cursor).
    pub fn step<'a>(&mut self, item: Item<'a>) -> Option<&'a [&'a [u8]]> {
        match item {
            Item::Timestamp(t) => {
                self.ts = Some(t);
                None
            }
            Item::Command(args) => {
                if args.len() == 2 && args[0].eq_ignore_ascii_case(b"SELECT") {
                    if let Some(db) = std::str::from_utf8(args[1])
                        .ok()
                        .and_then(|d| d.trim().parse().ok())
                    {
                        self.db = db;
                    }
                    return None;
                }
                Some(args)
            }
        }
    }
}

/// What a base holds, in file order.
pub enum BaseEvent<'a> {
    Entry(Entry),
    /// A command of a RESP base (or after an RDB preamble), in database `db`.
    Command {
        db: u32,
        args: &'a [&'a [u8]],
    },
}

/// Calls `f` for every key (or command) of the base file at `path`. KEVYSNAP v2 TTLs are
/// relative: `now_ms` anchors them.
pub fn read_base(
    path: &Path,
    format: BaseFormat,
    now_ms: i64,
    mut f: impl FnMut(BaseEvent<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader = BufReader::with_capacity(BASE_BUFFER, file);
    match format {
        BaseFormat::KevySnap => {
            let mut r = KevySnapReader::new(reader, now_ms)?;
            while let Some(entry) = r.next_entry()? {
                f(BaseEvent::Entry(entry))?;
            }
        }
        BaseFormat::Rdb => {
            let mut r = RdbReader::new(reader)?;
            while let Some(record) = r.next_record()? {
                if let Record::Entry(e) = record {
                    f(BaseEvent::Entry(e))?;
                }
            }
            let offset = r.offset();
            commands(r.into_inner(), offset, &mut f)?;
        }
        BaseFormat::Resp => commands(reader, 0, &mut f)?,
    }
    Ok(())
}

fn commands(
    r: impl Read,
    offset: u64,
    f: &mut impl FnMut(BaseEvent<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut cursor = Cursor::default();
    for_each_item(r, offset, |item, _| match cursor.step(item) {
        Some(args) => f(BaseEvent::Command {
            db: cursor.db,
            args,
        }),
        None => Ok(()),
    })?;
    Ok(())
}
