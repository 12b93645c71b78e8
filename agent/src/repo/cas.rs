//! Conditional writes: "write this only if the object is still the one I read" — the one
//! primitive a lease needs so that two agents can never both believe they hold it.
//!
//! Object stores do it themselves: a create-only put (`If-None-Match: *`) for an absent object,
//! and an update that names the version read (`If-Match: <ETag>`, `PutMode::Update`) for an
//! existing one; the store refuses the write when another writer came first. A `file://`
//! repository does the same under an exclusive `flock` on the object's folder: read, compare the
//! bytes with the ones read before, write a temporary file and rename it into place, unlock.
//! Readers never see a half-written object (rename), and writers are serialised (the lock), so
//! this holds for any number of agents on one host (or on a filesystem with working `flock`).
//!
//! Only the lease uses these; every other object is written once.

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use super::{Repo, RepoError, Result};

/// What a conditional write compares against: the version the writer read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// The store's own version (ETag and/or version id).
    Store {
        e_tag: Option<String>,
        version: Option<String>,
    },
    /// A local file's whole content (a lease document is a few hundred bytes).
    Content(Bytes),
}

/// The condition of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Only if nothing is there.
    Absent,
    /// Only if the object is still this version.
    Version(Version),
}

impl Repo {
    /// Reads `key` with the version a later [`Repo::put_if`] compares against.
    pub async fn get_versioned(&self, key: &str) -> Result<Option<(Bytes, Version)>> {
        if let Some(root) = &self.local_root {
            let path = root.join(key);
            return match std::fs::read(&path) {
                Ok(b) => {
                    let b = Bytes::from(b);
                    Ok(Some((b.clone(), Version::Content(b))))
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(self.local_err(key, e)),
            };
        }
        let r = match self.store.get(&self.path(key)).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.map_err(key, e)),
        };
        let version = Version::Store {
            e_tag: r.meta.e_tag.clone(),
            version: r.meta.version.clone(),
        };
        let bytes = r.bytes().await.map_err(|e| self.map_err(key, e))?;
        Ok(Some((bytes, version)))
    }

    /// Writes `data` to `key` only if `expect` still holds; `Precondition` if another writer
    /// came first. Returns the new version.
    pub async fn put_if(&self, key: &str, data: Bytes, expect: &Expect) -> Result<Version> {
        if let Some(root) = &self.local_root {
            let (root, key_s, expect) = (root.clone(), key.to_string(), expect.clone());
            let data2 = data.clone();
            let done =
                tokio::task::spawn_blocking(move || local_put_if(&root, &key_s, &data2, &expect))
                    .await
                    .map_err(|e| self.local_err(key, std::io::Error::other(e)))?;
            return match done {
                Ok(true) => Ok(Version::Content(data)),
                Ok(false) => Err(RepoError::Precondition {
                    key: key.to_string(),
                }),
                Err(e) => Err(self.local_err(key, e)),
            };
        }
        let mode = match expect {
            Expect::Absent => PutMode::Create,
            Expect::Version(Version::Store { e_tag, version }) => PutMode::Update(UpdateVersion {
                e_tag: e_tag.clone(),
                version: version.clone(),
            }),
            Expect::Version(Version::Content(_)) => {
                return Err(RepoError::Other {
                    url: self.url.clone(),
                    reason: format!("{key}: a file version given to an object store"),
                })
            }
        };
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&self.path(key), PutPayload::from(data), opts)
            .await
        {
            Ok(r) => Ok(Version::Store {
                e_tag: r.e_tag,
                version: r.version,
            }),
            Err(object_store::Error::Precondition { .. })
            | Err(object_store::Error::AlreadyExists { .. }) => Err(RepoError::Precondition {
                key: key.to_string(),
            }),
            // An update of an object deleted meanwhile.
            Err(object_store::Error::NotFound { .. }) => Err(RepoError::Precondition {
                key: key.to_string(),
            }),
            Err(e) => Err(self.map_err(key, e)),
        }
    }

    fn local_err(&self, key: &str, e: std::io::Error) -> RepoError {
        RepoError::Other {
            url: self.url.clone(),
            reason: format!("{key}: {e}"),
        }
    }
}

/// The `file://` compare-and-swap: `Ok(false)` when the condition no longer holds.
fn local_put_if(root: &Path, key: &str, data: &[u8], expect: &Expect) -> std::io::Result<bool> {
    let path = root.join(key);
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| root.to_path_buf());
    std::fs::create_dir_all(&dir)?;
    // The folder is the lock: every conditional writer of an object in it takes it first.
    let lock = std::fs::File::open(&dir)?;
    lock.lock()?;
    let current = match std::fs::read(&path) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let holds = match (expect, &current) {
        (Expect::Absent, None) => true,
        (Expect::Version(Version::Content(want)), Some(cur)) => want.as_ref() == cur.as_slice(),
        _ => false,
    };
    if holds {
        let tmp = temp_name(&path);
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
    }
    lock.unlock()?;
    Ok(holds)
}

fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{:016x}.tmp", rand::random::<u64>()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::repo::RepoSpec;

    async fn race(repo: Repo) -> usize {
        // 16 writers read the same version and all try to replace it: exactly one may win.
        let key = "instances/x/lease.json";
        repo.put_if(key, Bytes::from_static(b"v0"), &Expect::Absent)
            .await
            .unwrap();
        let (_, v) = repo.get_versioned(key).await.unwrap().unwrap();
        let mut tasks = Vec::new();
        for i in 0..16 {
            let (repo, v) = (repo.clone(), v.clone());
            tasks.push(tokio::spawn(async move {
                repo.put_if(key, Bytes::from(format!("w{i}")), &Expect::Version(v))
                    .await
            }));
        }
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => won += 1,
                Err(RepoError::Precondition { .. }) => {}
                Err(e) => panic!("{e}"),
            }
        }
        won
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_writer_wins_on_a_file_repository() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::open(&RepoSpec::File(dir.path().to_path_buf()), 3).unwrap();
        for _ in 0..20 {
            std::fs::remove_dir_all(dir.path().join("instances")).ok();
            assert_eq!(race(repo.clone()).await, 1);
        }
        // Absent is refused once something is there.
        let r = repo
            .put_if("instances/x/lease.json", Bytes::new(), &Expect::Absent)
            .await;
        assert!(matches!(r, Err(RepoError::Precondition { .. })), "{r:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn one_writer_wins_on_an_object_store() {
        let repo = Repo::open(&RepoSpec::Memory("cas-race".into()), 3).unwrap();
        assert_eq!(race(repo).await, 1);
    }
}
