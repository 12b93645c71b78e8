//! Replication groups: the agents beside a primary and its replicas share one `instance`; the
//! one beside the primary holds the lease and ships, the others stand by (docs/ARCHITECTURE.md,
//! "Replication groups").
//!
//! [`Group::wait_turn`] is the standby loop: it watches the server's role and the lease, and
//! returns the lease once this agent's server is the primary and the lease is free, given back
//! or stale. [`Group::hold`] is the holder's periodic turn: it renews the lease with what the
//! server says, and tells the daemon to step down when the server became a replica, or stayed
//! unreachable past `[repository] step_down_after` while another member is alive. Two servers
//! that both say `role:master` (split brain) are reported at error level by both agents; only
//! the lease holder ships.
//!
//! - [`role`]: the server's role (`INFO replication`).
//! - [`member`]: each agent's own record, and who is alive.

pub mod member;
pub mod role;

use std::time::{Duration, Instant};

use aofvault_config::Config;
use tokio_util::sync::CancellationToken;

use crate::context::now_ms;
use crate::repo::lease::{Claimant, Found, Lease, LeaseDoc, LeaseError, Observer, ServerReport};
use crate::repo::Repo;
use crate::server::Server;
use crate::status::file as status_file;
use crate::status::BoardRef;
use member::{Liveness, MemberDoc};
use role::Role;

/// How often a standby looks at its server and the lease.
const STANDBY_POLL: Duration = Duration::from_secs(1);
/// How often a member record is rewritten (a standby; the holder writes it at each renewal).
const MEMBER_EVERY: Duration = Duration::from_secs(5);
/// How often a split brain is said again at error level while it lasts.
const CONFLICT_REPEAT: Duration = Duration::from_secs(30);

/// What the holder's turn decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// Give the lease back (after shipping what is on disk), and why.
    StepDown(String),
}

/// This agent in its group.
pub struct Group {
    repo: Repo,
    instance: String,
    node: String,
    /// The server's address as configured (no credentials), or `files only`.
    address: String,
    ttl: Duration,
    step_down_after: Duration,
    state_dir: std::path::PathBuf,
    observer: Observer,
    liveness: Liveness,
    board: BoardRef,
    unreachable_since: Option<Instant>,
    conflict_since: Option<Instant>,
    conflict_said: Option<Instant>,
    member_written: Option<Instant>,
}

impl Group {
    pub fn new(cfg: &Config, repo: Repo, board: BoardRef, server: Option<&Server>) -> Group {
        let instance = cfg.repository.instance.clone();
        Group {
            repo,
            observer: Observer::new(&instance),
            instance,
            node: cfg.repository.node.clone(),
            address: server.map_or_else(|| "files only".into(), |s| s.url().to_string()),
            ttl: cfg.repository.lease_ttl,
            step_down_after: cfg.repository.step_down_after,
            state_dir: cfg.state.dir.clone(),
            liveness: Liveness::default(),
            board,
            unreachable_since: None,
            conflict_since: None,
            conflict_said: None,
            member_written: None,
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// How often the holder renews (and looks at its server).
    pub fn renew_every(&self) -> Duration {
        (self.ttl / 5).max(Duration::from_millis(500))
    }

    fn claimant(&self, server: Option<ServerReport>) -> Claimant {
        Claimant::new(&self.node, self.ttl, server)
    }

    /// Stands by until this agent should ship: `Some(lease)` then, `None` on shutdown. Without
    /// a server to ask (files only), it is a group of one: the lease is taken as by any
    /// standalone agent (refused while another agent holds it).
    pub async fn wait_turn(
        &mut self,
        server: &mut Option<Server>,
        shutdown: &CancellationToken,
    ) -> Result<Option<Lease>, LeaseError> {
        let Some(srv) = server.as_mut() else {
            let lease = Lease::acquire(&self.repo, &self.instance, &self.claimant(None)).await?;
            self.took(&lease, None);
            return Ok(Some(lease));
        };
        let mut said_waiting = false;
        loop {
            let seen = role::probe(srv).await;
            let report = role::report(&self.address, seen.as_ref(), now_ms());
            let look = match self.observer.look(&self.repo).await {
                Ok(l) => l,
                Err(LeaseError::Repo(e)) if e.is_transient() => {
                    tracing::warn!(error = %e, "cannot read the lease (will retry)");
                    if sleep_or_stop(shutdown, STANDBY_POLL).await {
                        return Ok(None);
                    }
                    continue;
                }
                Err(e) => return Err(e),
            };
            let others = self.others_alive().await;
            let found = look.found.clone();
            let may_take = match (&seen, &found) {
                (Some((Role::Primary, _)), f) => f.is_takeable(),
                // A server that does not answer: its agent ships its files only as a group of
                // one, and only a lease that was its own (or nobody's).
                (None, f) => {
                    f.is_takeable()
                        && others.is_empty()
                        && f.doc().is_none_or(|d| d.node == self.node)
                }
                (Some((Role::Replica { .. }, _)), _) => false,
            };
            if may_take {
                let claimant = self.claimant(Some(report.clone()));
                self.observer.attempted(&claimant.token);
                match Lease::take(&self.repo, &self.instance, &claimant, &look).await {
                    Ok(lease) => {
                        self.took(&lease, found.doc());
                        return Ok(Some(lease));
                    }
                    Err(LeaseError::Contended { holder, .. }) => {
                        tracing::info!(%holder, "another agent took the lease first");
                    }
                    // A lost reply: the next look tells whether the write landed.
                    Err(LeaseError::Repo(e)) if e.is_transient() => {
                        tracing::warn!(error = %e, "cannot take the lease (will look again)");
                    }
                    Err(e) => return Err(e),
                }
            } else if let (Some((Role::Primary, _)), Found::Held { doc, .. }) = (&seen, &found) {
                let same_server = run_id(&seen).is_some()
                    && doc.server.as_ref().and_then(|s| s.run_id.as_deref()) == run_id(&seen);
                if doc.node == self.node || same_server {
                    // Another agent beside this very server.
                    return Err(LeaseError::Held {
                        instance: self.instance.clone(),
                        holder: doc.holder.clone(),
                        age_s: (now_ms() - doc.renewed_ms) / 1000,
                        ttl_s: doc.ttl_ms / 1000,
                    });
                }
                self.primary_but_held(doc, &mut said_waiting);
            } else {
                self.conflict_since = None;
                self.board.update_group(|g| g.split_brain = None);
            }
            self.show_standby(&seen, found.doc(), &report).await;
            if sleep_or_stop(shutdown, STANDBY_POLL).await {
                return Ok(None);
            }
        }
    }

    /// Our server says `role:master` while another member holds the lease: normal for the few
    /// seconds a failover takes (the old holder steps down), a split brain if it lasts.
    fn primary_but_held(&mut self, doc: &LeaseDoc, said_waiting: &mut bool) {
        let since = *self.conflict_since.get_or_insert_with(Instant::now);
        let holder_primary = doc
            .server
            .as_ref()
            .is_some_and(|s| s.role == "master" && s.reachable);
        if holder_primary && since.elapsed() > self.ttl + self.step_down_after {
            let what = format!(
                "{} ships, and its server {} also says role:master",
                doc.holder,
                doc.server.as_ref().map_or("", |s| s.address.as_str())
            );
            if self
                .conflict_said
                .is_none_or(|t| t.elapsed() >= CONFLICT_REPEAT)
            {
                tracing::error!(node = %self.node, holder = %doc.holder, "split brain: this agent's server says role:master, but {what}; this agent does not ship (only the lease holder does) until one of them is demoted");
                self.conflict_said = Some(Instant::now());
            }
            self.board.update_group(|g| g.split_brain = Some(what));
        } else if !*said_waiting {
            tracing::info!(holder = %doc.holder, "this agent's server is the primary; waiting for the lease holder to step down");
            *said_waiting = true;
        }
    }

    /// The lease was taken: say so (a takeover from another member at warn level).
    fn took(&mut self, lease: &Lease, before: Option<&LeaseDoc>) {
        self.unreachable_since = None;
        self.conflict_since = None;
        let takeover = before.is_some_and(|d| d.node != self.node);
        match before {
            Some(prev) if takeover => {
                tracing::warn!(instance = %self.instance, from = %prev.node, previous = %prev.holder, handovers = lease.doc().handovers, "lease taken over: this agent ships for the group now");
            }
            _ => tracing::info!(instance = %self.instance, node = %self.node, "lease taken"),
        }
        self.board.update_group(|g| {
            g.state = "shipping".into();
            g.since_ms = now_ms();
            g.lease_holder = Some(lease.doc().holder.clone());
            g.split_brain = None;
            if takeover {
                g.takeovers += 1;
            }
        });
    }

    /// The holder's turn: what the server says, the renewal, and whether to step down.
    pub async fn hold(
        &mut self,
        lease: &mut Lease,
        server: &mut Option<Server>,
    ) -> Result<Verdict, LeaseError> {
        let seen = match server.as_mut() {
            Some(s) => role::probe(s).await,
            None => None,
        };
        let report = server
            .as_ref()
            .map(|_| role::report(&self.address, seen.as_ref(), now_ms()));
        match lease.renew(report.clone()).await {
            Ok(()) => {}
            Err(e @ LeaseError::Lost { .. }) => return Err(e),
            Err(e) => tracing::warn!(error = %e, "cannot renew the lease (will retry)"),
        }
        let others = self.others_alive().await;
        let verdict = match &seen {
            _ if server.is_none() => Verdict::Keep,
            Some((Role::Replica { primary, .. }, _)) => {
                Verdict::StepDown(format!("the server is now a replica of {primary}"))
            }
            Some((Role::Primary, _)) => {
                self.unreachable_since = None;
                Verdict::Keep
            }
            None => {
                let since = *self.unreachable_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.step_down_after && !others.is_empty() {
                    Verdict::StepDown(format!(
                        "the server has not answered for {}s and another member of the group is alive",
                        since.elapsed().as_secs()
                    ))
                } else {
                    Verdict::Keep
                }
            }
        };
        self.split_brain_seen_by_holder(&seen, &others);
        let report = report.unwrap_or_else(|| role::report(&self.address, None, now_ms()));
        self.board.update_group(|g| {
            g.state = "shipping".into();
            g.role = report.role.clone();
            g.primary = report.primary.clone();
            g.primary_reachable = report.reachable;
            g.lease_holder = Some(lease.doc().holder.clone());
        });
        if self
            .member_written
            .is_none_or(|t| t.elapsed() >= MEMBER_EVERY)
        {
            self.write_member("shipping", &report, Some(lease.doc().holder.clone()))
                .await;
        }
        Ok(verdict)
    }

    /// The holder learns from the member records that another server also says it is the
    /// primary.
    fn split_brain_seen_by_holder(
        &mut self,
        seen: &Option<(Role, Option<String>)>,
        others: &[MemberDoc],
    ) {
        let rival = others
            .iter()
            .find(|m| m.server.role == "master" && m.server.reachable);
        match (seen, rival) {
            (Some((Role::Primary, _)), Some(m)) => {
                let since = *self.conflict_since.get_or_insert_with(Instant::now);
                if since.elapsed() > self.ttl + self.step_down_after {
                    let what = format!(
                        "{} (server {}) also says role:master",
                        m.node, m.server.address
                    );
                    if self
                        .conflict_said
                        .is_none_or(|t| t.elapsed() >= CONFLICT_REPEAT)
                    {
                        tracing::error!(node = %self.node, rival = %m.node, "split brain: this agent ships, but {what}; its writes are not in this backup until it is demoted");
                        self.conflict_said = Some(Instant::now());
                    }
                    self.board.update_group(|g| g.split_brain = Some(what));
                }
            }
            _ => {
                self.conflict_since = None;
                self.board.update_group(|g| g.split_brain = None);
            }
        }
    }

    /// A lease this agent held was given back (or tried to be): a document still holding its
    /// token (a release whose write failed) is this agent's own, not another agent's.
    pub fn gave_back(&mut self, token: &str) {
        self.observer.attempted(token);
    }

    /// Records a step-down (the daemon has stopped shipping and given the lease back).
    pub fn stepped_down(&mut self, why: &str) {
        tracing::warn!(node = %self.node, %why, "stepped down: the lease is given back and this agent stands by");
        self.unreachable_since = None;
        self.board.update_group(|g| {
            g.state = "standby".into();
            g.since_ms = now_ms();
            g.step_downs += 1;
        });
    }

    /// The other members whose records still change.
    async fn others_alive(&mut self) -> Vec<MemberDoc> {
        let docs = match member::read_all(&self.repo, &self.instance).await {
            Ok(d) => d,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read the member records");
                return Vec::new();
            }
        };
        let window = (self.ttl * 2).max(MEMBER_EVERY * 3);
        self.liveness
            .observe(&self.node, &docs, window)
            .into_iter()
            .cloned()
            .collect()
    }

    /// A standby's status: board, status file, member record.
    async fn show_standby(
        &mut self,
        seen: &Option<(Role, Option<String>)>,
        lease: Option<&LeaseDoc>,
        report: &ServerReport,
    ) {
        let holder = lease.filter(|d| !d.released).map(|d| d.holder.clone());
        let link_up = match seen {
            Some((Role::Replica { link_up, .. }, _)) => *link_up,
            Some((Role::Primary, _)) => true,
            None => false,
        };
        if self.board.group().state != "standby" {
            tracing::info!(node = %self.node, role = %report.role, primary = report.primary.as_deref().unwrap_or("-"), holder = holder.as_deref().unwrap_or("nobody"), "standing by: this agent ships nothing while another member holds the lease or its server is a replica");
        }
        self.board.update_group(|g| {
            if g.state != "standby" {
                g.since_ms = now_ms();
            }
            g.state = "standby".into();
            g.role = report.role.clone();
            g.primary = report.primary.clone();
            g.primary_reachable = link_up;
            g.lease_holder = holder.clone();
        });
        let doc = status_file::StatusDoc::new(&self.instance, self.repo.url(), &[], Vec::new())
            .with_group(self.board.group());
        status_file::write(&self.state_dir, &self.instance, &doc)
            .unwrap_or_else(|e| tracing::warn!(error = %e, "cannot write the status file"));
        if self
            .member_written
            .is_none_or(|t| t.elapsed() >= MEMBER_EVERY)
        {
            self.write_member("standby", report, holder).await;
        }
    }

    async fn write_member(&mut self, state: &str, report: &ServerReport, holder: Option<String>) {
        let doc = MemberDoc {
            node: self.node.clone(),
            host: hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            pid: std::process::id(),
            state: state.to_string(),
            server: report.clone(),
            lease_holder: holder,
            updated_ms: now_ms(),
        };
        match doc.publish(&self.repo, &self.instance).await {
            Ok(()) => self.member_written = Some(Instant::now()),
            Err(e) => tracing::debug!(error = %e, "cannot write this agent's member record"),
        }
    }
}

fn run_id(seen: &Option<(Role, Option<String>)>) -> Option<&str> {
    seen.as_ref().and_then(|(_, id)| id.as_deref())
}

/// Sleeps `d`; `true` if shutdown came first.
async fn sleep_or_stop(shutdown: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}
