//! Opening the object store behind a repository URL: `file:///path` (the default), `s3://bucket/prefix`
//! (any S3-compatible endpoint), `az://container/prefix` (Azure Blob Storage, or Azurite),
//! `gs://bucket/prefix` (Google Cloud Storage), `memory://name` (tests).
//!
//! Azure and GCS clients start from object_store's `from_env` builders, so every standard
//! `AZURE_*` / `GOOGLE_*` credential variable they know works; the validated configuration's
//! explicit values are applied on top. Credentials never reach a log line: the only way a
//! spec prints itself is [`RepoSpec::display_url`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use object_store::aws::{AmazonS3Builder, S3CopyIfNotExists};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

/// Where a repository lives, independent of how the configuration spelled it.
#[derive(Clone)]
pub enum RepoSpec {
    File(PathBuf),
    S3(S3Spec),
    Azure(AzureSpec),
    Gcs(GcsSpec),
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

/// An Azure Blob container (and a prefix in it).
#[derive(Clone, Default)]
pub struct AzureSpec {
    pub container: String,
    pub prefix: String,
    pub account: Option<String>,
    pub access_key: Option<String>,
    pub sas_token: Option<String>,
    pub endpoint: Option<String>,
    /// Azurite at `AZURITE_BLOB_STORAGE_URL` (default `http://127.0.0.1:10000`).
    pub use_emulator: bool,
    pub allow_http: bool,
    pub max_retries: usize,
    pub retry_timeout: Duration,
}

/// A Google Cloud Storage bucket (and a prefix in it).
#[derive(Clone, Default)]
pub struct GcsSpec {
    pub bucket: String,
    pub prefix: String,
    pub service_account_file: Option<PathBuf>,
    /// Another endpoint than `https://storage.googleapis.com` (an emulator, a proxy).
    pub base_url: Option<String>,
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
            RepoSpec::Azure(a) => with_prefix("az", &a.container, &a.prefix),
            RepoSpec::Gcs(g) => with_prefix("gs", &g.bucket, &g.prefix),
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
                Ok((Arc::new(store), key_prefix(&s3.prefix)))
            }
            RepoSpec::Azure(az) => open_azure(az),
            RepoSpec::Gcs(gcs) => open_gcs(gcs),
        }
    }
}

fn with_prefix(scheme: &str, root: &str, prefix: &str) -> String {
    if prefix.is_empty() {
        format!("{scheme}://{root}")
    } else {
        format!("{scheme}://{root}/{prefix}")
    }
}

/// `a/b` → `a/b/`; empty stays empty.
fn key_prefix(prefix: &str) -> String {
    let prefix = prefix.trim_matches('/');
    if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    }
}

/// The client retries of every cloud backend (the shipper retries on top of them).
fn retry(max_retries: usize, retry_timeout: Duration) -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries,
        retry_timeout,
    }
}

fn client_options(allow_http: bool) -> ClientOptions {
    ClientOptions::new()
        .with_allow_http(allow_http)
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(60))
}

fn open_azure(az: &AzureSpec) -> anyhow::Result<(Arc<dyn ObjectStore>, String)> {
    if az.container.is_empty() {
        bail!("az repository URL has no container");
    }
    let mut b = MicrosoftAzureBuilder::from_env()
        .with_container_name(&az.container)
        .with_client_options(client_options(az.allow_http))
        .with_retry(retry(az.max_retries, az.retry_timeout));
    if az.use_emulator {
        b = b.with_use_emulator(true);
    }
    if let Some(a) = &az.account {
        b = b.with_account(a);
    }
    if let Some(k) = &az.access_key {
        b = b.with_access_key(k);
    }
    if let Some(t) = &az.sas_token {
        b = b.with_config(object_store::azure::AzureConfigKey::SasKey, t);
    }
    if let Some(e) = &az.endpoint {
        b = b.with_endpoint(e.clone());
    }
    let store = b
        .build()
        .context("cannot configure the Azure Blob client")?;
    Ok((Arc::new(store), key_prefix(&az.prefix)))
}

fn open_gcs(gcs: &GcsSpec) -> anyhow::Result<(Arc<dyn ObjectStore>, String)> {
    if gcs.bucket.is_empty() {
        bail!("gs repository URL has no bucket");
    }
    let allow_http = gcs
        .base_url
        .as_deref()
        .is_some_and(|u| u.starts_with("http://"));
    let mut b = GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(&gcs.bucket)
        .with_client_options(client_options(allow_http))
        .with_retry(retry(gcs.max_retries, gcs.retry_timeout));
    if let Some(f) = &gcs.service_account_file {
        b = b.with_service_account_path(f.to_string_lossy());
    }
    if let Some(u) = &gcs.base_url {
        b = b.with_config(object_store::gcp::GoogleConfigKey::BaseUrl, u);
    }
    let store = b
        .build()
        .context("cannot configure the Google Cloud Storage client")?;
    Ok((Arc::new(store), key_prefix(&gcs.prefix)))
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
