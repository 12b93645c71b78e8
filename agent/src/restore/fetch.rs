//! Every object of a plan downloaded into a staging directory — streamed and decoded chunk by
//! chunk, its CRC-32C and size checked by [`Repo::download`] — before any of its bytes reach
//! the target. [`fetch`] returns once everything has arrived (restores to files, clusters);
//! [`start`] hands the staged shards over at once, with a [`Ready`] tracker each, and a live
//! replay reads each shard as its objects check out ([`ready`]), while the rest download.
//!
//! Per shard the staging holds the base parts as they were on the server, and one *stream*
//! file: an optional prefix (the kevy `KEVYAOF1\n` header when the file becomes `aof-{i}.aof`
//! as is) followed by the AOF bytes from `stream_start` to the plan's end. Segments know their
//! offsets, so they download in parallel, each written at its own place in the stream file.
//! A missing or corrupt object fails the whole fetch with an error naming it.
//!
//! A download the store breaks off is tried again from the object's first byte ([`Retry`]):
//! a base part into its file created afresh, a segment over its own byte range of the stream
//! file (a [`RangeWriter`] cannot write outside it). So every staged byte comes from the one
//! attempt whose size and CRC-32C checked out, and a fetch that gives up leaves nothing the
//! target would read.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use aofvault_formats::vault::BasePart;
use futures::StreamExt;

use super::progress::Progress;
use super::retry::Retry;
use crate::repo::plan::Plan;
use crate::repo::{keys, Repo};

pub mod ready;

pub use ready::{FetchStopped, Ready, StagedStream};

/// Objects downloaded at the same time.
const CONCURRENCY: usize = 8;
/// Write buffer per download.
const WRITE_BUFFER: usize = 256 << 10;

/// A base part on local disk.
#[derive(Debug, Clone)]
pub struct StagedBase {
    pub part: BasePart,
    pub path: PathBuf,
}

/// One shard's fetched objects.
#[derive(Debug, Clone)]
pub struct StagedShard {
    pub shard: u32,
    pub base: Vec<StagedBase>,
    /// `prefix` bytes, then the stream from logical offset `stream_start` to `stream_end`, torn
    /// ranges left out (offsets past one are the chain's less the torn bytes before them).
    pub stream: PathBuf,
    pub prefix: u64,
    pub stream_start: u64,
    pub stream_end: u64,
    /// What has checked out so far, while the downloads run ([`start`]); `None` once every
    /// object is on disk.
    pub ready: Option<Arc<Ready>>,
}

impl StagedShard {
    /// The stream from logical offset `from` to its end, read only as far as it has been
    /// verified.
    pub fn open_stream(&self, from: u64) -> anyhow::Result<std::io::Take<StagedStream>> {
        let file = File::open(&self.stream)
            .with_context(|| format!("opening {}", self.stream.display()))?;
        let at = self.prefix + (from - self.stream_start);
        Ok(StagedStream::new(file, at, self.ready.clone()).take(self.stream_end - from))
    }

    /// Blocks until base part `n` has checked out.
    pub fn wait_base(&self, n: usize) -> Result<(), FetchStopped> {
        match &self.ready {
            Some(r) => r.wait_base(n),
            None => Ok(()),
        }
    }
}

/// A directory for staged files, removed when dropped unless [`StagingDir::keep`] was called.
#[derive(Debug)]
pub struct StagingDir {
    path: PathBuf,
    remove: bool,
}

impl StagingDir {
    /// Creates `parent/<name>` (mode 0700); it must not exist.
    pub fn create(parent: &Path, name: &str) -> anyhow::Result<StagingDir> {
        let path = parent.join(name);
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .with_context(|| format!("cannot create the staging directory {}", path.display()))?;
        Ok(StagingDir { path, remove: true })
    }

    /// A fresh staging directory under the system temp dir.
    pub fn temp() -> anyhow::Result<StagingDir> {
        let name = format!(
            "aofvault-restore-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        Self::create(&std::env::temp_dir(), &name)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leave the directory in place on drop (its contents were moved out).
    pub fn keep(&mut self) {
        self.remove = false;
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        if self.remove {
            if let Err(e) = std::fs::remove_dir_all(&self.path) {
                tracing::warn!(dir = %self.path.display(), error = %e, "cannot remove the staging directory");
            }
        }
    }
}

/// Creates (or truncates) a private file.
pub fn create_private(path: &Path) -> anyhow::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

/// Writes one object's byte range `[pos, end)` of a shared file, moving forward; a write
/// past `end` fails (an object longer than recorded must not overwrite its neighbour).
struct RangeWriter {
    file: Arc<File>,
    pos: u64,
    end: u64,
}

impl Write for RangeWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = self.end.saturating_sub(self.pos);
        if buf.len() as u64 > room {
            return Err(std::io::Error::other("the object is longer than recorded"));
        }
        let n = self.file.write_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where one download goes.
enum Dest {
    /// A file of its own, created afresh for every attempt.
    File(PathBuf),
    /// A byte range of a shared stream file, written from its start by every attempt.
    Range { file: Arc<File>, at: u64 },
}

/// What a download that checked out makes ready.
enum Done {
    Base(usize),
    /// Stream file bytes `[start, end)`.
    Range(u64, u64),
}

/// One download: object key, checksum, plain size, where it goes, whose tracker it moves.
struct Job {
    key: String,
    crc: u32,
    size: u64,
    dest: Dest,
    ready: Arc<Ready>,
    done: Done,
}

impl Job {
    /// One attempt: the whole object, from its first byte.
    async fn attempt(&self, repo: &Repo) -> anyhow::Result<()> {
        let file = match &self.dest {
            Dest::File(path) => Arc::new(create_private(path)?),
            Dest::Range { file, .. } => file.clone(),
        };
        let at = match &self.dest {
            Dest::File(_) => 0,
            Dest::Range { at, .. } => *at,
        };
        let range = RangeWriter {
            file,
            pos: at,
            end: at + self.size,
        };
        let writer = BufWriter::with_capacity(WRITE_BUFFER, range);
        let writer = repo
            .download(&self.key, self.crc, Some(self.size), writer)
            .await?;
        writer
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {} to the staging area", self.key))?;
        Ok(())
    }
}

/// Downloads every object of `plan` into `dir`; `stream_prefix` is written at the start of
/// every stream file. Returns the staged shards once every object has arrived and checked out.
pub async fn fetch(
    repo: &Repo,
    plan: &Plan,
    dir: &Path,
    stream_prefix: &[u8],
    progress: &Progress,
    retry: &Retry,
) -> anyhow::Result<Vec<StagedShard>> {
    let (mut staged, downloads) = start(repo, plan, dir, stream_prefix, progress, retry)?;
    downloads
        .await
        .context("fetching the backup (nothing was written to the target)")?;
    for s in &mut staged {
        s.ready = None;
    }
    Ok(staged)
}

/// Creates the staged files of `plan` in `dir` and returns the staged shards at once, each
/// with its [`Ready`] tracker, and the downloads to drive: [`CONCURRENCY`] at a time, in the
/// order a replay reads them (shard by shard, each one's base first, then its segments in
/// offset order), every tracker updated as its objects check out. The future fails with the
/// first download that gave up, naming its object; every tracker is then failed too, as it is
/// when the future is dropped before the end.
pub fn start(
    repo: &Repo,
    plan: &Plan,
    dir: &Path,
    stream_prefix: &[u8],
    progress: &Progress,
    retry: &Retry,
) -> anyhow::Result<(Vec<StagedShard>, impl Future<Output = anyhow::Result<()>>)> {
    let mut staged = Vec::new();
    let mut jobs = Vec::new();
    for s in &plan.shards {
        let mut base = Vec::new();
        let prefix = stream_prefix.len() as u64;
        let ready = Ready::new(s.base.len(), prefix);
        for (n, part) in s.base.iter().enumerate() {
            let path = dir.join(format!("shard-{}-base-{n}", s.shard));
            jobs.push(Job {
                key: s.key(&plan.instance, &part.object),
                crc: part.crc32c,
                size: part.size,
                dest: Dest::File(path.clone()),
                ready: ready.clone(),
                done: Done::Base(n),
            });
            base.push(StagedBase {
                part: part.clone(),
                path,
            });
        }
        let stream = dir.join(format!("shard-{}-stream", s.shard));
        let file = create_private(&stream)?;
        file.write_all_at(stream_prefix, 0)
            .with_context(|| format!("writing {}", stream.display()))?;
        let file = Arc::new(file);
        // Torn ranges (a crash's half-written command) hold no command: they are left out of
        // the staged stream, which is the chain's stream without them.
        let mut torn = 0u64;
        for p in &s.segments {
            if keys::is_torn(&p.seg) {
                torn += p.take;
                continue;
            }
            let at = prefix + (p.seg.start - s.stream_start - torn);
            let size = p.seg.end - p.seg.start;
            jobs.push(Job {
                key: s.key(&plan.instance, &p.seg.object),
                crc: p.seg.crc32c,
                size,
                dest: Dest::Range {
                    file: file.clone(),
                    at,
                },
                ready: ready.clone(),
                done: Done::Range(at, at + size),
            });
        }
        staged.push((
            StagedShard {
                shard: s.shard,
                base,
                stream,
                prefix,
                stream_start: s.stream_start,
                stream_end: s.end - torn,
                ready: Some(ready),
            },
            file,
        ));
    }
    let shards: Vec<StagedShard> = staged.iter().map(|(s, _)| s.clone()).collect();
    let mut guard = FailOnDrop(shards.iter().filter_map(|s| s.ready.clone()).collect());
    let (repo, retry, progress) = (repo.clone(), *retry, progress.clone());
    let downloads = async move {
        let result = download(jobs, &repo, retry, &progress).await;
        if let Err(e) = &result {
            guard.fail(format!("{e:#}"));
        }
        result?;
        for (shard, file) in staged {
            // A segment cut at a #TS: annotation was downloaded whole; drop what follows the
            // cut (readers stop at the stream's end anyway).
            let len = shard.prefix + (shard.stream_end - shard.stream_start);
            file.set_len(len)
                .with_context(|| format!("truncating {}", shard.stream.display()))?;
        }
        guard.0.clear();
        Ok(())
    };
    Ok((shards, downloads))
}

/// Fails the trackers it holds when dropped (a fetch stopped half-way must not leave a reader
/// waiting); emptied once every object has checked out.
struct FailOnDrop(Vec<Arc<Ready>>);

impl FailOnDrop {
    fn fail(&mut self, why: String) {
        for r in self.0.drain(..) {
            r.fail(FetchStopped(why.clone()));
        }
    }
}

impl Drop for FailOnDrop {
    fn drop(&mut self) {
        self.fail("the fetch was stopped".into());
    }
}

/// Runs `jobs`, [`CONCURRENCY`] at a time in their order, marking each one's bytes ready once
/// it checked out.
async fn download(
    jobs: Vec<Job>,
    repo: &Repo,
    retry: Retry,
    progress: &Progress,
) -> anyhow::Result<()> {
    // Each download is its own task: decoding (zstd, CRC) then runs on every runtime thread,
    // not only on the one polling this function.
    let results = futures::stream::iter(jobs)
        .map(|job| {
            let repo = repo.clone();
            let progress = progress.clone();
            tokio::spawn(async move {
                retry
                    .object(&job.key, Some(&progress), || job.attempt(&repo))
                    .await?;
                match job.done {
                    Done::Base(n) => job.ready.base_done(n),
                    Done::Range(start, end) => job.ready.range_done(start, end),
                }
                anyhow::Ok(job.size)
            })
        })
        .buffer_unordered(CONCURRENCY);
    futures::pin_mut!(results);
    while let Some(r) = results.next().await {
        progress.add_bytes(r.context("download task")??);
    }
    Ok(())
}

/// fsyncs every staged file (for restores to files; a live replay does not need it).
pub fn sync_all(shards: &[StagedShard]) -> anyhow::Result<()> {
    for s in shards {
        for p in s
            .base
            .iter()
            .map(|b| &b.path)
            .chain(std::iter::once(&s.stream))
        {
            File::open(p)
                .and_then(|f| f.sync_all())
                .with_context(|| format!("fsync {}", p.display()))?;
        }
    }
    Ok(())
}
