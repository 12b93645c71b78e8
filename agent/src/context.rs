//! From a validated configuration to the things commands work with: the repository (with its
//! encryption keys), the instance name, the server client settings.

use std::time::Duration;

use aofvault_config::{Config, RepoUrl};

use crate::repo::{Keys, Repo, RepoSpec, S3Spec};

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
    let keys = encryption_keys(cfg)?;
    Ok(Repo::open(&repo_spec(cfg), cfg.repository.compression_level)?.with_keys(keys))
}

/// The age keys of `[repository] encryption_*` (none: objects are written plain). The
/// configuration checked their shape; this parses them. A key that does not parse is a
/// configuration error (exit 2) naming where it came from, never its text.
pub fn encryption_keys(cfg: &Config) -> anyhow::Result<Keys> {
    let enc = &cfg.repository.encryption;
    let recipients = if enc.recipients.is_empty() {
        vec![]
    } else {
        vec![(
            "repository.encryption_recipients (with the recipients file)".to_string(),
            enc.recipients.join("\n"),
        )]
    };
    let identities = enc.identities.as_ref().map(|s| {
        (
            enc.identities_from.as_deref().unwrap_or("the identity"),
            s.expose(),
        )
    });
    let keys = Keys::parse(&recipients, identities)
        .map_err(|e| anyhow::Error::new(e).context(crate::exit::Failure::Usage))?;
    if keys.encrypts() {
        // Public keys only: fine to log.
        tracing::debug!(recipients = ?keys.recipients(), can_decrypt = keys.can_decrypt(), "encryption at rest on");
    }
    Ok(keys)
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
