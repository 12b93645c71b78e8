//! Opening the object store behind a repository URL: `file:///path` (the default), `s3://bucket/prefix`
//! (any S3-compatible endpoint), `memory://name` (tests).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use object_store::aws::{AmazonS3Builder, S3CopyIfNotExists};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

/// Where a repository lives, independent of how the configuration spelled it.
#[derive(Clone)]
pub enum RepoSpec {
    File(PathBuf),
    S3(S3Spec),
    /// An in-memory store shared by every `open` of the same name in this process.
    Memory(String),
}

#[derive(Clone, Default)]
pub struct S3Spec {
    pub bucket: String,
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: String,
    pub allow_http: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub virtual_hosted_style: bool,
    /// Retries of one request inside the client; the shipper retries on top of that.
    pub max_retries: usize,
    pub retry_timeout: Duration,
}

impl std::fmt::Debug for RepoSpec {
    // Hand-written so that no credential can ever reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display_url())
    }
}

impl RepoSpec {
    /// The URL an operator would recognise, without credentials.
    pub fn display_url(&self) -> String {
        match self {
            RepoSpec::File(p) => format!("file://{}", p.display()),
            RepoSpec::S3(s) if s.prefix.is_empty() => format!("s3://{}", s.bucket),
            RepoSpec::S3(s) => format!("s3://{}/{}", s.bucket, s.prefix),
            RepoSpec::Memory(name) => format!("memory://{name}"),
        }
    }

    /// The store and the key prefix inside it.
    pub fn open(&self) -> anyhow::Result<(Arc<dyn ObjectStore>, String)> {
        match self {
            RepoSpec::File(path) => {
                std::fs::create_dir_all(path).with_context(|| {
                    format!("cannot create the repository directory {}", path.display())
                })?;
                let fs = LocalFileSystem::new_with_prefix(path)
                    .with_context(|| {
                        format!("cannot open the repository directory {}", path.display())
                    })?
                    .with_automatic_cleanup(true);
                Ok((Arc::new(fs), String::new()))
            }
            RepoSpec::Memory(name) => Ok((memory_store(name), String::new())),
            RepoSpec::S3(s3) => {
                if s3.bucket.is_empty() {
                    bail!("s3 repository URL has no bucket");
                }
                let mut b = AmazonS3Builder::new()
                    .with_bucket_name(&s3.bucket)
                    .with_region(&s3.region)
                    .with_virtual_hosted_style_request(s3.virtual_hosted_style)
                    .with_copy_if_not_exists(S3CopyIfNotExists::Multipart)
                    .with_client_options(
                        ClientOptions::new()
                            .with_allow_http(s3.allow_http)
                            .with_connect_timeout(Duration::from_secs(5))
                            .with_timeout(Duration::from_secs(60)),
                    )
                    .with_retry(RetryConfig {
                        backoff: BackoffConfig {
                            init_backoff: Duration::from_millis(100),
                            max_backoff: Duration::from_secs(5),
                            base: 2.0,
                        },
                        max_retries: s3.max_retries,
                        retry_timeout: s3.retry_timeout,
                    });
                if let Some(e) = &s3.endpoint {
                    b = b.with_endpoint(e);
                }
                if let Some(k) = &s3.access_key_id {
                    b = b.with_access_key_id(k);
                }
                if let Some(k) = &s3.secret_access_key {
                    b = b.with_secret_access_key(k);
                }
                if let Some(t) = &s3.session_token {
                    b = b.with_token(t);
                }
                let store = b.build().context("cannot configure the S3 client")?;
                let prefix = s3.prefix.trim_matches('/');
                let prefix = if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}/")
                };
                Ok((Arc::new(store), prefix))
            }
        }
    }
}

fn memory_store(name: &str) -> Arc<dyn ObjectStore> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static STORES: OnceLock<Mutex<HashMap<String, Arc<InMemory>>>> = OnceLock::new();
    let mut map = STORES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    map.entry(name.to_string())
        .or_insert_with(|| Arc::new(InMemory::new()))
        .clone()
}
