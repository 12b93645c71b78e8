//! What of a shard's staged files has been verified, while its downloads are still running: a
//! live restore replays a shard as its objects check out, and its decoder must never read a
//! byte whose object has not (the rule that no unverified byte reaches the target).
//!
//! [`Ready`] is updated by the downloads: a base part once its file checked out, a stream range
//! once its segment did. The stream's *watermark* is the end of the verified bytes contiguous
//! from the start of the stream file; [`StagedStream`] reads the stream file only below it and
//! blocks at it until more checks out, or until the fetch fails — then every reader waiting
//! gets [`FetchStopped`] and the replay stops.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// The fetch stopped before the bytes a reader waits for checked out (the fetch's own error
/// names the object).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the backup's objects stopped arriving: {0}")]
pub struct FetchStopped(pub String);

/// One shard's verified objects (see the module doc).
#[derive(Debug)]
pub struct Ready {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug)]
struct State {
    bases: Vec<bool>,
    /// Stream bytes `[0, watermark)` of the stream file are verified.
    watermark: u64,
    /// Verified ranges past the watermark, start → end.
    ahead: BTreeMap<u64, u64>,
    failed: Option<FetchStopped>,
}

impl Ready {
    /// `bases` base parts to come; the stream file's bytes below `watermark` (its prefix,
    /// written before any download) are ready.
    pub fn new(bases: usize, watermark: u64) -> Arc<Ready> {
        Arc::new(Ready {
            state: Mutex::new(State {
                bases: vec![false; bases],
                watermark,
                ahead: BTreeMap::new(),
                failed: None,
            }),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves plain data behind: still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Base part `n` checked out.
    pub fn base_done(&self, n: usize) {
        if let Some(b) = self.lock().bases.get_mut(n) {
            *b = true;
        }
        self.changed.notify_all();
    }

    /// Stream file bytes `[start, end)` checked out.
    pub fn range_done(&self, start: u64, end: u64) {
        let mut s = self.lock();
        if end > start {
            s.ahead.insert(start, end);
        }
        loop {
            let w = s.watermark;
            let Some((&start, &end)) = s.ahead.first_key_value() else {
                break;
            };
            if start > w {
                break;
            }
            s.ahead.pop_first();
            s.watermark = w.max(end);
        }
        drop(s);
        self.changed.notify_all();
    }

    /// The fetch failed or stopped: every reader waiting, and every later one, gets `why`.
    pub fn fail(&self, why: FetchStopped) {
        self.lock().failed.get_or_insert(why);
        self.changed.notify_all();
    }

    /// Blocks until base part `n` checked out.
    pub fn wait_base(&self, n: usize) -> Result<(), FetchStopped> {
        let mut s = self.lock();
        loop {
            if s.bases.get(n).copied().unwrap_or(true) {
                return Ok(());
            }
            if let Some(e) = &s.failed {
                return Err(e.clone());
            }
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Blocks until the watermark is past `pos`; returns it.
    pub fn wait_past(&self, pos: u64) -> Result<u64, FetchStopped> {
        let mut s = self.lock();
        loop {
            if s.watermark > pos {
                return Ok(s.watermark);
            }
            if let Some(e) = &s.failed {
                return Err(e.clone());
            }
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Reads a staged stream file from a position, never past the verified watermark when the
/// file is still arriving. Callers bound it (`take`) to the stream's length.
pub struct StagedStream {
    file: File,
    pos: u64,
    ready: Option<Arc<Ready>>,
    /// The watermark last seen (`u64::MAX` for a complete file).
    known: u64,
}

impl StagedStream {
    pub fn new(file: File, pos: u64, ready: Option<Arc<Ready>>) -> StagedStream {
        let known = if ready.is_some() { 0 } else { u64::MAX };
        StagedStream {
            file,
            pos,
            ready,
            known,
        }
    }
}

impl Read for StagedStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.pos >= self.known {
            if let Some(r) = &self.ready {
                self.known = r.wait_past(self.pos).map_err(std::io::Error::other)?;
            }
        }
        let room = usize::try_from(self.known - self.pos).unwrap_or(usize::MAX);
        let want = buf.len().min(room);
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn file_of(bytes: &[u8]) -> (tempfile::TempDir, File) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stream");
        std::fs::write(&path, bytes).unwrap();
        let f = File::open(&path).unwrap();
        (dir, f)
    }

    #[test]
    fn the_watermark_moves_only_over_contiguous_ranges() {
        let r = Ready::new(0, 2);
        r.range_done(10, 20);
        assert_eq!(r.lock().watermark, 2, "a gap before 10");
        r.range_done(2, 5);
        assert_eq!(r.lock().watermark, 5);
        r.range_done(5, 10);
        assert_eq!(r.lock().watermark, 20, "the range ahead joins");
        assert!(r.lock().ahead.is_empty());
    }

    #[test]
    fn a_reader_blocks_at_the_watermark_and_wakes_when_it_moves() {
        let data: Vec<u8> = (0..100u8).collect();
        let (_dir, f) = file_of(&data);
        let r = Ready::new(0, 0);
        r.range_done(0, 30);
        let mut s = StagedStream::new(f, 0, Some(r.clone()));
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            s.read_to_end(&mut got).map(|_| got)
        });
        // The reader has the first 30 bytes and waits: the ranges arrive out of order.
        std::thread::sleep(Duration::from_millis(50));
        assert!(!reader.is_finished(), "it read past the watermark");
        r.range_done(60, 100);
        std::thread::sleep(Duration::from_millis(50));
        assert!(!reader.is_finished(), "it read past a gap");
        r.range_done(30, 60);
        // The file has no more bytes: at its end the read returns 0 though the watermark is
        // further (callers bound the reader to the stream's length).
        r.range_done(100, 200);
        assert_eq!(reader.join().unwrap().unwrap(), data);
    }

    #[test]
    fn a_failed_fetch_wakes_the_reader_with_its_error() {
        let (_dir, f) = file_of(&[7u8; 64]);
        let r = Ready::new(1, 0);
        r.range_done(0, 16);
        let mut s = StagedStream::new(f, 0, Some(r.clone()));
        let waiter = {
            let r = r.clone();
            std::thread::spawn(move || r.wait_base(0))
        };
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            let e = s.read_to_end(&mut got).unwrap_err();
            (got.len(), e)
        });
        std::thread::sleep(Duration::from_millis(50));
        r.fail(FetchStopped("segment x: CRC-32C mismatch".into()));
        let (read, e) = reader.join().unwrap();
        assert_eq!(read, 16, "only the verified bytes were read");
        let inner = e.into_inner().unwrap();
        let stopped = inner.downcast_ref::<FetchStopped>().unwrap();
        assert!(stopped.0.contains("segment x"), "{stopped}");
        assert!(
            waiter.join().unwrap().is_err(),
            "a base waiter is woken too"
        );
        assert!(r.wait_past(100).is_err(), "later readers fail at once");
    }

    #[test]
    fn a_complete_file_is_read_without_a_tracker() {
        let (_dir, f) = file_of(b"abcdef");
        let mut got = String::new();
        StagedStream::new(f, 2, None)
            .read_to_string(&mut got)
            .unwrap();
        assert_eq!(got, "cdef");
    }
}
