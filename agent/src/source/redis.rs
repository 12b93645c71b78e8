//! Following a Redis/Valkey ≥ 7 multi-part AOF: `appendonlydir/<name>.manifest`, one base and
//! one or more incr files.
//!
//! The stream of a chain is the concatenation of the incr files listed after its base: only the
//! last one grows, and the earlier ones are closed, so their lengths (and so every logical
//! offset) never move. A rewrite that *starts* adds an incr file — the stream goes on into it;
//! a rewrite that *finishes* names a new base — a new chain begins, with that base.

use std::fs::File;
use std::path::{Path, PathBuf};

use aofvault_formats::aof_manifest::AofManifest;
use aofvault_formats::vault::{BaseFormat, ChainHead, SegmentRef};

use super::{holds_segment, read_at, ChainReason, ChainStart, Check, Follower, PinnedBase};

pub struct RedisFollower {
    dir: PathBuf,
    manifest_path: PathBuf,
    pinned: Option<Pinned>,
    cache: Option<((u64, i64, i64, u64), Listing)>,
}

struct Incr {
    name: String,
    file: Option<File>,
}

struct Pinned {
    base_name: Option<String>,
    incrs: Vec<Incr>,
}

#[derive(Clone)]
struct Listing {
    base: Option<String>,
    incrs: Vec<String>,
}

impl RedisFollower {
    pub fn new(aof_dir: &Path, aof_name: &str) -> Self {
        RedisFollower {
            dir: aof_dir.to_path_buf(),
            manifest_path: aof_dir.join(format!("{aof_name}.manifest")),
            pinned: None,
            cache: None,
        }
    }

    /// The manifest's base and incr names. Parsed again only when the file changed (Redis
    /// replaces it by rename): a tailer under load looks many times a second.
    fn listing(&mut self) -> std::io::Result<Option<Listing>> {
        use std::os::unix::fs::MetadataExt;
        let meta = match std::fs::metadata(&self.manifest_path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let stamp = (meta.ino(), meta.mtime(), meta.mtime_nsec(), meta.size());
        if let Some((s, l)) = &self.cache {
            if *s == stamp {
                return Ok(Some(l.clone()));
            }
        }
        let text = match std::fs::read(&self.manifest_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let m = AofManifest::parse(&text).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", self.manifest_path.display()),
            )
        })?;
        let listing = Listing {
            base: m.base().map(|b| b.name.clone()),
            incrs: m.incrs().map(|i| i.name.clone()).collect(),
        };
        self.cache = Some((stamp, listing.clone()));
        Ok(Some(listing))
    }

    fn identity(base: &Option<String>, first_incr: Option<&String>) -> String {
        format!(
            "redis base={} incr={}",
            base.as_deref().unwrap_or("none"),
            first_incr.map_or("none", |s| s.as_str())
        )
    }

    fn open(&self, name: &str) -> std::io::Result<File> {
        File::open(self.dir.join(name))
    }

    /// (index, logical start) of the incr file holding logical offset `at`; opens files lazily
    /// (pinning them) and treats every file but the last as closed.
    fn locate(&mut self, at: u64) -> std::io::Result<Option<(usize, u64)>> {
        let dir = self.dir.clone();
        let Some(p) = self.pinned.as_mut() else {
            return Ok(None);
        };
        let mut start = 0u64;
        let n = p.incrs.len();
        for (i, incr) in p.incrs.iter_mut().enumerate() {
            if incr.file.is_none() {
                incr.file = Some(File::open(dir.join(&incr.name))?);
            }
            let len = incr
                .file
                .as_ref()
                .map_or(Ok(0), |f| f.metadata().map(|m| m.len()))?;
            if at < start + len || i + 1 == n {
                return Ok(Some((i, start)));
            }
            start += len;
        }
        Ok(None)
    }
}

fn sniff_format(file: &File) -> std::io::Result<BaseFormat> {
    // REDIS/VALKEY magic, or Valkey 9.2's LZ4 envelope around an RDB.
    let head = read_at(file, 0, 9)?;
    Ok(if aofvault_formats::detect::is_rdb_head(&head) {
        BaseFormat::Rdb
    } else {
        BaseFormat::Resp
    })
}

impl Follower for RedisFollower {
    fn check(&mut self) -> std::io::Result<Check> {
        let Some(list) = self.listing()? else {
            return Ok(Check::Missing(format!(
                "{} does not exist (is appendonly enabled?)",
                self.manifest_path.display()
            )));
        };
        let Some(p) = self.pinned.as_mut() else {
            return Ok(Check::NewChain(ChainReason::Start));
        };
        if list.base != p.base_name {
            return Ok(Check::NewChain(ChainReason::Rewrite));
        }
        // Our incr files must still be listed, in order, as a prefix of the listing.
        let ours: Vec<&str> = p.incrs.iter().map(|i| i.name.as_str()).collect();
        let listed: Vec<&str> = list.incrs.iter().map(String::as_str).collect();
        if listed.len() < ours.len() || listed[..ours.len()] != ours[..] {
            return Ok(Check::NewChain(ChainReason::ManifestChanged));
        }
        // Pin each new incr file as soon as the manifest lists it: a second rewrite may delete
        // it before the stream reaches it, and the old chain's drain must still read it.
        for name in &list.incrs[ours.len()..] {
            match File::open(self.dir.join(name)) {
                Ok(f) => p.incrs.push(Incr {
                    name: name.clone(),
                    file: Some(f),
                }),
                // Listed, then deleted before it could be opened: a later rewrite retired it,
                // and its new base covers it. The old chain ends with the files it holds.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::info!(file = %name, "an incr file vanished before it was opened; a later rewrite covers it");
                    return Ok(Check::NewChain(ChainReason::Rewrite));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Check::Continue)
    }

    fn start_chain(&mut self, _reason: ChainReason) -> std::io::Result<ChainStart> {
        let list = self.listing()?.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{} disappeared", self.manifest_path.display()),
            )
        })?;
        let mut base = Vec::new();
        if let Some(name) = &list.base {
            let file = self.open(name)?;
            let len = file.metadata()?.len();
            base.push(PinnedBase {
                format: sniff_format(&file)?,
                file,
                file_name: name.clone(),
                len,
            });
        }
        let mut incrs = Vec::new();
        for name in &list.incrs {
            // Pin every incr now: after a rewrite Redis deletes the retired ones.
            incrs.push(Incr {
                name: name.clone(),
                file: Some(self.open(name)?),
            });
        }
        let identity = Self::identity(&list.base, list.incrs.first());
        self.pinned = Some(Pinned {
            base_name: list.base,
            incrs,
        });
        Ok(ChainStart {
            base,
            stream_start: 0,
            identity,
        })
    }

    fn resume(
        &mut self,
        head: &ChainHead,
        end: u64,
        last: Option<&SegmentRef>,
    ) -> std::io::Result<bool> {
        let Some(list) = self.listing()? else {
            return Ok(false);
        };
        if Self::identity(&list.base, list.incrs.first()) != head.source_identity {
            return Ok(false);
        }
        let mut incrs = Vec::new();
        for name in &list.incrs {
            let Ok(f) = self.open(name) else {
                return Ok(false);
            };
            incrs.push(Incr {
                name: name.clone(),
                file: Some(f),
            });
        }
        self.pinned = Some(Pinned {
            base_name: list.base,
            incrs,
        });
        if let Some(seg) = last {
            let Some((i, start)) = self.locate(seg.start)? else {
                return Ok(false);
            };
            let file = self
                .pinned
                .as_ref()
                .and_then(|p| p.incrs.get(i))
                .and_then(|x| x.file.as_ref());
            match file {
                Some(f) if holds_segment(f, seg, start)? => {}
                _ => {
                    self.pinned = None;
                    return Ok(false);
                }
            }
        }
        if self.stream_len() < end {
            self.pinned = None;
            return Ok(false);
        }
        Ok(true)
    }

    fn read(&mut self, at: u64, max: usize) -> std::io::Result<Vec<u8>> {
        let Some((i, start)) = self.locate(at)? else {
            return Ok(Vec::new());
        };
        let file = self
            .pinned
            .as_ref()
            .and_then(|p| p.incrs.get(i))
            .and_then(|x| x.file.as_ref());
        match file {
            Some(f) => read_at(f, at - start, max),
            None => Ok(Vec::new()),
        }
    }

    fn stream_len(&mut self) -> u64 {
        self.pinned.as_ref().map_or(0, |p| {
            p.incrs
                .iter()
                .filter_map(|i| i.file.as_ref()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
    }

    fn describe(&self) -> String {
        self.manifest_path.display().to_string()
    }
}
