//! Writes whose reply is lost: the store keeps the object but the writer hears an error — a
//! timeout, or (when the store's client retried the put on its own) "already exists". A chain
//! head written twice with the same content is one write; with other content, a conflict.
//!
//! The faulty store wraps `object_store`'s in-memory store; its async trait methods are written
//! out as boxed futures (the shape `#[async_trait]` expands to) to need no extra crate.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use aofvault_formats::vault::{ChainHead, ServerLayout, FORMAT_VERSION};
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

use super::{keys, Repo, RepoError, ShardId};

type Fut<'a, T> = Pin<Box<dyn Future<Output = object_store::Result<T>> + Send + 'a>>;

/// What the next put reports after storing its object.
#[derive(Debug, Clone, Copy)]
enum Lost {
    /// A transport error: the writer does not know whether it was stored.
    Timeout,
    /// The client's own retry found the object its first attempt stored.
    RetrySawItself,
}

/// An in-memory store whose next put stores the object, then reports `lose` instead of success.
#[derive(Debug)]
struct LosesReplies {
    inner: InMemory,
    lose: Mutex<Option<Lost>>,
}

impl std::fmt::Display for LosesReplies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LosesReplies({})", self.inner)
    }
}

impl ObjectStore for LosesReplies {
    fn put_opts<'l0, 'l1, 'a>(
        &'l0 self,
        location: &'l1 Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Fut<'a, PutResult>
    where
        'l0: 'a,
        'l1: 'a,
        Self: 'a,
    {
        Box::pin(async move {
            let stored = self.inner.put_opts(location, payload, opts).await?;
            let lost = self.lose.lock().unwrap().take();
            match lost {
                None => Ok(stored),
                Some(Lost::Timeout) => Err(object_store::Error::Generic {
                    store: "LosesReplies",
                    source: "the reply was lost".into(),
                }),
                Some(Lost::RetrySawItself) => Err(object_store::Error::AlreadyExists {
                    path: location.to_string(),
                    source: "the retried put found the first attempt's object".into(),
                }),
            }
        })
    }

    fn put_multipart_opts<'l0, 'l1, 'a>(
        &'l0 self,
        location: &'l1 Path,
        opts: PutMultipartOptions,
    ) -> Fut<'a, Box<dyn MultipartUpload>>
    where
        'l0: 'a,
        'l1: 'a,
        Self: 'a,
    {
        self.inner.put_multipart_opts(location, opts)
    }

    fn get_opts<'l0, 'l1, 'a>(
        &'l0 self,
        location: &'l1 Path,
        options: GetOptions,
    ) -> Fut<'a, GetResult>
    where
        'l0: 'a,
        'l1: 'a,
        Self: 'a,
    {
        self.inner.get_opts(location, options)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_delimiter<'l0, 'l1, 'a>(
        &'l0 self,
        prefix: Option<&'l1 Path>,
    ) -> Fut<'a, ListResult>
    where
        'l0: 'a,
        'l1: 'a,
        Self: 'a,
    {
        self.inner.list_with_delimiter(prefix)
    }

    fn copy_opts<'l0, 'l1, 'l2, 'a>(
        &'l0 self,
        from: &'l1 Path,
        to: &'l2 Path,
        options: CopyOptions,
    ) -> Fut<'a, ()>
    where
        'l0: 'a,
        'l1: 'a,
        'l2: 'a,
        Self: 'a,
    {
        self.inner.copy_opts(from, to, options)
    }
}

fn faulty() -> (Repo, Arc<LosesReplies>) {
    let store = Arc::new(LosesReplies {
        inner: InMemory::new(),
        lose: Mutex::new(None),
    });
    (Repo::from_store(store.clone(), "memory://lost", 1), store)
}

fn head(chain: &str, stream_start: u64) -> ChainHead {
    ChainHead {
        format_version: FORMAT_VERSION,
        instance: "db".into(),
        shard: 1,
        chain: chain.into(),
        created_ms: 1_800_000_000_000,
        layout: ServerLayout::Kevy {
            shards: 2,
            shards_meta: None,
        },
        server_version: None,
        base: Vec::new(),
        stream_start,
        reason: "start".into(),
        source_identity: "dev 1 ino 2".into(),
        node: None,
    }
}

#[tokio::test]
async fn a_head_stored_before_its_reply_was_lost_is_success() {
    let (repo, store) = faulty();
    let h = head("1800000000000-aaaaaaaa", 0);

    // The client's internal retry reports "already exists" for its own first attempt.
    *store.lose.lock().unwrap() = Some(Lost::RetrySawItself);
    repo.put_chain_head(&h).await.unwrap();

    // A timeout: the caller does not know, retries the same head, and it is success.
    let h2 = head("1800000000001-bbbbbbbb", 0);
    *store.lose.lock().unwrap() = Some(Lost::Timeout);
    let first = repo.put_chain_head(&h2).await;
    assert!(
        matches!(first, Err(RepoError::Unreachable { .. })),
        "{first:?}"
    );
    repo.put_chain_head(&h2).await.unwrap();

    for h in [&h, &h2] {
        let stored = repo
            .chain_head("db", ShardId(1), &h.chain)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored, *h);
    }
}

#[tokio::test]
async fn a_head_already_there_with_other_content_is_a_conflict_naming_it() {
    let (repo, _store) = faulty();
    let ours = head("1800000000000-aaaaaaaa", 0);
    repo.put_chain_head(&ours).await.unwrap();
    let other = head("1800000000000-aaaaaaaa", 4096);
    let key = keys::chain_head("db", ShardId(1), &ours.chain);
    match repo.put_chain_head(&other).await {
        Err(RepoError::Conflict { key: named }) => assert_eq!(named, key),
        r => panic!("expected a conflict on {key}, got {r:?}"),
    }
    let err = repo.put_chain_head(&other).await.unwrap_err().to_string();
    assert!(err.contains(&key), "{err}");
    // Nothing was overwritten.
    let stored = repo
        .chain_head("db", ShardId(1), &ours.chain)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored, ours);
}
