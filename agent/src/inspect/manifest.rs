//! A Redis AOF manifest: the files it names, as JSON or a short listing (it holds no commands).

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use aofvault_formats::aof_manifest::{AofFileType, AofManifest};
use serde_json::json;

use super::Mode;

/// A manifest is a few lines; anything larger is not one.
const MAX_MANIFEST: u64 = 1 << 20;

/// Describes the manifest `r` in `mode`.
pub(super) fn manifest(r: impl Read, path: &Path, mode: Mode, out: &mut dyn Write) -> Result<()> {
    let mut text = Vec::new();
    r.take(MAX_MANIFEST)
        .read_to_end(&mut text)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let m =
        AofManifest::parse(&text).with_context(|| format!("{}: bad manifest", path.display()))?;
    let role = |t: AofFileType| match t {
        AofFileType::Base => "base",
        AofFileType::History => "history",
        AofFileType::Incr => "incr",
    };
    match mode {
        Mode::Json => {
            let files: Vec<_> = m
                .entries
                .iter()
                .map(|e| json!({"file": e.name, "seq": e.seq, "type": role(e.file_type)}))
                .collect();
            serde_json::to_writer_pretty(&mut *out, &files)?;
            writeln!(out)?;
        }
        Mode::Resp => bail!("{}: a manifest holds no commands (--resp)", path.display()),
        Mode::Summary => {
            writeln!(out, "file:      {}", path.display())?;
            writeln!(out, "format:    Redis AOF manifest")?;
            writeln!(out, "files:     {}", m.entries.len())?;
            for e in &m.entries {
                writeln!(
                    out,
                    "  {:<8} seq {:<6} {}",
                    role(e.file_type),
                    e.seq,
                    e.name
                )?;
            }
        }
    }
    Ok(())
}
