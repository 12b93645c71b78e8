//! From a validated configuration to the things commands work with: the repository, the
//! instance name, the server client settings.

use std::time::Duration;

use aofvault_config::{Config, RepoUrl};

use crate::repo::{Repo, RepoSpec, S3Spec};

/// The repository location described by the configuration (credentials included, never printed:
/// `RepoSpec`'s `Debug` shows the URL only).
pub fn repo_spec(cfg: &Config) -> RepoSpec {
    match &cfg.repository.url {
        RepoUrl::File(p) => RepoSpec::File(p.clone()),
        RepoUrl::Memory(n) => RepoSpec::Memory(n.clone()),
        RepoUrl::S3 { bucket, prefix } => {
            let s3 = &cfg.repository.s3;
            RepoSpec::S3(S3Spec {
                bucket: bucket.clone(),
                prefix: prefix.clone(),
                endpoint: s3.endpoint.clone(),
                region: s3.region.clone(),
                allow_http: s3.allow_http,
                access_key_id: s3.access_key_id.clone(),
                secret_access_key: s3
                    .secret_access_key
                    .as_ref()
                    .map(|s| s.expose().to_string()),
                session_token: s3.session_token.as_ref().map(|s| s.expose().to_string()),
                virtual_hosted_style: s3.virtual_hosted_style,
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
            })
        }
    }
}

pub fn open_repo(cfg: &Config) -> anyhow::Result<Repo> {
    Repo::open(&repo_spec(cfg), cfg.repository.compression_level)
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
