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
        released(&lease),
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
    assert!(released(&lease), "released on a clean stop too");
}

/// A lease given back: its document says `released` (it is never deleted: a delete could
/// remove another agent's newer lease).
fn released(lease: &std::path::Path) -> bool {
    let Ok(bytes) = std::fs::read(lease) else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .map(|d| d["released"] == serde_json::Value::Bool(true))
        .unwrap_or(false)
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

/// kevy goes from 4 shards to 2 under a running agent: the agent starts new chains for shards
/// 0 and 1, and shards 2 and 3 are gone. `prune` (keep the last snapshot, no grace) collects
/// the old chains of every shard, the removed shards' included, where it used to keep those as
/// "the open chain" forever; what is left verifies.
#[test]
fn prune_collects_the_chains_of_shards_a_kevy_shrink_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let repo_url = format!("file://{}", tmp.path().join("repo").display());
    let config = tmp.path().join("aofvault.toml");
    std::fs::write(&config, "[retention]\nkeep_last = 1\ngc_grace = \"0s\"\n").unwrap();
    let config_arg = config.display().to_string();
    let data_arg = data.display().to_string();
    let state = tmp.path().join("state").display().to_string();
    let base: Vec<&str> = vec![
        "--config",
        &config_arg,
        "--source",
        &data_arg,
        "--repo",
        &repo_url,
        "--instance",
        "t",
        "--state-dir",
        &state,
    ];

    let mut four = KevyServer::start_on_dir(&data, 4).unwrap();
    aofvault_tests::workload::mixed(&mut four.conn().unwrap(), 1, 2_000, 200).unwrap();
    let mut args = base.clone();
    args.push("run");
    let mut daemon = agent::spawn(&args, &[]).unwrap();
    daemon
        .wait_for_log("snapshot published", Duration::from_secs(60))
        .unwrap();
    four.stop();
    drop(four);

    let two = KevyServer::start_on_dir(&data, 2).unwrap();
    aofvault_tests::workload::mixed(&mut two.conn().unwrap(), 2, 500, 200).unwrap();
    daemon
        .wait_for_log("layout changed", Duration::from_secs(60))
        .unwrap();
    wait_until(
        Duration::from_secs(60),
        "a snapshot of the 2-shard layout",
        || {
            let logs = daemon.logs();
            let after = logs.split("layout changed").last().unwrap_or_default();
            Ok(after.contains("snapshot published"))
        },
    )
    .unwrap();
    daemon.terminate().unwrap();
    // Every chain the newest manifest names was recorded under the layout it describes (a chain
    // started under 4 shards is never taken up again under 2).
    let repo_dir = tmp.path().join("repo/instances/t");
    let mut manifests: Vec<_> = std::fs::read_dir(repo_dir.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    manifests.sort();
    let newest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(manifests.last().unwrap()).unwrap()).unwrap();
    for cut in newest["shards"].as_array().unwrap() {
        let head = repo_dir.join(format!(
            "shards/{:04}/chains/{}/chain.json",
            cut["shard"].as_u64().unwrap(),
            cut["chain"].as_str().unwrap()
        ));
        let head: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&head).unwrap()).unwrap();
        assert_eq!(
            head["layout"], newest["layout"],
            "chain {} of shard {}",
            cut["chain"], cut["shard"]
        );
    }
    let mut args = base.clone();
    args.extend(["prune", "--json"]);
    let out = agent::run_with_timeout(&args, &[], Duration::from_secs(120)).unwrap();
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
    let report = out.json().unwrap();
    let chains = report["chains"].as_array().unwrap();
    let of = |shard: u64| -> Vec<(String, String)> {
        chains
            .iter()
            .filter(|c| c["shard"] == shard)
            .map(|c| {
                (
                    c["fate"].as_str().unwrap().to_string(),
                    c["reason"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    for shard in [2, 3] {
        let fates = of(shard);
        assert!(
            !fates.is_empty()
                && fates
                    .iter()
                    .all(|(fate, reason)| fate == "delete" && reason.contains("no longer has")),
            "shard {shard}: {fates:?}\n{report:#}",
        );
    }
    for shard in [0, 1] {
        let fates = of(shard);
        assert!(
            fates.iter().any(|(fate, _)| fate == "keep"),
            "shard {shard} keeps its chain: {fates:?}"
        );
    }
    let shards_left: Vec<String> = std::fs::read_dir(tmp.path().join("repo/instances/t/shards"))
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_dir(e.path().join("chains")).is_ok_and(|mut d| d.next().is_some())
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(shards_left.len(), 2, "{shards_left:?}");

    let mut args = base.clone();
    args.push("verify");
    let out = agent::run_with_timeout(&args, &[], Duration::from_secs(120)).unwrap();
    assert_eq!(out.code(), Some(0), "{}\n{}", out.stdout, out.stderr);
}

/// An agent waiting for the server's first AOF keeps its lease alive: the lease document is
/// renewed (every TTL/3) while it waits, so no other agent can call it stale after the TTL.
#[test]
fn an_agent_waiting_for_files_renews_its_lease() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    let source = tmp.path().join("source");
    std::fs::create_dir(&source).unwrap();
    let args = [
        "--source".to_string(),
        source.display().to_string(),
        "--repo".into(),
        format!("file://{}", repo.display()),
        "--instance".into(),
        "t".into(),
        "--state-dir".into(),
        tmp.path().join("state").display().to_string(),
        "run".into(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut waiting = agent::spawn(&args, &[]).unwrap();
    waiting
        .wait_for_log("no AOF found yet", Duration::from_secs(60))
        .unwrap();
    let lease = repo.join("instances/t/lease.json");
    wait_until(Duration::from_secs(60), "a renewal of the lease", || {
        let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&lease)?)?;
        Ok(doc["renewed_ms"].as_i64() > doc["acquired_ms"].as_i64())
    })
    .unwrap();
    assert!(waiting.is_running(), "{}", waiting.logs());
    waiting.terminate().unwrap();
}
