//! [`TornRanges`]: where kills left torn frames in kevy's AOF files, and a copy of the files
//! without them — what a restore must equal once kevy's own restarts have dropped data.
//!
//! kevy 1.19 restarts appending after a torn frame, and its *next* restart drops everything
//! after it (docs/COMPATIBILITY.md, "kevy restart after a crash: torn frame"), so after two
//! kills the live server no longer holds what its own files record. A test finds each torn
//! range right after the kill (before the restart appends to the file) and builds the
//! reference from the files without them.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The torn ranges found so far, per shard. See the module docs.
#[derive(Debug, Default)]
pub struct TornRanges {
    /// Per shard: where the next kill's scan starts (a frame boundary: the end of the file as
    /// the previous kill left it, where kevy appended after its restart).
    scan_from: Vec<u64>,
    /// Per shard: the torn ranges `[start, end)`.
    ranges: Vec<Vec<(u64, u64)>>,
    /// Per shard: the file's inode when it was scanned. A rewrite (asked by the agent to
    /// recover) replaces the file with a clean one written from memory: its ranges are gone.
    inodes: Vec<u64>,
}

impl TornRanges {
    /// Call right after a kill: scans every shard's file from the last kill's end — whole
    /// commands, then (maybe) the torn tail this kill left.
    pub fn after_kill(&mut self, files: &[PathBuf]) -> Result<()> {
        self.size(files.len());
        for (i, path) in files.iter().enumerate() {
            self.forget_if_replaced(i, path)?;
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let from = self.scan_from[i];
            let rest = bytes.get(from as usize..).unwrap_or_default();
            let whole = aofvault_formats::aof::safe_prefix(rest, from).map_err(|e| {
                anyhow::anyhow!("{}: not whole commands then a tear: {e:?}", path.display())
            })?;
            let end = from + whole.len as u64;
            if end < bytes.len() as u64 {
                self.ranges[i].push((end, bytes.len() as u64));
            }
            self.scan_from[i] = bytes.len() as u64;
        }
        Ok(())
    }

    /// How many torn ranges were found.
    pub fn count(&self) -> usize {
        self.ranges.iter().map(Vec::len).sum()
    }

    /// Copies kevy's directory `dir` into `into`, with the torn ranges cut out of each AOF.
    pub fn reference_dir(&mut self, dir: &Path, shards: u32, into: &Path) -> Result<()> {
        self.size(shards as usize);
        for shard in 0..shards as usize {
            self.forget_if_replaced(shard, &dir.join(format!("aof-{shard}.aof")))?;
        }
        std::fs::create_dir_all(into).with_context(|| format!("creating {}", into.display()))?;
        for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
            let e = e?;
            if e.path().is_file() {
                std::fs::copy(e.path(), into.join(e.file_name()))?;
            }
        }
        for shard in 0..shards as usize {
            let name = format!("aof-{shard}.aof");
            let bytes = std::fs::read(dir.join(&name))?;
            let mut clean = Vec::with_capacity(bytes.len());
            let mut at = 0usize;
            for &(start, end) in &self.ranges[shard] {
                clean.extend_from_slice(&bytes[at..start as usize]);
                at = end as usize;
            }
            clean.extend_from_slice(&bytes[at..]);
            std::fs::write(into.join(&name), clean)?;
        }
        Ok(())
    }

    fn size(&mut self, shards: usize) {
        self.scan_from.resize(shards, 0);
        self.ranges.resize(shards, Vec::new());
        self.inodes.resize(shards, 0);
    }

    /// A new inode is a new file: scan it from the start, with no ranges.
    fn forget_if_replaced(&mut self, shard: usize, path: &Path) -> Result<()> {
        let ino = std::fs::metadata(path)
            .with_context(|| format!("stat {}", path.display()))?
            .ino();
        if self.inodes[shard] != ino {
            if self.inodes[shard] != 0 {
                println!(
                    "{}: replaced since the last kill (a rewrite)",
                    path.display()
                );
            }
            self.scan_from[shard] = 0;
            self.ranges[shard].clear();
            self.inodes[shard] = ino;
        }
        Ok(())
    }
}
