//! Drift check (`verify --against URL`, `[schedule] drift_check`): does the live server hold
//! what a restore of the repository's latest state would give?
//!
//! The parts:
//!
//! - [`scratch`] restores the latest state with `restore --to-dir`'s own code into a temporary
//!   directory and starts a scratch server of the backup's kind on it: what is compared is
//!   what a restore gives once the server has loaded it;
//! - [`compare`] reads every key (or a sample) of both and collects the keys that differ;
//! - [`read`] reads one key from either side ([`digest`] reduces its value), through a limiter on the live side
//!   (`[drift] rate`, `--rate`: every command counts), so the check's load is bounded;
//! - [`report`] prints the result as text or JSON.
//!
//! **Data that moves during the check.** The repository always lags the server a little (a
//! second or so), and the server keeps writing while it is read, so a first difference is only
//! a candidate. Each candidate is re-read on the server (read A); the check then waits until
//! the repository covers the moment of read A plus a margin for the server's own AOF buffering
//! (at most `[drift] settle`, as an idle server ships nothing new), restores the latest state
//! again, and reads the candidate on the server once more (read B). A key whose reads A and B
//! differ is being written: it is listed as *changing*, not as drift. A key that stayed the
//! same from A to B and still differs from the new restore is reported. So a reported key
//! differs persistently; a key written continuously is never compared (it is listed).
//!
//! Findings are reported with key names, at warning level in the log, in the `drift_keys`
//! metric (the count [`scheduled`] returns), and with exit code 3.

pub mod compare;
pub mod digest;
pub mod read;
pub mod report;
pub mod scratch;

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use aofvault_config::Config;
use redis::aio::MultiplexedConnection;

use crate::exit;
use crate::repo::plan::{self, Plan, Selection};
use crate::repo::Repo;
use compare::{Candidate, Pass};
use read::{Observed, Side};
use report::{Divergence, Problem, Report};
use scratch::Scratch;

/// kevy buffers its AOF writes for up to about a second: the repository covers a moment only
/// once it has bytes seen this long after it.
const BUFFER_MARGIN_MS: i64 = 1500;
/// How often the re-check asks the repository whether it caught up.
const POLL: Duration = Duration::from_millis(500);

/// What one check reads, and how fast.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// 0: every key; N: N random keys per side and database.
    pub sample: u64,
    /// Commands per second on the live server.
    pub rate: u32,
    /// Longest wait for the repository to cover a re-check.
    pub settle: Duration,
}

/// `aofvault verify --against URL`.
pub async fn run(
    cfg: &Config,
    args: &crate::cli::VerifyArgs,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let url = args.against.as_deref().context("--against URL")?;
    let opts = Options {
        sample: args.sample.unwrap_or(cfg.drift.sample),
        rate: args.rate.unwrap_or(cfg.drift.rate),
        settle: cfg.drift.settle,
    };
    let repo = crate::context::open_for_reading(cfg).await?;
    let instance = crate::context::pick_instance(cfg, &repo).await?;
    let report = check(cfg, &repo, &instance, url, opts).await?;
    log_findings(&report);
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &report)?;
        writeln!(out)?;
    } else {
        report::text(&report, out)?;
    }
    Ok(if report.divergences.is_empty() {
        exit::OK
    } else {
        exit::PROBLEMS
    })
}

/// The `[schedule] drift_check` job: the same check against `[source] url`, findings logged at
/// warning level and counted in the `drift_keys` metric.
pub async fn scheduled(cfg: &Config, repo: &Repo, instance: &str) -> anyhow::Result<u64> {
    let url = cfg
        .source
        .url
        .as_ref()
        .context("the drift check reads the live server: set [source] url (or --server)")?;
    let opts = Options {
        sample: cfg.drift.sample,
        rate: cfg.drift.rate,
        settle: cfg.drift.settle,
    };
    let report = check(cfg, repo, instance, url.as_str(), opts).await?;
    log_findings(&report);
    tracing::info!(
        instance,
        compared = report.compared,
        drift = report.divergences.len(),
        changing = report.changing.len(),
        commands = report.server_commands,
        seconds = report.seconds,
        "drift check done"
    );
    Ok(report.divergences.len() as u64)
}

fn log_findings(report: &Report) {
    for d in &report.divergences {
        tracing::warn!(
            db = d.db,
            key = %d.key,
            problem = ?d.problem,
            server = d.server.as_deref().unwrap_or("-"),
            backup = d.backup.as_deref().unwrap_or("-"),
            "drift: the server and what a restore gives differ"
        );
    }
}

/// Connects to the live server with the configured credentials (unless the URL has its own)
/// and timeouts.
async fn connect_live(cfg: &Config, url: &str) -> anyhow::Result<MultiplexedConnection> {
    let mut u = url::Url::parse(url).with_context(|| format!("invalid URL {url:?}"))?;
    let shown = crate::server::display_url(&u);
    if u.password().is_none() {
        if let Some(user) = &cfg.source.username {
            let _ = u.set_username(user);
        }
        if let Some(pw) = &cfg.source.password {
            let _ = u.set_password(Some(pw.expose()));
        }
    }
    let client =
        redis::Client::open(u.as_str()).with_context(|| format!("invalid server URL {shown}"))?;
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(cfg.source.connect_timeout))
        .set_response_timeout(Some(cfg.source.command_timeout));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .with_context(|| format!("cannot connect to {shown}"))
}

async fn connect_scratch(s: &Scratch) -> anyhow::Result<Side> {
    let conn = redis::Client::open(s.url.as_str())?
        .get_multiplexed_async_connection()
        .await
        .context("connecting to the scratch server")?;
    Ok(Side::new(conn, None, "backup"))
}

/// The databases holding keys on either side (kevy: 0).
async fn databases(live: &mut Side, backup: &mut Side, kevy: bool) -> anyhow::Result<Vec<u32>> {
    if kevy {
        return Ok(vec![0]);
    }
    let mut dbs: Vec<u32> = Vec::new();
    for side in [live, backup] {
        let text = side.info("keyspace").await?;
        dbs.extend(
            crate::server::parse_info(&text)
                .keys()
                .filter_map(|k| k.strip_prefix("db")?.parse::<u32>().ok()),
        );
    }
    dbs.sort_unstable();
    dbs.dedup();
    if dbs.is_empty() {
        dbs.push(0);
    }
    Ok(dbs)
}

/// Runs the check (both passes) and returns its report.
pub async fn check(
    cfg: &Config,
    repo: &Repo,
    instance: &str,
    url: &str,
    opts: Options,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let conn = connect_live(cfg, url).await?;
    let mut live = Side::new(conn, Some(opts.rate), "server");
    let server_kind = live
        .info("server")
        .await
        .map(|t| crate::server::parse_info(&t))?;
    let plan = plan::plan(repo, instance, Selection::Latest)
        .await
        // "No snapshot yet" is exit 5, as for restore (`outcome::code_for` reads the type).
        .context("planning a restore of the latest state")?;
    let scratch = Scratch::restore(repo, &plan).await?;
    let mut backup = connect_scratch(&scratch).await?;
    let kevy = plan.layout.is_kevy();
    let mut report = Report::new(instance, url, &server_kind, &plan, &opts);
    let dbs = databases(&mut live, &mut backup, kevy).await?;
    let mut pass = Pass::default();
    for &db in &dbs {
        live.select(db).await?;
        backup.select(db).await?;
        report
            .server_keys
            .insert(format!("db{db}"), live.dbsize().await?);
        report
            .backup_keys
            .insert(format!("db{db}"), backup.dbsize().await?);
        if opts.sample == 0 {
            compare::full(&mut live, &mut backup, db, &mut pass).await?;
        } else {
            compare::sample(&mut live, &mut backup, db, opts.sample, &mut pass).await?;
        }
    }
    report.compared = pass.compared;
    report.server_types = std::mem::take(&mut pass.server_types);
    report.backup_types = std::mem::take(&mut pass.backup_types);
    if !pass.candidates.is_empty() {
        drop(backup);
        drop(scratch);
        recheck(
            repo,
            instance,
            &mut live,
            &pass.candidates,
            &opts,
            &mut report,
        )
        .await?;
    }
    report.server_commands = live.limiter.sent;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Reads every candidate on the live server.
async fn read_all(
    live: &mut Side,
    candidates: &[Candidate],
) -> anyhow::Result<Vec<Option<Observed>>> {
    let mut out = Vec::with_capacity(candidates.len());
    for c in candidates {
        live.select(c.db).await?;
        out.push(live.observe(&c.key).await?);
    }
    Ok(out)
}

/// The second pass (see the module doc).
async fn recheck(
    repo: &Repo,
    instance: &str,
    live: &mut Side,
    candidates: &[Candidate],
    opts: &Options,
    report: &mut Report,
) -> anyhow::Result<()> {
    report.rechecked = candidates.len() as u64;
    let first = read_all(live, candidates).await?;
    let want = crate::context::now_ms() + BUFFER_MARGIN_MS;
    let waited = Instant::now();
    let plan: Plan = loop {
        let plan = plan::plan(repo, instance, Selection::Latest).await?;
        if plan.covers_until_ms() >= want || waited.elapsed() >= opts.settle {
            break plan;
        }
        tokio::time::sleep(POLL).await;
    };
    let behind = want - plan.covers_until_ms();
    if behind > 0 {
        report.repository_behind_ms = Some(behind);
    }
    report.recheck_snapshot = Some(plan.snapshot.clone());
    let scratch = Scratch::restore(repo, &plan).await?;
    let mut backup = connect_scratch(&scratch).await?;
    let second = read_all(live, candidates).await?;
    for ((c, a), b) in candidates.iter().zip(&first).zip(&second) {
        if !read::same(a.as_ref(), b.as_ref()) {
            report.changing.push(report::KeyRef::new(c.db, &c.key));
            continue;
        }
        backup.select(c.db).await?;
        let restored = backup.observe(&c.key).await?;
        let problem = match (b, &restored) {
            (Some(_), None) => Problem::Missing,
            (None, Some(_)) => Problem::Stale,
            (Some(s), Some(r)) => match s.differs(r) {
                Some(d) => Problem::from(d),
                None => {
                    report.resolved += 1;
                    continue;
                }
            },
            (None, None) => {
                report.resolved += 1;
                continue;
            }
        };
        report.divergences.push(Divergence {
            db: c.db,
            key: digest::key_text(&c.key),
            problem,
            server: b.as_ref().map(Observed::describe),
            backup: restored.as_ref().map(Observed::describe),
        });
    }
    Ok(())
}
