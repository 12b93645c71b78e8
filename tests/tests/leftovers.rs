//! The first wave's loose ends, each proven with the real binary: an error printed once, the
//! lease given back when `run` fails to start, `status` finding the running agent without
//! `--server`, and prune collecting the chains of shards a kevy shrink removed.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use aofvault_tests::{agent, wait_until, KevyServer};

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

/// An agent runs with `--server` (its instance is `<host>-<port>`); `status` with the same
/// state directory but no `--server` (which alone would derive `<host>-local`) shows that
/// agent's shards. With a second live agent writing there, it asks which one.
#[test]
fn status_without_server_finds_the_running_agent() {
    let kevy = KevyServer::start(2).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let repo_url = format!("file://{}", tmp.path().join("repo").display());
    let state = tmp.path().join("state");
    let state_arg = state.display().to_string();
    let dir = kevy.dir().display().to_string();
    let server = kevy.url();
    let mut daemon = agent::spawn(
        &[
            "--source",
            &dir,
            "--server",
            &server,
            "--repo",
            &repo_url,
            "--state-dir",
            &state_arg,
            "run",
        ],
        &[],
    )
    .unwrap();
    daemon
        .wait_for_log("snapshot published", Duration::from_secs(60))
        .unwrap();
    let suffix = format!("-{}", kevy.port());
    let status_file = || {
        std::fs::read_dir(&state)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                    n.starts_with("status-") && n.ends_with(&format!("{suffix}.json"))
                })
            })
    };
    wait_until(Duration::from_secs(30), "the status file", || {
        Ok(status_file().is_some())
    })
    .unwrap();

    let status = |extra: &[&str]| {
        let mut args = vec!["--repo", &repo_url, "--state-dir", &state_arg];
        args.extend_from_slice(extra);
        args.extend(["status", "--json"]);
        agent::run_with_timeout(&args, &[], Duration::from_secs(60)).unwrap()
    };
    let out = status(&[]);
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    let doc = out.json().unwrap();
    let instance = doc["instance"].as_str().unwrap().to_string();
    assert!(instance.ends_with(&suffix), "{doc}");
    assert_eq!(doc["running"], true, "{doc}");
    assert_eq!(doc["shards"].as_array().unwrap().len(), 2, "{doc}");

    // A second live agent's status beside it: no guess, a clear question (exit 2).
    let mut other: serde_json::Value =
        serde_json::from_slice(&std::fs::read(status_file().unwrap()).unwrap()).unwrap();
    other["instance"] = "other".into();
    other["written_ms"] = chrono::Utc::now().timestamp_millis().into();
    std::fs::write(
        state.join("status-other.json"),
        serde_json::to_vec(&other).unwrap(),
    )
    .unwrap();
    let out = status(&[]);
    assert_eq!(out.code(), Some(2), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("--instance")
            && out.stderr.contains(&instance)
            && out.stderr.contains("other"),
        "{}",
        out.stderr
    );
    // Naming it (or giving --server, which derives the same name) settles it.
    let out = status(&["--instance", &instance]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    let out = status(&["--server", &server]);
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.json().unwrap()["instance"], instance.as_str());
    daemon.terminate().unwrap();
}
