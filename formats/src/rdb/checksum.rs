//! The running CRC-64 of a large RDB, computed on a helper thread.
//!
//! The checksum covers every byte of the file and costs about a tenth of the decoder's
//! instructions. Once an input has proven large ([`THREAD_FROM`] bytes fed), the bytes fed next
//! are copied (a `memcpy`, far cheaper than the CRC) and folded in by a helper thread, so that a
//! second core takes that share. Small inputs — almost every DUMP payload, test and fixture —
//! never start a thread. If the thread cannot be started or goes away, the CRC is computed
//! inline from the state it had: the result never depends on the thread.

use std::sync::mpsc::{self, Receiver, SyncSender};

use super::crc64::Crc64;

/// Bytes fed inline before a helper thread is started.
const THREAD_FROM: u64 = 2 << 20;
/// Batches queued for the helper at most (each at most the decoder's flush size, 256 KiB).
const QUEUE: usize = 4;

/// A CRC-64 fed in order, inline or through a helper thread.
pub(crate) struct Checksum {
    inline: Crc64,
    fed: u64,
    helper: Option<Helper>,
}

struct Helper {
    /// Batches to fold in; an empty one asks for the value so far.
    jobs: SyncSender<Vec<u8>>,
    /// Buffers handed back for reuse.
    spare: Receiver<Vec<u8>>,
    /// The answers to value requests.
    values: Receiver<u64>,
}

impl Checksum {
    pub(crate) fn new() -> Self {
        Checksum {
            inline: Crc64::new(),
            fed: 0,
            helper: None,
        }
    }

    /// Folds `bytes` in after everything fed before.
    pub(crate) fn update(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.fed += bytes.len() as u64;
        if self.helper.is_none() && self.fed > THREAD_FROM {
            self.helper = Helper::start(self.inline);
        }
        if let Some(helper) = &self.helper {
            let mut buf = helper.spare.try_recv().unwrap_or_default();
            buf.clear();
            buf.extend_from_slice(bytes);
            if helper.jobs.send(buf).is_ok() {
                return;
            }
            // The helper is gone (it does not fail, but if it did): what it folded in is lost.
            self.fall_back();
        }
        self.inline.update(bytes);
    }

    /// The CRC of everything fed so far.
    pub(crate) fn value(&mut self) -> u64 {
        if let Some(helper) = &self.helper {
            let answer = helper
                .jobs
                .send(Vec::new())
                .ok()
                .and_then(|()| helper.values.recv().ok());
            match answer {
                Some(v) => return v,
                None => self.fall_back(),
            }
        }
        self.inline.value()
    }

    /// Drops a helper that stopped answering. Its bytes cannot be recovered, so the value is
    /// poisoned: a checksum then fails to verify rather than pass by accident.
    fn fall_back(&mut self) {
        self.helper = None;
        self.inline = Crc64::from_value(!self.inline.value());
    }
}

impl Helper {
    /// Starts the thread from the CRC state `from`; `None` if no thread can be started.
    fn start(from: Crc64) -> Option<Helper> {
        let (jobs, job_rx) = mpsc::sync_channel::<Vec<u8>>(QUEUE);
        let (spare_tx, spare) = mpsc::sync_channel::<Vec<u8>>(QUEUE + 1);
        let (value_tx, values) = mpsc::sync_channel::<u64>(1);
        std::thread::Builder::new()
            .name("rdb-crc64".into())
            .spawn(move || {
                let mut crc = from;
                for buf in job_rx {
                    if buf.is_empty() {
                        if value_tx.send(crc.value()).is_err() {
                            return;
                        }
                        continue;
                    }
                    crc.update(&buf);
                    // A full spare queue just drops the buffer.
                    let _ = spare_tx.try_send(buf);
                }
            })
            .ok()?;
        Some(Helper {
            jobs,
            spare,
            values,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn threaded_value_equals_inline_value_at_every_point() {
        // Past THREAD_FROM in uneven batches, asking for the value on the way.
        let data: Vec<u8> = (0..(THREAD_FROM as u32 + 3_000_000))
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        let mut threaded = Checksum::new();
        let mut inline = Crc64::new();
        let mut at = 0;
        for (n, size) in [1usize, 100_000, 262_144, 7, 65_536]
            .iter()
            .cycle()
            .enumerate()
        {
            if at >= data.len() {
                break;
            }
            let end = (at + size).min(data.len());
            threaded.update(&data[at..end]);
            inline.update(&data[at..end]);
            at = end;
            if n % 13 == 0 {
                assert_eq!(threaded.value(), inline.value(), "after {at} bytes");
            }
        }
        assert!(threaded.helper.is_some(), "a large input uses the helper");
        assert_eq!(threaded.value(), inline.value());
    }
}
