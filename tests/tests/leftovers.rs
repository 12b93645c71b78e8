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

/// `run` takes the lease, then fails to start (its source is not a directory): the lease is
/// given back, and the next agent starts at once without taking over a "stale" lease.
#[test]
fn a_failed_start_gives_the_lease_back() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let repo_url = format!("file://{}", repo.display());
    let not_a_dir = tmp.path().join("not-a-dir");
    std::fs::write(&not_a_dir, b"a file").unwrap();
    let source = tmp.path().join("source");
    std::fs::create_dir(&source).unwrap();
    let state = tmp.path().join("state").display().to_string();
    let common = |src: &std::path::Path| {
        vec![
            "--source".to_string(),
            src.display().to_string(),
            "--repo".into(),
            repo_url.clone(),
            "--instance".into(),
            "t".into(),
            "--state-dir".into(),
            state.clone(),
            "run".into(),
        ]
    };

    let args = common(&not_a_dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = agent::run_with_timeout(&args, &[], Duration::from_secs(60)).unwrap();
    assert_eq!(out.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("lease taken"), "{}", out.stderr);
    assert!(out.stderr.contains("is not a directory"), "{}", out.stderr);
    let lease = repo.join("instances/t/lease.json");
    assert!(
        !lease.exists(),
        "the lease is released after a failed start: {}",
        std::fs::read_to_string(&lease).unwrap_or_default()
    );

    let args = common(&source);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut second = agent::spawn(&args, &[]).unwrap();
    second
        .wait_for_log("no AOF found yet", Duration::from_secs(60))
        .unwrap();
    assert!(
        !second.logs().contains("stale lease"),
        "no takeover: {}",
        second.logs()
    );
    second.terminate().unwrap();
    assert!(!lease.exists(), "released on a clean stop too");
}
