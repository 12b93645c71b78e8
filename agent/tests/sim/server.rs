//! What every simulated server shares: the [`Server`] trait the driver calls, one shard's
//! oracle state ([`ShardState`]: its model, its history, the workload mode, a frame half
//! written), and the [`Trace`] a failing seed prints.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use aofvault::restore::translate::Kind;
use aofvault::source::Layout;
use rand::rngs::StdRng;
use rand::Rng;

use super::model::{self, apply_own, resp, Cmd, History, Mode, Model};

/// The operations a seed performed, in order: printed when an invariant breaks.
#[derive(Debug, Default)]
pub struct Trace {
    pub lines: Vec<String>,
    pub step: usize,
}

impl Trace {
    pub fn log(&mut self, what: impl Into<String>) {
        self.lines
            .push(format!("#{:04} {}", self.step, what.into()));
    }

    /// A digest of the trace with what the wall clock and the agent's random bits put in it
    /// (chain and snapshot ids, segment names, the temp dir) masked: two runs of a seed give
    /// the same digest.
    pub fn digest(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for l in &self.lines {
            std::hash::Hash::hash(&mask(l), &mut h);
        }
        std::hash::Hasher::finish(&h)
    }
}

/// Masks every word with 8 or more digits (ids, names with times) and every temp dir name.
fn mask(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.starts_with(".tmp") {
            out.push_str(".tmp*");
        } else if word.chars().filter(char::is_ascii_digit).count() >= 8 {
            out.push('#');
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in line.chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' || (c == '.' && word.is_empty()) {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// A simulated server: real files in a directory, changed the way the real server does.
pub trait Server {
    /// What `aofvault::source::discover` would find.
    fn layout(&self) -> Layout;
    /// The command dialect a restore replays (source and target are the same kind).
    fn kind(&self) -> Kind;
    fn shard_count(&self) -> usize;
    /// The oracle state of shard `i`.
    fn shard(&self, i: usize) -> &ShardState;
    /// One random operation (writes, a rewrite, a snapshot, a crash…) on one shard.
    fn op(&mut self, rng: &mut StdRng, trace: &mut Trace) -> std::io::Result<()>;
    /// Completes whatever the real server finishes within one tick (a `SAVE`'s AOF reset after
    /// its dump): called before the clock moves.
    fn settle(&mut self, trace: &mut Trace) -> std::io::Result<()>;
    /// Leaves clean files for the final drain: half-written frames completed, jobs finished, a
    /// torn AOF rewritten (what an operator does after a crash).
    fn heal(&mut self, rng: &mut StdRng, trace: &mut Trace) -> std::io::Result<()>;
    /// The agent's tailer for `shard` follows a chain whose head records `identity`.
    fn observed(&mut self, _shard: usize, _identity: &str) {}
    /// False while the files alone cannot say what the server holds (a kevy 1.19 rewrite image
    /// beside a dump): an agent starting then must guess, and so would the server.
    fn agent_may_start(&self) -> bool {
        true
    }
}

/// One shard as the oracle sees it.
#[derive(Debug)]
pub struct ShardState {
    pub model: Model,
    pub history: History,
    pub mode: Mode,
    serial: u64,
    /// The rest of a frame whose first part is on disk, and its command.
    partial: Option<(Vec<u8>, Cmd)>,
}

impl ShardState {
    pub fn new(step: usize) -> ShardState {
        let mut s = ShardState {
            model: Model::default(),
            history: History::default(),
            mode: Mode::Mixed,
            serial: 0,
            partial: None,
        };
        s.history.record(&s.model, step, None);
        s
    }

    /// Writes the rest of a half-written frame (the server's next write completes it).
    pub fn complete_partial(
        &mut self,
        file: &Path,
        trace: &mut Trace,
    ) -> std::io::Result<Option<Vec<u8>>> {
        let Some((rest, cmd)) = self.partial.take() else {
            return Ok(None);
        };
        append(file, &rest)?;
        apply_own(&mut self.model, &cmd);
        self.history
            .record(&self.model, trace.step, cmd.get(1).map(Vec::as_slice));
        trace.log(format!("  completes the half-written {}", show_cmd(&cmd)));
        Ok(Some(resp(&cmd)))
    }

    /// Writes `n` commands to `file`, the last one perhaps only in part. Returns the whole
    /// frames written (for a rewrite's tee).
    pub fn write(
        &mut self,
        rng: &mut StdRng,
        file: &Path,
        n: usize,
        may_split: bool,
        trace: &mut Trace,
    ) -> std::io::Result<Vec<u8>> {
        let mut whole = self.complete_partial(file, trace)?.unwrap_or_default();
        let mut buf = Vec::new();
        let mut last = String::new();
        for i in 0..n {
            let cmd = model::next_command(rng, self.mode, &mut self.serial);
            let frame = resp(&cmd);
            last = show_cmd(&cmd);
            if i + 1 == n && may_split && rng.gen_bool(0.25) {
                let cut = rng.gen_range(1..frame.len());
                whole.extend_from_slice(&buf);
                buf.extend_from_slice(&frame[..cut]);
                trace.log(format!(
                    "  {n} command(s), the last ({last}) split after {cut} bytes"
                ));
                self.partial = Some((frame[cut..].to_vec(), cmd));
                append(file, &buf)?;
                return Ok(whole);
            }
            buf.extend_from_slice(&frame);
            apply_own(&mut self.model, &cmd);
            self.history
                .record(&self.model, trace.step, cmd.get(1).map(Vec::as_slice));
        }
        append(file, &buf)?;
        whole.extend_from_slice(&buf);
        trace.log(format!("  {n} command(s), last {last}"));
        Ok(whole)
    }

    /// A crash: the frame being written stays half on disk (or a new one is cut short); its
    /// command never took effect. Returns the torn bytes' length. With `anywhere` false the
    /// cut falls inside the frame's first line (`*N\r\n`): whatever follows, the torn bytes
    /// never parse as part of a command. Cut anywhere, the torn prefix and the next frame may
    /// read as one well-formed command the server never ran (see the report of issue 12).
    pub fn crash(
        &mut self,
        rng: &mut StdRng,
        file: &Path,
        anywhere: bool,
        trace: &mut Trace,
    ) -> std::io::Result<u64> {
        let header_cut = |rng: &mut StdRng, frame: &[u8]| {
            let first_line = frame.iter().position(|&b| b == b'\n').unwrap_or(1);
            rng.gen_range(1..=first_line.min(frame.len() - 1))
        };
        if let Some((rest, cmd)) = self.partial.take() {
            let frame = resp(&cmd);
            let written = frame.len() - rest.len();
            let keep = if anywhere {
                written
            } else {
                header_cut(rng, &frame).min(written)
            };
            // What reached the disk before the crash is a prefix of what was written.
            let len = std::fs::metadata(file)?.len();
            std::fs::OpenOptions::new()
                .write(true)
                .open(file)?
                .set_len(len - (written - keep) as u64)?;
            trace.log(format!(
                "  crash: {} stays torn ({keep} bytes on disk)",
                show_cmd(&cmd)
            ));
            return Ok(keep as u64);
        }
        let cmd = model::next_command(rng, self.mode, &mut self.serial);
        let frame = resp(&cmd);
        let cut = if anywhere {
            rng.gen_range(1..frame.len())
        } else {
            header_cut(rng, &frame)
        };
        append(file, &frame[..cut])?;
        trace.log(format!(
            "  crash while writing {}: {cut} bytes torn",
            show_cmd(&cmd)
        ));
        Ok(cut as u64)
    }

    pub fn flip_mode(&mut self, trace: &mut Trace) {
        self.mode = match self.mode {
            Mode::Mixed => Mode::Counter,
            Mode::Counter => Mode::Mixed,
        };
        trace.log(format!("  workload mode {:?}", self.mode));
    }
}

fn show_cmd(cmd: &Cmd) -> String {
    let refs: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
    model::render(&refs)
}

/// Appends `bytes` to `file` (created if missing), as a server's `write(2)` does.
pub fn append(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = OpenOptions::new().append(true).create(true).open(file)?;
    f.write_all(bytes)
}

/// Writes `bytes` to `tmp` and renames it over `dst` (a new inode).
pub fn replace(tmp: &Path, dst: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(tmp, bytes)?;
    std::fs::rename(tmp, dst)
}

/// The RESP image of a model (a rewrite's output).
pub fn image_bytes(m: &Model) -> Vec<u8> {
    m.image().iter().flat_map(resp).collect()
}
