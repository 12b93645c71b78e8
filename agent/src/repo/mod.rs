//! The repository: a prefix in an object store holding, per server instance, chains of base and
//! segment objects and snapshot manifests (see `docs/REPOSITORY-FORMAT.md`).
//!
//! - [`keys`]: every object name, as pure functions.
//! - [`store`]: opening `file://`, `s3://`, `az://`, `gs://` and `memory://` stores.
//! - [`codec`]: zstd/raw payloads and their CRC-32C.
//! - [`crypt`]: optional age encryption of bases and segments (recipients write, identities read).
//! - [`lease`]: one writer per instance.
//! - [`run`]: which stored segments a reader follows (the longest contiguous run).
//! - [`plan`]: what a restore of a moment needs — which snapshot, which objects, where it cuts
//!   (used by restore, list, verify and the drift check).
//! - [`Repo`] (here): raw reads, create-only writes and listings on top of those; the typed
//!   documents (format marker, chain heads, segments, snapshot manifests) are read and written
//!   in `documents`, streaming uploads and downloads in `transfer`.
//!
//! Objects are written once: segments and manifests with a create-only put; bases under a fresh
//! chain id, made visible by the chain head that is written after them.
//!
//! With encryption keys ([`Repo::with_key_ring`]), new bases and segments are compressed, then
//! encrypted (`.zst.age` / `.raw.age`); `download` decrypts as the object streams in and checks
//! the CRC-32C of the plain bytes as for any object. Documents (marker, lease, chain heads,
//! manifests) stay plain: they hold no server data, and the agent reads them back with only
//! the public key.

mod cas;
pub mod codec;
pub mod crypt;
mod documents;
pub mod fence;
pub mod keys;
pub mod lease;
pub mod plan;
pub mod run;
pub mod store;
mod transfer;

#[cfg(test)]
mod lost_reply_tests;

use std::sync::Arc;

use aofvault_formats::vault::VaultError;
use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

pub use cas::{Expect, Version};
pub use crypt::KeyRing;
pub use fence::Fence;
pub use keys::{Codec, ShardId};
pub use store::{AzureSpec, GcsSpec, RepoSpec, S3Spec};

/// What can go wrong talking to a repository. `Unreachable` and `Empty` are different on purpose:
/// the first means "we do not know", the second "we know there is nothing".
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("repository {url} is unreachable: {source}")]
    Unreachable {
        url: String,
        source: Box<object_store::Error>,
    },
    #[error("object {key} is missing from the repository")]
    NotFound { key: String },
    #[error("object {key} already exists (objects are written once)")]
    AlreadyExists { key: String },
    #[error("object {key} already exists with other content (another agent writing this instance, or a reused chain id); nothing was overwritten")]
    Conflict { key: String },
    #[error("object {key} changed since it was read (another agent wrote it first); nothing was overwritten")]
    Precondition { key: String },
    #[error("not writing {key}: this agent's lease on the instance is not confirmed (renewal overdue or lease given back)")]
    Fenced { key: String },
    #[error("object {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("repository {url} holds no aofvault data{hint}")]
    Empty { url: String, hint: String },
    #[error("repository {url}: {source}")]
    Format { url: String, source: VaultError },
    #[error("repository {url}: {reason}")]
    Other { url: String, reason: String },
    #[error("object {key} is encrypted: set [repository] encryption_identity_file (or AOFVAULT_ENCRYPTION_IDENTITY) to the age identity that reads it")]
    Encrypted { key: String },
    #[error("cannot decrypt {key}: wrong key (no configured identity opens it; objects written before a key rotation need the old identity too)")]
    WrongKey { key: String },
}

/// The instance has no snapshot yet: there is nothing to restore (exit 5, as an empty
/// repository).
#[derive(Debug, thiserror::Error)]
#[error("instance {instance} has no snapshot in {url} yet (an agent publishes one when it starts shipping)")]
pub struct NoSnapshot {
    pub instance: String,
    pub url: String,
}

impl RepoError {
    /// Worth retrying: the store may answer later.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RepoError::Unreachable { .. } | RepoError::Fenced { .. }
        )
    }
}

pub type Result<T, E = RepoError> = std::result::Result<T, E>;

/// A listed object.
#[derive(Debug, Clone)]
pub struct Listed {
    /// Key relative to the repository prefix.
    pub key: String,
    pub size: u64,
    pub last_modified_ms: i64,
}

/// An open repository.
#[derive(Clone)]
pub struct Repo {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    url: String,
    pub level: i32,
    keys: Arc<KeyRing>,
    /// The folder of a `file://` repository: conditional writes lock it themselves.
    local_root: Option<std::path::PathBuf>,
    /// Set on the daemon's handle: writes only while the lease holds.
    fence: Option<Arc<Fence>>,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repo({})", self.url)
    }
}

impl Repo {
    pub fn open(spec: &RepoSpec, compression_level: i32) -> anyhow::Result<Repo> {
        let (store, prefix) = spec.open()?;
        Ok(Repo {
            store,
            prefix,
            url: spec.display_url(),
            level: compression_level,
            keys: Arc::default(),
            local_root: match spec {
                RepoSpec::File(p) => Some(p.clone()),
                _ => None,
            },
            fence: None,
        })
    }

    /// A repository over a store built elsewhere (the follower simulation's faulty store).
    pub fn from_store(store: Arc<dyn ObjectStore>, url: &str, compression_level: i32) -> Repo {
        Repo {
            store,
            prefix: String::new(),
            url: url.to_string(),
            level: compression_level,
            keys: Arc::default(),
            local_root: None,
            fence: None,
        }
    }

    /// Encrypts new bases and segments to `keys`' recipients (if any) and reads encrypted
    /// objects with its identities (if any).
    pub fn with_key_ring(mut self, keys: KeyRing) -> Repo {
        self.keys = Arc::new(keys);
        self
    }

    /// Writes through this handle (and its clones) only while `fence` is open; the lease's own
    /// document is written with [`Repo::put_if`], which the fence does not stop.
    pub fn with_fence(mut self, fence: Arc<Fence>) -> Repo {
        self.fence = Some(fence);
        self
    }

    /// `Fenced` if this handle's fence is closed.
    pub(crate) fn check_fence(&self, key: &str) -> Result<()> {
        match &self.fence {
            Some(f) if !f.is_open() => Err(RepoError::Fenced {
                key: key.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// The encryption keys (empty: objects are written plain, encrypted ones cannot be read).
    pub fn key_ring(&self) -> &KeyRing {
        &self.keys
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The codec new objects are written with.
    pub fn codec(&self) -> Codec {
        let plain = if self.level == 0 {
            Codec::Raw
        } else {
            Codec::Zstd
        };
        plain.with_encryption(self.keys.encrypts())
    }

    fn path(&self, key: &str) -> Path {
        Path::from(keys::object(&self.prefix, key))
    }

    fn map_err(&self, key: &str, e: object_store::Error) -> RepoError {
        match e {
            object_store::Error::NotFound { .. } => RepoError::NotFound {
                key: key.to_string(),
            },
            object_store::Error::AlreadyExists { .. } => RepoError::AlreadyExists {
                key: key.to_string(),
            },
            e => RepoError::Unreachable {
                url: self.url.clone(),
                source: Box::new(e),
            },
        }
    }

    /// Create-only put: fails with `AlreadyExists` if anything is there.
    pub async fn put_new(&self, key: &str, data: Bytes) -> Result<()> {
        self.check_fence(key)?;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        self.store
            .put_opts(&self.path(key), PutPayload::from(data), opts)
            .await
            .map_err(|e| self.map_err(key, e))?;
        Ok(())
    }

    /// Overwriting put: documents only their writer writes (a group member's own record).
    pub async fn put_overwrite(&self, key: &str, data: Bytes) -> Result<()> {
        self.store
            .put(&self.path(key), PutPayload::from(data))
            .await
            .map_err(|e| self.map_err(key, e))?;
        Ok(())
    }

    pub async fn get(&self, key: &str) -> Result<Bytes> {
        let r = self
            .store
            .get(&self.path(key))
            .await
            .map_err(|e| self.map_err(key, e))?;
        r.bytes().await.map_err(|e| self.map_err(key, e))
    }

    pub async fn get_opt(&self, key: &str) -> Result<Option<Bytes>> {
        match self.get(key).await {
            Ok(b) => Ok(Some(b)),
            Err(RepoError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn delete(&self, key: &str) -> Result<()> {
        self.check_fence(key)?;
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.map_err(key, e)),
        }
    }

    /// Every object under `prefix` (relative keys), sorted by key. Pages through any number of
    /// objects: nothing here assumes the bucket is small, but callers keep prefixes narrow.
    pub async fn list(&self, prefix: &str) -> Result<Vec<Listed>> {
        let full = self.path(prefix);
        let mut stream = self.store.list(Some(&full));
        let mut out = Vec::new();
        let strip = self.prefix.len();
        while let Some(item) = stream.next().await {
            let meta = item.map_err(|e| self.map_err(prefix, e))?;
            let key = meta
                .location
                .as_ref()
                .get(strip..)
                .unwrap_or_default()
                .to_string();
            out.push(Listed {
                key,
                size: meta.size,
                last_modified_ms: meta.last_modified.timestamp_millis(),
            });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// The immediate "sub-directories" under `prefix` (names only).
    pub async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        let full = self.path(prefix);
        let r = self
            .store
            .list_with_delimiter(Some(&full))
            .await
            .map_err(|e| self.map_err(prefix, e))?;
        let mut names: Vec<String> = r
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }
}
