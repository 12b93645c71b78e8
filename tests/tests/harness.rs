//! Self-tests of the harness: each guard starts a real server that answers, the keyspace
//! comparer can fail, a kevy restart keeps its data, the S3 server stores objects and checks
//! credentials, and the fault proxy relays, resets, refuses and answers 503s.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use aofvault_tests::keyspace::{self, KeyValue, NormalizedValue};
use aofvault_tests::proxy::{FaultProxy, Mode};
use aofvault_tests::{agent, shared_s3, workload, KevyServer, RedisServer};

fn ping(conn: &mut redis::Connection) -> String {
    redis::cmd("PING").query(conn).unwrap()
}

#[test]
fn redis_server_starts_answers_and_writes_an_aof() {
    let server = RedisServer::start().unwrap();
    let mut conn = server.conn().unwrap();
    assert_eq!(ping(&mut conn), "PONG");
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut conn)
        .unwrap();
    assert!(
        server.dir().join("appendonlydir").is_dir(),
        "no appendonlydir in {}",
        server.dir().display()
    );
    assert!(server.url().ends_with(&server.port().to_string()));
    assert!(
        server.log().contains("Ready to accept connections"),
        "log:\n{}",
        server.log()
    );
}

#[test]
fn redis_server_takes_extra_args_and_restarts_with_its_data() {
    let mut server = RedisServer::start_with(&["--aof-timestamp-enabled", "yes"]).unwrap();
    let mut conn = server.conn().unwrap();
    let on: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("aof-timestamp-enabled")
        .query(&mut conn)
        .unwrap();
    assert_eq!(
        on,
        vec!["aof-timestamp-enabled".to_string(), "yes".to_string()]
    );
    workload::mixed(&mut conn, 7, 500, 50).unwrap();
    let before = keyspace::dump(&mut conn, &[0]).unwrap();
    let port = server.port();
    server.restart().unwrap();
    assert_eq!(server.port(), port);
    let after = keyspace::dump(&mut server.conn().unwrap(), &[0]).unwrap();
    keyspace::assert_same(&before, &after);
}

#[test]
fn redis_server_start_on_dir_loads_the_files() {
    let mut first = RedisServer::start().unwrap();
    let mut conn = first.conn().unwrap();
    workload::mixed(&mut conn, 11, 300, 40).unwrap();
    let _: () = redis::cmd("SELECT").arg(3).query(&mut conn).unwrap();
    let _: () = redis::cmd("SET")
        .arg("in-db-3")
        .arg("x")
        .query(&mut conn)
        .unwrap();
    let before = keyspace::dump(&mut conn, &[0, 3]).unwrap();
    assert!(before.get(3, b"in-db-3").is_some());
    first.stop();
    let copy = tempfile::tempdir().unwrap();
    copy_dir(first.dir(), copy.path());
    let second = RedisServer::start_on_dir(copy.path(), &[]).unwrap();
    assert_eq!(second.dir(), copy.path());
    let after = keyspace::dump(&mut second.conn().unwrap(), &[0, 3]).unwrap();
    keyspace::assert_same(&before, &after);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn kevy_starts_with_one_aof_per_shard_and_restart_keeps_data() {
    let mut server = KevyServer::start(4).unwrap();
    let mut conn = server.conn().unwrap();
    assert_eq!(ping(&mut conn), "PONG");
    workload::mixed(&mut conn, 3, 2000, 200).unwrap();
    let before = keyspace::dump(&mut conn, &[0]).unwrap();
    assert!(before.len() > 100, "only {} keys", before.len());
    for aof in server.aof_paths() {
        assert!(aof.is_file(), "missing {}", aof.display());
    }
    assert!(server.dir().join("shards.meta").is_file());
    server.restart().unwrap();
    let after = keyspace::dump(&mut server.conn().unwrap(), &[0]).unwrap();
    keyspace::assert_same(&before, &after);
}

#[test]
fn kevy_killed_then_restarted_answers_again() {
    let mut server = KevyServer::start(2).unwrap();
    server.kill();
    assert!(!server.is_running());
    assert!(server.conn().is_err());
    server.restart().unwrap();
    assert_eq!(ping(&mut server.conn().unwrap()), "PONG");
}

#[test]
fn workload_is_deterministic_and_the_same_on_kevy_and_redis() {
    let redis = RedisServer::start().unwrap();
    let kevy = KevyServer::start(3).unwrap();
    let mut rc = redis.conn().unwrap();
    let mut kc = kevy.conn().unwrap();
    workload::mixed(&mut rc, 42, 3000, 120).unwrap();
    workload::mixed(&mut kc, 42, 3000, 120).unwrap();
    let r = keyspace::dump(&mut rc, &[0]).unwrap();
    let k = keyspace::dump(&mut kc, &[0]).unwrap();
    keyspace::assert_same(&r, &k);
    // Every family shows up.
    let kinds = r.kinds();
    for kind in ["string", "list", "set", "hash", "zset"] {
        assert!(
            kinds.get(kind).copied().unwrap_or(0) > 0,
            "no {kind} in {kinds:?}"
        );
    }
    assert!(r.0.values().any(|v| v.has_ttl), "no key with a TTL");
}

#[test]
fn keyspace_diff_reports_each_kind_of_difference() {
    let server = RedisServer::start().unwrap();
    let mut conn = server.conn().unwrap();
    workload::mixed(&mut conn, 5, 400, 30).unwrap();
    let _: () = redis::cmd("XADD")
        .arg("st")
        .arg("1-1")
        .arg("f")
        .arg("v")
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("plain")
        .arg("1")
        .query(&mut conn)
        .unwrap();
    let expected = keyspace::dump(&mut conn, &[0]).unwrap();
    assert_eq!(
        expected.get(0, b"st").unwrap().value,
        NormalizedValue::Stream(vec![("1-1".into(), vec![(b"f".to_vec(), b"v".to_vec())])])
    );
    assert!(keyspace::diff(&expected, &expected.clone()).is_empty());

    let victim = expected
        .0
        .keys()
        .find(|(_, k)| k.starts_with(b"wl:hash:"))
        .cloned()
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(&victim.1)
        .arg("new-field")
        .arg("x")
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("extra")
        .arg("1")
        .query(&mut conn)
        .unwrap();
    let _: () = redis::cmd("DEL").arg("st").query(&mut conn).unwrap();
    let _: () = redis::cmd("EXPIRE")
        .arg("plain")
        .arg(1000)
        .query(&mut conn)
        .unwrap();
    let actual = keyspace::dump(&mut conn, &[0]).unwrap();
    let lines = keyspace::diff(&expected, &actual);
    let text = lines.join("\n");
    assert_eq!(lines.len(), 4, "{text}");
    assert!(text.contains("missing: db0 \"st\""), "{text}");
    assert!(text.contains("extra: db0 \"extra\""), "{text}");
    assert!(text.contains("ttl: db0 \"plain\""), "{text}");
    assert!(text.contains("value: db0 \"wl:hash:"), "{text}");
    let panicked = std::panic::catch_unwind(|| keyspace::assert_same(&expected, &actual));
    assert!(panicked.is_err());
}

#[test]
fn keyspace_diff_is_capped_and_shows_types() {
    let mut a = keyspace::Keyspace::default();
    for i in 0..120u32 {
        a.0.insert(
            (0, format!("k{i}").into_bytes()),
            KeyValue {
                kind: "string".into(),
                value: NormalizedValue::String(b"x".to_vec()),
                has_ttl: false,
            },
        );
    }
    let mut b = a.clone();
    b.0.insert(
        (0, b"k1".to_vec()),
        KeyValue {
            kind: "list".into(),
            value: NormalizedValue::List(vec![b"x".to_vec()]),
            has_ttl: false,
        },
    );
    let lines = keyspace::diff(&a, &b);
    assert_eq!(
        lines,
        vec!["type: db0 \"k1\": expected string, got list".to_string()]
    );
    let lines = keyspace::diff(&a, &keyspace::Keyspace::default());
    assert_eq!(lines.len(), 50);
    assert!(lines[49].contains("120 differences"), "{}", lines[49]);
}

#[test]
fn background_writer_writes_until_stopped() {
    let server = KevyServer::start(2).unwrap();
    let writer = workload::background(server.url(), 9, 100);
    let mut conn = server.conn().unwrap();
    aofvault_tests::process::wait_until(Duration::from_secs(60), "some background writes", || {
        Ok(writer.written() >= 200)
    })
    .unwrap();
    let n = writer.stop();
    assert!(n >= 200);
    let dbsize: usize = redis::cmd("DBSIZE").query(&mut conn).unwrap();
    assert!(dbsize > 0);
}

#[test]
fn s3_server_stores_objects_and_checks_credentials() {
    let s3 = shared_s3();
    let key = "harness-self-test/a b/obj.bin";
    let body: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    s3.put_object(key, &body).unwrap();
    assert_eq!(s3.get_object(key).unwrap(), Some(body));
    assert_eq!(s3.get_object("harness-self-test/none").unwrap(), None);
    assert_eq!(
        s3.list_keys("harness-self-test/").unwrap(),
        vec![key.to_string()]
    );
    s3.delete_object(key).unwrap();
    assert!(s3.list_keys("harness-self-test/").unwrap().is_empty());
    assert_eq!(s3.repo_url("/p/q/"), format!("s3://{}/p/q", s3.bucket()));
    let env = s3.env();
    assert!(env.contains(&("AWS_ENDPOINT_URL".to_string(), s3.endpoint())));
    assert!(env.contains(&("AWS_ALLOW_HTTP".to_string(), "true".to_string())));

    // Wrong secret: refused.
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
        ])
        .args([
            "--user",
            "K:wrong",
            "-H",
            "x-amz-content-sha256: UNSIGNED-PAYLOAD",
        ])
        .arg(format!("{}/{}/x", s3.endpoint(), s3.bucket()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "403");
}

#[test]
fn fault_proxy_relays_then_resets_then_refuses() {
    let server = RedisServer::start().unwrap();
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], server.port()));
    let proxy = FaultProxy::start(target).unwrap();
    let mut conn = aofvault_tests::connect(&proxy.redis_url()).unwrap();
    assert_eq!(ping(&mut conn), "PONG");
    let _: () = redis::cmd("SET")
        .arg("via-proxy")
        .arg("1")
        .query(&mut conn)
        .unwrap();
    let direct: String = redis::cmd("GET")
        .arg("via-proxy")
        .query(&mut server.conn().unwrap())
        .unwrap();
    assert_eq!(direct, "1");
    let stats = proxy.stats();
    assert_eq!(stats.connections, 1);
    assert!(stats.bytes_up > 0 && stats.bytes_down > 0, "{stats:?}");

    proxy.set_mode(Mode::Reset);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        redis::cmd("PING").query::<String>(&mut conn).is_err(),
        "old connection survived Reset"
    );
    assert!(
        aofvault_tests::connect(&proxy.redis_url())
            .and_then(|mut c| Ok(redis::cmd("PING").query::<String>(&mut c)?))
            .is_err(),
        "new connection survived Reset"
    );

    proxy.set_mode(Mode::Down);
    aofvault_tests::process::wait_until(Duration::from_secs(10), "the proxy to refuse", || {
        Ok(TcpStream::connect(proxy.addr()).is_err())
    })
    .unwrap();

    proxy.set_mode(Mode::Pass);
    aofvault_tests::process::wait_until(
        Duration::from_secs(10),
        "the proxy to relay again",
        || {
            let mut c = aofvault_tests::connect(&proxy.redis_url())?;
            Ok(ping(&mut c) == "PONG")
        },
    )
    .unwrap();
}

#[test]
fn fault_proxy_stalls_and_slows() {
    let server = RedisServer::start().unwrap();
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], server.port()));
    let proxy = FaultProxy::start(target).unwrap();
    let mut raw = TcpStream::connect(proxy.addr()).unwrap();
    raw.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    proxy.set_mode(Mode::Stall);
    std::thread::sleep(Duration::from_millis(100));
    raw.write_all(b"PING\r\n").unwrap();
    let mut buf = [0u8; 64];
    assert!(raw.read(&mut buf).is_err(), "a stalled proxy answered");
    proxy.set_mode(Mode::Slow(100));
    raw.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut got = Vec::new();
    while !got.ends_with(b"\r\n") {
        let n = raw.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"+PONG\r\n");
}

#[test]
fn fault_proxy_answers_a_burst_of_503s_then_passes() {
    let s3 = shared_s3();
    let proxy = FaultProxy::start(s3.addr()).unwrap();
    let endpoint = proxy.http_url();
    s3.put_object("harness-503/obj", b"hello").unwrap();
    proxy.set_mode(Mode::Http503Burst(2));
    let (code, body) = aofvault_tests::s3::curl(
        &endpoint,
        "PUT",
        "/aofvault-test/harness-503/x",
        Some(b"body"),
    )
    .unwrap();
    assert_eq!(code, 503, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("SlowDown"));
    let (code, _) =
        aofvault_tests::s3::curl(&endpoint, "GET", "/aofvault-test/harness-503/obj", None).unwrap();
    assert_eq!(code, 503);
    assert_eq!(proxy.mode(), Mode::Http503Burst(0));
    let (code, body) =
        aofvault_tests::s3::curl(&endpoint, "GET", "/aofvault-test/harness-503/obj", None).unwrap();
    assert_eq!((code, body.as_slice()), (200, &b"hello"[..]));
    assert_eq!(proxy.stats().http_503s, 2);
}

fn script(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("fake-agent");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn agent_runner_captures_output_exit_code_and_env() {
    let dir = tempfile::tempdir().unwrap();
    let fake = script(
        dir.path(),
        "echo \"out $1 $AOFVAULT_X\"; echo err >&2; exit 3",
    );
    let env = [("AOFVAULT_X".to_string(), "y".to_string())];
    let out = agent::run_program(&fake, &["a"], &env, Duration::from_secs(30)).unwrap();
    assert_eq!(out.code(), Some(3));
    assert_eq!(out.stdout, "out a y\n");
    assert_eq!(out.stderr, "err\n");
    let err = out.ok().unwrap_err().to_string();
    assert!(err.contains("--- stderr\nerr"), "{err}");

    let hang = script(dir.path(), "sleep 30");
    let err = agent::run_program(&hang, &[], &[], Duration::from_millis(300)).unwrap_err();
    assert!(err.to_string().contains("still running"), "{err}");
}

#[test]
fn agent_process_logs_terminates_and_kills() {
    let dir = tempfile::tempdir().unwrap();
    let fake = script(
        dir.path(),
        "trap 'echo got TERM; exit 0' TERM\necho started\nwhile :; do sleep 0.05; done",
    );
    let mut p = agent::spawn_program(&fake, &[], &[]).unwrap();
    p.wait_for_log("started", Duration::from_secs(30)).unwrap();
    assert!(p.is_running());
    assert!(p.terminate().unwrap().success());
    assert!(p.logs().contains("got TERM"), "{}", p.logs());
    assert!(p
        .wait_for_log("never printed", Duration::from_millis(100))
        .is_err());

    let stubborn = script(
        dir.path(),
        "trap '' TERM\necho up\nwhile :; do sleep 0.05; done",
    );
    let mut p = agent::spawn_program(&stubborn, &[], &[]).unwrap();
    p.wait_for_log("up", Duration::from_secs(30)).unwrap();
    let status = p.kill9().unwrap();
    assert!(!status.success());
    assert!(!p.is_running());
}

#[test]
fn the_aofvault_binary_is_found_and_runs() {
    let bin = agent::bin();
    assert!(bin.is_file(), "{}", bin.display());
    let out = agent::run(&["--help"], &[]).unwrap();
    assert!(out.success(), "{out:?}");
}

#[test]
fn s3_server_comes_back_after_an_outage_with_its_objects() {
    let mut s3 = aofvault_tests::S3Server::start().unwrap();
    s3.put_object("outage/kept", b"still here").unwrap();
    let port = s3.port();
    s3.stop();
    assert!(
        s3.get_object("outage/kept").is_err(),
        "answered while stopped"
    );
    let started = std::time::Instant::now();
    s3.start_again().unwrap();
    eprintln!("SeaweedFS restart took {:?}", started.elapsed());
    assert_eq!(s3.port(), port);
    assert_eq!(
        s3.get_object("outage/kept").unwrap(),
        Some(b"still here".to_vec())
    );
}

/// Sends one raw HTTP/1.1 request on `conn` and reads one response (by Content-Length).
fn http_exchange(conn: &mut TcpStream, request: &str) -> (String, Vec<u8>) {
    conn.write_all(request.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return (head, got[end + 4..end + 4 + len].to_vec());
            }
        }
        let n = conn.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "connection closed mid-response: {:?}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn fault_proxy_503s_reach_kept_alive_connections() {
    let s3 = shared_s3();
    let proxy = FaultProxy::start(s3.addr()).unwrap();
    let mut conn = TcpStream::connect(proxy.addr()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // Unsigned requests: SeaweedFS answers 403, which proves the bytes went through.
    let put = "PUT /aofvault-test/ka HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    let (head, _) = http_exchange(&mut conn, put);
    assert!(!head.contains(" 503 "), "{head}");
    proxy.set_mode(Mode::Http503Burst(1));
    let (head, body) = http_exchange(&mut conn, put);
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    assert!(String::from_utf8_lossy(&body).contains("SlowDown"));
    let mut rest = Vec::new();
    assert_eq!(
        conn.read_to_end(&mut rest).unwrap_or(0),
        0,
        "the proxy kept the connection open"
    );
    let mut fresh = TcpStream::connect(proxy.addr()).unwrap();
    fresh
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let (head, _) = http_exchange(&mut fresh, put);
    assert!(!head.contains(" 503 "), "burst not over: {head}");
    assert_eq!(proxy.stats().http_503s, 1);
}
