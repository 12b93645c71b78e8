//! `restore --keys … --to-dir DIR`: a server layout holding only the matching keys — kevy
//! per-shard AOFs routed by key plus `shards.meta`, or a Redis ≥ 7 `appendonlydir` with one RESP
//! base — written like a converted full restore ([`crate::restore::to_dir`]): into an empty
//! directory, the "looks complete" marker last.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use aofvault_formats::aof::KEVY_AOF_MAGIC;
use aofvault_formats::json::rfc3339_ms;
use aofvault_formats::kevy::{Routing, ShardsMeta};
use aofvault_formats::vault::{check_name, ServerLayout};

use super::{key_commands, source_kind, split, warn_unknown};
use crate::cli::{RestoreArgs, TargetFormat};
use crate::exit;
use crate::restore::feed::Sink;
use crate::restore::history::state::Keyspace;
use crate::restore::to_dir::files::{resp_file, KevyFiles};
use crate::restore::to_dir::{prepare, Prepared};
use crate::restore::translate::Kind;

fn sync(path: &Path) -> anyhow::Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("fsync {}", path.display()))
}

pub fn write(
    ks: &Keyspace,
    dir: &Path,
    args: &RestoreArgs,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    if let Prepared::NotEmpty(names) = prepare(dir)? {
        eprintln!(
            "aofvault: {} is not empty ({}): a restore of selected keys writes into an empty directory only",
            dir.display(),
            names.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        );
        return Ok(exit::TARGET_NOT_EMPTY);
    }
    let from = source_kind(ks);
    let to = match args.format {
        Some(TargetFormat::Kevy) => Kind::Kevy,
        Some(TargetFormat::Redis) => Kind::Redis,
        None => from,
    };
    let (keys, unknown) = split(ks);
    warn_unknown(&unknown);
    if args.dry_run {
        writeln!(
            out,
            "would write {} key(s) as they were at {} into {} ({} layout)",
            keys.len(),
            rfc3339_ms(ks.moment_ms),
            dir.display(),
            to
        )?;
        return Ok(exit::OK);
    }
    let mut written = Vec::new();
    match to {
        Kind::Kevy => {
            let (shards, routing) = match &ks.plan.layout {
                ServerLayout::Kevy {
                    shards_meta: Some(m),
                    ..
                } => ShardsMeta::parse(m)
                    .map(|m| (m.shards, m.routing))
                    .unwrap_or((ks.plan.layout.shards(), Routing::KevyHash)),
                l if l.is_kevy() => (l.shards(), Routing::KevyHash),
                _ => (1, Routing::KevyHash),
            };
            let shards = args.shards.unwrap_or(shards);
            let paths: Vec<_> = (0..shards)
                .map(|i| dir.join(format!("aof-{i}.aof")))
                .collect();
            let files = paths
                .iter()
                .map(|p| resp_file(p, KEVY_AOF_MAGIC))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let mut sink = KevyFiles { files, routing };
            for (id, slot) in &keys {
                if id.0 != 0 {
                    anyhow::bail!("a key is in database {}: kevy serves database 0 only", id.0);
                }
                for cmd in key_commands(id, slot, from, to)? {
                    let refs: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
                    sink.command(&refs)?;
                }
            }
            for f in sink.files {
                f.w.into_inner().map_err(|e| e.into_error())?;
            }
            for p in &paths {
                sync(p)?;
            }
            written.extend(paths);
            let meta = dir.join("shards.meta");
            std::fs::write(&meta, ShardsMeta { shards, routing }.render())
                .with_context(|| format!("writing {}", meta.display()))?;
            sync(&meta)?;
            written.push(meta);
        }
        Kind::Redis => {
            let (aof_name, aof_dir) = match &ks.plan.layout {
                ServerLayout::RedisMultiPart { aof_name, aof_dir } => {
                    (aof_name.clone(), aof_dir.clone())
                }
                _ => ("appendonly.aof".to_string(), "appendonlydir".to_string()),
            };
            check_name("aof_name", &aof_name)?;
            check_name("aof_dir", &aof_dir)?;
            let d = dir.join(&aof_dir);
            std::fs::create_dir_all(&d)
                .with_context(|| format!("cannot create {}", d.display()))?;
            let base = d.join(format!("{aof_name}.1.base.aof"));
            let mut sink = resp_file(&base, b"")?;
            let mut db = 0;
            for (id, slot) in &keys {
                if id.0 != db {
                    sink.command(&[b"SELECT", id.0.to_string().as_bytes()])?;
                    db = id.0;
                }
                for cmd in key_commands(id, slot, from, to)? {
                    let refs: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
                    sink.command(&refs)?;
                }
            }
            sink.w.into_inner().map_err(|e| e.into_error())?;
            sync(&base)?;
            let incr = d.join(format!("{aof_name}.1.incr.aof"));
            std::fs::write(&incr, b"").with_context(|| format!("writing {}", incr.display()))?;
            let manifest = d.join(format!("{aof_name}.manifest"));
            let text = format!("file {aof_name}.1.base.aof seq 1 type b\nfile {aof_name}.1.incr.aof seq 1 type i\n");
            std::fs::write(&manifest, text)
                .with_context(|| format!("writing {}", manifest.display()))?;
            sync(&manifest)?;
            sync(&d)?;
            written.extend([base, incr, manifest]);
        }
    }
    sync(dir)?;
    if args.json {
        let doc = serde_json::json!({
            "instance": ks.plan.instance, "at": rfc3339_ms(ks.moment_ms), "dir": dir,
            "format": to, "keys": keys.len(), "files": written,
        });
        serde_json::to_writer_pretty(&mut *out, &doc)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "wrote {} key(s) as they were at {} into {} ({} layout, {} file(s))",
            keys.len(),
            rfc3339_ms(ks.moment_ms),
            dir.display(),
            to,
            written.len()
        )?;
    }
    Ok(exit::OK)
}
