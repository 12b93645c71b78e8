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
    /// A dump different from `dump_id`: its identity, when it was first seen, and the AOF's
    /// drop count before that look (a drop after it is this dump's SAVE resetting the AOF).
    dump_change_seen: Option<(String, Instant, u64)>,
    /// A new AOF inode seen in place of the pinned one, and why it came (decided once, when it
    /// is first seen: a dump written later belongs to a later SAVE, not to this replacement).
    replaced: Option<(String, ChainReason)>,
}

impl Pinned {
    /// When `dump` (a dump other than the pinned one) was first seen, and the AOF's drop count
    /// before that look; recorded now if this is the first look at it.
    fn first_seen(&mut self, dump: String, drops_now: u64) -> (Instant, u64) {
        match &self.dump_change_seen {
            Some((id, seen, drops)) if *id == dump => (*seen, *drops),
            _ => {
                let now = Instant::now();
                self.dump_change_seen = Some((dump, now, drops_now));
                (now, drops_now)
            }
        }
    }

    /// The AOF was replaced by the file `now_id`; `new_dump` is a dump other than the pinned one,
    /// if there is one. Why it was replaced is decided when the file is first seen: a dump
    /// written later belongs to a later SAVE, not to this replacement.
    ///
    /// `dump_after_aof`: the new dump was written after the new AOF was created (or the file
    /// times cannot tell), so a SAVE may be resetting the new AOF.
    fn replaced_by(
        &mut self,
        now_id: String,
        new_dump: Option<String>,
        dump_after_aof: bool,
    ) -> Check {
        let why = match &self.replaced {
            Some((id, why)) if *id == now_id => *why,
            _ => {
                let why = if new_dump.is_some() {
                    ChainReason::Bgsave
                } else {
                    ChainReason::Rewrite
                };
                self.replaced = Some((now_id, why));
                why
            }
        };
        let Some(dump) = new_dump.filter(|_| dump_after_aof) else {
            // No new dump, or this replacement's own: BGSAVE renames its dump in just before
            // it creates the new AOF.
            return Check::NewChain(why);
        };
        // A dump written after the new AOF was created is a later SAVE's (a rewrite, or a
        // BGSAVE, then a SAVE before the chain could start), and its reset of the new file may
        // still be pending. The chain starts from that dump and the new file from its header —
        // once the reset had its time, so that the file no longer holds what the dump holds.
        let drops = self.aof.drops();
        let (seen, _) = self.first_seen(dump, drops);
        if seen.elapsed() < RESET_GRACE {
            return Check::Wait(
                "a new AOF and a new snapshot; waiting for the snapshot's AOF reset".into(),
            );
        }
        Check::NewChain(match why {
            ChainReason::Rewrite => ChainReason::Save,
            other => other,
        })
    }
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
        let now_id = identity_of(&meta);
        if now_id != p.aof_id {
            // Which came first, the new AOF or the new dump? (Unknown file times: assume the
            // dump, and wait for its reset.)
            let aof_born = meta.created().ok();
            let dump_written = std::fs::metadata(&self.dump_path)
                .and_then(|m| m.modified())
                .ok();
            let dump_after_aof = match (aof_born, dump_written) {
                (Some(born), Some(written)) => written > born,
                _ => true,
            };
            return Ok(p.replaced_by(now_id, dump_now.filter(|_| dump_changed), dump_after_aof));
        }
        let drops_before = p.aof.drops();
        let truncated = p.aof.truncated()?;
        if let Some(dump) = dump_now.filter(|_| dump_changed) {
            // A new dump beside the same AOF inode is kevy 1.19's SAVE: it writes the dump, then
            // truncates this file in place to its header — and the server may refill it past
            // the read position, even with the very same bytes (`INCR counter` again and
            // again), before the next look. Nothing in the file tells that apart from "no
            // reset", and kevy never changes the dump without resetting the AOF: it is a SAVE.
            // Its reset is proven by the file dropping in size *after* this dump was first seen
            // (a drop before belongs to an earlier SAVE, whose dump was replaced since);
            // without that proof, the reset is given its time.
            let (seen, drops_then) = p.first_seen(dump, drops_before);
            if p.aof.drops() > drops_then {
                return Ok(Check::NewChain(ChainReason::Save));
            }
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
        // kevy writes its 9-byte header right after it creates or resets the file. A file that
        // is still only a beginning of it is in the middle of that: pinned now, the header would
        // be read as stream bytes (and written twice by a restore). Look again in a moment.
        let head = read_at(&aof, 0, 9)?;
        if head.len() < 9 && b"KEVYAOF1\n".starts_with(&head) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                format!(
                    "{} is being reset (its header is not written yet)",
                    self.aof_path.display()
                ),
            ));
        }
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
        let stream_start = kevy_header_len(&head) as u64;
        let identity = Self::identity(&aof_id, &dump_id);
        self.pinned = Some(Pinned {
            aof: Tracked::new(aof, stream_start)?,
            aof_id,
            dump_id,
            dump_change_seen: None,
            replaced: None,
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
            replaced: None,
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
