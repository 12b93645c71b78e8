//! `[repository]` and `[repository.s3]`: the repository URL, the instance name, compression,
//! encryption keys (in [`super::encryption`]), and the S3 client options (Azure and GCS in
//! [`super::cloud`]), with the standard `AWS_*` variables filling what the file
//! leaves unset (the file wins, as with other S3 tools' explicit options).

use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use super::source::read_secret;
use super::Check;
use crate::error::ErrorKind;
use crate::model::{RepoUrl, Repository, Source, State, S3};
use crate::raw::{RawRepository, RawS3};
use crate::secret::Secret;

/// The zstd level used when `compression` is unset or just `"zstd"`.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

/// Default Redis port, used in the default instance name when the URL names none.
const REDIS_PORT: u16 = 6379;

pub(super) fn validate(
    raw: RawRepository,
    source: &Source,
    state: &State,
    check: &mut Check,
) -> Repository {
    let url = match raw.url.as_deref() {
        Some(text) => repo_url(text, check),
        None => Some(RepoUrl::File(state.dir.join("repository"))),
    };
    let instance = match raw.instance {
        Some(name) => {
            if let Err(message) = check_instance(&name) {
                check.push(
                    ErrorKind::InvalidValue,
                    "repository.instance",
                    Some(format!("{name:?}")),
                    message,
                );
            }
            name
        }
        None => default_instance(source, check),
    };
    let node = match raw.node {
        Some(name) => {
            if let Err(message) = check_instance(&name) {
                check.push(
                    ErrorKind::InvalidValue,
                    "repository.node",
                    Some(format!("{name:?}")),
                    message,
                );
            }
            name
        }
        None => default_instance(source, check),
    };
    let lease_ttl = check.duration(
        "repository.lease_ttl",
        raw.lease_ttl.as_deref(),
        Duration::from_secs(15),
        Duration::from_secs(3)..=Duration::from_secs(600),
    );
    let step_down_after = check.duration(
        "repository.step_down_after",
        raw.step_down_after.as_deref(),
        Duration::from_secs(5),
        Duration::from_secs(1)..=Duration::from_secs(3600),
    );
    let compression_level = compression(raw.compression.as_deref(), check);
    let is_s3 = matches!(url, Some(RepoUrl::S3 { .. }));
    let is_azure = matches!(url, Some(RepoUrl::Azure { .. }));
    Repository {
        url: url.unwrap_or_else(|| RepoUrl::File(state.dir.join("repository"))),
        instance,
        node,
        lease_ttl,
        step_down_after,
        compression_level,
        encryption: super::encryption::validate(
            raw.encryption_recipients,
            raw.encryption_recipients_file.as_deref(),
            raw.encryption_identity_file.as_deref(),
            check,
        ),
        s3: s3(raw.s3, is_s3, check),
        azure: super::cloud::azure(raw.azure, is_azure, check),
        gcs: super::cloud::gcs(raw.gcs, check),
    }
}

/// `file:///path` (or a bare absolute path), `s3://bucket/prefix`, `az://container/prefix`,
/// `gs://bucket/prefix`, `memory://name`.
fn repo_url(text: &str, check: &mut Check) -> Option<RepoUrl> {
    let text = text.trim();
    let shown = Some(format!("{text:?}"));
    if text.starts_with('/') {
        return Some(RepoUrl::File(PathBuf::from(text)));
    }
    let url = match Url::parse(text) {
        Ok(url) => url,
        Err(e) => {
            let message =
                format!("not a URL ({e}); write file:///path, s3://bucket/prefix, az://container/prefix, gs://bucket/prefix or memory://name");
            check.push(ErrorKind::InvalidValue, "repository.url", shown, message);
            return None;
        }
    };
    let invalid = |check: &mut Check, message: &str| {
        check.push(
            ErrorKind::InvalidValue,
            "repository.url",
            Some(format!("{text:?}")),
            message,
        );
        None
    };
    if url.query().is_some() || url.fragment().is_some() {
        return invalid(check, "a repository URL takes no ?query or #fragment");
    }
    match url.scheme() {
        "file" => match (url.host_str(), url.to_file_path()) {
            (None | Some("") | Some("localhost"), Ok(path)) => Some(RepoUrl::File(path)),
            _ => invalid(check, "file URLs need an absolute path and three slashes: file:///var/backups/aofvault"),
        },
        "s3" => {
            let bucket = url.host_str().unwrap_or_default().to_string();
            if let Err(message) = check_bucket(&bucket) {
                return invalid(check, &message);
            }
            let prefix = url.path().trim_matches('/').to_string();
            Some(RepoUrl::S3 { bucket, prefix })
        }
        "az" | "azure" => {
            let container = url.host_str().unwrap_or_default().to_string();
            if let Err(message) = check_container(&container) {
                return invalid(check, &message);
            }
            let prefix = url.path().trim_matches('/').to_string();
            Some(RepoUrl::Azure { container, prefix })
        }
        "gs" => {
            let bucket = url.host_str().unwrap_or_default().to_string();
            if let Err(message) = check_bucket(&bucket) {
                return invalid(check, &message.replace("s3://", "gs://"));
            }
            let prefix = url.path().trim_matches('/').to_string();
            Some(RepoUrl::Gcs { bucket, prefix })
        }
        "memory" => {
            let name = format!("{}{}", url.host_str().unwrap_or_default(), url.path());
            Some(RepoUrl::Memory(name.trim_matches('/').to_string()))
        }
        other => invalid(
            check,
            &format!("unsupported scheme `{other}`: use file:///path, s3://bucket/prefix, az://container/prefix, gs://bucket/prefix or memory://name"),
        ),
    }
}

/// S3 bucket names: 3–63 characters of lowercase letters, digits, `.` and `-`.
fn check_bucket(bucket: &str) -> Result<(), String> {
    let valid_chars = bucket
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-');
    if (3..=63).contains(&bucket.len()) && valid_chars {
        Ok(())
    } else {
        Err(format!(
            "`{bucket}` is not a bucket name (3-63 characters: a-z, 0-9, '.', '-'); write s3://bucket/prefix"
        ))
    }
}

/// Azure container names: 3–63 characters of lowercase letters, digits and `-`, starting
/// with a letter or digit, no `--`.
fn check_container(name: &str) -> Result<(), String> {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if (3..=63).contains(&name.len())
        && valid_chars
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
    {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not an Azure container name (3-63 characters: a-z, 0-9, '-'); write az://container/prefix"
        ))
    }
}

/// Instance names become one path segment of every object key.
pub fn check_instance(name: &str) -> Result<(), String> {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if (1..=128).contains(&name.len()) && valid_chars && !name.starts_with('.') {
        Ok(())
    } else {
        Err("1-128 characters of A-Z, a-z, 0-9, '.', '_', '-', not starting with '.'".into())
    }
}

/// The host part of a default instance name: `hostname` with every character an instance name
/// may not hold replaced by `-`, no leading dot, `localhost` when nothing is left.
pub fn instance_host(hostname: &str) -> String {
    let host: String = hostname
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    match host.trim_start_matches('.') {
        "" => "localhost".to_string(),
        trimmed => trimmed.to_string(),
    }
}

/// `<hostname>-<port of source.url>`, or `<hostname>-local` without a URL.
fn default_instance(source: &Source, check: &mut Check) -> String {
    let host = match check.env().get("HOSTNAME") {
        Some(name) => name.to_string(),
        None => hostname::get()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let host = instance_host(&host);
    let suffix = match &source.url {
        Some(url) if url.scheme().starts_with("redis") && url.scheme() != "redis+unix" => {
            url.port().unwrap_or(REDIS_PORT).to_string()
        }
        _ => "local".to_string(),
    };
    let mut name = format!("{host}-{suffix}");
    name.truncate(128);
    name
}

/// `"zstd"` → 3, `"zstd:N"` → N (1–22), `"none"` → 0.
fn compression(raw: Option<&str>, check: &mut Check) -> i32 {
    let Some(text) = raw else {
        return DEFAULT_ZSTD_LEVEL;
    };
    let shown = Some(format!("{text:?}"));
    match text.trim().to_ascii_lowercase().as_str() {
        "none" | "off" => 0,
        "zstd" => DEFAULT_ZSTD_LEVEL,
        other => match other.strip_prefix("zstd:").map(str::parse::<i32>) {
            Some(Ok(level)) if (1..=22).contains(&level) => level,
            Some(Ok(_)) => {
                check.push(
                    ErrorKind::OutOfRange,
                    "repository.compression",
                    shown,
                    "zstd level must be between 1 and 22",
                );
                DEFAULT_ZSTD_LEVEL
            }
            _ => {
                check.push(
                    ErrorKind::InvalidValue,
                    "repository.compression",
                    shown,
                    "must be \"zstd\", \"zstd:N\" (N = 1..22) or \"none\"",
                );
                DEFAULT_ZSTD_LEVEL
            }
        },
    }
}

fn s3(raw: RawS3, is_s3: bool, check: &mut Check) -> S3 {
    let env = check.env();
    let endpoint = match raw.endpoint {
        Some(endpoint) => Some(("repository.s3.endpoint", endpoint)),
        None => env
            .first(&["AWS_ENDPOINT_URL", "AWS_ENDPOINT"])
            .map(|(name, value)| (name, value.to_string())),
    };
    let mut endpoint_is_http = false;
    if let Some((origin, text)) = &endpoint {
        match Url::parse(text) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {
                endpoint_is_http = url.scheme() == "http"
            }
            _ => check.push(
                ErrorKind::InvalidValue,
                "repository.s3.endpoint",
                Some(format!("{text:?}")),
                format!("from {origin}: must be an http:// or https:// URL"),
            ),
        }
    }
    let allow_http = match raw.allow_http {
        Some(allow) => allow,
        None => match env.get("AWS_ALLOW_HTTP") {
            Some(text) => env_bool("repository.s3.allow_http", "AWS_ALLOW_HTTP", text, check),
            None => endpoint_is_http,
        },
    };
    if endpoint_is_http && !allow_http {
        check.push(
            ErrorKind::Conflict,
            "repository.s3.allow_http",
            Some("false".into()),
            "the endpoint is http://: set allow_http = true, or use https://",
        );
    }
    let region = raw
        .region
        .or_else(|| {
            env.first(&["AWS_REGION", "AWS_DEFAULT_REGION"])
                .map(|(_, r)| r.to_string())
        })
        .unwrap_or_else(|| "us-east-1".to_string());
    let access_key_id = raw
        .access_key_id
        .or_else(|| env.get("AWS_ACCESS_KEY_ID").map(String::from));
    let secret_access_key = secret(
        raw.secret_access_key_file.as_deref(),
        "repository.s3.secret_access_key_file",
        "AWS_SECRET_ACCESS_KEY",
        check,
    );
    let session_token = secret(
        raw.session_token_file.as_deref(),
        "repository.s3.session_token_file",
        "AWS_SESSION_TOKEN",
        check,
    );
    if is_s3 && access_key_id.is_some() != secret_access_key.is_some() {
        check.push(
            ErrorKind::Conflict,
            "repository.s3.access_key_id",
            None,
            "set both an access key id and a secret access key (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), or neither",
        );
    }
    let virtual_hosted_style = match raw.virtual_hosted_style {
        Some(v) => v,
        None => env
            .get("AWS_VIRTUAL_HOSTED_STYLE_REQUEST")
            .is_some_and(|text| {
                env_bool(
                    "repository.s3.virtual_hosted_style",
                    "AWS_VIRTUAL_HOSTED_STYLE_REQUEST",
                    text,
                    check,
                )
            }),
    };
    S3 {
        endpoint: endpoint.map(|(_, text)| text),
        region,
        allow_http,
        access_key_id,
        secret_access_key,
        session_token,
        virtual_hosted_style,
    }
}

/// A secret from `file` if set, else from the environment variable `var`.
pub(super) fn secret(
    file: Option<&Path>,
    key: &str,
    var: &str,
    check: &mut Check,
) -> Option<Secret> {
    match file {
        Some(path) => read_secret(key, path, check),
        None => check.env().get(var).map(Secret::new),
    }
}

pub(super) fn env_bool(path: &str, var: &str, text: &str, check: &mut Check) -> bool {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => true,
        "0" | "false" | "no" | "off" => false,
        _ => {
            check.push(
                ErrorKind::InvalidValue,
                path,
                Some(format!("{text:?}")),
                format!("from {var}: must be true or false"),
            );
            false
        }
    }
}
