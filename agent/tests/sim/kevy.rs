//! A simulated kevy 1.19: per shard `aof-N.aof` (`KEVYAOF1\n` then RESP frames) and
//! `dump-N.rdb` (KEVYSNAP), changed as kevy changes them (FORMATS.md §5.4):
//!
//! - writes append whole frames, or a frame in two writes;
//! - `SAVE` writes the dump (tmp + rename), then truncates the AOF **in place** to its header
//!   — often refilled at once, in `Counter` mode with the very bytes it held before;
//! - `BGSAVE` / `BGREWRITEAOF` freeze the keyspace and tee later writes; when done, `BGSAVE`
//!   renames a dump in, then an AOF of the teed frames over the old one; `BGREWRITEAOF`
//!   renames the image plus the tee over the AOF (the dump untouched);
//! - a crash leaves a torn frame, and the restarted kevy appends whole frames after it.
//!
//! One sequence is kept out on purpose: a `BGREWRITEAOF` finishing after a new dump the agent
//! has not yet taken up. The agent then sees a new dump and a new AOF at once and takes them
//! for a `BGSAVE` (dump + AOF since), while the AOF is a full image — kevy 1.19 itself would
//! replay the image over the dump (FORMATS.md §5.4), so there is no right answer to check.
//! Such a rewrite waits (as if still running) until the agent's chain names the new dump.

use std::path::{Path, PathBuf};

use aofvault::restore::translate::Kind;
use aofvault::source::Layout;
use aofvault_formats::aof::KEVY_AOF_MAGIC;
use aofvault_formats::model::{Entry, Value};
use rand::rngs::StdRng;
use rand::Rng;

use super::model::{Model, Val};
use super::server::{image_bytes, replace, Server, ShardState, Trace};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JobKind {
    BgSave,
    Rewrite,
}

/// A background job: the keyspace frozen at its start and the frames written since.
struct Job {
    kind: JobKind,
    frozen: Model,
    tee: Vec<u8>,
}

struct Shard {
    st: ShardState,
    aof: PathBuf,
    dump: PathBuf,
    job: Option<Job>,
    /// A `SAVE` whose dump is written and whose AOF reset is still to come (same tick).
    reset_pending: bool,
    /// The AOF holds a torn frame (only a rewrite or a reset clears it).
    torn: bool,
    /// The AOF continues the dump (or there is no dump): the files say what kevy loads.
    continues_dump: bool,
    /// A dump was written that no chain of the agent names yet (see the module doc).
    fresh_dump: bool,
}

pub struct Kevy {
    dir: PathBuf,
    shards: Vec<Shard>,
    /// Crashes may tear a frame anywhere (see [`ShardState::crash`]).
    torn_anywhere: bool,
}

impl Kevy {
    pub fn create(dir: &Path, shards: u32, torn_anywhere: bool) -> std::io::Result<Kevy> {
        let mut out = Vec::new();
        for i in 0..shards {
            let aof = dir.join(format!("aof-{i}.aof"));
            std::fs::write(&aof, KEVY_AOF_MAGIC)?;
            out.push(Shard {
                st: ShardState::new(0),
                aof,
                dump: dir.join(format!("dump-{i}.rdb")),
                job: None,
                reset_pending: false,
                torn: false,
                continues_dump: true,
                fresh_dump: false,
            });
        }
        Ok(Kevy {
            dir: dir.to_path_buf(),
            shards: out,
            torn_anywhere,
        })
    }
}

/// The dump's identity as the kevy follower writes it into a chain's `source_identity`.
fn dump_identity(path: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(format!(
        "{}:{}:{}.{}:{}",
        m.dev(),
        m.ino(),
        m.mtime(),
        m.mtime_nsec(),
        m.size()
    ))
}

fn write_dump(sh: &mut Shard, m: &Model) -> std::io::Result<()> {
    let entries: Vec<Entry> = m
        .keys
        .iter()
        .map(|(k, v)| Entry {
            db: 0,
            key: k.clone(),
            value: match v {
                Val::Str(s) => Value::String(s.clone()),
                Val::List(items) => Value::List(items.clone()),
            },
            expire_at_ms: None,
        })
        .collect();
    let mut bytes = Vec::new();
    aofvault_formats::kevy::write_snapshot(&mut bytes, &entries)?;
    let tmp = sh.dump.with_extension("rdb.tmp");
    replace(&tmp, &sh.dump, &bytes)?;
    sh.fresh_dump = true;
    Ok(())
}

/// Truncates the AOF in place to its header (kevy's `set_len(0)` + magic).
fn reset_in_place(sh: &mut Shard, trace: &mut Trace) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new().write(true).open(&sh.aof)?;
    f.set_len(0)?;
    drop(f);
    super::server::append(&sh.aof, KEVY_AOF_MAGIC)?;
    sh.reset_pending = false;
    sh.torn = false;
    sh.continues_dump = true;
    trace.log("  SAVE: the AOF is truncated in place to its header");
    Ok(())
}

/// Finishes a background job: renames its outputs in.
fn finish(sh: &mut Shard, trace: &mut Trace) -> std::io::Result<()> {
    let Some(job) = sh.job.take() else {
        return Ok(());
    };
    let mut aof = KEVY_AOF_MAGIC.to_vec();
    match job.kind {
        JobKind::BgSave => {
            write_dump(sh, &job.frozen)?;
            sh.continues_dump = true;
        }
        JobKind::Rewrite => {
            aof.extend_from_slice(&image_bytes(&job.frozen));
            sh.continues_dump = !sh.dump.exists();
        }
    }
    aof.extend_from_slice(&job.tee);
    let tmp = sh.aof.with_extension("aof.rewrite");
    replace(&tmp, &sh.aof, &aof)?;
    sh.torn = false;
    trace.log(format!(
        "  {:?} done: a new AOF ({} bytes, {} teed) renamed over the old one",
        job.kind,
        aof.len(),
        job.tee.len()
    ));
    Ok(())
}

impl Server for Kevy {
    fn layout(&self) -> Layout {
        Layout::Kevy {
            dir: self.dir.clone(),
            shards: self.shards.len() as u32,
        }
    }

    fn kind(&self) -> Kind {
        Kind::Kevy
    }

    fn shard_count(&self) -> usize {
        self.shards.len()
    }

    fn shard(&self, i: usize) -> &ShardState {
        &self.shards[i].st
    }

    fn op(&mut self, rng: &mut StdRng, trace: &mut Trace) -> std::io::Result<()> {
        let i = rng.gen_range(0..self.shards.len());
        let anywhere = self.torn_anywhere;
        let sh = &mut self.shards[i];
        if sh.reset_pending {
            reset_in_place(sh, trace)?;
        }
        let roll = rng.gen_range(0..100);
        match roll {
            0..=54 => {
                let n = rng.gen_range(1..=12);
                trace.log(format!("kevy shard {i}: write"));
                let whole = sh.st.write(rng, &sh.aof, n, true, trace)?;
                if let Some(job) = sh.job.as_mut() {
                    job.tee.extend_from_slice(&whole);
                }
            }
            55..=62 if sh.job.is_none() => {
                let old = std::fs::metadata(&sh.aof)?.len();
                trace.log(format!("kevy shard {i}: SAVE (the AOF holds {old} bytes)"));
                sh.st.complete_partial(&sh.aof, trace)?;
                let model = sh.st.model.clone();
                write_dump(sh, &model)?;
                trace.log("  SAVE: dump written");
                if rng.gen_bool(0.5) {
                    reset_in_place(sh, trace)?;
                    if rng.gen_bool(0.6) {
                        // Refilled past where the agent may have read, before it looks again.
                        let mut n = 0;
                        while std::fs::metadata(&sh.aof)?.len() < old + rng.gen_range(0..80) {
                            sh.st.write(rng, &sh.aof, 1, false, trace)?;
                            n += 1;
                        }
                        trace.log(format!(
                            "  SAVE: the AOF refilled with {n} command(s) at once"
                        ));
                    }
                } else {
                    sh.reset_pending = true;
                }
            }
            63..=72 if sh.job.is_none() => {
                let kind = if rng.gen_bool(0.5) {
                    JobKind::BgSave
                } else {
                    JobKind::Rewrite
                };
                trace.log(format!("kevy shard {i}: {kind:?} starts"));
                sh.st.complete_partial(&sh.aof, trace)?;
                sh.job = Some(Job {
                    kind,
                    frozen: sh.st.model.clone(),
                    tee: Vec::new(),
                });
            }
            63..=80
                if sh.job.as_ref().is_some_and(|j| j.kind == JobKind::Rewrite) && sh.fresh_dump =>
            {
                trace.log(format!(
                    "kevy shard {i}: the rewrite waits for the agent to take up the new dump"
                ));
            }
            63..=80 if sh.job.is_some() => {
                trace.log(format!("kevy shard {i}: background job finishes"));
                if let Some(whole) = sh.st.complete_partial(&sh.aof, trace)? {
                    if let Some(job) = sh.job.as_mut() {
                        job.tee.extend_from_slice(&whole);
                    }
                }
                finish(sh, trace)?;
            }
            81..=88 => {
                trace.log(format!("kevy shard {i}: workload mode"));
                sh.st.flip_mode(trace);
            }
            89..=92 if sh.continues_dump => {
                trace.log(format!("kevy shard {i}: crash and restart"));
                let torn = sh.st.crash(rng, &sh.aof, anywhere, trace)?;
                if torn > 0 {
                    sh.torn = true;
                }
                // The job dies with the process; kevy 1.19 appends after the torn frame.
                sh.job = None;
            }
            _ => {
                trace.log(format!("kevy shard {i}: write"));
                let whole = sh.st.write(rng, &sh.aof, 1, false, trace)?;
                if let Some(job) = sh.job.as_mut() {
                    job.tee.extend_from_slice(&whole);
                }
            }
        }
        Ok(())
    }

    fn settle(&mut self, trace: &mut Trace) -> std::io::Result<()> {
        for sh in &mut self.shards {
            if sh.reset_pending {
                reset_in_place(sh, trace)?;
            }
        }
        Ok(())
    }

    fn heal(&mut self, _rng: &mut StdRng, trace: &mut Trace) -> std::io::Result<()> {
        self.settle(trace)?;
        for (i, sh) in self.shards.iter_mut().enumerate() {
            if let Some(whole) = sh.st.complete_partial(&sh.aof, trace)? {
                if let Some(job) = sh.job.as_mut() {
                    job.tee.extend_from_slice(&whole);
                }
            }
            if sh.job.as_ref().is_some_and(|j| j.kind == JobKind::Rewrite) && sh.fresh_dump {
                trace.log(format!("heal kevy shard {i}: the rewrite is abandoned"));
                sh.job = None;
            }
            if sh.job.is_some() {
                trace.log(format!("heal kevy shard {i}: the background job finishes"));
                finish(sh, trace)?;
            }
            if sh.torn || !sh.continues_dump {
                // A BGSAVE leaves files that say what kevy loads, whatever the agent has
                // seen: a dump and a fresh AOF (a new inode) continuing it.
                trace.log(format!(
                    "heal kevy shard {i}: BGSAVE for clean, unambiguous files"
                ));
                sh.job = Some(Job {
                    kind: JobKind::BgSave,
                    frozen: sh.st.model.clone(),
                    tee: Vec::new(),
                });
                finish(sh, trace)?;
            }
        }
        Ok(())
    }

    fn observed(&mut self, shard: usize, identity: &str) {
        if let Some(sh) = self.shards.get_mut(shard) {
            if let Some(id) = dump_identity(&sh.dump) {
                if identity.ends_with(&format!("dump={id}")) {
                    sh.fresh_dump = false;
                }
            }
        }
    }

    fn agent_may_start(&self) -> bool {
        self.shards
            .iter()
            .all(|s| s.continues_dump && !s.reset_pending)
    }
}
