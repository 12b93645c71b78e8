//! The repository lease under contention on a real S3-compatible store (SeaweedFS) and on a
//! `file://` repository shared by separate processes' handles: many claimants at once, and
//! never two holders. The conditional writes it rests on (`If-None-Match: *` to create,
//! `If-Match: <ETag>` to update) are checked first, one by one, so that a store that ignores
//! them fails here by name rather than as a rare double holder.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use aofvault::repo::{Expect, Repo, RepoError, RepoSpec, S3Spec};
use aofvault_tests::shared_s3;
use bytes::Bytes;
use common::lease::contend;

fn s3_repo(prefix: &str) -> Repo {
    let s3 = shared_s3();
    let spec = RepoSpec::S3(S3Spec {
        bucket: s3.bucket().to_string(),
        prefix: format!("{prefix}-{:08x}", rand::random::<u32>()),
        endpoint: Some(s3.endpoint()),
        region: "us-east-1".into(),
        allow_http: true,
        access_key_id: Some(s3.access_key().to_string()),
        secret_access_key: Some(s3.secret_key().to_string()),
        session_token: None,
        virtual_hosted_style: false,
        max_retries: 2,
        retry_timeout: Duration::from_secs(20),
    });
    Repo::open(&spec, 3).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn seaweedfs_honours_create_only_and_if_match_writes() {
    rt().block_on(async {
        let repo = s3_repo("cas");
        let key = "instances/x/lease.json";
        let v1 = repo
            .put_if(key, Bytes::from_static(b"one"), &Expect::Absent)
            .await
            .unwrap();
        let again = repo
            .put_if(key, Bytes::from_static(b"two"), &Expect::Absent)
            .await;
        assert!(
            matches!(again, Err(RepoError::Precondition { .. })),
            "a create-only put over an object must be refused: {again:?}"
        );
        let v2 = repo
            .put_if(
                key,
                Bytes::from_static(b"two"),
                &Expect::Version(v1.clone()),
            )
            .await
            .unwrap();
        assert_ne!(v1, v2, "each write has its own version");
        let stale = repo
            .put_if(key, Bytes::from_static(b"three"), &Expect::Version(v1))
            .await;
        assert!(
            matches!(stale, Err(RepoError::Precondition { .. })),
            "an update naming an old ETag must be refused: {stale:?}"
        );
        let (now, _) = repo.get_versioned(key).await.unwrap().unwrap();
        assert_eq!(&now[..], b"two");
    });
}

#[test]
fn twelve_claimants_on_seaweedfs_never_give_two_holders() {
    contend(&s3_repo("race"));
}

#[test]
fn twelve_claimants_on_a_file_repository_never_give_two_holders() {
    let dir = tempfile::tempdir().unwrap();
    contend(&Repo::open(&RepoSpec::File(dir.path().to_path_buf()), 3).unwrap());
}
