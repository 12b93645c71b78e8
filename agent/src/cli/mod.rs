//! The command line: every subcommand and flag, as clap derive types.
//!
//! These names are an interface: operators' scripts call them. Extend, never rename.
//! Every subcommand's `--help` ends with examples; the top-level help also lists the exit
//! codes ([`crate::exit`]). Completions and the man page are generated from these types
//! (`aofvault completions`, `aofvault man`).

pub mod docs;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum, ValueHint};

/// Continuous AOF backup for kevy, Redis and Valkey.
///
/// Follows a server's append-only files as they grow, ships them to object storage (S3 or a
/// local directory), asks the server to compact its AOF when it has grown, and restores a
/// server to the latest second or to any earlier point in time. Configuration:
/// /etc/aofvault/aofvault.toml (see `aofvault config example`), or the flags below.
#[derive(Debug, Parser)]
#[command(name = "aofvault", version, propagate_version = true, after_help = main_after_help())]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every subcommand understands. They override the config file.
#[derive(Debug, Clone, Args, Default)]
pub struct GlobalArgs {
    /// Config file. Not required when the flags below say enough.
    #[arg(long, global = true, env = "AOFVAULT_CONFIG", value_name = "PATH", value_hint = ValueHint::FilePath)]
    pub config: Option<PathBuf>,
    /// The server's data directory (kevy dir, or Redis `dir`).
    #[arg(long, global = true, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub source: Option<PathBuf>,
    /// Repository URL: file:///path, s3://bucket/prefix, az://container/prefix, gs://bucket/prefix.
    #[arg(long, global = true, value_name = "URL", value_hint = ValueHint::Url)]
    pub repo: Option<String>,
    /// The server to talk to (redis:// or rediss://), for INFO, CONFIG GET and BGREWRITEAOF.
    #[arg(long, global = true, value_name = "URL", value_hint = ValueHint::Url)]
    pub server: Option<String>,
    /// Instance name inside the repository. Agents beside a primary and its replicas share
    /// one: the group's history.
    #[arg(long, global = true, value_name = "NAME")]
    pub instance: Option<String>,
    /// The Redis Cluster the server belongs to (`run` records its topology; `list` and
    /// `restore` work on the whole cluster).
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,
    /// This agent's name in its replication group (default `<hostname>-<port>`).
    #[arg(long, global = true, value_name = "NAME")]
    pub node: Option<String>,
    /// Local state directory (cursors, status).
    #[arg(long, global = true, value_name = "DIR", value_hint = ValueHint::DirPath)]
    pub state_dir: Option<PathBuf>,
    /// Log level (error, warn, info, debug, trace), overrides [log] level.
    #[arg(long, global = true, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// Log format, overrides [log] format.
    #[arg(long, global = true, value_enum)]
    pub log_format: Option<LogFormatArg>,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Follow the server's AOF files and ship them continuously (the daemon).
    ///
    /// Runs until SIGTERM or SIGINT; SIGHUP re-reads the configuration (a configuration that
    /// does not validate is rejected and the running one kept). Under systemd it speaks
    /// sd_notify: READY=1 after its start-up checks, STATUS= with the current lag, WATCHDOG=1
    /// while shipping makes progress.
    #[command(after_help = RUN_EXAMPLES)]
    Run(RunArgs),
    /// Take a snapshot now (fresh bases and a manifest), then exit.
    #[command(after_help = BACKUP_EXAMPLES)]
    Backup(BackupArgs),
    /// List instances, snapshots and restorable windows.
    #[command(after_help = LIST_EXAMPLES)]
    List(ListArgs),
    /// Restore a server from the repository, to files or live.
    ///
    /// Without --snapshot or --at, restores the latest state. A restore never mixes objects
    /// from different chains, and refuses a non-empty target unless --force is given (exit
    /// code 7). An unreachable repository (4) and an empty one (5) are different errors.
    #[command(after_help = RESTORE_EXAMPLES)]
    Restore(RestoreArgs),
    /// Every write to keys matching the patterns, in order, from the repository alone.
    ///
    /// Walks every chain of the instance (across compactions: a chain's base shows as `base`
    /// events with the keys' state), in order, shards merged by time. Each line: the time
    /// (`ts` from the AOF's #TS: annotations, else `seen`: when the agent had seen the bytes
    /// by; `chain`: a base's chain start), shard, database, where it came from (`aof` or
    /// `base`) and the command, shortened unless --full. Commands with several keys are shown
    /// when any of them matches.
    #[command(after_help = LOG_EXAMPLES)]
    Log(LogArgs),
    /// Keys created, changed (type, value or TTL) and deleted between two moments.
    ///
    /// Both states are built from the repository alone, holding only the matching keys in
    /// memory (every key without a pattern).
    #[command(after_help = DIFF_EXAMPLES)]
    Diff(DiffArgs),
    /// Check the repository: manifests, objects, checksums, chains.
    ///
    /// Collects every finding and exits with code 3 if there is any.
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify(VerifyArgs),
    /// Apply the retention policy: delete snapshots and objects no longer needed.
    #[command(after_help = PRUNE_EXAMPLES)]
    Prune(PruneArgs),
    /// Show what the agent is doing: per shard chain, offsets, lag, errors.
    #[command(after_help = STATUS_EXAMPLES)]
    Status(StatusArgs),
    /// Decode a server file (RDB, KEVYSNAP, AOF, AOF manifest) and summarise it.
    #[command(after_help = INSPECT_EXAMPLES)]
    Inspect(InspectArgs),
    /// Check or print the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print shell completions.
    #[command(after_help = COMPLETIONS_EXAMPLES)]
    Completions(CompletionsArgs),
    /// Print the man page (roff).
    #[command(after_help = MAN_EXAMPLES)]
    Man,
}

#[derive(Debug, Clone, Args, Default)]
pub struct RunArgs {}

#[derive(Debug, Clone, Args, Default)]
pub struct BackupArgs {
    /// Print the snapshot as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args, Default)]
pub struct ListArgs {
    /// Print as JSON (for scripts).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args, Default)]
pub struct RestoreArgs {
    /// Restore this snapshot (an id from `list`).
    #[arg(long, value_name = "ID", conflicts_with = "at")]
    pub snapshot: Option<String>,
    /// Restore the state at this time (RFC 3339 or unix seconds).
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// Write the files the server loads at start into DIR.
    #[arg(long, value_name = "DIR", conflicts_with = "to", required_unless_present = "to", value_hint = ValueHint::DirPath)]
    pub to_dir: Option<PathBuf>,
    /// Replay into a running server (redis:// or rediss://).
    #[arg(long, value_name = "URL", value_hint = ValueHint::Url)]
    pub to: Option<String>,
    /// Layout of --to-dir: the source's kind by default.
    #[arg(long, value_enum)]
    pub format: Option<TargetFormat>,
    /// The server that will load --to-dir, e.g. `redis:7.0`, `redis:6.2`, `valkey:8.1`,
    /// `kevy`: the files are written in a form that version loads (an older RDB or AOF layout
    /// converted to commands; hash field TTLs it cannot hold reported one by one).
    #[arg(long = "for", value_name = "SERVER[:VERSION]", requires = "to_dir")]
    pub for_server: Option<String>,
    /// Move existing files aside (--to-dir) or write into a non-empty server (--to).
    #[arg(long)]
    pub force: bool,
    /// Print the plan and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// --to: send every command of the log. By default the writes to a key that a later
    /// whole overwrite of it hides (SET, DEL, RESTORE … REPLACE with nothing reading the key in
    /// between) are left out; the target ends in the same state either way.
    #[arg(long, requires = "to")]
    pub exact_replay: bool,
    /// Print the plan or the result as JSON (for scripts).
    #[arg(long)]
    pub json: bool,
    /// Shard count of a kevy --to-dir layout (default: the source's for kevy, 1 for Redis).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub shards: Option<u32>,
    /// How long a failing object (or the plan's reads) is retried while the repository fails
    /// transiently, before exit 4: `2m`, `30s`, `0s` (no retries). Default: `[restore]
    /// retry_deadline` (2m).
    #[arg(long, value_name = "DURATION", value_parser = aofvault_config::units::parse_duration)]
    pub retry_deadline: Option<std::time::Duration>,
    /// With --to-dir: do not write the ACL users captured with the snapshot (users.acl).
    #[arg(long)]
    pub no_acl: bool,
    /// With --to: also create the ACL users captured with the snapshot (ACL SETUSER).
    #[arg(long, requires = "to")]
    pub with_acl: bool,
    /// Restore only the keys matching these patterns (Redis MATCH syntax), as they were at
    /// --at (or the latest state); nothing else in the target is touched.
    #[arg(long, value_name = "PATTERN", num_args = 1.., conflicts_with_all = ["snapshot", "force"])]
    pub keys: Vec<String>,
    /// With --keys: only this database.
    #[arg(long, value_name = "N", requires = "keys")]
    pub db: Option<u32>,
    /// With --keys: replace matching keys the target already holds (refused otherwise).
    #[arg(long, requires = "keys")]
    pub replace: bool,
}

/// `aofvault log`.
#[derive(Debug, Clone, Args, Default)]
pub struct LogArgs {
    /// Key patterns (Redis MATCH syntax: * ? [abc] [^a] [a-z] \x); a key matching any is shown.
    #[arg(value_name = "PATTERN", required = true)]
    pub patterns: Vec<String>,
    /// Only writes at or after this time (RFC 3339 or unix seconds).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only writes at or before this time (RFC 3339 or unix seconds; a whole second is
    /// included).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Only this database.
    #[arg(long, value_name = "N")]
    pub db: Option<u32>,
    /// One JSON object per line (for scripts).
    #[arg(long)]
    pub json: bool,
    /// Whole values instead of shortened ones.
    #[arg(long)]
    pub full: bool,
}

/// `aofvault diff`.
#[derive(Debug, Clone, Args, Default)]
pub struct DiffArgs {
    /// The earlier moment (RFC 3339 or unix seconds; a whole second is included).
    #[arg(long, value_name = "TIME")]
    pub from: String,
    /// The later moment, or `latest` (the default).
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Key patterns (Redis MATCH syntax); every key without one.
    #[arg(value_name = "PATTERN")]
    pub patterns: Vec<String>,
    /// Only this database.
    #[arg(long, value_name = "N")]
    pub db: Option<u32>,
    /// One JSON object per key, then a summary object (for scripts).
    #[arg(long)]
    pub json: bool,
    /// Show the values before and after.
    #[arg(long)]
    pub values: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum TargetFormat {
    /// kevy: dump-{i}.rdb, aof-{i}.aof, shards.meta.
    Kevy,
    /// Redis ≥ 7: appendonlydir/ with manifest, base and incr.
    Redis,
}

#[derive(Debug, Clone, Args, Default)]
pub struct VerifyArgs {
    /// Only this snapshot (and the objects it names).
    #[arg(long, value_name = "ID")]
    pub snapshot: Option<String>,
    /// Also replay the snapshot into an in-memory model and report key counts.
    #[arg(long)]
    pub deep: bool,
    /// Compare a live server with what the repository would restore now.
    #[arg(long, value_name = "URL", value_hint = ValueHint::Url)]
    pub against: Option<String>,
    /// With --against: compare N random keys of each side instead of every key ([drift] sample).
    #[arg(long, value_name = "N", requires = "against")]
    pub sample: Option<u64>,
    /// With --against: commands per second sent to the live server ([drift] rate).
    #[arg(long, value_name = "N", requires = "against", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate: Option<u32>,
    /// Print every finding as JSON (for scripts).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args, Default)]
pub struct PruneArgs {
    /// Print what would be deleted, and why; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the decisions as JSON (for scripts).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args, Default)]
pub struct StatusArgs {
    /// Print as JSON (for scripts and monitoring).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// The file: an RDB, a KEVYSNAP, a kevy or Redis AOF, or a Redis AOF manifest.
    #[arg(value_hint = ValueHint::FilePath)]
    pub file: PathBuf,
    /// Print every decoded entry as JSON (one array).
    #[arg(long, conflicts_with = "resp")]
    pub json: bool,
    /// Print the RESP commands that recreate the content.
    #[arg(long)]
    pub resp: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration; report every error at once.
    ///
    /// Loads the file and the flags exactly as `run` does. Prints "config OK: <path>" and a
    /// summary, or every error as "<field path>: <message> (got <value>)" and exits with code 2.
    /// Secrets are never printed.
    #[command(after_help = CONFIG_CHECK_EXAMPLES)]
    Check(ConfigCheckArgs),
    /// Print a commented example configuration.
    ///
    /// Every key with its default and meaning; `config check` accepts it as printed (once
    /// [source] dir names the server's data directory).
    #[command(after_help = CONFIG_EXAMPLE_EXAMPLES)]
    Example,
}

#[derive(Debug, Clone, Args, Default)]
pub struct ConfigCheckArgs {
    /// Print the effective configuration (secrets redacted) as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    pub shell: clap_complete::Shell,
}

/// The top-level help's tail: the common invocations, then the exit codes.
fn main_after_help() -> String {
    format!(
        "Examples:
  aofvault config example > /etc/aofvault/aofvault.toml    # then edit [source] and [repository]
  aofvault config check
  aofvault --source /var/lib/redis --server redis://127.0.0.1:6379 --repo s3://backups/redis run
  aofvault list
  aofvault restore --at 2024-05-01T12:00:00Z --to-dir /var/lib/redis-restored

{}",
        crate::exit::AFTER_HELP
    )
}

const RUN_EXAMPLES: &str = "\
Examples:
  aofvault run                                   # with /etc/aofvault/aofvault.toml
  aofvault --source /var/lib/kevy --server redis://127.0.0.1:6379 run
  aofvault --source /var/lib/redis --repo s3://backups/redis --log-format json run
  systemctl enable --now aofvault                # the usual way: systemd/aofvault.service";

const BACKUP_EXAMPLES: &str = "\
Examples:
  aofvault backup
  aofvault backup --json";

const LIST_EXAMPLES: &str = "\
Examples:
  aofvault list
  aofvault --repo s3://backups/redis --instance db1-6379 list --json";

const RESTORE_EXAMPLES: &str = "\
Examples:
  aofvault restore --to-dir /var/lib/redis-restored              # the latest state, as files
  aofvault restore --at 2024-05-01T12:00:00Z --to-dir /tmp/r --dry-run
  aofvault restore --at 1714564800 --to-dir /tmp/r                # unix seconds
  aofvault restore --snapshot ID --to redis://127.0.0.1:6390     # replay into a live server
  aofvault restore --to-dir /var/lib/kevy --format kevy --force   # move existing files aside
  aofvault restore --to-dir /tmp/r --retry-deadline 10m          # ride out a long store outage
  aofvault restore --keys 'session:*' --at 2024-05-01T03:13:59Z --to redis://127.0.0.1:6379 --dry-run
  aofvault restore --keys 'session:*' --at 2024-05-01T03:13:59Z --to redis://127.0.0.1:6379 --replace";

const LOG_EXAMPLES: &str = "\
Examples:
  aofvault log 'session:*' --since 2024-05-01T03:00:00Z
  aofvault log 'user:42' 'cart:42:*' --json | jq .command
  aofvault log 'blob:*' --full --until 1714564800";

const DIFF_EXAMPLES: &str = "\
Examples:
  aofvault diff --from 2024-05-01T03:13:00Z 'session:*'
  aofvault diff --from 1714533180 --to 1714533300 --json
  aofvault diff --from 2024-05-01T03:13:00Z --values 'user:*'";

const VERIFY_EXAMPLES: &str = "\
Examples:
  aofvault verify
  aofvault verify --snapshot ID --deep
  aofvault verify --against redis://127.0.0.1:6379 --json
  aofvault verify --against redis://127.0.0.1:6379 --sample 10000 --rate 200";

const PRUNE_EXAMPLES: &str = "\
Examples:
  aofvault prune --dry-run      # what would go, and which [retention] rule keeps the rest
  aofvault prune";

const STATUS_EXAMPLES: &str = "\
Examples:
  aofvault status
  aofvault status --json";

const INSPECT_EXAMPLES: &str = "\
Examples:
  aofvault inspect /var/lib/redis/appendonlydir/appendonly.aof.manifest
  aofvault inspect /var/lib/redis/dump.rdb --json
  aofvault inspect /var/lib/kevy/aof-0.aof --resp";

const CONFIG_CHECK_EXAMPLES: &str = "\
Examples:
  aofvault config check
  aofvault --config /etc/aofvault/cache.toml config check --json
  aofvault --source /var/lib/redis --repo s3://backups/redis config check";

const CONFIG_EXAMPLE_EXAMPLES: &str = "\
Examples:
  aofvault config example > /etc/aofvault/aofvault.toml";

const COMPLETIONS_EXAMPLES: &str = "\
Examples:
  aofvault completions bash > /etc/bash_completion.d/aofvault
  aofvault completions zsh > \"${fpath[1]}/_aofvault\"
  aofvault completions fish > ~/.config/fish/completions/aofvault.fish";

const MAN_EXAMPLES: &str = "\
Examples:
  aofvault man | man -l -
  aofvault man > /usr/local/share/man/man1/aofvault.1";
