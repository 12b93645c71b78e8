//! Loading the configuration: the file, then the command-line overrides, then validation.
//!
//! The flags (`--source`, `--repo`, `--server`, ...) are written into the raw configuration
//! before validation, so a bad flag is reported like a bad key (`--repo ftp://x` is a
//! `repository.url` error) and all mistakes, from the file and the flags, come back together.
//! A missing *default* file is fine when the flags say enough; a missing file named with
//! `--config` is an error. The same function serves start-up and SIGHUP reloads.

use std::path::{Path, PathBuf};

use aofvault_config::{
    parse, Config, ConfigError, ConfigErrors, Env, ErrorKind, RawConfig, DEFAULT_CONFIG_PATH,
};

use crate::cli::{GlobalArgs, LogFormatArg};

/// Why the configuration could not be loaded. Both variants map to exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Every mistake found, from the file and the flags.
    #[error("{origin}: {errors}")]
    Invalid {
        origin: Origin,
        errors: ConfigErrors,
    },
}

/// Where the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// This file (and the flags).
    File(PathBuf),
    /// The flags alone: the default file does not exist.
    FlagsOnly { default_path: PathBuf },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::FlagsOnly { default_path } => {
                write!(f, "command line (no {})", default_path.display())
            }
        }
    }
}

/// A validated configuration and where it came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub origin: Origin,
    /// Whether the file or `--instance` named the instance; otherwise it was derived from
    /// the host and the server's port (`<host>-local` without `--server`).
    pub instance_named: bool,
}

/// Loads, overrides and validates the configuration. With `require_source`, a missing
/// `source.dir` is one of the errors (the commands that read the server's files need it).
pub fn load(global: &GlobalArgs, require_source: bool) -> anyhow::Result<Config> {
    resolve(global, require_source).map(|loaded| loaded.config)
}

/// Whether the configuration names the instance (`[repository] instance` or `--instance`),
/// rather than deriving it; `true` when it cannot be loaded (then nothing is guessed).
pub fn names_instance(global: &GlobalArgs) -> bool {
    resolve(global, false).map_or(true, |loaded| loaded.instance_named)
}

/// [`load`], also saying where the configuration came from (for `config check`).
pub fn resolve(global: &GlobalArgs, require_source: bool) -> anyhow::Result<Loaded> {
    let default_path = Path::new(DEFAULT_CONFIG_PATH);
    Ok(resolve_with(
        global,
        require_source,
        &Env::from_process(),
        default_path,
    )?)
}

/// The whole loading sequence with the environment and default path passed in.
pub fn resolve_with(
    global: &GlobalArgs,
    require_source: bool,
    env: &Env,
    default_path: &Path,
) -> Result<Loaded, SettingsError> {
    let (path, explicit) = match &global.config {
        Some(path) => (path.clone(), true),
        None => (default_path.to_path_buf(), false),
    };
    let (text, origin) = match std::fs::read_to_string(&path) {
        Ok(text) => (Some(text), Origin::File(path.clone())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => (
            None,
            Origin::FlagsOnly {
                default_path: path.clone(),
            },
        ),
        Err(source) => return Err(SettingsError::Read { path, source }),
    };
    let invalid = |errors| SettingsError::Invalid {
        origin: origin.clone(),
        errors,
    };
    let mut raw = match &text {
        Some(text) => parse(text, &path.display().to_string()).map_err(invalid)?,
        None => RawConfig::default(),
    };
    apply_flags(&mut raw, global);
    let instance_named = raw.repository.instance.is_some();
    let missing_source = require_source && raw.source.dir.is_none();
    let validated = raw.validate(env);
    let mut errors = match &validated {
        Ok(_) => Vec::new(),
        Err(errors) => errors.0.clone(),
    };
    if missing_source {
        let message = match &origin {
            Origin::FlagsOnly { default_path } => format!(
                "required: no config file at {} and no --source DIR",
                default_path.display()
            ),
            Origin::File(_) => {
                "required by this command: set [source] dir, or pass --source DIR".into()
            }
        };
        errors.push(ConfigError::new(
            ErrorKind::Missing,
            "source.dir",
            None,
            message,
        ));
    }
    match validated {
        Ok(config) if errors.is_empty() => Ok(Loaded {
            config,
            origin,
            instance_named,
        }),
        _ => Err(invalid(ConfigErrors(errors))),
    }
}

/// Writes the command-line overrides into the raw configuration.
fn apply_flags(raw: &mut RawConfig, global: &GlobalArgs) {
    if let Some(dir) = &global.source {
        raw.source.dir = Some(absolute(dir));
    }
    if let Some(url) = &global.server {
        raw.source.url = Some(url.clone());
    }
    if let Some(url) = &global.repo {
        raw.repository.url = Some(url.clone());
    }
    if let Some(name) = &global.instance {
        raw.repository.instance = Some(name.clone());
    }
    if let Some(name) = &global.cluster {
        raw.source.cluster = Some(name.clone());
    }
    if let Some(name) = &global.node {
        raw.repository.node = Some(name.clone());
    }
    if let Some(dir) = &global.state_dir {
        raw.state.dir = Some(absolute(dir));
    }
    if let Some(level) = &global.log_level {
        raw.log.level = Some(level.clone());
    }
    if let Some(format) = global.log_format {
        let name = match format {
            LogFormatArg::Text => "text",
            LogFormatArg::Json => "json",
        };
        raw.log.format = Some(name.to_string());
    }
}

/// Flags are relative to the working directory (a file's paths must be absolute).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The sections whose change a reload cannot apply to a running daemon: it keeps following
/// the same server, repository and state until restarted, and says so.
pub fn sections_needing_restart(old: &Config, new: &Config) -> Vec<&'static str> {
    let differs = |a: serde_json::Result<serde_json::Value>,
                   b: serde_json::Result<serde_json::Value>| {
        !matches!((a, b), (Ok(a), Ok(b)) if a == b)
    };
    let mut sections = Vec::new();
    if differs(
        serde_json::to_value(&old.source),
        serde_json::to_value(&new.source),
    ) {
        sections.push("source");
    }
    if differs(
        serde_json::to_value(&old.repository),
        serde_json::to_value(&new.repository),
    ) {
        sections.push("repository");
    }
    if old.state.dir != new.state.dir {
        sections.push("state");
    }
    if old.metrics.listen != new.metrics.listen {
        sections.push("metrics");
    }
    sections
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env::empty()
            .with("STATE_DIRECTORY", "/var/lib/aofvault-test")
            .with("HOSTNAME", "db1")
    }

    fn errors_of(result: Result<Loaded, SettingsError>) -> ConfigErrors {
        match result {
            Err(SettingsError::Invalid { errors, .. }) => errors,
            other => panic!("expected invalid configuration, got {other:?}"),
        }
    }

    #[test]
    fn flags_alone_are_enough_when_the_default_file_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let global = GlobalArgs {
            source: Some("/var/lib/redis".into()),
            repo: Some("s3://backups/db1".into()),
            server: Some("redis://127.0.0.1:6380".into()),
            log_format: Some(LogFormatArg::Json),
            ..GlobalArgs::default()
        };
        let loaded = resolve_with(&global, true, &env(), &dir.path().join("absent.toml")).unwrap();
        assert!(matches!(loaded.origin, Origin::FlagsOnly { .. }));
        let config = loaded.config;
        assert_eq!(
            config.source.dir.as_deref(),
            Some(Path::new("/var/lib/redis"))
        );
        assert_eq!(config.repository.url.to_string(), "s3://backups/db1");
        assert_eq!(config.repository.instance, "db1-6380");
        assert_eq!(config.log.format, aofvault_config::LogFormat::Json);
    }

    #[test]
    fn an_instance_is_named_by_the_file_or_the_flag_else_derived() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("absent.toml");
        let derived = resolve_with(&GlobalArgs::default(), false, &env(), &absent).unwrap();
        assert!(!derived.instance_named);
        assert_eq!(derived.config.repository.instance, "db1-local");
        let flag = GlobalArgs {
            instance: Some("db1-6380".into()),
            ..GlobalArgs::default()
        };
        assert!(
            resolve_with(&flag, false, &env(), &absent)
                .unwrap()
                .instance_named
        );
        let file = dir.path().join("a.toml");
        std::fs::write(&file, "[repository]\ninstance = \"main\"\n").unwrap();
        assert!(
            resolve_with(&GlobalArgs::default(), false, &env(), &file)
                .unwrap()
                .instance_named
        );
    }

    #[test]
    fn a_missing_explicit_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let global = GlobalArgs {
            config: Some(dir.path().join("absent.toml")),
            source: Some("/data".into()),
            ..GlobalArgs::default()
        };
        let result = resolve_with(
            &global,
            true,
            &env(),
            Path::new("/nonexistent/default.toml"),
        );
        assert!(
            matches!(result, Err(SettingsError::Read { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn nothing_at_all_says_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let default_path = dir.path().join("aofvault.toml");
        let errors = errors_of(resolve_with(
            &GlobalArgs::default(),
            true,
            &env(),
            &default_path,
        ));
        assert_eq!(errors.paths(), vec!["source.dir"]);
        assert!(
            errors.0[0].message.contains("no config file at"),
            "{errors}"
        );
        // Commands that do not read the server's files need no source.
        assert!(resolve_with(&GlobalArgs::default(), false, &env(), &default_path).is_ok());
    }

    #[test]
    fn flags_override_the_file_and_are_checked_like_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("aofvault.toml");
        std::fs::write(
            &file,
            "[source]\ndir = \"/from/file\"\n[ship]\ninterval = \"never\"\n",
        )
        .unwrap();
        let global = GlobalArgs {
            config: Some(file.clone()),
            source: Some("relative/dir".into()),
            repo: Some("ftp://nope".into()),
            log_level: Some("loud".into()),
            ..GlobalArgs::default()
        };
        let errors = errors_of(resolve_with(
            &global,
            true,
            &env(),
            Path::new("/nonexistent"),
        ));
        let mut paths = errors.paths();
        paths.sort_unstable();
        // Errors from the file and from the flags, together.
        assert_eq!(paths, vec!["log.level", "repository.url", "ship.interval"]);

        let global = GlobalArgs {
            config: Some(file.clone()),
            source: Some("relative/dir".into()),
            ..GlobalArgs::default()
        };
        std::fs::write(&file, "[source]\ndir = \"/from/file\"\n").unwrap();
        let loaded = resolve_with(&global, true, &env(), Path::new("/nonexistent")).unwrap();
        assert_eq!(loaded.origin, Origin::File(file));
        let dir = loaded.config.source.dir.unwrap();
        assert!(
            dir.is_absolute() && dir.ends_with("relative/dir"),
            "{}",
            dir.display()
        );
    }

    #[test]
    fn invalid_errors_render_with_their_origin() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.toml");
        std::fs::write(&file, "[ship]\nupload_concurrency = 0\n").unwrap();
        let global = GlobalArgs {
            config: Some(file.clone()),
            ..GlobalArgs::default()
        };
        let error = resolve_with(&global, true, &env(), Path::new("/x")).unwrap_err();
        let text = error.to_string();
        assert!(
            text.starts_with(&format!(
                "{}: invalid configuration (2 errors):",
                file.display()
            )),
            "{text}"
        );
        assert_eq!(
            crate::outcome::code_for(&anyhow::Error::new(error)),
            crate::exit::USAGE
        );
    }

    #[test]
    fn restart_is_needed_only_for_what_a_running_daemon_cannot_change() {
        let load = |text: &str| aofvault_config::Config::from_toml(text, "t", &env()).unwrap();
        let old = load("[source]\ndir = \"/a\"\n[ship]\ninterval = \"1s\"\n");
        let new = load("[source]\ndir = \"/a\"\n[ship]\ninterval = \"2s\"\n");
        assert!(sections_needing_restart(&old, &new).is_empty());
        let moved = load("[source]\ndir = \"/b\"\n[repository]\nurl = \"s3://other\"\n");
        assert_eq!(
            sections_needing_restart(&old, &moved),
            vec!["source", "repository"]
        );
    }
}
