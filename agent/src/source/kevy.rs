//! Following one kevy shard: `aof-{i}.aof` with `dump-{i}.rdb` beside it.
//!
//! What kevy 1.19 does to these files, and what the follower makes of it:
//! - appends to the AOF → read on;
//! - `BGREWRITEAOF` → a new AOF inode holding a full image (the dump untouched) → new chain with
//!   no base: the image is the stream;
//! - `SAVE` → a new dump, then the same AOF truncated to its header → new chain, base = the dump;
//! - `BGSAVE` → a new dump, then a new AOF inode with the commands since → new chain, base = dump.
//!
//! A new dump is always followed, within the same server tick, by the AOF reset; the follower
//! waits [`RESET_GRACE`] after seeing a new dump before deciding which of the two happened.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

// tokio's clock: real time in the daemon, driven by the follower simulation in its tests.
use tokio::time::Instant;

use aofvault_formats::aof::kevy_header_len;
use aofvault_formats::vault::{BaseFormat, ChainHead, SegmentRef};

use super::{
    holds_segment, identity_of, read_at, ChainReason, ChainStart, Check, Follower, PinnedBase,
    Tracked,
};

/// How long a new dump may stand before its AOF reset shows.
pub const RESET_GRACE: Duration = Duration::from_secs(1);

pub struct KevyFollower {
    aof_path: PathBuf,
    dump_path: PathBuf,
    pinned: Option<Pinned>,
}

struct Pinned {
    aof: Tracked,
    aof_id: String,
    dump_id: Option<String>,
    /// When a dump different from `dump_id` was first seen.
    dump_change_seen: Option<Instant>,
}

/// `dev:ino:mtime:size` of the dump: a renamed-in dump may reuse a freed inode number.
fn dump_identity(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(format!(
        "{}:{}.{}:{}",
        identity_of(&m),
        m.mtime(),
        m.mtime_nsec(),
        m.size()
    ))
}

impl KevyFollower {
    pub fn new(dir: &Path, shard: u32) -> Self {
        KevyFollower {
            aof_path: dir.join(format!("aof-{shard}.aof")),
            dump_path: dir.join(format!("dump-{shard}.rdb")),
            pinned: None,
        }
    }

    fn identity(aof_id: &str, dump_id: &Option<String>) -> String {
        format!(
            "kevy aof={aof_id} dump={}",
            dump_id.as_deref().unwrap_or("none")
        )
    }

    /// For a chain that starts while both files exist, with no history: does the AOF come after
    /// the dump (a `SAVE`/`BGSAVE` reset it), or is it a rewrite image that already holds
    /// everything? File times decide; without them, the dump is included (kevy's own start-up
    /// does the same).
    fn dump_precedes_aof(aof: &File, dump: &File) -> bool {
        let (Ok(am), Ok(dm)) = (aof.metadata(), dump.metadata()) else {
            return true;
        };
        let (Ok(created), Ok(dumped)) = (am.created(), dm.modified()) else {
            tracing::warn!("file birth times unavailable: assuming the AOF continues the dump");
            return true;
        };
        match created.duration_since(dumped) {
            // The AOF was created before the dump was written: SAVE truncated it in place.
            Err(_) => true,
            // Created within moments after the dump: BGSAVE's reset.
            Ok(d) => d <= Duration::from_secs(5),
        }
    }
}

impl Follower for KevyFollower {
    fn check(&mut self) -> std::io::Result<Check> {
        let meta = match std::fs::metadata(&self.aof_path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Check::Missing(format!(
                    "{} does not exist (is appendonly enabled?)",
                    self.aof_path.display()
                )))
            }
            Err(e) => return Err(e),
        };
        let Some(p) = self.pinned.as_mut() else {
            return Ok(Check::NewChain(ChainReason::Start));
        };
        let dump_now = dump_identity(&self.dump_path);
        let dump_changed = dump_now.is_some() && dump_now != p.dump_id;
        if identity_of(&meta) != p.aof_id {
            let why = if dump_changed {
                ChainReason::Bgsave
            } else {
                ChainReason::Rewrite
            };
            return Ok(Check::NewChain(why));
        }
        let truncated = p.aof.truncated()?;
        if dump_changed {
            // A new dump beside the same AOF inode is kevy 1.19's SAVE: it writes the dump, then
            // truncates this file in place to its header — and the server may refill it past
            // the read position, even with the very same bytes (`INCR counter` again and
            // again), before the next look. Nothing in the file tells that apart from "no
            // reset", and kevy never changes the dump without resetting the AOF: it is a SAVE.
            if truncated {
                return Ok(Check::NewChain(ChainReason::Save));
            }
            let seen = *p.dump_change_seen.get_or_insert_with(Instant::now);
            if seen.elapsed() < RESET_GRACE {
                return Ok(Check::Wait(
                    "a new snapshot was written; waiting for the AOF reset".into(),
                ));
            }
            tracing::info!(
                dump = %self.dump_path.display(),
                "a new snapshot beside the same AOF: a SAVE (the AOF was reset and refilled before it was seen short)"
            );
            return Ok(Check::NewChain(ChainReason::Save));
        }
        if truncated {
            // Cut short with no new snapshot: kevy does not do that by itself, and a guess
            // could replay commands twice or lose them. A rewrite settles it.
            return Ok(Check::AskServer(format!(
                "{} is shorter than what was read, and no new snapshot explains it",
                self.aof_path.display()
            )));
        }
        Ok(Check::Continue)
    }

    fn start_chain(&mut self, reason: ChainReason) -> std::io::Result<ChainStart> {
        let aof = File::open(&self.aof_path)?;
        let aof_id = identity_of(&aof.metadata()?);
        let dump = match File::open(&self.dump_path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let dump_id = dump_identity(&self.dump_path).filter(|_| dump.is_some());
        let with_dump = match (&dump, reason) {
            (None, _) => false,
            (Some(_), ChainReason::Rewrite) => false,
            (Some(_), ChainReason::Save | ChainReason::Bgsave) => true,
            (Some(d), _) => Self::dump_precedes_aof(&aof, d),
        };
        let mut base = Vec::new();
        if let (true, Some(d)) = (with_dump, dump) {
            let len = d.metadata()?.len();
            let file_name = self
                .dump_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            base.push(PinnedBase {
                file: d,
                file_name,
                format: BaseFormat::KevySnap,
                len,
            });
        }
        let head = read_at(&aof, 0, 9)?;
        let stream_start = kevy_header_len(&head) as u64;
        let identity = Self::identity(&aof_id, &dump_id);
        self.pinned = Some(Pinned {
            aof: Tracked::new(aof, stream_start)?,
            aof_id,
            dump_id,
            dump_change_seen: None,
        });
        Ok(ChainStart {
            base,
            stream_start,
            identity,
        })
    }

    fn resume(
        &mut self,
        head: &ChainHead,
        end: u64,
        last: Option<&SegmentRef>,
    ) -> std::io::Result<bool> {
        let Ok(aof) = File::open(&self.aof_path) else {
            return Ok(false);
        };
        let aof_id = identity_of(&aof.metadata()?);
        let dump_id = dump_identity(&self.dump_path);
        if Self::identity(&aof_id, &dump_id) != head.source_identity || aof.metadata()?.len() < end
        {
            return Ok(false);
        }
        if let Some(seg) = last {
            if !holds_segment(&aof, seg, 0)? {
                return Ok(false);
            }
        }
        self.pinned = Some(Pinned {
            aof: Tracked::new(aof, end)?,
            aof_id,
            dump_id,
            dump_change_seen: None,
        });
        Ok(true)
    }

    fn read(&mut self, at: u64, max: usize) -> std::io::Result<Vec<u8>> {
        let Some(p) = self.pinned.as_mut() else {
            return Ok(Vec::new());
        };
        let data = p.aof.read(at, max)?;
        // SAVE renames the new dump into place *before* it truncates the AOF. A dump still the
        // pinned one after the read means the truncation had not begun when the read ended:
        // the bytes are this chain's. Otherwise they may be the refill's, at old offsets —
        // dropped; the next check starts the new chain.
        let dump_now = dump_identity(&self.dump_path);
        if dump_now.is_some() && dump_now != p.dump_id {
            return Ok(Vec::new());
        }
        Ok(data)
    }

    fn stream_len(&mut self) -> u64 {
        self.pinned.as_mut().map_or(0, |p| p.aof.size())
    }

    fn rewind(&mut self, _to: u64) -> std::io::Result<bool> {
        // kevy keeps a torn frame and appends after it; it never cuts its AOF short except in
        // SAVE. A shorter file is left to `check`.
        Ok(false)
    }

    fn describe(&self) -> String {
        self.aof_path.display().to_string()
    }
}
