//! aofvault's configuration: one TOML file, read in two stages.
//!
//! 1. [`parse`] reads the text into [`RawConfig`] ([`raw`]): serde types that mirror the file,
//!    every field optional, unknown keys denied. Only a TOML syntax error fails here; every
//!    unknown key and every value of the wrong TOML type is set aside, with its path, for
//!    validation to report along with the rest.
//! 2. [`RawConfig::validate`] ([`validate`]) turns the raw values into a [`Config`]
//!    ([`model`]): durations and sizes parsed ([`units`]), schedules compiled ([`schedule`]),
//!    URLs checked, secrets read from their files or the environment snapshot ([`Env`]) and
//!    wrapped in [`Secret`], defaults filled in. Again every mistake is collected.
//!
//! Both stages return [`ConfigErrors`]: a list of [`ConfigError`]s, each with the dotted
//! field path (`ship.interval`), the offending value and what would be right. The agent's
//! flags (`--source`, `--repo`, ...) are applied to the [`RawConfig`] between the stages, so
//! they go through the same checks. [`EXAMPLE`] is the commented example file printed by
//! `aofvault config example`; tests keep it valid, complete and documented.

mod env;
mod error;
mod model;
mod parse;
pub mod raw;
pub mod schedule;
mod secret;
pub mod units;
mod validate;

pub use env::Env;
pub use error::{ConfigError, ConfigErrors, ErrorKind};
pub use model::{
    Azure, Compact, Config, Drift, Encryption, Gcs, Log, LogFormat, Metrics, RepoUrl, Repository,
    Restore, Retention, Schedules, Ship, Shutdown, Source, SourceKind, State, Tls, S3,
};
pub use parse::parse;
pub use raw::RawConfig;
pub use schedule::Schedule;
pub use secret::{Secret, REDACTED};
pub use validate::encryption::IDENTITY_ENV;
pub use validate::repository::{check_instance, instance_host, DEFAULT_ZSTD_LEVEL};
pub use validate::source::PASSWORD_ENV;
pub use validate::{check_log_level, SYSTEM_STATE_DIR};

/// The commented example configuration (`aofvault config example`). It validates once its
/// `source.dir` (set to `/var/lib/kevy`) is what the host has.
pub const EXAMPLE: &str = include_str!("../aofvault.example.toml");

/// The config file read when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/aofvault/aofvault.toml";

impl Config {
    /// [`parse`] then [`RawConfig::validate`], for callers that have the text in hand.
    pub fn from_toml(toml_text: &str, origin: &str, env: &Env) -> Result<Config, ConfigErrors> {
        parse(toml_text, origin)?.validate(env)
    }
}
