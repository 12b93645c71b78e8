//! Logging: `tracing` events to stderr, as text or as one JSON object per line.
//!
//! The level comes from `[log] level` (an `EnvFilter` directive such as `info` or
//! `warn,aofvault=debug`); `RUST_LOG`, when set, wins. The filter sits behind a reload handle so
//! that a SIGHUP can change the level without restarting ([`set_level`]). Under systemd
//! (`JOURNAL_STREAM` set) text lines carry no timestamp: the journal adds its own. Records
//! from crates that use `log` instead of `tracing` are forwarded.
//!
//! A command's final error is reported once by [`report_fatal`]: the plain message on a
//! terminal, a log line where stderr is collected (the journal, a file).

use std::io::IsTerminal;
use std::sync::OnceLock;

use anyhow::{anyhow, Context};
use aofvault_config::{Log, LogFormat};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, reload, EnvFilter, Layer, Registry};

type FilterHandle = reload::Handle<EnvFilter, Registry>;

/// The installed filter's reload handle, and whether `RUST_LOG` fixed the level.
static INSTALLED: OnceLock<(FilterHandle, bool)> = OnceLock::new();

/// Installs the global subscriber. Call once, early; a second call fails.
pub fn init(log: &Log) -> anyhow::Result<()> {
    let rust_log = std::env::var("RUST_LOG")
        .ok()
        .filter(|value| !value.trim().is_empty());
    let style = Style {
        ansi: std::io::stderr().is_terminal(),
        timestamps: std::env::var_os("JOURNAL_STREAM").is_none(),
    };
    let (subscriber, handle) = build(log, rust_log.as_deref(), std::io::stderr, style)?;
    subscriber
        .try_init()
        .map_err(|e| anyhow!("cannot install the logger: {e}"))?;
    let _ = INSTALLED.set((handle, rust_log.is_some()));
    Ok(())
}

/// Where a command's final error goes: printed once, either as the human message
/// (`aofvault: <error>`) or as an `ERROR` log line, never both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FatalOutput {
    /// `aofvault: <error>` on stderr: a person is reading (a terminal), or no logger would
    /// record it (none installed, or its level hides errors).
    Message,
    /// One `ERROR` log line: stderr is a file, a pipe or the journal, where every other line
    /// is a log line too (and, under systemd, carries the priority the journal files it by).
    LogLine,
}

impl FatalOutput {
    /// Decides for this process: stderr a terminal or not, the logger installed and enabled.
    pub fn for_this_process() -> FatalOutput {
        FatalOutput::choose(
            std::io::stderr().is_terminal(),
            INSTALLED.get().is_some() && tracing::enabled!(tracing::Level::ERROR),
        )
    }

    fn choose(stderr_is_terminal: bool, logger_records_errors: bool) -> FatalOutput {
        if stderr_is_terminal || !logger_records_errors {
            FatalOutput::Message
        } else {
            FatalOutput::LogLine
        }
    }
}

/// Reports the error a command ended with, once (see [`FatalOutput`]).
pub fn report_fatal(err: &anyhow::Error) {
    match FatalOutput::for_this_process() {
        FatalOutput::Message => eprintln!("aofvault: {err:#}"),
        FatalOutput::LogLine => tracing::error!(error = %format!("{err:#}"), "failed"),
    }
}

/// Changes the level of the installed logger (on reload). Does nothing when `RUST_LOG` set
/// the level, or when [`init`] was not called.
pub fn set_level(level: &str) -> anyhow::Result<()> {
    let Some((handle, fixed_by_env)) = INSTALLED.get() else {
        return Ok(());
    };
    if *fixed_by_env {
        return Ok(());
    }
    let filter = parse_filter(level, "[log] level")?;
    handle
        .reload(filter)
        .map_err(|e| anyhow!("cannot change the log level: {e}"))
}

#[derive(Debug, Clone, Copy)]
struct Style {
    ansi: bool,
    timestamps: bool,
}

fn parse_filter(directives: &str, origin: &str) -> anyhow::Result<EnvFilter> {
    EnvFilter::try_new(directives).with_context(|| format!("invalid {origin} {directives:?}"))
}

/// The subscriber `init` installs, writing to `writer`; separate so tests can capture output.
fn build<W>(
    log: &Log,
    rust_log: Option<&str>,
    writer: W,
    style: Style,
) -> anyhow::Result<(impl tracing::Subscriber + Send + Sync, FilterHandle)>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = match rust_log {
        Some(directives) => parse_filter(directives, "RUST_LOG")?,
        None => parse_filter(&log.level, "[log] level")?,
    };
    let (filter, handle) = reload::Layer::new(filter);
    let output = match log.format {
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .with_writer(writer)
            .boxed(),
        LogFormat::Text if style.timestamps => fmt::layer()
            .with_ansi(style.ansi)
            .with_writer(writer)
            .boxed(),
        LogFormat::Text => fmt::layer()
            .without_time()
            .with_ansi(style.ansi)
            .with_writer(writer)
            .boxed(),
    };
    Ok((Registry::default().with(filter).with(output), handle))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    const PLAIN: Style = Style {
        ansi: false,
        timestamps: false,
    };

    fn log(level: &str, format: LogFormat) -> Log {
        Log {
            level: level.into(),
            format,
        }
    }

    #[test]
    fn json_lines_are_objects_with_the_event_fields() {
        let out = Captured::default();
        let sink = out.clone();
        let (subscriber, _) = build(
            &log("info", LogFormat::Json),
            None,
            move || sink.clone(),
            PLAIN,
        )
        .unwrap();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(shard = 2, lag_bytes = 17u64, "segment uploaded");
            tracing::debug!("filtered out");
        });
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let event: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(event["level"], "INFO");
        assert_eq!(event["message"], "segment uploaded");
        assert_eq!(event["shard"], 2);
        assert_eq!(event["lag_bytes"], 17);
    }

    #[test]
    fn text_lines_follow_the_level_and_rust_log_wins() {
        let out = Captured::default();
        let sink = out.clone();
        let (subscriber, _) = build(
            &log("error", LogFormat::Text),
            Some("debug"),
            move || sink.clone(),
            PLAIN,
        )
        .unwrap();
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!("visible at debug");
            tracing::trace!("not at trace");
        });
        let text = out.text();
        assert!(
            text.contains("DEBUG") && text.contains("visible at debug"),
            "{text}"
        );
        assert!(!text.contains("not at trace"), "{text}");
    }

    #[test]
    fn the_level_can_change_at_run_time() {
        let out = Captured::default();
        let sink = out.clone();
        let (subscriber, handle) = build(
            &log("warn", LogFormat::Text),
            None,
            move || sink.clone(),
            PLAIN,
        )
        .unwrap();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("before reload");
            handle.reload(EnvFilter::try_new("info").unwrap()).unwrap();
            tracing::info!("after reload");
        });
        let text = out.text();
        assert!(!text.contains("before reload"), "{text}");
        assert!(text.contains("after reload"), "{text}");
    }

    #[test]
    fn a_fatal_error_is_a_log_line_only_where_logs_go_and_are_recorded() {
        assert_eq!(FatalOutput::choose(true, true), FatalOutput::Message);
        assert_eq!(FatalOutput::choose(true, false), FatalOutput::Message);
        assert_eq!(FatalOutput::choose(false, true), FatalOutput::LogLine);
        // A logger that hides errors (level "off") must not swallow the final error.
        assert_eq!(FatalOutput::choose(false, false), FatalOutput::Message);
    }

    #[test]
    fn a_bad_level_is_an_error_naming_where_it_came_from() {
        let error = build(&log("info,[", LogFormat::Text), None, std::io::sink, PLAIN)
            .err()
            .unwrap();
        assert!(format!("{error:#}").contains("[log] level"), "{error:#}");
    }
}
