//! Validation through the public API: all mistakes in one pass, defaults, the environment,
//! and secrets that never print.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::time::Duration;

use aofvault_config::{Config, ConfigErrors, Env, ErrorKind, RepoUrl, Schedule, SourceKind};

/// A snapshot that pins everything host-dependent.
fn env() -> Env {
    Env::empty()
        .with("STATE_DIRECTORY", "/var/lib/aofvault-test")
        .with("HOSTNAME", "db1")
}

fn load(text: &str, env: &Env) -> Result<Config, ConfigErrors> {
    Config::from_toml(text, "test.toml", env)
}

fn error<'a>(errors: &'a ConfigErrors, path: &str) -> &'a aofvault_config::ConfigError {
    errors
        .0
        .iter()
        .find(|e| e.path == path)
        .unwrap_or_else(|| panic!("no error at {path}: {errors}"))
}

#[test]
fn five_different_mistakes_are_all_reported_with_their_paths() {
    let text = r#"
        [source]
        dir = "/var/lib/redis"
        colour = "blue"                    # unknown key
        [repository]
        url = "ftp://backups.example/x"    # bad URL scheme
        [ship]
        interval = "soonish"               # unparsable duration
        [compact]
        rewrite_percentage = 0             # out of range
        [schedule]
        snapshot = "at dawn"               # bad schedule
    "#;
    let errors = load(text, &env()).unwrap_err();
    // Unknown keys are found while parsing; validation still runs, so the parse stage must
    // not hide the other four: check them all, then check nothing else was reported.
    assert_eq!(error(&errors, "source.colour").kind, ErrorKind::UnknownKey);
    let url = error(&errors, "repository.url");
    assert_eq!(url.kind, ErrorKind::InvalidValue);
    assert!(url.message.contains("unsupported scheme `ftp`"), "{url}");
    assert_eq!(url.value.as_deref(), Some("\"ftp://backups.example/x\""));
    assert_eq!(
        error(&errors, "ship.interval").kind,
        ErrorKind::InvalidValue
    );
    let pct = error(&errors, "compact.rewrite_percentage");
    assert_eq!(pct.kind, ErrorKind::OutOfRange);
    assert_eq!(pct.value.as_deref(), Some("0"));
    assert!(pct.message.contains("between 1 and 10000"), "{pct}");
    assert_eq!(
        error(&errors, "schedule.snapshot").kind,
        ErrorKind::InvalidValue
    );
    assert_eq!(errors.0.len(), 5, "{errors}");
}

#[test]
fn an_empty_file_gets_every_default() {
    let config = load("", &env()).unwrap();
    assert_eq!(config.source.kind, SourceKind::Auto);
    assert_eq!(config.source.dir, None);
    assert_eq!(config.state.dir, PathBuf::from("/var/lib/aofvault-test"));
    assert_eq!(
        config.repository.url,
        RepoUrl::File(PathBuf::from("/var/lib/aofvault-test/repository"))
    );
    assert_eq!(config.repository.instance, "db1-local");
    assert_eq!(config.repository.compression_level, 3);
    assert_eq!(config.repository.s3.region, "us-east-1");
    assert_eq!(config.ship.interval, Duration::from_secs(1));
    assert_eq!(config.ship.segment_max, 16 << 20);
    assert_eq!(config.ship.upload_concurrency, 4);
    assert!(!config.compact.enabled, "no server URL, no compaction");
    assert_eq!(config.compact.rewrite_percentage, 100);
    assert_eq!(config.compact.rewrite_min_size, 64 << 20);
    assert_eq!(config.compact.cooldown, Duration::from_secs(300));
    assert!(
        matches!(config.schedule.snapshot, Some(Schedule::Every(d)) if d == Duration::from_secs(6 * 3600))
    );
    assert!(config.schedule.verify.is_none());
    assert!(!config.retention.has_rules());
    assert_eq!(config.retention.gc_grace, Duration::from_secs(3600));
    assert_eq!(config.metrics.listen, None);
    assert_eq!(config.log.level, "info");
    assert_eq!(config.shutdown.deadline, Duration::from_secs(20));
}

#[test]
fn server_url_sets_the_instance_port_and_enables_compaction() {
    let config = load("[source]\nurl = \"redis://10.0.0.5:6380\"\n", &env()).unwrap();
    assert_eq!(config.repository.instance, "db1-6380");
    assert!(config.compact.enabled);
    let config = load("[source]\nurl = \"rediss://cache.internal\"\n", &env()).unwrap();
    assert_eq!(config.repository.instance, "db1-6379");
}

#[test]
fn compaction_without_a_server_is_a_conflict() {
    let errors = load("[compact]\nenabled = true\n", &env()).unwrap_err();
    assert_eq!(error(&errors, "compact.enabled").kind, ErrorKind::Conflict);
}

#[test]
fn repository_urls() {
    let url = |text: &str| {
        load(&format!("[repository]\nurl = {text:?}\n"), &env())
            .map(|c| c.repository.url)
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        url("s3://my-backups/a/b/").unwrap(),
        RepoUrl::S3 {
            bucket: "my-backups".into(),
            prefix: "a/b".into()
        }
    );
    assert_eq!(
        url("s3://my-backups").unwrap(),
        RepoUrl::S3 {
            bucket: "my-backups".into(),
            prefix: String::new()
        }
    );
    assert_eq!(
        url("file:///srv/backups").unwrap(),
        RepoUrl::File("/srv/backups".into())
    );
    assert_eq!(
        url("/srv/backups").unwrap(),
        RepoUrl::File("/srv/backups".into())
    );
    assert_eq!(url("memory://t1").unwrap(), RepoUrl::Memory("t1".into()));
    assert!(url("file://relative/path")
        .unwrap_err()
        .contains("three slashes"));
    assert!(url("s3://Bad_Bucket/x")
        .unwrap_err()
        .contains("not a bucket name"));
    assert!(url("ftp://bucket/x")
        .unwrap_err()
        .contains("unsupported scheme `ftp`"));
    assert!(url("backups").unwrap_err().contains("not a URL"));
}

#[test]
fn environment_fills_s3_settings_the_file_leaves_unset() {
    let env = env()
        .with("AWS_ENDPOINT_URL", "http://127.0.0.1:8333")
        .with("AWS_ACCESS_KEY_ID", "K")
        .with("AWS_SECRET_ACCESS_KEY", "S3CR3T")
        .with("AWS_SESSION_TOKEN", "T0K3N")
        .with("AWS_DEFAULT_REGION", "eu-west-3");
    let text = "[repository]\nurl = \"s3://backups/db1\"\n";
    let s3 = load(text, &env).unwrap().repository.s3;
    assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
    assert!(
        s3.allow_http,
        "an http:// endpoint allows http unless told otherwise"
    );
    assert_eq!(s3.access_key_id.as_deref(), Some("K"));
    assert_eq!(s3.secret_access_key.unwrap().expose(), "S3CR3T");
    assert_eq!(s3.session_token.unwrap().expose(), "T0K3N");
    assert_eq!(s3.region, "eu-west-3");

    // The file wins over the environment.
    let text = "[repository]\nurl = \"s3://backups/db1\"\n[repository.s3]\nregion = \"ap-south-1\"\nendpoint = \"https://s3.example\"\n";
    let s3 = load(text, &env.clone().with("AWS_REGION", "us-west-2"))
        .unwrap()
        .repository
        .s3;
    assert_eq!(s3.region, "ap-south-1");
    assert_eq!(s3.endpoint.as_deref(), Some("https://s3.example"));
    assert!(!s3.allow_http);
}

#[test]
fn s3_mistakes_name_the_variable_they_came_from() {
    let env = env()
        .with("AWS_ALLOW_HTTP", "maybe")
        .with("AWS_ENDPOINT", "not a url")
        .with("AWS_ACCESS_KEY_ID", "K");
    let errors = load("[repository]\nurl = \"s3://backups\"\n", &env).unwrap_err();
    assert!(error(&errors, "repository.s3.allow_http")
        .message
        .contains("AWS_ALLOW_HTTP"));
    assert!(error(&errors, "repository.s3.endpoint")
        .message
        .contains("AWS_ENDPOINT"));
    assert_eq!(
        error(&errors, "repository.s3.access_key_id").kind,
        ErrorKind::Conflict
    );
}

#[test]
fn secrets_never_appear_in_debug_or_json() {
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("pw");
    std::fs::write(&password_file, "file-password-123\n").unwrap();
    let env = env()
        .with("AWS_ACCESS_KEY_ID", "K")
        .with("AWS_SECRET_ACCESS_KEY", "aws-secret-456")
        .with("AWS_SESSION_TOKEN", "aws-token-789");
    let text = format!(
        "[source]\nurl = \"redis://admin@127.0.0.1:6379\"\npassword_file = {:?}\n[repository]\nurl = \"s3://backups\"\n",
        password_file.display().to_string()
    );
    let config = load(&text, &env).unwrap();
    assert_eq!(
        config.source.password.as_ref().unwrap().expose(),
        "file-password-123"
    );
    assert_eq!(config.source.username.as_deref(), Some("admin"));
    let debug = format!("{config:?}");
    let json = serde_json::to_string(&config).unwrap();
    for secret in ["file-password-123", "aws-secret-456", "aws-token-789"] {
        assert!(!debug.contains(secret), "{secret} in Debug: {debug}");
        assert!(!json.contains(secret), "{secret} in JSON: {json}");
    }
    assert!(debug.contains("***"));
}

#[test]
fn credentials_in_the_server_url_move_out_of_it() {
    let text = "[source]\nurl = \"redis://app:p%40ss@127.0.0.1:7000/0\"\n";
    let config = load(text, &env()).unwrap();
    let url = config.source.url.unwrap();
    assert_eq!(url.as_str(), "redis://127.0.0.1:7000/0");
    assert_eq!(config.source.username.as_deref(), Some("app"));
    assert_eq!(config.source.password.unwrap().expose(), "p@ss");

    let errors = load("[source]\nurl = \"http://u:hunter2@x\"\n", &env()).unwrap_err();
    let shown = errors.to_string();
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("unsupported scheme `http`"), "{shown}");
}

#[test]
fn password_comes_from_the_environment_when_the_file_has_none() {
    let env = env().with("AOFVAULT_SOURCE_PASSWORD", "from-env");
    let config = load("[source]\nurl = \"redis://127.0.0.1\"\n", &env).unwrap();
    assert_eq!(config.source.password.unwrap().expose(), "from-env");
}

#[test]
fn unreadable_secret_files_and_missing_tls_files_are_reported() {
    let text = r#"
        [source]
        url = "redis://127.0.0.1"
        password_file = "/nonexistent/pw"
        [source.tls]
        ca_file = "/nonexistent/ca.pem"
    "#;
    let errors = load(text, &env()).unwrap_err();
    assert_eq!(error(&errors, "source.password_file").kind, ErrorKind::Io);
    // TLS files with a plain redis:// URL are a mistake in themselves.
    assert_eq!(
        error(&errors, "source.tls.ca_file").kind,
        ErrorKind::Conflict
    );
}

#[test]
fn relative_paths_and_bad_values_elsewhere() {
    let text = r#"
        [source]
        dir = "data"
        kind = "memcached"
        [ship]
        segment_max = "12 parsecs"
        upload_concurrency = 0
        [retention]
        keep_last = -1
        keep_within = "forever"
        [metrics]
        listen = ":9465"
        [log]
        level = "loud"
        format = "xml"
        [state]
        dir = "state"
        [repository]
        compression = "zstd:30"
        instance = "a/b"
    "#;
    let errors = load(text, &env()).unwrap_err();
    let mut paths = errors.paths();
    paths.sort_unstable();
    assert_eq!(
        paths,
        vec![
            "log.format",
            "log.level",
            "metrics.listen",
            "repository.compression",
            "repository.instance",
            "retention.keep_last",
            "retention.keep_within",
            "ship.segment_max",
            "ship.upload_concurrency",
            "source.dir",
            "source.kind",
            "state.dir",
        ]
    );
}

#[test]
fn schedules_accept_every_cron_and_off() {
    let text = "[schedule]\nsnapshot = \"0 */6 * * *\"\nprune = \"off\"\nverify = \"every 1d\"\ndrift_check = \"30m\"\n";
    let schedule = load(text, &env()).unwrap().schedule;
    assert!(matches!(schedule.snapshot, Some(Schedule::Cron { .. })));
    assert!(schedule.prune.is_none());
    assert!(matches!(schedule.verify, Some(Schedule::Every(d)) if d == Duration::from_secs(86400)));
    assert!(
        matches!(schedule.drift_check, Some(Schedule::Every(d)) if d == Duration::from_secs(1800))
    );
}

#[test]
fn state_directory_takes_the_first_of_systemds_list() {
    let env = Env::empty()
        .with("STATE_DIRECTORY", "/var/lib/aofvault/a:/var/lib/other")
        .with("HOSTNAME", "h");
    let config = load("", &env).unwrap();
    assert_eq!(config.state.dir, PathBuf::from("/var/lib/aofvault/a"));
}
