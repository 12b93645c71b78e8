//! From a validated configuration to the things commands work with: the repository (with its
//! encryption keys), the instance name, the server client settings. Every reading command
//! (list, restore, verify, drift, prune) opens the repository with [`open_for_reading`] and
//! chooses its instance with [`pick_instance`]; they live here, below all of them.

use std::time::Duration;

use aofvault_config::{Config, RepoUrl};

use crate::exit::Failure;
use crate::repo::{AzureSpec, GcsSpec, KeyRing, Repo, RepoSpec, S3Spec};

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
        RepoUrl::Azure { container, prefix } => {
            let az = &cfg.repository.azure;
            RepoSpec::Azure(AzureSpec {
                container: container.clone(),
                prefix: prefix.clone(),
                account: az.account.clone(),
                access_key: az.access_key.as_ref().map(|s| s.expose().to_string()),
                sas_token: az.sas_token.as_ref().map(|s| s.expose().to_string()),
                endpoint: az.endpoint.clone(),
                use_emulator: az.use_emulator,
                allow_http: az.allow_http,
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
            })
        }
        RepoUrl::Gcs { bucket, prefix } => RepoSpec::Gcs(GcsSpec {
            bucket: bucket.clone(),
            prefix: prefix.clone(),
            service_account_file: cfg.repository.gcs.service_account_file.clone(),
            base_url: cfg.repository.gcs.base_url.clone(),
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
        }),
    }
}

pub fn open_repo(cfg: &Config) -> anyhow::Result<Repo> {
    let keys = encryption_keys(cfg)?;
    Ok(Repo::open(&repo_spec(cfg), cfg.repository.compression_level)?.with_key_ring(keys))
}

/// The age keys of `[repository] encryption_*` (none: objects are written plain). The
/// configuration checked their shape; this parses them. A key that does not parse is a
/// configuration error (exit 2) naming where it came from, never its text.
pub fn encryption_keys(cfg: &Config) -> anyhow::Result<KeyRing> {
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
    let keys = KeyRing::parse(&recipients, identities)
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

/// Opens the repository for reading commands: unreachable and empty are different errors.
pub async fn open_for_reading(cfg: &Config) -> anyhow::Result<Repo> {
    let repo = open_repo(cfg)?;
    repo.check_format().await?;
    Ok(repo)
}

/// Whether `name` looks like the default instance name (`<host>-<port>` or `<host>-local`),
/// i.e. the user did not choose it.
fn looks_default(name: &str) -> bool {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            hostname::get()
                .ok()
                .map(|h| h.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    // The same host part the configuration derives a default name from.
    let host = aofvault_config::instance_host(&host);
    name.strip_prefix(host.as_str())
        .and_then(|r| r.strip_prefix('-'))
        .is_some_and(|suffix| {
            suffix == "local" || (!suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// The instance a reading command works on: the configured instance when the repository has
/// it; when the name is only the default one (`<host>-<port>`) and the repository holds exactly
/// one instance, that one; otherwise an error that lists what the repository holds.
pub async fn pick_instance(cfg: &Config, repo: &Repo) -> anyhow::Result<String> {
    let configured = &cfg.repository.instance;
    let instances = repo.instances().await?;
    if instances.contains(configured) {
        return Ok(configured.clone());
    }
    let listed = instances.join(", ");
    match instances.as_slice() {
        [] => Err(
            anyhow::anyhow!("repository {} holds no instance yet", repo.url())
                .context(Failure::RepoEmpty),
        ),
        [only] if looks_default(configured) => {
            tracing::info!(instance = %only, "using the repository's only instance");
            Ok(only.clone())
        }
        _ if looks_default(configured) => Err(anyhow::anyhow!(
            "repository {} holds several instances ({listed}): choose one with --instance",
            repo.url()
        )
        .context(Failure::Usage)),
        _ => Err(anyhow::anyhow!(
            "instance {configured} is not in repository {} (it holds: {listed})",
            repo.url()
        )
        .context(Failure::RepoEmpty)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_recognised() {
        let host = std::env::var("HOSTNAME")
            .ok()
            .or_else(|| {
                hostname::get()
                    .ok()
                    .map(|h| h.to_string_lossy().into_owned())
            })
            .unwrap_or_default();
        if host.is_empty()
            || !host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return;
        }
        assert!(looks_default(&format!("{host}-6379")));
        assert!(looks_default(&format!("{host}-local")));
        assert!(!looks_default("db1"));
        assert!(!looks_default(&format!("{host}-prod")));
    }
}
