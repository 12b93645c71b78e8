//! Stage two: the validated configuration the agent runs on.
//!
//! Every value here has been checked and every default filled in, so the agent never
//! re-validates. `Serialize` renders the effective configuration for `config check --json`
//! (durations as `"1h 30m"`, secrets as `***`); `Debug` never shows a secret either.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::schedule::Schedule;
use crate::secret::Secret;

/// The whole validated configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub source: Source,
    pub repository: Repository,
    pub ship: Ship,
    pub compact: Compact,
    pub schedule: Schedules,
    pub retention: Retention,
    pub metrics: Metrics,
    pub log: Log,
    pub state: State,
    pub shutdown: Shutdown,
    pub drift: Drift,
    pub restore: Restore,
}

/// Which server family the source directory belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Detect from the files in `source.dir` (and `INFO server` when a URL is set).
    Auto,
    Kevy,
    /// Redis or Valkey.
    Redis,
}

/// `[source]`.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    pub kind: SourceKind,
    /// The server's data directory. `None` only for commands that do not read it
    /// (restore, list, verify); `run` and `backup` require it.
    pub dir: Option<PathBuf>,
    /// `redis://`, `rediss://` or `unix://` URL, without credentials (those moved to
    /// `username` / `password`).
    #[serde(serialize_with = "opt_display")]
    pub url: Option<url::Url>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub tls: Tls,
    #[serde(serialize_with = "duration")]
    pub connect_timeout: Duration,
    #[serde(serialize_with = "duration")]
    pub command_timeout: Duration,
    /// The Redis Cluster the server belongs to: the agent records the cluster's topology
    /// under this name (docs/CLUSTERS.md).
    pub cluster: Option<String>,
}

/// `[source.tls]`: used with `rediss://`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
}

/// Where the repository lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoUrl {
    /// `file:///absolute/path` (the default: `file://<state.dir>/repository`).
    File(PathBuf),
    /// `s3://bucket/prefix`; `prefix` has no leading or trailing `/` and may be empty.
    S3 { bucket: String, prefix: String },
    /// `az://container/prefix`: Azure Blob Storage.
    Azure { container: String, prefix: String },
    /// `gs://bucket/prefix`: Google Cloud Storage.
    Gcs { bucket: String, prefix: String },
    /// `memory://name`: an in-process store, for tests.
    Memory(String),
}

impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RepoUrl::File(path) => write!(f, "file://{}", path.display()),
            RepoUrl::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            RepoUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            RepoUrl::Azure { container, prefix } if prefix.is_empty() => {
                write!(f, "az://{container}")
            }
            RepoUrl::Azure { container, prefix } => write!(f, "az://{container}/{prefix}"),
            RepoUrl::Gcs { bucket, prefix } if prefix.is_empty() => write!(f, "gs://{bucket}"),
            RepoUrl::Gcs { bucket, prefix } => write!(f, "gs://{bucket}/{prefix}"),
            RepoUrl::Memory(name) => write!(f, "memory://{name}"),
        }
    }
}

impl Serialize for RepoUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// `[repository]`.
#[derive(Debug, Clone, Serialize)]
pub struct Repository {
    pub url: RepoUrl,
    /// This server's name inside the repository: `[A-Za-z0-9._-]`, 1–128 characters.
    pub instance: String,
    /// This agent's name in a replication group (several agents, one `instance`): the
    /// default is `<hostname>-<port>`, as a default instance name.
    pub node: String,
    /// How long a lease holder's document may stay unchanged before another agent of the
    /// group takes the lease over (judged on the taker's own clock).
    #[serde(serialize_with = "duration")]
    pub lease_ttl: Duration,
    /// How long the lease holder's server may stay unreachable, while another member of the
    /// group is alive, before the holder steps down (a primary that restarts within it keeps
    /// its agent and its lease).
    #[serde(serialize_with = "duration")]
    pub step_down_after: Duration,
    /// zstd level 1–22, or 0 for no compression.
    pub compression_level: i32,
    pub encryption: Encryption,
    pub s3: S3,
    pub azure: Azure,
    pub gcs: Gcs,
}

/// `[repository] encryption_*`: age keys, checked for shape here and parsed by the agent.
/// With neither list set, objects are written unencrypted.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Encryption {
    /// Public keys (`age1...`) new objects are encrypted to: `encryption_recipients` then the
    /// lines of `encryption_recipients_file`. Not secret.
    pub recipients: Vec<String>,
    /// Secret keys (`AGE-SECRET-KEY-1...`, one per line) that read objects back: the
    /// `encryption_identity_file`, or `AOFVAULT_ENCRYPTION_IDENTITY`.
    pub identities: Option<Secret>,
    /// Where `identities` came from (a path, or the variable's name), for messages.
    pub identities_from: Option<String>,
}

impl Encryption {
    /// Whether new objects are encrypted (any key configured: identities alone encrypt to
    /// their own public keys).
    pub fn is_on(&self) -> bool {
        !self.recipients.is_empty() || self.identities.is_some()
    }
}

/// `[repository.s3]`, with the `AWS_*` environment filled in.
#[derive(Debug, Clone, Serialize)]
pub struct S3 {
    pub endpoint: Option<String>,
    pub region: String,
    pub allow_http: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<Secret>,
    pub session_token: Option<Secret>,
    pub virtual_hosted_style: bool,
}

/// `[repository.azure]`, with the `AZURE_STORAGE_*` environment filled in. Other Azure
/// credentials (service principal, workload or managed identity, Azure CLI) are read by the
/// client itself from their standard `AZURE_*` variables.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Azure {
    pub account: Option<String>,
    pub access_key: Option<Secret>,
    pub sas_token: Option<Secret>,
    pub endpoint: Option<String>,
    /// Talk to Azurite (`AZURITE_BLOB_STORAGE_URL`, default `http://127.0.0.1:10000`).
    pub use_emulator: bool,
    pub allow_http: bool,
}

/// `[repository.gcs]`, with the `GOOGLE_*` environment filled in. Without a service account
/// file, the client uses application default credentials.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Gcs {
    pub service_account_file: Option<PathBuf>,
    pub base_url: Option<String>,
}

/// `[ship]`.
#[derive(Debug, Clone, Serialize)]
pub struct Ship {
    /// How long new AOF bytes may wait before they are cut into a segment and uploaded.
    #[serde(serialize_with = "duration")]
    pub interval: Duration,
    /// Largest segment, in bytes; a longer burst is cut into several.
    pub segment_max: u64,
    /// Fallback poll of the AOF files when file events are missed.
    #[serde(serialize_with = "duration")]
    pub poll_interval: Duration,
    pub upload_concurrency: usize,
}

/// `[compact]`.
#[derive(Debug, Clone, Serialize)]
pub struct Compact {
    pub enabled: bool,
    pub rewrite_percentage: u64,
    pub rewrite_min_size: u64,
    #[serde(serialize_with = "duration")]
    pub cooldown: Duration,
    #[serde(serialize_with = "duration")]
    pub check_interval: Duration,
}

/// `[schedule]`: `None` means the job does not run on its own.
#[derive(Debug, Clone, Serialize)]
pub struct Schedules {
    pub snapshot: Option<Schedule>,
    pub verify: Option<Schedule>,
    pub prune: Option<Schedule>,
    pub drift_check: Option<Schedule>,
}

/// `[drift]`: the drift check's load on the live server.
#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    /// Keys compared: `0` = every key, else that many random keys of each side.
    pub sample: u64,
    /// Commands per second the check may send to the live server.
    pub rate: u32,
    /// How long a re-check waits for the repository to cover the moment a difference was
    /// seen.
    #[serde(serialize_with = "duration")]
    pub settle: Duration,
}

/// `[restore]`.
#[derive(Debug, Clone, Serialize)]
pub struct Restore {
    /// How long one object (or the plan's reads of the repository) keeps being retried after
    /// a transient failure before the restore gives up (exit 4).
    #[serde(serialize_with = "duration")]
    pub retry_deadline: Duration,
}

/// `[retention]`: a snapshot is kept if any rule keeps it; with no rule set, all are kept.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Retention {
    pub keep_last: Option<u32>,
    #[serde(serialize_with = "opt_duration")]
    pub keep_within: Option<Duration>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    /// How long an unreferenced object survives before it may be deleted.
    #[serde(serialize_with = "duration")]
    pub gc_grace: Duration,
}

impl Retention {
    /// Whether any keep rule is set (without one, `prune` deletes nothing).
    pub fn has_rules(&self) -> bool {
        self.keep_last.is_some()
            || self.keep_within.is_some()
            || self.keep_daily.is_some()
            || self.keep_weekly.is_some()
            || self.keep_monthly.is_some()
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[log]`.
#[derive(Debug, Clone, Serialize)]
pub struct Log {
    /// An `EnvFilter` directive: `info`, or `warn,aofvault=debug`.
    pub level: String,
    pub format: LogFormat,
}

impl Default for Log {
    /// `info`, text: what commands that read no configuration log with.
    fn default() -> Self {
        Log {
            level: "info".to_string(),
            format: LogFormat::Text,
        }
    }
}

/// `[state]`.
#[derive(Debug, Clone, Serialize)]
pub struct State {
    pub dir: PathBuf,
}

/// `[shutdown]`.
#[derive(Debug, Clone, Serialize)]
pub struct Shutdown {
    /// How long a stop may take (flush, upload, publish) before work is abandoned. Keep it
    /// below systemd's `TimeoutStopSec` (30 s in the shipped units).
    #[serde(serialize_with = "duration")]
    pub deadline: Duration,
}

fn duration<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&crate::units::format_duration(*d))
}

fn opt_duration<S: Serializer>(d: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => duration(d, serializer),
        None => serializer.serialize_none(),
    }
}

fn opt_display<T: fmt::Display, S: Serializer>(
    value: &Option<T>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => serializer.collect_str(value),
        None => serializer.serialize_none(),
    }
}
