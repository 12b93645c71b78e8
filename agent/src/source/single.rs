//! Following a Redis ≤ 6 single-file AOF (`appendonly.aof`), optionally opening with an RDB
//! preamble (`aof-use-rdb-preamble yes`).
//!
//! The stream is the file itself; when it starts with an RDB, that preamble (up to and including
//! its checksum) is the chain's base and the stream starts after it. A rewrite replaces the file
//! by rename (a new inode) → a new chain; a file that shrank or no longer holds the bytes read →
//! continuity is lost → a new chain.

use std::fs::File;
use std::io::{BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use aofvault_formats::rdb::RdbReader;
use aofvault_formats::vault::{BaseFormat, ChainHead, SegmentRef};

use super::{
    holds_segment, identity_of, read_at, ChainReason, ChainStart, Check, Follower, PinnedBase,
    Tracked,
};

pub struct SingleFollower {
    path: PathBuf,
    pinned: Option<Pinned>,
}

struct Pinned {
    file: Tracked,
    id: String,
}

fn invalid(path: &Path, e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{}: {e}", path.display()),
    )
}

impl SingleFollower {
    pub fn new(path: &Path) -> Self {
        SingleFollower {
            path: path.to_path_buf(),
            pinned: None,
        }
    }

    /// Length of the RDB preamble (0 when the file is plain RESP).
    fn preamble_len(&self, file: &File) -> std::io::Result<u64> {
        let head = read_at(file, 0, 5)?;
        if head != b"REDIS" {
            return Ok(0);
        }
        let mut f = file.try_clone()?;
        f.seek(SeekFrom::Start(0))?;
        let mut rdb = RdbReader::new(BufReader::new(f)).map_err(|e| invalid(&self.path, e))?;
        while rdb
            .next_record()
            .map_err(|e| invalid(&self.path, e))?
            .is_some()
        {}
        Ok(rdb.offset())
    }

    fn identity(id: &str) -> String {
        format!("single aof={id}")
    }
}

impl Follower for SingleFollower {
    fn check(&mut self) -> std::io::Result<Check> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let msg = format!(
                    "{} does not exist (is appendonly enabled?)",
                    self.path.display()
                );
                return Ok(Check::Missing(msg));
            }
            Err(e) => return Err(e),
        };
        let Some(p) = self.pinned.as_mut() else {
            return Ok(Check::NewChain(ChainReason::Start));
        };
        if identity_of(&meta) != p.id {
            return Ok(Check::NewChain(ChainReason::Rewrite));
        }
        if p.file.truncated()? {
            return Ok(Check::NewChain(ChainReason::Truncated));
        }
        Ok(Check::Continue)
    }

    fn start_chain(&mut self, _reason: ChainReason) -> std::io::Result<ChainStart> {
        let file = File::open(&self.path)?;
        let id = identity_of(&file.metadata()?);
        let preamble = self.preamble_len(&file)?;
        let mut base = Vec::new();
        if preamble > 0 {
            let mut copy = file.try_clone()?;
            copy.seek(SeekFrom::Start(0))?;
            let file_name = self
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            base.push(PinnedBase {
                file: copy,
                file_name,
                format: BaseFormat::Rdb,
                len: preamble,
            });
        }
        self.pinned = Some(Pinned {
            file: Tracked::new(file, preamble)?,
            id: id.clone(),
        });
        Ok(ChainStart {
            base,
            stream_start: preamble,
            identity: Self::identity(&id),
        })
    }

    fn resume(
        &mut self,
        head: &ChainHead,
        end: u64,
        last: Option<&SegmentRef>,
    ) -> std::io::Result<bool> {
        let Ok(file) = File::open(&self.path) else {
            return Ok(false);
        };
        let id = identity_of(&file.metadata()?);
        if Self::identity(&id) != head.source_identity || file.metadata()?.len() < end {
            return Ok(false);
        }
        if let Some(seg) = last {
            if !holds_segment(&file, seg, 0)? {
                return Ok(false);
            }
        }
        self.pinned = Some(Pinned {
            file: Tracked::new(file, end)?,
            id,
        });
        Ok(true)
    }

    fn read(&mut self, at: u64, max: usize) -> std::io::Result<Vec<u8>> {
        match self.pinned.as_mut() {
            Some(p) => p.file.read(at, max),
            None => Ok(Vec::new()),
        }
    }

    fn stream_len(&mut self) -> u64 {
        self.pinned.as_mut().map_or(0, |p| p.file.size())
    }

    fn rewind(&mut self, to: u64) -> std::io::Result<bool> {
        // Redis cuts a torn tail at restart (`aof-load-truncated yes`) and appends after it.
        match self.pinned.as_mut() {
            Some(p) => p.file.rewind(to).map(|()| true),
            None => Ok(false),
        }
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }
}
