//! Progress of a restore phase: a bar (bytes, commands, keys, rate, ETA) when stderr is a
//! terminal, an `info` log line every few seconds otherwise, and a summary line at the end.
//! A retry after a store failure shows as "retrying" (see [`super::retry`]).
//! Counters are atomics so that the download tasks and the replay threads all report into one.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a log line is written when there is no terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Progress {
    inner: Arc<Inner>,
}

struct Inner {
    label: String,
    total: u64,
    bytes: AtomicU64,
    commands: AtomicU64,
    keys: AtomicU64,
    retries: AtomicU64,
    bar: Option<ProgressBar>,
    started: Instant,
    last_log: Mutex<Instant>,
}

impl Progress {
    /// A phase called `label` that will process `total` bytes.
    pub fn new(label: &str, total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(4));
            let style = ProgressStyle::with_template(
                "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(label.to_string());
            bar
        });
        Progress {
            inner: Arc::new(Inner {
                label: label.to_string(),
                total,
                bytes: AtomicU64::new(0),
                commands: AtomicU64::new(0),
                keys: AtomicU64::new(0),
                retries: AtomicU64::new(0),
                bar,
                started: Instant::now(),
                last_log: Mutex::new(Instant::now()),
            }),
        }
    }

    pub fn add_bytes(&self, n: u64) {
        self.inner.bytes.fetch_add(n, Ordering::Relaxed);
        if let Some(bar) = &self.inner.bar {
            bar.inc(n);
        }
        self.tick();
    }

    pub fn add_commands(&self, n: u64) {
        let before = self.inner.commands.fetch_add(n, Ordering::Relaxed);
        if let Some(bar) = &self.inner.bar {
            // Updating the message allocates: do it every 10 000 commands.
            if (before + n) / 10_000 != before / 10_000 {
                bar.set_message(self.counts());
            }
        }
    }

    pub fn add_keys(&self, n: u64) {
        self.inner.keys.fetch_add(n, Ordering::Relaxed);
    }

    pub fn commands(&self) -> u64 {
        self.inner.commands.load(Ordering::Relaxed)
    }

    pub fn keys(&self) -> u64 {
        self.inner.keys.load(Ordering::Relaxed)
    }

    pub fn bytes(&self) -> u64 {
        self.inner.bytes.load(Ordering::Relaxed)
    }

    /// Shows that `what` is being retried (the store failed); the log line is the retry's own.
    pub fn retrying(&self, what: &str, attempt: u32) {
        self.inner.retries.fetch_add(1, Ordering::Relaxed);
        if let Some(bar) = &self.inner.bar {
            bar.set_message(format!("retrying {what} (attempt {} failed)", attempt));
        }
    }

    /// A retried operation went through: back to the usual message.
    pub fn recovered(&self) {
        if let Some(bar) = &self.inner.bar {
            bar.set_message(self.counts());
        }
    }

    /// Operations retried so far.
    pub fn retries(&self) -> u64 {
        self.inner.retries.load(Ordering::Relaxed)
    }

    fn counts(&self) -> String {
        format!("{} commands, {} base keys", self.commands(), self.keys())
    }

    fn tick(&self) {
        if self.inner.bar.is_some() {
            return;
        }
        let Ok(mut last) = self.inner.last_log.try_lock() else {
            return;
        };
        if last.elapsed() < LOG_EVERY {
            return;
        }
        *last = Instant::now();
        let done = self.bytes();
        let secs = self.inner.started.elapsed().as_secs_f64().max(0.001);
        let rate = done as f64 / secs;
        let eta = if rate > 0.0 {
            (self.inner.total.saturating_sub(done)) as f64 / rate
        } else {
            f64::NAN
        };
        tracing::info!(
            phase = %self.inner.label,
            bytes = done,
            total_bytes = self.inner.total,
            commands = self.commands(),
            base_keys = self.keys(),
            retries = self.retries(),
            mib_per_s = format!("{:.1}", rate / 1048576.0),
            eta_s = format!("{eta:.0}"),
            "restore progress"
        );
    }

    /// Ends the bar and logs what was done.
    pub fn finish(&self) {
        if let Some(bar) = &self.inner.bar {
            bar.set_message(self.counts());
            bar.finish();
        }
        let secs = self.inner.started.elapsed().as_secs_f64();
        tracing::info!(
            phase = %self.inner.label,
            bytes = self.bytes(),
            commands = self.commands(),
            base_keys = self.keys(),
            retries = self.retries(),
            seconds = format!("{secs:.2}"),
            "restore phase done"
        );
    }
}
