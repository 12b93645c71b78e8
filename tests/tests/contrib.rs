//! What `contrib/` ships for operators stays true: the Prometheus alert rules pass `promtool
//! check rules` and their unit tests (`promtool test rules`, one test group per alert), and the
//! Grafana dashboard is valid JSON naming only metrics that a running agent's `/metrics`
//! serves (the replication-group gauges included: every agent is a group of one at least).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use aofvault_tests::{agent, workload, workspace_root, RedisServer};

fn contrib(path: &str) -> PathBuf {
    workspace_root().join("contrib").join(path)
}

/// Every `aofvault_<name>` token in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("aofvault_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

fn promtool(args: &[&str]) -> std::process::Output {
    Command::new("promtool")
        .args(args)
        .current_dir(contrib("prometheus"))
        .output()
        .expect("promtool (Debian package `prometheus`, installed by scripts/install-deps.sh)")
}

#[test]
fn promtool_checks_the_rules_and_their_unit_tests_pass() {
    let check = promtool(&["check", "rules", "aofvault.rules.yml"]);
    assert!(
        check.status.success(),
        "promtool check rules:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let test = promtool(&["test", "rules", "aofvault.rules.test.yml"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&test.stdout),
        String::from_utf8_lossy(&test.stderr)
    );
    assert!(test.status.success(), "promtool test rules:\n{said}");
    assert!(said.contains("SUCCESS"), "{said}");

    // Every alert has a test that expects it to fire.
    let rules = std::fs::read_to_string(contrib("prometheus/aofvault.rules.yml")).unwrap();
    let tests = std::fs::read_to_string(contrib("prometheus/aofvault.rules.test.yml")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 9, "{alerts:?}");
    for alert in alerts {
        assert!(
            tests.contains(&format!(
                "alertname: {alert}\n        exp_alerts:\n          - exp_labels"
            )),
            "no test expects {alert} to fire"
        );
    }
}

/// The metric names a running agent serves (from the `# TYPE` lines of `/metrics`).
fn served_metrics() -> BTreeSet<String> {
    let redis = RedisServer::start().unwrap();
    workload::mixed(&mut redis.conn().unwrap(), 7, 200, 50).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let port = aofvault_tests::free_port();
    let cfg = tmp.path().join("m.toml");
    std::fs::write(&cfg, format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n")).unwrap();
    let repo = format!("file://{}", tmp.path().join("repo").display());
    let state = tmp.path().join("state").display().to_string();
    let dir = redis.dir().display().to_string();
    let url = redis.url();
    let cfg = cfg.display().to_string();
    let args = [
        "--config",
        &cfg,
        "--source",
        &dir,
        "--server",
        &url,
        "--repo",
        &repo,
        "--instance",
        "t",
        "--state-dir",
        &state,
        "run",
    ];
    let mut a = agent::spawn(&args, &[]).unwrap();
    a.wait_for_log("snapshot published", Duration::from_secs(60))
        .unwrap();
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    sock.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    sock.read_to_string(&mut body).unwrap();
    a.terminate().unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    body.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

#[test]
fn the_dashboard_loads_and_names_only_served_metrics() {
    let path = contrib("grafana/aofvault.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(dashboard["panels"].as_array().unwrap().len() > 10);
    let tool = Command::new("python3")
        .args(["-m", "json.tool"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        tool.status.success(),
        "python3 -m json.tool rejects {path:?}"
    );

    let served = served_metrics();
    assert!(served.len() >= 19, "{served:?}");
    let rules = std::fs::read_to_string(contrib("prometheus/aofvault.rules.yml")).unwrap();
    for (what, names) in [
        ("the dashboard", metric_names(&text)),
        ("the alert rules", metric_names(&rules)),
    ] {
        let unknown: Vec<&String> = names.iter().filter(|n| !served.contains(*n)).collect();
        assert!(
            unknown.is_empty(),
            "{what} names metrics /metrics does not serve: {unknown:?}\nserved: {served:?}"
        );
    }
    let unused: Vec<&String> = served
        .iter()
        .filter(|n| !metric_names(&text).contains(*n))
        .collect();
    println!("served but not on the dashboard: {unused:?}");
}
