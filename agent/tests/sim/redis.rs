//! Simulated Redis servers, one shard each.
//!
//! [`Redis7`]: `appendonlydir/appendonly.aof.manifest` naming a RESP base
//! (`aof-use-rdb-preamble no`) and incr files. A rewrite that starts opens a new incr file and
//! lists it; one that finishes writes a new base, replaces the manifest by rename (new base +
//! the incr files opened since the start) and deletes the retired files at once — two rewrites
//! may run back to back while the agent is behind. A crash leaves a torn frame; the restarted
//! server truncates it on disk (`aof-load-truncated yes`) and appends to the same incr file.
//!
//! [`Single`]: Redis ≤ 6's `appendonly.aof`, rewritten by rename (image + the writes teed
//! during the rewrite); a crash is handled as above.

use std::path::{Path, PathBuf};

use aofvault::restore::translate::Kind;
use aofvault::source::Layout;
use aofvault_formats::aof_manifest::{AofFileEntry, AofFileType, AofManifest};
use rand::rngs::StdRng;
use rand::Rng;

use super::model::Model;
use super::server::{image_bytes, replace, Server, ShardState, Trace};

const NAME: &str = "appendonly.aof";

/// A rewrite in progress: the keyspace at its start and, for Redis 7, the first incr file it
/// opened; for Redis ≤ 6, the frames written since.
struct Rewrite {
    frozen: Model,
    first_new_incr: i64,
    tee: Vec<u8>,
}

pub struct Redis7 {
    dir: PathBuf,
    st: ShardState,
    /// (seq, file name) of the base and of the incr files, oldest first.
    base: (i64, String),
    incrs: Vec<(i64, String)>,
    job: Option<Rewrite>,
}

impl Redis7 {
    pub fn create(data: &Path) -> std::io::Result<Redis7> {
        let dir = data.join("appendonlydir");
        std::fs::create_dir_all(&dir)?;
        let base = (1, format!("{NAME}.1.base.aof"));
        std::fs::write(dir.join(&base.1), b"")?;
        let incr = (1, format!("{NAME}.1.incr.aof"));
        std::fs::write(dir.join(&incr.1), b"")?;
        let r = Redis7 {
            dir,
            st: ShardState::new(0),
            base,
            incrs: vec![incr],
            job: None,
        };
        r.write_manifest()?;
        Ok(r)
    }

    fn last_incr(&self) -> PathBuf {
        let name = self.incrs.last().map_or("", |(_, n)| n.as_str());
        self.dir.join(name)
    }

    fn write_manifest(&self) -> std::io::Result<()> {
        let mut m = AofManifest::default();
        m.entries.push(AofFileEntry {
            name: self.base.1.clone(),
            seq: self.base.0,
            file_type: AofFileType::Base,
            extra: Vec::new(),
        });
        for (seq, name) in &self.incrs {
            m.entries.push(AofFileEntry {
                name: name.clone(),
                seq: *seq,
                file_type: AofFileType::Incr,
                extra: Vec::new(),
            });
        }
        let path = self.dir.join(format!("{NAME}.manifest"));
        replace(
            &self.dir.join("temp-manifest"),
            &path,
            m.render().as_bytes(),
        )
    }

    fn start_rewrite(&mut self, trace: &mut Trace) -> std::io::Result<()> {
        let last = self.last_incr();
        self.st.complete_partial(&last, trace)?;
        let seq = self.incrs.last().map_or(0, |(s, _)| *s) + 1;
        let name = format!("{NAME}.{seq}.incr.aof");
        std::fs::write(self.dir.join(&name), b"")?;
        self.incrs.push((seq, name.clone()));
        self.write_manifest()?;
        self.job = Some(Rewrite {
            frozen: self.st.model.clone(),
            first_new_incr: seq,
            tee: Vec::new(),
        });
        trace.log(format!("  rewrite starts: {name} opened and listed"));
        Ok(())
    }

    fn finish_rewrite(&mut self, trace: &mut Trace) -> std::io::Result<()> {
        let Some(job) = self.job.take() else {
            return Ok(());
        };
        let seq = self.base.0 + 1;
        let name = format!("{NAME}.{seq}.base.aof");
        replace(
            &self.dir.join("temp-rewriteaof-bg.aof"),
            &self.dir.join(&name),
            &image_bytes(&job.frozen),
        )?;
        let old_base = std::mem::replace(&mut self.base, (seq, name.clone()));
        let (keep, retired): (Vec<_>, Vec<_>) = self
            .incrs
            .drain(..)
            .partition(|(s, _)| *s >= job.first_new_incr);
        self.incrs = keep;
        self.write_manifest()?;
        std::fs::remove_file(self.dir.join(&old_base.1))?;
        for (_, n) in &retired {
            std::fs::remove_file(self.dir.join(n))?;
        }
        let names: Vec<_> = retired.iter().map(|(_, n)| n.as_str()).collect();
        trace.log(format!(
            "  rewrite done: base {name}, manifest replaced; deleted {} and {names:?}",
            old_base.1
        ));
        Ok(())
    }

    /// The restarted server truncates a torn frame on disk and appends after it.
    fn crash(&mut self, rng: &mut StdRng, trace: &mut Trace) -> std::io::Result<()> {
        let last = self.last_incr();
        let torn = self.st.crash(rng, &last, true, trace)?;
        let len = std::fs::metadata(&last)?.len();
        let f = std::fs::OpenOptions::new().write(true).open(&last)?;
        f.set_len(len - torn)?;
        // A rewrite in progress dies with the process; its incr file stays listed.
        self.job = None;
        trace.log(format!(
            "  restart: the torn frame is truncated (file back to {} bytes)",
            len - torn
        ));
        Ok(())
    }
}

impl Server for Redis7 {
    fn layout(&self) -> Layout {
        Layout::RedisMultiPart {
            aof_dir: self.dir.clone(),
            aof_name: NAME.to_string(),
        }
    }

    fn kind(&self) -> Kind {
        Kind::Redis
    }

    fn shard_count(&self) -> usize {
        1
    }

    fn shard(&self, _i: usize) -> &ShardState {
        &self.st
    }

    fn op(&mut self, rng: &mut StdRng, trace: &mut Trace) -> std::io::Result<()> {
        match rng.gen_range(0..100) {
            0..=59 => {
                trace.log("redis7: write");
                let last = self.last_incr();
                let n = rng.gen_range(1..=12);
                self.st.write(rng, &last, n, true, trace)?;
            }
            60..=71 if self.job.is_none() => {
                trace.log("redis7: BGREWRITEAOF starts");
                self.start_rewrite(trace)?;
            }
            60..=79 if self.job.is_some() => {
                trace.log("redis7: BGREWRITEAOF finishes");
                self.finish_rewrite(trace)?;
            }
            80..=87 if self.job.is_some() => {
                // Two rewrites back to back, with writes between, before anyone looks.
                trace.log("redis7: BGREWRITEAOF finishes, and another one runs");
                self.finish_rewrite(trace)?;
                let last = self.last_incr();
                self.st.write(rng, &last, 2, false, trace)?;
                self.start_rewrite(trace)?;
                let last = self.last_incr();
                self.st.write(rng, &last, 2, false, trace)?;
                self.finish_rewrite(trace)?;
            }
            88..=90 => {
                trace.log("redis7: crash and restart");
                self.crash(rng, trace)?;
            }
            _ => {
                trace.log("redis7: workload mode");
                self.st.flip_mode(trace);
            }
        }
        Ok(())
    }

    fn settle(&mut self, _trace: &mut Trace) -> std::io::Result<()> {
        Ok(())
    }

    fn heal(&mut self, _rng: &mut StdRng, trace: &mut Trace) -> std::io::Result<()> {
        let last = self.last_incr();
        self.st.complete_partial(&last, trace)?;
        if self.job.is_some() {
            trace.log("heal redis7: the rewrite finishes");
            self.finish_rewrite(trace)?;
        }
        Ok(())
    }
}

pub struct Single {
    path: PathBuf,
    st: ShardState,
    job: Option<Rewrite>,
}

impl Single {
    pub fn create(data: &Path) -> std::io::Result<Single> {
        let path = data.join(NAME);
        std::fs::write(&path, b"")?;
        Ok(Single {
            path,
            st: ShardState::new(0),
            job: None,
        })
    }

    fn finish_rewrite(&mut self, trace: &mut Trace) -> std::io::Result<()> {
        let Some(job) = self.job.take() else {
            return Ok(());
        };
        if let Some(whole) = self.st.complete_partial(&self.path, trace)? {
            let mut bytes = image_bytes(&job.frozen);
            bytes.extend_from_slice(&job.tee);
            bytes.extend_from_slice(&whole);
            return self.rename_in(bytes, trace);
        }
        let mut bytes = image_bytes(&job.frozen);
        bytes.extend_from_slice(&job.tee);
        self.rename_in(bytes, trace)
    }

    fn rename_in(&mut self, bytes: Vec<u8>, trace: &mut Trace) -> std::io::Result<()> {
        let tmp = self.path.with_file_name("temp-rewriteaof-bg.aof");
        replace(&tmp, &self.path, &bytes)?;
        trace.log(format!(
            "  rewrite done: {} bytes renamed over {NAME}",
            bytes.len()
        ));
        Ok(())
    }
}

impl Server for Single {
    fn layout(&self) -> Layout {
        Layout::RedisSingle {
            path: self.path.clone(),
        }
    }

    fn kind(&self) -> Kind {
        Kind::Redis
    }

    fn shard_count(&self) -> usize {
        1
    }

    fn shard(&self, _i: usize) -> &ShardState {
        &self.st
    }

    fn op(&mut self, rng: &mut StdRng, trace: &mut Trace) -> std::io::Result<()> {
        match rng.gen_range(0..100) {
            0..=64 => {
                trace.log("redis6: write");
                let n = rng.gen_range(1..=12);
                let whole = self.st.write(rng, &self.path, n, true, trace)?;
                if let Some(job) = self.job.as_mut() {
                    job.tee.extend_from_slice(&whole);
                }
            }
            65..=76 if self.job.is_none() => {
                trace.log("redis6: BGREWRITEAOF starts");
                // Written before the freeze: in the old file and in the image.
                self.st.complete_partial(&self.path, trace)?;
                self.job = Some(Rewrite {
                    frozen: self.st.model.clone(),
                    first_new_incr: 0,
                    tee: Vec::new(),
                });
            }
            65..=84 if self.job.is_some() => {
                trace.log("redis6: BGREWRITEAOF finishes");
                self.finish_rewrite(trace)?;
            }
            85..=88 => {
                trace.log("redis6: crash and restart");
                let torn = self.st.crash(rng, &self.path, true, trace)?;
                let len = std::fs::metadata(&self.path)?.len();
                let f = std::fs::OpenOptions::new().write(true).open(&self.path)?;
                f.set_len(len - torn)?;
                self.job = None;
                trace.log(format!(
                    "  restart: the torn frame is truncated (file back to {} bytes)",
                    len - torn
                ));
            }
            _ => {
                trace.log("redis6: workload mode");
                self.st.flip_mode(trace);
            }
        }
        Ok(())
    }

    fn settle(&mut self, _trace: &mut Trace) -> std::io::Result<()> {
        Ok(())
    }

    fn heal(&mut self, _rng: &mut StdRng, trace: &mut Trace) -> std::io::Result<()> {
        if let Some(whole) = self.st.complete_partial(&self.path, trace)? {
            if let Some(job) = self.job.as_mut() {
                job.tee.extend_from_slice(&whole);
            }
        }
        if self.job.is_some() {
            trace.log("heal redis6: the rewrite finishes");
            self.finish_rewrite(trace)?;
        }
        Ok(())
    }
}
