//! The server's files: finding them ([`discover`]) and following one shard's AOF stream
//! ([`Follower`], implemented for kevy in [`kevy`], for Redis/Valkey ≥ 7 in [`redis`] and for
//! Redis ≤ 6's single file in [`single`]).
//!
//! A follower turns a shard's changing files into a *logical stream*: a byte sequence that only
//! grows for as long as continuity holds (kevy: one AOF file; Redis: the incr files of one base,
//! concatenated). When continuity is lost — a rewrite, a `SAVE`, a new base, a truncation — it
//! says so, and the shipper starts a new chain from the base files the follower pins. Pinning
//! is by open descriptor: an open file keeps its bytes while the server renames or deletes it.

pub mod kevy;
pub mod redis;
pub mod single;

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context;
use aofvault_formats::vault::{BaseFormat, ChainHead, SegmentRef, ServerLayout};

/// What the agent follows, as found on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    Kevy {
        dir: PathBuf,
        shards: u32,
    },
    RedisMultiPart {
        aof_dir: PathBuf,
        aof_name: String,
    },
    /// Redis ≤ 6: one `appendonly.aof` in the data directory.
    RedisSingle {
        path: PathBuf,
    },
}

impl Layout {
    pub fn shards(&self) -> u32 {
        match self {
            Layout::Kevy { shards, .. } => *shards,
            Layout::RedisMultiPart { .. } | Layout::RedisSingle { .. } => 1,
        }
    }

    /// The layout as recorded in the repository.
    pub fn record(&self) -> ServerLayout {
        match self {
            Layout::Kevy { dir, shards } => ServerLayout::Kevy {
                shards: *shards,
                shards_meta: std::fs::read_to_string(dir.join("shards.meta")).ok(),
            },
            Layout::RedisMultiPart { aof_dir, aof_name } => ServerLayout::RedisMultiPart {
                aof_name: aof_name.clone(),
                aof_dir: aof_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            },
            Layout::RedisSingle { path } => ServerLayout::RedisSingle {
                aof_name: path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            },
        }
    }

    pub fn follower(&self, shard: u32) -> Box<dyn Follower> {
        match self {
            Layout::Kevy { dir, .. } => Box::new(kevy::KevyFollower::new(dir, shard)),
            Layout::RedisMultiPart { aof_dir, aof_name } => {
                Box::new(redis::RedisFollower::new(aof_dir, aof_name))
            }
            Layout::RedisSingle { path } => Box::new(single::SingleFollower::new(path)),
        }
    }
}

/// Which server kind to look for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    Auto,
    Kevy,
    Redis,
}

/// Looks for a kevy data dir, a Redis ≥ 7 `appendonlydir` or a Redis ≤ 6 `appendonly.aof` in `dir`. `Ok(None)` means
/// nothing is there yet (the caller says "is appendonly enabled?" and keeps watching).
pub fn discover(
    dir: &Path,
    want: Want,
    aof_dir_name: &str,
    aof_name: &str,
) -> anyhow::Result<Option<Layout>> {
    let meta = std::fs::metadata(dir)
        .with_context(|| format!("cannot read the source directory {}", dir.display()))?;
    if !meta.is_dir() {
        anyhow::bail!("source {} is not a directory", dir.display());
    }
    if want != Want::Redis {
        let mut max_index: Option<u32> = None;
        for entry in
            std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?
        {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            let idx = name
                .strip_prefix("aof-")
                .and_then(|r| r.strip_suffix(".aof"))
                .or_else(|| {
                    name.strip_prefix("dump-")
                        .and_then(|r| r.strip_suffix(".rdb"))
                })
                .and_then(|n| n.parse::<u32>().ok());
            if let Some(i) = idx {
                max_index = Some(max_index.map_or(i, |m| m.max(i)));
            }
        }
        let from_meta = std::fs::read_to_string(dir.join("shards.meta"))
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u32>().ok()));
        if let Some(shards) = from_meta.or(max_index.map(|m| m + 1)) {
            if shards == 0 || shards > 4096 {
                anyhow::bail!("{}: implausible kevy shard count {shards}", dir.display());
            }
            return Ok(Some(Layout::Kevy {
                dir: dir.to_path_buf(),
                shards,
            }));
        }
    }
    if want != Want::Kevy {
        let aof_dir = dir.join(aof_dir_name);
        if aof_dir.join(format!("{aof_name}.manifest")).exists() {
            return Ok(Some(Layout::RedisMultiPart {
                aof_dir,
                aof_name: aof_name.to_string(),
            }));
        }
        if dir.join(aof_name).is_file() {
            return Ok(Some(Layout::RedisSingle {
                path: dir.join(aof_name),
            }));
        }
    }
    Ok(None)
}

/// A base file held open for upload.
#[derive(Debug)]
pub struct PinnedBase {
    pub file: File,
    pub file_name: String,
    pub format: BaseFormat,
    pub len: u64,
}

/// What a new chain starts from.
#[derive(Debug)]
pub struct ChainStart {
    pub base: Vec<PinnedBase>,
    pub stream_start: u64,
    pub identity: String,
}

/// Why a chain starts. Recorded in the chain head (as [`ChainReason::as_str`]) and deciding
/// what the shipper does with the old chain's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainReason {
    /// No chain yet (first start, or files not provably the ones of the last chain).
    Start,
    /// The repository's newest chain is taken up again after a restart.
    Resumed,
    /// A rewrite replaced the AOF (a new file holding a full image, or a new Redis base).
    Rewrite,
    /// kevy `SAVE`: a new dump, the same AOF truncated in place.
    Save,
    /// kevy `BGSAVE`: a new dump, then a new AOF holding the commands since.
    Bgsave,
    /// The AOF was cut short and nothing better explains it.
    Truncated,
    /// The Redis manifest no longer lists the chain's incr files.
    ManifestChanged,
    /// This agent's server became the group's primary: the last chain is another member's.
    Failover,
}

impl ChainReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ChainReason::Start => "start",
            ChainReason::Resumed => "resumed",
            ChainReason::Rewrite => "rewrite",
            ChainReason::Save => "save",
            ChainReason::Bgsave => "bgsave",
            ChainReason::Truncated => "truncated",
            ChainReason::ManifestChanged => "manifest changed",
            ChainReason::Failover => "failover",
        }
    }

    /// Whether the old chain's pinned files are read to their end before the new chain starts.
    /// A file truncated in place may already hold new bytes at the old offsets: reading it would
    /// take them for the old chain's. Its data is in the new base, so it is not drained.
    pub fn drains_old_files(self) -> bool {
        !matches!(self, ChainReason::Save | ChainReason::Truncated)
    }
}

impl std::fmt::Display for ChainReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The follower's verdict on the current chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Same files: read on.
    Continue,
    /// Continuity is lost: drain what the pinned files still hold (when the reason allows),
    /// then start a new chain.
    NewChain(ChainReason),
    /// Something is half done (a `SAVE` between its snapshot and its AOF reset): do not read yet.
    Wait(String),
    /// The files are gone (server stopped, AOF off): keep the chain, wait.
    Missing(String),
    /// The files alone cannot tell what happened (an AOF cut short with no new snapshot beside
    /// it): guessing could replay commands twice or lose them, so the shipper asks the server
    /// for a rewrite (a new file holding everything) and waits for it, reading nothing.
    AskServer(String),
}

/// Follows one shard's files.
pub trait Follower: Send {
    /// Compares the files on disk with the pinned ones.
    fn check(&mut self) -> std::io::Result<Check>;
    /// Pins the files of a new chain and tells what its base is. `reason` is the last `NewChain`.
    fn start_chain(&mut self, reason: ChainReason) -> std::io::Result<ChainStart>;
    /// After a restart: continue `head` at logical offset `end` only if the files are provably the
    /// ones it followed and still hold the last shipped segment's bytes (`last`, checked by CRC).
    fn resume(
        &mut self,
        head: &ChainHead,
        end: u64,
        last: Option<&SegmentRef>,
    ) -> std::io::Result<bool>;
    /// Reads up to `max` bytes of the stream at logical offset `at` from the pinned files.
    fn read(&mut self, at: u64, max: usize) -> std::io::Result<Vec<u8>>;
    /// The stream's current length as the pinned files show it (for lag).
    fn stream_len(&mut self) -> u64;
    /// The stream shrank below what was read but not below `to`, the end of what is stored: the
    /// server cut a torn tail at restart (Redis `aof-load-truncated`). Forget what was read
    /// past `to`; `false` when the follower cannot vouch that the files are still the same
    /// (then the shipper drops its unstored bytes and looks again).
    fn rewind(&mut self, to: u64) -> std::io::Result<bool> {
        let _ = to;
        Ok(true)
    }
    /// The file being followed, for messages.
    fn describe(&self) -> String;
}

/// `dev:ino` of a file, and its birth time where the filesystem records one: an inode number
/// is reused at once after a delete (ext4, tmpfs), so two rewrites while the agent is down can
/// leave a different file under the same `dev:ino`.
pub fn identity_of(meta: &std::fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    match meta
        .created()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
    {
        Some(born) => format!("{}:{}@{}", meta.dev(), meta.ino(), born.as_nanos()),
        None => format!("{}:{}", meta.dev(), meta.ino()),
    }
}

/// Reads exactly `len` bytes at `offset` from `file` (short if the file is shorter).
pub fn read_at(file: &File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    // Never allocate more than the file holds: callers ask for "up to a segment".
    let avail = file.metadata()?.len().saturating_sub(offset);
    let len = len.min(usize::try_from(avail).unwrap_or(usize::MAX));
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        let n = file.read_at(&mut buf[got..], offset + got as u64)?;
        if n == 0 {
            break;
        }
        got += n;
    }
    buf.truncate(got);
    Ok(buf)
}

/// True when `file` holds, at `seg`'s range shifted by `shift` (file offset = logical − shift),
/// exactly the bytes the segment's CRC records.
pub fn holds_segment(file: &File, seg: &SegmentRef, shift: u64) -> std::io::Result<bool> {
    let Some(offset) = seg.start.checked_sub(shift) else {
        return Ok(false);
    };
    let len = (seg.end - seg.start) as usize;
    let bytes = read_at(file, offset, len)?;
    Ok(bytes.len() == len && crc32c::crc32c(&bytes) == seg.crc32c)
}

/// A pinned file followed by offset, with the last bytes read remembered: if the file no longer
/// holds them where they were, it was truncated (and perhaps re-grown) behind the follower's back.
/// A file seen shorter than what was read, at any look, is remembered too ([`Tracked::shrunk`]):
/// a truncation refilled with the same bytes before the next look leaves no other trace.
#[derive(Debug)]
pub struct Tracked {
    pub file: File,
    read_end: u64,
    tail: Vec<u8>,
    shrunk: bool,
    /// The size at the last look, and how many looks found the file smaller than the one
    /// before: the file only grows, except when the server truncates it.
    last_len: u64,
    drops: u64,
}

/// How many trailing bytes [`Tracked`] remembers.
const TAIL: u64 = 64;

impl Tracked {
    /// Follows `file`, whose bytes up to `end` are already accounted for.
    pub fn new(file: File, end: u64) -> std::io::Result<Tracked> {
        let tail = read_at(&file, end.saturating_sub(TAIL), end.min(TAIL) as usize)?;
        Ok(Tracked {
            file,
            read_end: end,
            tail,
            shrunk: false,
            last_len: end,
            drops: 0,
        })
    }

    /// Reads up to `max` bytes at `at`, remembering the end of what was read.
    pub fn read(&mut self, at: u64, max: usize) -> std::io::Result<Vec<u8>> {
        self.observe();
        let data = read_at(&self.file, at, max)?;
        let end = at + data.len() as u64;
        if end > self.read_end {
            self.read_end = end;
            self.tail = read_at(&self.file, end.saturating_sub(TAIL), end.min(TAIL) as usize)?;
        }
        Ok(data)
    }

    /// Looks at the size; a file shorter than what was read is remembered.
    fn observe(&mut self) -> u64 {
        let len = self.file.metadata().map_or(u64::MAX, |m| m.len());
        if len < self.read_end {
            self.shrunk = true;
        }
        if len != u64::MAX {
            if len < self.last_len {
                self.drops += 1;
            }
            self.last_len = len;
        }
        len
    }

    /// How many looks so far found the file smaller than at the look before.
    pub fn drops(&self) -> u64 {
        self.drops
    }

    /// True when the file was ever seen shorter than what was read, or no longer holds the last
    /// bytes read.
    pub fn truncated(&mut self) -> std::io::Result<bool> {
        if self.observe() < self.read_end || self.shrunk {
            self.shrunk = true;
            return Ok(true);
        }
        let at = self.read_end - self.tail.len() as u64;
        Ok(read_at(&self.file, at, self.tail.len())? != self.tail)
    }

    /// Forgets what was read past `to` (a torn tail the server cut): the file is followed from
    /// there as if those bytes had never been read.
    pub fn rewind(&mut self, to: u64) -> std::io::Result<()> {
        let len = self.file.metadata()?.len();
        if to > len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("cannot rewind to offset {to}: the file holds {len} bytes"),
            ));
        }
        self.read_end = to;
        self.tail = read_at(&self.file, to.saturating_sub(TAIL), to.min(TAIL) as usize)?;
        self.shrunk = false;
        Ok(())
    }

    /// The file's current size.
    pub fn size(&mut self) -> u64 {
        match self.observe() {
            u64::MAX => 0,
            len => len,
        }
    }
}
