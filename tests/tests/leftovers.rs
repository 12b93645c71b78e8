//! The first wave's loose ends, each proven with the real binary: an error printed once, the
//! lease given back when `run` fails to start, `status` finding the running agent without
//! `--server`, and prune collecting the chains of shards a kevy shrink removed.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use aofvault_tests::agent;

/// A failing command's error appears once on a stderr that is not a terminal (a file here, as
/// under systemd): as one log line, not a log line and the same message again.
#[test]
fn an_error_is_printed_once_when_stderr_is_not_a_terminal() {
    let empty = tempfile::tempdir().unwrap();
    let repo = format!("file://{}", empty.path().display());
    let needle = "holds no aofvault data";
    for format in ["text", "json"] {
        let out = agent::run_with_timeout(
            &[
                "list",
                "--repo",
                &repo,
                "--instance",
                "t",
                "--log-format",
                format,
            ],
            &[],
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(out.code(), Some(5), "repository empty; {}", out.stderr);
        assert_eq!(
            out.stderr.matches(needle).count(),
            1,
            "{format}: the error once, got:\n{}",
            out.stderr
        );
        let line = out.stderr.lines().find(|l| l.contains(needle)).unwrap();
        assert!(line.contains("ERROR"), "{format}: a log line: {line}");
        if format == "json" {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(event["level"], "ERROR", "{line}");
        }
    }
}
