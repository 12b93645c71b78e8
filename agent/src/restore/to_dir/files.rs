//! Commands written as files: [`RespFile`] (one RESP file), [`KevyFiles`] (per-shard kevy AOFs,
//! each command routed by key), and [`kevy_shard_files`]: one kevy shard's own files, made so
//! that kevy 1.19's start-up replay applies every command in them.
//!
//! kevy's replay hands each AOF command to its store's dispatch, which lacks the commands kevy
//! serves in its runtime: `MSET` (answered with an arity error) and `RENAME`/`RENAMENX`
//! ("unknown command"). Both are logged to the owning shard's AOF on success, so a restart —
//! and a restore that copies the stream as it is — loses every `MSET` key and undoes every
//! same-shard rename. A shard whose stream holds either is therefore written through
//! [`crate::restore::feed`] (`MSET` → one `SET` per key, renames replayed as their effect), still into
//! that shard's own file. Every other command kevy logs is one its dispatch serves, so the rest
//! of the stream is kept byte for byte, and a stream without those bytes is used as it is.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use aofvault_formats::aof::KEVY_AOF_MAGIC;
use aofvault_formats::kevy::Routing;
use aofvault_formats::resp;

use crate::restore::feed::{feed_shard, FeedOptions, FeedStats, Sink};
use crate::restore::fetch::{create_private, StagedShard};
use crate::restore::search::contains_ignore_case;
use crate::restore::translate::renames::Renames;
use crate::restore::translate::{route, Kind, Route};

/// Commands written into a RESP file.
pub struct RespFile {
    pub w: BufWriter<File>,
    scratch: Vec<u8>,
}

impl Sink for RespFile {
    fn command(&mut self, args: &[&[u8]]) -> anyhow::Result<()> {
        self.scratch.clear();
        resp::encode_command(args, &mut self.scratch);
        Ok(self.w.write_all(&self.scratch)?)
    }
}

/// Commands routed by key into per-shard kevy AOFs.
pub struct KevyFiles {
    pub files: Vec<RespFile>,
    pub routing: Routing,
}

impl Sink for KevyFiles {
    fn command(&mut self, args: &[&[u8]]) -> anyhow::Result<()> {
        match route(args, self.files.len() as u32, self.routing)? {
            Route::Shard(i) => self.files[i as usize].command(args),
            Route::All => self.files.iter_mut().try_for_each(|f| f.command(args)),
        }
    }
}

pub fn resp_file(path: &Path, header: &[u8]) -> anyhow::Result<RespFile> {
    let mut w = BufWriter::with_capacity(1 << 20, create_private(path)?);
    w.write_all(header)?;
    Ok(RespFile {
        w,
        scratch: Vec::new(),
    })
}

/// One kevy shard's files for a same-layout restore.
pub struct ShardFiles {
    /// The KEVYSNAP base to install as `dump-{i}.rdb`, if kept.
    pub dump: Option<PathBuf>,
    /// The file to install as `aof-{i}.aof`.
    pub aof: PathBuf,
    /// What the rewrite did, when there was one.
    pub stats: Option<FeedStats>,
}

/// The files of staged kevy shard `s` (its stream staged with the `KEVYAOF1` header): as they
/// are when kevy's replay applies all of it, else rewritten into `work` (see the module doc).
/// A stream with renames takes its base along into the AOF, since a renamed key may be in it.
pub fn kevy_shard_files(s: &StagedShard, work: &Path) -> anyhow::Result<ShardFiles> {
    let dump = s.base.first().map(|b| b.path.clone());
    let has = |needle: &[u8]| -> anyhow::Result<bool> {
        let mut f =
            File::open(&s.stream).with_context(|| format!("opening {}", s.stream.display()))?;
        f.seek(SeekFrom::Start(s.prefix))?;
        contains_ignore_case(f.take(s.stream_end - s.stream_start), needle)
    };
    let mset = has(b"mset")?;
    let renames = if has(b"rename")? {
        Renames::scan(s, s.stream_start)?.is_some()
    } else {
        false
    };
    if !mset && !renames {
        return Ok(ShardFiles {
            dump,
            aof: s.stream.clone(),
            stats: None,
        });
    }
    let keep_dump = !renames;
    let mut shard = s.clone();
    if keep_dump {
        shard.base.clear();
    }
    let path = work.join(format!("kevy-aof-{}", s.shard));
    let mut out = resp_file(&path, KEVY_AOF_MAGIC)?;
    let opts = FeedOptions::new(Kind::Kevy, Kind::Kevy, false, crate::context::now_ms());
    let stats = feed_shard(&shard, &opts, &mut out)
        .with_context(|| format!("shard {}: rewriting its AOF for kevy's replay", s.shard))?;
    out.w.into_inner().map_err(|e| e.into_error())?;
    tracing::info!(
        shard = s.shard,
        commands = stats.commands,
        renames = stats.renames,
        base_in_aof = !keep_dump && dump.is_some(),
        "the shard's AOF holds MSET or RENAME, which kevy's replay drops: written as per-key commands"
    );
    Ok(ShardFiles {
        dump: if keep_dump { dump } else { None },
        aof: path,
        stats: Some(stats),
    })
}
