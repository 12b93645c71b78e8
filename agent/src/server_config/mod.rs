//! The server's own configuration in the backup: its ACL users and its config file, captured
//! when a snapshot is published and restored beside the data (`docs/REPOSITORY-FORMAT.md`,
//! "Server configuration").
//!
//! - [`capture`]: asks the server (`CONFIG GET aclfile`, the ACL file or `ACL LIST`,
//!   `INFO server` → `config_file`), redacts the config file's secrets unless the repository
//!   encrypts.
//! - [`apply`]: writes `users.acl` and the config file into a `--to-dir`, or creates the users
//!   on a live server (`ACL SETUSER`).
//! - here: the document, storing it (only when it changed since the last one) and picking the
//!   one a snapshot restores with (the newest captured at or before the snapshot).
//!
//! The snapshot publisher calls [`capture_for_snapshot`]; which server to ask is registered by
//! the command that runs the daemon or the backup ([`register`]), so the daemon itself needs no
//! change. A failed capture is logged and never fails the snapshot.

pub mod apply;
pub mod capture;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::repo::{keys, Repo, RepoError};

/// Version of [`ServerConfigDoc`]; readers skip documents of a newer one.
pub const DOC_VERSION: u32 = 1;

/// One capture of the server's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerConfigDoc {
    pub format_version: u32,
    pub instance: String,
    pub captured_ms: i64,
    pub server_version: Option<String>,
    /// Where [`Self::acl`] came from: `aclfile` (the file at `aclfile_path`), `acl-list` (the
    /// server's `ACL LIST`: users defined in its config file, or an unreadable aclfile), or
    /// `none` (the server has no ACLs, as kevy 1.19).
    pub acl_source: String,
    pub aclfile_path: Option<String>,
    /// ACL rules, one `user NAME ...` line each, passwords as SHA-256 hashes (`#...`).
    pub acl: Vec<String>,
    /// The config file's path on the server (`INFO server` → `config_file`).
    pub config_file: Option<String>,
    /// Its text, unless it could not be read (see `notes`).
    pub config: Option<String>,
    /// Whether secret values in `config` were replaced (plain repositories only).
    pub config_redacted: bool,
    /// What could not be captured, and why.
    pub notes: Vec<String>,
}

impl ServerConfigDoc {
    /// A short hash of what was captured (not when): a capture equal to the last is not stored.
    pub fn content_hash(&self) -> String {
        let mut crc = crc32c::crc32c(self.acl_source.as_bytes());
        for line in &self.acl {
            crc = crc32c::crc32c_append(crc, line.as_bytes());
            crc = crc32c::crc32c_append(crc, b"\n");
        }
        for part in [&self.config_file, &self.config, &self.aclfile_path] {
            crc = crc32c::crc32c_append(crc, part.as_deref().unwrap_or("\0").as_bytes());
        }
        format!("{crc:08x}")
    }
}

/// Captures what `server` says of its ACL users and config file and stores it if it changed,
/// just before a snapshot is published (so that the capture a restore of that snapshot picks,
/// the newest at or before it, is this one). Never fails: a problem is logged (the snapshot
/// matters more than its companion).
pub async fn capture_for_snapshot(server: &mut crate::server::Server, repo: &Repo, instance: &str) {
    let redact = !repo.key_ring().encrypts();
    let doc = capture::capture(server, instance, redact).await;
    match store(repo, &doc).await {
        Ok(Some(key)) => tracing::info!(%key, "server configuration captured"),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e, "cannot capture the server configuration (ACL users, config file) with this snapshot")
        }
    }
}

/// Stores `doc` unless the newest stored capture has the same content; returns the new key.
pub async fn store(repo: &Repo, doc: &ServerConfigDoc) -> Result<Option<String>, RepoError> {
    let hash = doc.content_hash();
    let listed = list(repo, &doc.instance).await?;
    if listed.last().is_some_and(|(_, h, _)| *h == hash) {
        return Ok(None);
    }
    let json = serde_json::to_vec_pretty(doc).unwrap_or_default();
    let encrypt = repo.key_ring().encrypts();
    let body = if encrypt {
        encrypt_bytes(repo, &json).map_err(|e| RepoError::Other {
            url: repo.url().to_string(),
            reason: format!("cannot encrypt the server configuration: {e}"),
        })?
    } else {
        json
    };
    let key = keys::server_config(&doc.instance, doc.captured_ms, &hash, encrypt);
    repo.put_new(&key, Bytes::from(body)).await?;
    Ok(Some(key))
}

fn encrypt_bytes(repo: &Repo, plain: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut w = repo.key_ring().encrypt(Vec::new())?;
    w.write_all(plain)?;
    w.finish()
}

/// `(captured ms, hash, encrypted)` of every stored capture, oldest first.
async fn list(repo: &Repo, instance: &str) -> Result<Vec<(i64, String, bool)>, RepoError> {
    let prefix = keys::server_config_prefix(instance);
    let mut out: Vec<_> = repo
        .list(&prefix)
        .await?
        .into_iter()
        .filter_map(|l| keys::parse_server_config(l.key.strip_prefix(&prefix)?))
        .collect();
    out.sort();
    Ok(out)
}

/// Reads one capture (decrypting it when it is encrypted).
async fn read(repo: &Repo, key: &str, encrypted: bool) -> anyhow::Result<ServerConfigDoc> {
    let bytes = repo.get(key).await?;
    decode(repo, key, &bytes, encrypted).await
}

async fn decode(
    repo: &Repo,
    key: &str,
    bytes: &[u8],
    encrypted: bool,
) -> anyhow::Result<ServerConfigDoc> {
    let plain = if encrypted {
        let mut reader = repo
            .key_ring()
            .decrypt(bytes)
            .await
            .map_err(|e| anyhow::anyhow!("cannot decrypt {key}: {e}"))?;
        let mut out = Vec::new();
        futures::AsyncReadExt::read_to_end(&mut reader, &mut out).await?;
        out
    } else {
        bytes.to_vec()
    };
    serde_json::from_slice(&plain)
        .map_err(|e| anyhow::anyhow!("{key} is not a server configuration document: {e}"))
}

/// Every capture of `instance` that cannot be read back, with why (for `verify`). Encrypted
/// captures are read only when an identity is configured. `Err` only when the store is not
/// reachable.
pub async fn unreadable(repo: &Repo, instance: &str) -> Result<Vec<(String, String)>, RepoError> {
    let mut out = Vec::new();
    for (ms, hash, encrypted) in list(repo, instance).await? {
        let key = keys::server_config(instance, ms, &hash, encrypted);
        if encrypted && !repo.key_ring().can_decrypt() {
            continue;
        }
        let bytes = match repo.get(&key).await {
            Ok(b) => b,
            Err(e @ RepoError::Unreachable { .. }) => return Err(e),
            Err(e) => {
                out.push((key, e.to_string()));
                continue;
            }
        };
        if let Err(e) = decode(repo, &key, &bytes, encrypted).await {
            out.push((key, format!("{e:#}")));
        }
    }
    Ok(out)
}

/// The capture a restore of a snapshot created at `created_ms` uses: the newest at or before
/// it (None: the snapshot predates captures, or the server was never asked).
pub async fn for_snapshot(
    repo: &Repo,
    instance: &str,
    created_ms: i64,
) -> anyhow::Result<Option<ServerConfigDoc>> {
    let Some((ms, hash, encrypted)) = list(repo, instance)
        .await?
        .into_iter()
        .rfind(|(ms, _, _)| *ms <= created_ms)
    else {
        return Ok(None);
    };
    let key = keys::server_config(instance, ms, &hash, encrypted);
    let doc = read(repo, &key, encrypted).await?;
    if doc.format_version > DOC_VERSION {
        tracing::warn!(%key, version = doc.format_version, "server configuration written by a newer aofvault; not restored");
        return Ok(None);
    }
    Ok(Some(doc))
}
