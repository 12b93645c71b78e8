//! `az://` repositories against Azurite (the Azure Storage emulator): the round trip on a
//! 4-shard kevy and on redis-server (ship, `kill -9` of the agent, restart, restore equal), an
//! emulator outage of 20 s (lag reported, then caught up), and which conditional puts Azurite
//! honours through object_store's Azure client (what the repository lease relies on), then the
//! lease itself under contention there.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use aofvault::repo::{AzureSpec, RepoSpec};
use aofvault_tests::azurite::{ACCOUNT, ACCOUNT_KEY, CONTAINER};
use aofvault_tests::{agent, keyspace, workload, AzuriteServer, KevyServer, RedisServer};
use common::cli::{dump, kevy_sizes, redis_sizes, Cli};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

/// One test's `az://` repository on an Azurite, a state dir, and the agent's command line.
struct AzVault {
    tmp: tempfile::TempDir,
    repo_url: String,
    env: Vec<(String, String)>,
}

impl AzVault {
    fn new(azurite: &AzuriteServer, prefix: &str) -> AzVault {
        AzVault {
            tmp: tempfile::tempdir().unwrap(),
            repo_url: azurite.repo_url(prefix),
            env: azurite.env(),
        }
    }

    fn global(&self) -> Vec<String> {
        let state = self.tmp.path().join("state").display().to_string();
        [
            "--repo",
            &self.repo_url,
            "--instance",
            "t",
            "--state-dir",
            &state,
        ]
        .map(String::from)
        .to_vec()
    }

    fn run_agent(&self, source: &std::path::Path, server: &str) -> agent::AgentProcess {
        let mut all = self.global();
        let dir = source.display().to_string();
        all.extend(["--source", &dir, "--server", server, "run"].map(String::from));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        agent::spawn(&all, &self.env).unwrap()
    }

    fn restored(&self) -> PathBuf {
        self.tmp.path().join("restored")
    }
}

impl Cli for AzVault {
    fn cmd(&self, args: &[&str]) -> agent::Output {
        let mut all = self.global();
        all.extend(args.iter().map(|s| s.to_string()));
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        agent::run(&all, &self.env).unwrap()
    }
}

#[test]
fn kevy_4_shards_round_trip_through_azurite_survives_kill9() {
    let azurite = AzuriteServer::start().unwrap();
    let kevy = KevyServer::start(4).unwrap();
    let v = AzVault::new(&azurite, "kevy4");
    let mut conn = kevy.conn().unwrap();
    workload::mixed(&mut conn, 181, 3000, 500).unwrap();
    kevy.wait_aof_flushed().unwrap();

    let mut a = v.run_agent(kevy.dir(), &kevy.url());
    v.wait_shipped(&|| kevy_sizes(&kevy), &a);
    workload::mixed(&mut conn, 182, 2000, 500).unwrap();
    a.kill9();
    workload::mixed(&mut conn, 183, 2000, 500).unwrap();
    kevy.wait_aof_flushed().unwrap();

    let mut a = v.run_agent(kevy.dir(), &kevy.url());
    v.wait_shipped(&|| kevy_sizes(&kevy), &a);
    a.terminate().unwrap();
    let verify = v.cmd(&["verify"]);
    assert!(
        verify.success(),
        "verify: {}\n{}",
        verify.stdout,
        verify.stderr
    );

    let expected = dump(&kevy.url());
    assert!(expected.len() > 400, "{} keys", expected.len());
    let to = v.restored().display().to_string();
    v.cmd(&["restore", "--to-dir", &to]).ok().unwrap();
    let copy = KevyServer::start_on_dir(&v.restored(), 4).unwrap();
    keyspace::assert_same(&expected, &dump(&copy.url()));
}

#[test]
fn redis_round_trip_through_azurite_survives_kill9() {
    let azurite = AzuriteServer::start().unwrap();
    let redis = RedisServer::start().unwrap();
    let v = AzVault::new(&azurite, "redis");
    let mut conn = redis.conn().unwrap();
    workload::mixed(&mut conn, 191, 3000, 500).unwrap();

    let mut a = v.run_agent(redis.dir(), &redis.url());
    v.wait_shipped(&|| redis_sizes(&redis), &a);
    workload::mixed(&mut conn, 192, 2000, 500).unwrap();
    a.kill9();
    workload::mixed(&mut conn, 193, 2000, 500).unwrap();

    let mut a = v.run_agent(redis.dir(), &redis.url());
    v.wait_shipped(&|| redis_sizes(&redis), &a);
    a.terminate().unwrap();

    let expected = dump(&redis.url());
    assert!(expected.len() > 400, "{} keys", expected.len());
    let to = v.restored().display().to_string();
    v.cmd(&["restore", "--to-dir", &to]).ok().unwrap();
    let copy = RedisServer::start_on_dir(&v.restored(), &[]).unwrap();
    keyspace::assert_same(&expected, &dump(&copy.url()));
}

#[test]
fn an_azurite_outage_of_20_s_is_reported_then_caught_up() {
    let mut azurite = AzuriteServer::start().unwrap();
    let kevy = KevyServer::start(2).unwrap();
    let v = AzVault::new(&azurite, "outage");
    let mut a = v.run_agent(kevy.dir(), &kevy.url());
    a.wait_for_log("snapshot published", Duration::from_secs(60))
        .unwrap();
    let mut conn = kevy.conn().unwrap();
    workload::mixed(&mut conn, 201, 500, 200).unwrap();

    azurite.stop();
    let outage = Instant::now();
    workload::mixed(&mut conn, 202, 2000, 200).unwrap();
    kevy.wait_aof_flushed().unwrap();
    let mut saw_lag = false;
    while outage.elapsed() < Duration::from_secs(20) {
        let st = v.status();
        saw_lag |= st["shards"].as_array().is_some_and(|shards| {
            shards
                .iter()
                .any(|s| s["lag_bytes"].as_u64().unwrap_or(0) > 0 && !s["last_error"].is_null())
        });
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        saw_lag,
        "status never showed lag and an error:\n{}",
        a.logs()
    );
    assert!(a.is_running(), "the agent survives an outage");

    azurite.start_again().unwrap();
    v.wait_shipped(&|| kevy_sizes(&kevy), &a);
    v.wait_status(
        "status shows the catch-up",
        &|st| {
            st["shards"]
                .as_array()
                .is_some_and(|shards| shards.iter().all(|s| s["lag_bytes"].as_u64() == Some(0)))
        },
        &|| a.logs(),
    );
    a.terminate().unwrap();
}

/// What a lease written with conditional puts needs from the store, checked on Azurite through
/// the same client the agent uses (an explicit endpoint, not emulator mode).
#[test]
fn azurite_honours_create_only_and_etag_conditional_puts() {
    let azurite = AzuriteServer::start().unwrap();
    let spec = RepoSpec::Azure(AzureSpec {
        container: CONTAINER.into(),
        prefix: "conditional".into(),
        account: Some(ACCOUNT.into()),
        access_key: Some(ACCOUNT_KEY.into()),
        endpoint: Some(format!("{}/{ACCOUNT}", azurite.endpoint())),
        allow_http: true,
        max_retries: 1,
        retry_timeout: Duration::from_secs(5),
        ..Default::default()
    });
    let (store, prefix) = spec.open().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let key = ObjectPath::from(format!("{prefix}lease.json"));
    let put = |mode: PutMode, body: &'static str| {
        rt.block_on(store.put_opts(
            &key,
            PutPayload::from_static(body.as_bytes()),
            PutOptions {
                mode,
                ..Default::default()
            },
        ))
    };

    // Create: the first wins, the second is refused as AlreadyExists.
    let first = put(PutMode::Create, "one").unwrap();
    let again = put(PutMode::Create, "two");
    assert!(
        matches!(again, Err(object_store::Error::AlreadyExists { .. })),
        "a second create-only put: {again:?}"
    );
    // Update with the current ETag: accepted, and the ETag changes.
    let current = UpdateVersion {
        e_tag: first.e_tag.clone(),
        version: None,
    };
    let second = put(PutMode::Update(current.clone()), "two").unwrap();
    assert_ne!(first.e_tag, second.e_tag, "an update changes the ETag");
    // Update with the old ETag: refused as Precondition, the object keeps the newer body.
    let stale = put(PutMode::Update(current), "three");
    assert!(
        matches!(stale, Err(object_store::Error::Precondition { .. })),
        "an update with a stale ETag: {stale:?}"
    );
    let body = rt
        .block_on(async { store.get(&key).await.unwrap().bytes().await })
        .unwrap();
    assert_eq!(&body[..], b"two");
    // Update of an object that is not there: refused (Precondition or NotFound).
    let missing = ObjectPath::from(format!("{prefix}missing.json"));
    let gone = rt.block_on(store.put_opts(
        &missing,
        PutPayload::from_static(b"x"),
        PutOptions {
            mode: PutMode::Update(UpdateVersion {
                e_tag: second.e_tag.clone(),
                version: None,
            }),
            ..Default::default()
        },
    ));
    assert!(
        matches!(
            gone,
            Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. })
        ),
        "an update of a missing object: {gone:?}"
    );
    println!("AZURITE-CONDITIONAL create=honoured update-current=accepted update-stale=Precondition update-missing={gone:?}");
}

/// The lease itself on Azurite: 8 rounds of 12 claimants at once, one holder each round (as
/// `lease_race.rs` proves on SeaweedFS and `file://`).
#[test]
fn twelve_claimants_on_azurite_never_give_two_holders() {
    let azurite = AzuriteServer::start().unwrap();
    let spec = RepoSpec::Azure(AzureSpec {
        container: CONTAINER.into(),
        prefix: format!("race-{:08x}", rand::random::<u32>()),
        account: Some(ACCOUNT.into()),
        access_key: Some(ACCOUNT_KEY.into()),
        endpoint: Some(format!("{}/{ACCOUNT}", azurite.endpoint())),
        allow_http: true,
        max_retries: 2,
        retry_timeout: Duration::from_secs(20),
        ..Default::default()
    });
    common::lease::contend(&aofvault::repo::Repo::open(&spec, 3).unwrap());
}
