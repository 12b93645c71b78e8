//! Stage one: serde types that mirror the TOML file exactly.
//!
//! Every field is optional (a missing key means "use the default") and every struct denies
//! unknown keys. Nothing here interprets a value: durations, sizes, URLs and schedules stay
//! text until [`crate::validate`] turns them into domain types. These types are also the
//! schema: [`crate::parse`] asks serde, key by key, which keys exist.
//!
//! Integers are read as `i64` so that a negative or huge number reaches validation and gets a
//! range error with the field path, instead of a serde type error.

use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// The whole file. Sections are plain structs (absent section = all defaults).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub source: RawSource,
    pub repository: RawRepository,
    pub ship: RawShip,
    pub compact: RawCompact,
    pub schedule: RawSchedule,
    pub retention: RawRetention,
    pub metrics: RawMetrics,
    pub log: RawLog,
    pub state: RawState,
    pub shutdown: RawShutdown,
    pub drift: RawDrift,
    pub restore: RawRestore,
    /// Keys [`crate::parse`] had to drop (unknown, or of the wrong type). They are reported
    /// by [`RawConfig::validate`] together with every other mistake.
    #[serde(skip)]
    pub(crate) rejected: Vec<ConfigError>,
}

impl RawConfig {
    /// The keys the parser dropped, with why; empty for a clean file.
    pub fn rejected(&self) -> &[ConfigError] {
        &self.rejected
    }
}

/// `[source]`: the server whose AOF files are backed up. `Debug` hides `url`, which may
/// still carry a password at this stage.
#[derive(Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSource {
    pub kind: Option<String>,
    pub dir: Option<PathBuf>,
    pub url: Option<String>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub connect_timeout: Option<String>,
    pub command_timeout: Option<String>,
    pub tls: RawTls,
    /// The Redis Cluster this server belongs to (`--cluster`).
    pub cluster: Option<String>,
}

impl fmt::Debug for RawSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.url.as_ref().map(|_| crate::secret::REDACTED);
        f.debug_struct("RawSource")
            .field("kind", &self.kind)
            .field("dir", &self.dir)
            .field("url", &url)
            .field("username", &self.username)
            .field("password_file", &self.password_file)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("tls", &self.tls)
            .field("cluster", &self.cluster)
            .finish()
    }
}

/// `[source.tls]`: client TLS for `rediss://` URLs.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub insecure_skip_verify: Option<bool>,
}

/// `[repository]`: where backups go.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRepository {
    pub url: Option<String>,
    pub instance: Option<String>,
    pub node: Option<String>,
    pub lease_ttl: Option<String>,
    pub step_down_after: Option<String>,
    pub compression: Option<String>,
    pub encryption_recipients: Option<Vec<String>>,
    pub encryption_recipients_file: Option<PathBuf>,
    pub encryption_identity_file: Option<PathBuf>,
    pub s3: RawS3,
    pub azure: RawAzure,
    pub gcs: RawGcs,
}

/// `[repository.azure]`: Azure Blob client options; the `AZURE_STORAGE_*` variables fill
/// what is unset.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAzure {
    pub account: Option<String>,
    pub access_key_file: Option<PathBuf>,
    pub sas_token_file: Option<PathBuf>,
    pub endpoint: Option<String>,
    pub use_emulator: Option<bool>,
    pub allow_http: Option<bool>,
}

/// `[repository.gcs]`: Google Cloud Storage client options; the `GOOGLE_*` variables fill
/// what is unset.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawGcs {
    pub service_account_file: Option<PathBuf>,
    pub base_url: Option<String>,
}

/// `[repository.s3]`: S3 client options; the `AWS_*` variables fill what is unset.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawS3 {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub allow_http: Option<bool>,
    pub access_key_id: Option<String>,
    pub secret_access_key_file: Option<PathBuf>,
    pub session_token_file: Option<PathBuf>,
    pub virtual_hosted_style: Option<bool>,
}

/// `[ship]`: how AOF bytes become segments.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawShip {
    pub interval: Option<String>,
    pub segment_max: Option<RawSize>,
    pub poll_interval: Option<String>,
    pub upload_concurrency: Option<i64>,
}

/// `[compact]`: when to ask the server for `BGREWRITEAOF`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCompact {
    pub enabled: Option<bool>,
    pub rewrite_percentage: Option<i64>,
    pub rewrite_min_size: Option<RawSize>,
    pub cooldown: Option<String>,
    pub check_interval: Option<String>,
}

/// `[schedule]`: the daemon's own timetable.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSchedule {
    pub snapshot: Option<String>,
    pub verify: Option<String>,
    pub prune: Option<String>,
    pub drift_check: Option<String>,
}

/// `[drift]`: how `verify --against` and `[schedule] drift_check` read the live server.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDrift {
    pub sample: Option<i64>,
    pub rate: Option<i64>,
    pub settle: Option<String>,
}

/// `[restore]`: how `aofvault restore` rides out a flaky repository.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRestore {
    pub retry_deadline: Option<String>,
}

/// `[retention]`: which snapshots `prune` keeps.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRetention {
    pub keep_last: Option<i64>,
    pub keep_within: Option<String>,
    pub keep_daily: Option<i64>,
    pub keep_weekly: Option<i64>,
    pub keep_monthly: Option<i64>,
    pub gc_grace: Option<String>,
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMetrics {
    pub listen: Option<String>,
}

/// `[log]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    pub level: Option<String>,
    pub format: Option<String>,
}

/// `[state]`: the agent's local cache (cursors, status).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawState {
    pub dir: Option<PathBuf>,
}

/// `[shutdown]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawShutdown {
    pub deadline: Option<String>,
}

/// A size as written: a number of bytes, or text with a unit (`"64MiB"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum RawSize {
    Bytes(i64),
    Text(String),
}

impl fmt::Display for RawSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawSize::Bytes(n) => write!(f, "{n}"),
            RawSize::Text(text) => write!(f, "{text:?}"),
        }
    }
}

impl<'de> Deserialize<'de> for RawSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(SizeVisitor)
    }
}

struct SizeVisitor;

impl Visitor<'_> for SizeVisitor {
    type Value = RawSize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size like \"64MiB\" or a number of bytes")
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<RawSize, E> {
        Ok(RawSize::Bytes(n))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<RawSize, E> {
        i64::try_from(n)
            .map(RawSize::Bytes)
            .map_err(|_| E::custom("size too large"))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<RawSize, E> {
        Ok(RawSize::Text(text.to_string()))
    }
}
