//! `restore --to-dir … --for redis:7.0`: whether the source's own files load in the named
//! server, and why not.
//!
//! A same-kind restore renames the staged files into place; that only works when the target
//! version reads them. It does not when the base is an RDB newer than the target loads (Redis
//! 8.0 writes RDB 12, Redis 7.0 loads ≤ 10 and refuses the rest at start), when the AOF holds
//! commands the target does not know (Redis 8.0's `HPEXPIREAT`/`HSETEX`/`HPERSIST` stop a Redis
//! 7.0 start with "Unknown command"), or when the target predates the multi-part layout (Redis
//! ≤ 6 reads one `appendonly.aof`). Then the restore converts instead: every base decoded and
//! every command translated into one RESP file (the path a cross-kind restore takes), with the
//! field TTLs the target cannot hold reported.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use anyhow::Context;
use aofvault_formats::vault::{BaseFormat, ServerLayout};

use crate::restore::fetch::StagedShard;
use crate::restore::search::contains_ignore_case;
use crate::restore::translate::target::{Product, TargetServer};

/// Commands of hash field expiration that Redis writes into its AOF (lowercase, for the byte
/// search), and the ones only a server with `HSETEX` serves.
const FIELD_TTL_COMMANDS: [&[u8]; 3] = [b"hpexpireat", b"hpersist", b"hsetex"];
const HSETEX_COMMANDS: [&[u8]; 3] = [b"hsetex", b"hgetex", b"hgetdel"];

/// Why `server` cannot load the source's files as they are (`None`: it can).
pub fn why_convert(
    layout: &ServerLayout,
    staged: &[StagedShard],
    server: &TargetServer,
) -> anyhow::Result<Option<String>> {
    if matches!(layout, ServerLayout::RedisMultiPart { .. }) && !server.multi_part_aof() {
        return Ok(Some(format!(
            "{server} reads a single appendonly.aof, not appendonlydir/"
        )));
    }
    for s in staged {
        for b in &s.base {
            if b.part.format != BaseFormat::Rdb {
                continue;
            }
            let (magic, version) = rdb_header(&b.path)?;
            let foreign = match server.product {
                Product::Valkey => magic != "REDIS" && magic != "VALKEY",
                _ => magic != "REDIS",
            };
            if foreign {
                return Ok(Some(format!(
                    "the base is a {magic} RDB, which {server} does not read"
                )));
            }
            if let (Some(v), Some(max)) = (version, server.max_rdb_version()) {
                if v > max {
                    return Ok(Some(format!(
                        "the base is RDB version {v}; {server} loads RDB ≤ {max}"
                    )));
                }
            }
        }
        let needles: &[&[u8]] = if !server.hash_field_ttl() {
            &FIELD_TTL_COMMANDS
        } else if !server.hsetex() {
            &HSETEX_COMMANDS
        } else {
            &[]
        };
        for needle in needles {
            if holds(s, needle)? {
                return Ok(Some(format!(
                    "shard {}: the AOF holds `{}`, which {server} does not serve",
                    s.shard,
                    String::from_utf8_lossy(needle).to_uppercase()
                )));
            }
        }
    }
    Ok(None)
}

/// The magic (`REDIS`, `VALKEY`…: the leading letters) and version of an RDB file.
fn rdb_header(path: &std::path::Path) -> anyhow::Result<(String, Option<u32>)> {
    let mut head = [0u8; 16];
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let n = f.read(&mut head)?;
    let head = &head[..n];
    let letters = head.iter().take_while(|b| b.is_ascii_uppercase()).count();
    let magic = String::from_utf8_lossy(&head[..letters]).into_owned();
    let digits: String = head[letters..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .map(|&b| b as char)
        .collect();
    Ok((magic, digits.parse().ok()))
}

/// Whether the shard's stream or a RESP base part holds `needle` (any case).
fn holds(s: &StagedShard, needle: &[u8]) -> anyhow::Result<bool> {
    let mut f = File::open(&s.stream).with_context(|| format!("opening {}", s.stream.display()))?;
    f.seek(SeekFrom::Start(s.prefix))?;
    if contains_ignore_case(f.take(s.stream_end - s.stream_start), needle)? {
        return Ok(true);
    }
    for b in &s.base {
        // An RDB base's field TTLs are covered by its version (RDB 12); a RESP base (or the
        // commands after a single-file AOF's preamble) is searched like the stream.
        let f = File::open(&b.path).with_context(|| format!("opening {}", b.path.display()))?;
        if contains_ignore_case(f, needle)? {
            return Ok(true);
        }
    }
    Ok(false)
}
