//! A restore into the source's own kind: the staged files renamed into the server's layout
//! (kevy, Redis 7 multi-part, Redis <= 6 single file), with the file that makes the layout
//! look complete as the marker.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use aofvault_formats::kevy::{Routing, ShardsMeta};
use aofvault_formats::vault::{check_name, BaseFormat, ServerLayout};

use super::files::kevy_shard_files;
use super::{single_base, small_file, Output, Staged};
use crate::repo::plan::Plan;
use crate::restore::fetch::{create_private, StagedShard};

/// The server's own files, renamed from the staging area.
pub(super) fn same_kind(
    plan: &Plan,
    staged: &[StagedShard],
    work: &Path,
) -> anyhow::Result<Staged> {
    match &plan.layout {
        ServerLayout::Kevy {
            shards,
            shards_meta,
        } => kevy_files(*shards, shards_meta.as_deref(), staged, work),
        ServerLayout::RedisMultiPart { aof_name, aof_dir } => {
            multi_part_files(aof_name, aof_dir, staged, work)
        }
        ServerLayout::RedisSingle { aof_name } => {
            Ok((Vec::new(), single_file(aof_name, staged, work)?, Vec::new()))
        }
    }
}

/// kevy's layout: per shard an optional `dump-N.rdb` and an `aof-N.aof`, with `shards.meta`
/// (the recorded one, checked against the layout, or a fresh one) as the marker.
fn kevy_files(
    shards: u32,
    shards_meta: Option<&str>,
    staged: &[StagedShard],
    work: &Path,
) -> anyhow::Result<Staged> {
    let mut outputs = Vec::new();
    let mut stats = Vec::new();
    for s in staged {
        if let Some(b) = single_base(s)? {
            if b.part.format != BaseFormat::KevySnap {
                bail!(
                    "shard {}: a kevy chain with a {:?} base",
                    s.shard,
                    b.part.format
                );
            }
        }
        // What kevy's own replay would drop is rewritten (see `files`).
        let files = kevy_shard_files(s, work)?;
        if let Some(dump) = files.dump {
            outputs.push(Output {
                staged: dump,
                dest: format!("dump-{}.rdb", s.shard).into(),
            });
        }
        outputs.push(Output {
            staged: files.aof,
            dest: format!("aof-{}.aof", s.shard).into(),
        });
        stats.extend(files.stats);
    }
    let meta = match shards_meta.map(ShardsMeta::parse) {
        Some(Ok(m)) if m.shards == shards => m.render(),
        Some(Ok(m)) => bail!(
            "the recorded shards.meta says {} shards, the layout {shards}",
            m.shards
        ),
        Some(Err(e)) => bail!("the recorded shards.meta is unreadable: {e}"),
        None => ShardsMeta {
            shards,
            routing: Routing::KevyHash,
        }
        .render(),
    };
    let marker = small_file(work, "shards.meta", meta.as_bytes(), "shards.meta".into())?;
    Ok((outputs, marker, stats))
}

/// Redis 7's multi-part layout: the base and the stream under `aof_dir`, with the manifest
/// naming them as the marker.
fn multi_part_files(
    aof_name: &str,
    aof_dir: &str,
    staged: &[StagedShard],
    work: &Path,
) -> anyhow::Result<Staged> {
    check_name("aof_name", aof_name)?;
    check_name("aof_dir", aof_dir)?;
    let mut outputs = Vec::new();
    let s = staged.first().context("no shard")?;
    let d = PathBuf::from(aof_dir);
    let mut manifest = String::new();
    if let Some(b) = single_base(s)? {
        let ext = if b.part.format == BaseFormat::Rdb {
            "rdb"
        } else {
            "aof"
        };
        let name = format!("{aof_name}.1.base.{ext}");
        manifest.push_str(&format!("file {name} seq 1 type b\n"));
        outputs.push(Output {
            staged: b.path.clone(),
            dest: d.join(name),
        });
    }
    let incr = format!("{aof_name}.1.incr.aof");
    manifest.push_str(&format!("file {incr} seq 1 type i\n"));
    outputs.push(Output {
        staged: s.stream.clone(),
        dest: d.join(incr),
    });
    let marker = small_file(
        work,
        "manifest",
        manifest.as_bytes(),
        d.join(format!("{aof_name}.manifest")),
    )?;
    Ok((outputs, marker, Vec::new()))
}

/// Redis <= 6's single AOF: base then stream, concatenated; the file is its own marker.
fn single_file(aof_name: &str, staged: &[StagedShard], work: &Path) -> anyhow::Result<Output> {
    check_name("aof_name", aof_name)?;
    let s = staged.first().context("no shard")?;
    let path = work.join("single.aof");
    let mut out = BufWriter::new(create_private(&path)?);
    for p in s
        .base
        .iter()
        .map(|b| &b.path)
        .chain(std::iter::once(&s.stream))
    {
        std::io::copy(&mut File::open(p)?, &mut out)
            .with_context(|| format!("copying {}", p.display()))?;
    }
    out.into_inner().map_err(|e| e.into_error())?;
    Ok(Output {
        staged: path,
        dest: aof_name.into(),
    })
}
