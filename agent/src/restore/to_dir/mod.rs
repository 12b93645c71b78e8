//! `restore --to-dir DIR`: the files a server loads at start.
//!
//! - kevy: per shard `dump-{i}.rdb` (the KEVYSNAP base, when the chain has one) and
//!   `aof-{i}.aof` (`KEVYAOF1\n` + the stream, with the commands kevy's own start-up replay
//!   would drop rewritten into ones it applies: [`files`]), then `shards.meta`;
//! - Redis ≥ 7: `<aof_dir>/<aof_name>.1.base.rdb|aof` and `.1.incr.aof`, then the manifest;
//! - Redis ≤ 6: `<aof_name>` (base then stream in one file);
//! - across kinds, or to another kevy shard count: the base decoded and every command translated
//!   ([`super::feed`]), written as a RESP base (Redis) or per-shard AOFs routed by key (kevy);
//! - for an older server named with `--for` that cannot load the source's files ([`older`]):
//!   converted the same way, as one RESP file in the layout that version reads.
//!
//! Everything is staged first in a hidden directory inside DIR (same filesystem, so the final
//! step is renames, not copies): downloaded, checked, converted, fsynced. Only then are
//! existing entries moved aside (`--force`; never deleted) and the files renamed into place,
//! the "looks complete" marker — `shards.meta` or the Redis manifest — last, and the
//! directories fsynced. A restore that fails at any point leaves nothing that looks complete.

pub mod files;
mod older;
mod same_kind;

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use aofvault_formats::aof::KEVY_AOF_MAGIC;
use aofvault_formats::kevy::{Routing, ShardsMeta};
use aofvault_formats::vault::{check_name, ServerLayout};

use super::feed::{feed_shard, FeedOptions, FeedStats};
use super::fetch::{create_private, fetch, sync_all, StagedShard, StagingDir};
use super::progress::Progress;
use super::retry::Retry;
use super::translate::field_ttl::{LostFieldTtl, Support};
use super::translate::target::TargetServer;
use super::translate::Kind;
use crate::repo::plan::Plan;
use crate::repo::Repo;
use files::{resp_file, KevyFiles};
use same_kind::same_kind;

/// What to write.
#[derive(Debug, Clone, Copy)]
pub struct DirOptions {
    pub target: Kind,
    /// kevy target shard count.
    pub shards: u32,
    pub force: bool,
    /// The server that will load the files (`--for`), when named.
    pub server: Option<TargetServer>,
}

/// What a restore to files wrote.
#[derive(Debug, Default)]
pub struct Written {
    pub files: Vec<PathBuf>,
    /// Why the files were converted for an older server (`--for`), when they were.
    pub converted: Option<String>,
    /// Hash fields whose TTL the named server cannot hold (restored without it).
    pub field_ttls_lost: u64,
    pub lost_field_ttls: Vec<LostFieldTtl>,
}

/// Outcome of the emptiness check.
pub enum Prepared {
    Ready,
    NotEmpty(Vec<String>),
}

/// Creates `dir` if absent (0700); lists its entries otherwise.
pub fn prepare(dir: &Path) -> anyhow::Result<Prepared> {
    match std::fs::read_dir(dir) {
        Ok(entries) => {
            let mut names = Vec::new();
            for e in entries {
                names.push(
                    e.with_context(|| format!("listing {}", dir.display()))?
                        .file_name()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
            names.sort();
            Ok(if names.is_empty() {
                Prepared::Ready
            } else {
                Prepared::NotEmpty(names)
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            Ok(Prepared::Ready)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", dir.display())),
    }
}

/// A staged file and where it goes, relative to DIR.
struct Output {
    staged: PathBuf,
    dest: PathBuf,
}

/// Writes the plan into `dir` (already checked by [`prepare`]), retrying store failures for
/// the default time. Returns what it wrote.
pub async fn restore(
    repo: &Repo,
    plan: &Plan,
    dir: &Path,
    opts: DirOptions,
) -> anyhow::Result<Written> {
    restore_with(repo, plan, dir, opts, &Retry::default()).await
}

/// [`restore`], retrying failed downloads as `retry` says.
pub async fn restore_with(
    repo: &Repo,
    plan: &Plan,
    dir: &Path,
    opts: DirOptions,
    retry: &Retry,
) -> anyhow::Result<Written> {
    let source = if plan.layout.is_kevy() {
        Kind::Kevy
    } else {
        Kind::Redis
    };
    let same =
        opts.target == source && (source == Kind::Redis || opts.shards == plan.layout.shards());
    let staging_name = format!(
        ".aofvault-restore-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    );
    let staging = StagingDir::create(dir, &staging_name)?;
    let prefix: &[u8] = if same && source == Kind::Kevy {
        KEVY_AOF_MAGIC
    } else {
        b""
    };
    let progress = Progress::new("fetch", plan.total_bytes());
    let staged = fetch(repo, plan, staging.path(), prefix, &progress, retry).await?;
    progress.finish();
    let work = staging.path().to_path_buf();
    let plan2 = plan.clone();
    let (outputs, marker, stats, converted) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let why = match (&opts.server, same && source == Kind::Redis) {
            (Some(server), true) => older::why_convert(&plan2.layout, &staged, server)?,
            _ => None,
        };
        if let Some(why) = &why {
            tracing::info!(target_server = %opts.server.map(|s| s.to_string()).unwrap_or_default(), "converting the files: {why}");
        }
        let same = same && why.is_none();
        let (outputs, marker, stats) = if same {
            same_kind(&plan2, &staged, &work)?
        } else {
            converted(&plan2, &staged, &work, opts, source)?
        };
        sync_all(&staged)?;
        for o in outputs.iter().chain(std::iter::once(&marker)) {
            File::open(&o.staged)
                .and_then(|f| f.sync_all())
                .with_context(|| format!("fsync {}", o.staged.display()))?;
        }
        Ok((outputs, marker, stats, why))
    })
    .await??;
    let lossy: u64 = stats.iter().map(|s| s.lossy).sum();
    if let Some(reason) = stats.iter().find_map(|s| s.lossy_reason) {
        tracing::warn!(commands = lossy, "{reason}");
        eprintln!("aofvault: warning: {lossy} command(s) could not be fully translated: {reason}");
    }
    if opts.force {
        move_aside(dir, &staging_name)?;
    }
    let mut lost: Vec<LostFieldTtl> = stats.into_iter().flat_map(|s| s.lost_field_ttls).collect();
    let field_ttls_lost = lost.len() as u64;
    super::translate::field_ttl::warn(&lost, field_ttls_lost);
    lost.truncate(super::live::KEEP_LOST_FIELDS);
    let mut written = Vec::new();
    for o in outputs.iter().chain(std::iter::once(&marker)) {
        let dest = dir.join(&o.dest);
        let parent = dest.parent().unwrap_or(dir).to_path_buf();
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
        std::fs::rename(&o.staged, &dest)
            .with_context(|| format!("cannot move {} to {}", o.staged.display(), dest.display()))?;
        sync_dir(&parent)?;
        written.push(dest);
    }
    sync_dir(dir)?;
    drop(staging);
    Ok(Written {
        files: written,
        converted,
        field_ttls_lost,
        lost_field_ttls: lost,
    })
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync directory {}", dir.display()))
}

/// `--force`: every entry of `dir` but the staging directory moves into
/// `dir/aofvault-moved-<UTC time>/`.
fn move_aside(dir: &Path, staging: &str) -> anyhow::Result<()> {
    let names: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy() != staging)
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    let aside = dir.join(format!(
        "aofvault-moved-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%3fZ")
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&aside)
        .with_context(|| format!("cannot create {}", aside.display()))?;
    for n in names {
        std::fs::rename(dir.join(&n), aside.join(&n)).with_context(|| {
            format!(
                "cannot move {} into {}",
                dir.join(&n).display(),
                aside.display()
            )
        })?;
    }
    sync_dir(dir)?;
    eprintln!(
        "aofvault: moved the previous contents of {} into {}",
        dir.display(),
        aside.display()
    );
    Ok(())
}

fn single_base(s: &StagedShard) -> anyhow::Result<Option<&super::fetch::StagedBase>> {
    match s.base.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        more => bail!(
            "shard {}: {} base parts; this aofvault restores chains with one base part",
            s.shard,
            more.len()
        ),
    }
}

type Staged = (Vec<Output>, Output, Vec<FeedStats>);

fn small_file(work: &Path, name: &str, bytes: &[u8], dest: PathBuf) -> anyhow::Result<Output> {
    let path = work.join(name);
    let mut f = create_private(&path)?;
    f.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Output { staged: path, dest })
}

/// Decoded, translated and re-encoded files (another kind, or another kevy shard count).
fn converted(
    plan: &Plan,
    staged: &[StagedShard],
    work: &Path,
    opts: DirOptions,
    source: Kind,
) -> anyhow::Result<Staged> {
    let defaults = FeedOptions::new(
        source,
        opts.target,
        staged.len() > 1,
        crate::context::now_ms(),
    );
    let feed = FeedOptions {
        field_ttl: opts.server.as_ref().map_or(defaults.field_ttl, Support::of),
        ..defaults
    };
    let mut stats = Vec::new();
    let (outputs, marker) = match opts.target {
        Kind::Kevy => {
            let routing = match &plan.layout {
                ServerLayout::Kevy {
                    shards_meta: Some(m),
                    ..
                } => ShardsMeta::parse(m)
                    .map(|m| m.routing)
                    .unwrap_or(Routing::KevyHash),
                _ => Routing::KevyHash,
            };
            let paths: Vec<PathBuf> = (0..opts.shards)
                .map(|i| work.join(format!("out-aof-{i}")))
                .collect();
            let files = paths
                .iter()
                .map(|p| resp_file(p, KEVY_AOF_MAGIC))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut sink = KevyFiles { files, routing };
            for s in staged {
                stats.push(feed_shard(s, &feed, &mut sink)?);
            }
            for f in sink.files {
                f.w.into_inner().map_err(|e| e.into_error())?;
            }
            let outputs = paths
                .into_iter()
                .enumerate()
                .map(|(i, p)| Output {
                    staged: p,
                    dest: format!("aof-{i}.aof").into(),
                })
                .collect();
            let meta = ShardsMeta {
                shards: opts.shards,
                routing,
            }
            .render();
            (
                outputs,
                small_file(work, "shards.meta", meta.as_bytes(), "shards.meta".into())?,
            )
        }
        Kind::Redis => {
            let (aof_name, aof_dir) = match &plan.layout {
                ServerLayout::RedisMultiPart { aof_name, aof_dir } => {
                    (aof_name.clone(), aof_dir.clone())
                }
                _ => ("appendonly.aof".to_string(), "appendonlydir".to_string()),
            };
            check_name("aof_name", &aof_name)?;
            check_name("aof_dir", &aof_dir)?;
            if opts.server.is_some_and(|s| !s.multi_part_aof()) {
                // Redis ≤ 6: everything in one `appendonly.aof`, which is also the marker.
                let path = work.join("out-single");
                let mut sink = resp_file(&path, b"")?;
                for s in staged {
                    stats.push(feed_shard(s, &feed, &mut sink)?);
                }
                sink.w.into_inner().map_err(|e| e.into_error())?;
                let single = match &plan.layout {
                    ServerLayout::RedisSingle { aof_name } => aof_name.clone(),
                    _ => aof_name.clone(),
                };
                check_name("aof_name", &single)?;
                let marker = Output {
                    staged: path,
                    dest: single.into(),
                };
                return Ok((Vec::new(), marker, stats));
            }
            let d = PathBuf::from(&aof_dir);
            // Everything goes into one RESP base; the incr file starts empty.
            let base = work.join("out-base");
            let mut sink = resp_file(&base, b"")?;
            for s in staged {
                stats.push(feed_shard(s, &feed, &mut sink)?);
            }
            sink.w.into_inner().map_err(|e| e.into_error())?;
            let base_name = format!("{aof_name}.1.base.aof");
            let incr_name = format!("{aof_name}.1.incr.aof");
            let incr = small_file(work, "out-incr", b"", d.join(&incr_name))?;
            let manifest =
                format!("file {base_name} seq 1 type b\nfile {incr_name} seq 1 type i\n");
            let outputs = vec![
                Output {
                    staged: base,
                    dest: d.join(base_name),
                },
                incr,
            ];
            (
                outputs,
                small_file(
                    work,
                    "manifest",
                    manifest.as_bytes(),
                    d.join(format!("{aof_name}.manifest")),
                )?,
            )
        }
    };
    Ok((outputs, marker, stats))
}
