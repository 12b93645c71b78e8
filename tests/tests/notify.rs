//! The daemon speaks sd_notify over a real NOTIFY_SOCKET: READY=1 after its start-up checks,
//! STATUS= lines with the lag, WATCHDOG=1 while shipping makes progress, STOPPING=1; and a
//! SIGHUP with a broken configuration keeps it running and logs every error.

#![allow(clippy::unwrap_used)]

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use aofvault_tests::{agent, RedisServer};

#[test]
fn ready_status_watchdog_and_a_bad_reload() {
    let redis = RedisServer::start().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let sock_path = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let cfg = tmp.path().join("aofvault.toml");
    let good = format!(
        "[source]\ndir = \"{}\"\nurl = \"{}\"\n[repository]\nurl = \"file://{}/repo\"\ninstance = \"n\"\n[state]\ndir = \"{}/state\"\n",
        redis.dir().display(),
        redis.url(),
        tmp.path().display(),
        tmp.path().display()
    );
    std::fs::write(&cfg, &good).unwrap();
    let env = vec![
        ("NOTIFY_SOCKET".to_string(), sock_path.display().to_string()),
        ("WATCHDOG_USEC".to_string(), "10000000".to_string()),
    ];
    let mut a = agent::spawn(&["--config", &cfg.display().to_string(), "run"], &env).unwrap();

    let mut seen: Vec<String> = Vec::new();
    let recv_until = |want: &str, seen: &mut Vec<String>| {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut buf = [0u8; 4096];
        while !seen.iter().any(|m| m.lines().any(|l| l.starts_with(want))) {
            assert!(Instant::now() < deadline, "no {want} in {seen:?}");
            if let Ok(n) = sock.recv(&mut buf) {
                seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    };
    recv_until("READY=1", &mut seen);
    recv_until("STATUS=", &mut seen);
    recv_until("WATCHDOG=1", &mut seen);
    assert!(
        seen.iter()
            .any(|m| m.contains("STATUS=") && m.contains("lag")),
        "STATUS carries the lag: {seen:?}"
    );

    // A broken configuration: two mistakes. The daemon stays up and says what is wrong.
    std::fs::write(
        &cfg,
        format!("{good}[ship]\ninterval = \"soon\"\nunknown_key = 1\n"),
    )
    .unwrap();
    a.signal("HUP");
    a.wait_for_log("keeping the running one", Duration::from_secs(15))
        .unwrap();
    let logs = a.logs();
    assert!(
        logs.contains("ship.interval"),
        "the error names the field: {logs}"
    );
    assert!(
        logs.contains("unknown_key"),
        "every error is reported: {logs}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(a.is_running(), "a bad reload does not stop the daemon");
    seen.clear();
    recv_until("WATCHDOG=1", &mut seen);

    a.signal("TERM");
    recv_until("STOPPING=1", &mut seen);
    let status = a.wait_exit(Duration::from_secs(30)).unwrap();
    assert!(status.success(), "clean exit after SIGTERM: {}", a.logs());
}
