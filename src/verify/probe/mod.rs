//! The SMTP probe: asks a domain's mail hosts, in order, whether they would
//! accept mail for each recipient, carrying several recipients in one
//! session and never sending `DATA`. It gathers evidence — each reply with
//! its stage, each failure — and concludes nothing from it: that is
//! `verdict.rs`'s job.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use moka::sync::Cache;
use tracing::Instrument;

use super::budget::{ProbeBudget, Requester, SharedAsk};
use super::cluster::{CATCH_ALL_TTL, Claimed, Cluster};
use super::dns::MailHost;
use super::egress::{Egress, ProxyOutcome, ProxyStatus};
use super::evidence::{BudgetRefusal, CatchAllEvidence, Exchange, ProbeEvidence, Stage};
use super::guard::forbidden_target;
use super::hosts::{HostClaim, HostPool, SessionPermits};
use super::verdict::catch_all_answer;
use crate::address::EmailAddress;
use crate::smtp::{Phase, Session, SessionConfig, SessionError, SmtpReply, Socks5Proxy};

mod transaction;

/// The most mail hosts (MX names) tried for one domain, in preference order.
pub const MAX_HOSTS_TRIED: usize = 5;
/// The most addresses tried for one mail host.
pub const MAX_ADDRESSES_PER_HOST: usize = 2;
/// The most exchanges a transcript keeps (a probe of one address makes a
/// dozen at most, over five hosts).
const MAX_TRANSCRIPT: usize = 40;
/// The most domains whose catch-all answer is remembered.
const CATCH_ALL_CAPACITY: u64 = 100_000;

/// Settings of the prober.
#[derive(Debug, Clone)]
pub struct ProbeSettings {
    pub port: u16,
    pub helo_name: String,
    pub mail_from: String,
    /// Per phase: connect, greeting, each command.
    pub timeout: Duration,
    pub allow_private_targets: bool,
    /// SMTP sessions open at once, over all hosts.
    pub max_sessions: usize,
    /// SMTP sessions open at once to one mail host.
    pub max_sessions_per_host: usize,
    /// Rejected recipients after which a session is ended and a new one
    /// opened (Postfix slows down after 10 and disconnects after 20).
    pub max_rejections_per_session: usize,
    /// `RCPT TO` commands in one session (the catch-all probe included)
    /// before it is ended and a new one opened: many providers accept no
    /// more than 100 recipients per transaction.
    pub max_recipients_per_session: usize,
    /// SOCKS5 proxies to connect through; none: directly.
    pub proxies: Vec<Socks5Proxy>,
}

/// How talking to one address of a host ended.
enum HostAttempt {
    /// Every recipient has its evidence.
    Done,
    /// This address failed before the server said anything useful; try the
    /// next address, then the next host.
    NextAddress(ProbeEvidence),
    /// The host refused us (4xx/5xx greeting or EHLO); try the next host.
    NextHost(ProbeEvidence),
    /// The shared probe budget refused the probe's first session.
    OverBudget(BudgetRefusal),
}

/// The probe budget, as far as one probe has drawn on it.
enum Draw {
    /// Taken (this process's own budget, or the shared one with the first
    /// session slot).
    Taken,
    /// To be taken from the shared budget with the first session slot.
    Shared {
        ask: SharedAsk,
        requester: Requester,
    },
}

/// What a session starts with: the permits (and shared slot) to hold it,
/// and a session another probe handed off, if one was taken over.
pub(super) struct SessionRight {
    pub(super) permits: SessionPermits,
    pub(super) idle: Option<(Session, usize)>,
}

/// How one session ended.
enum SessionEnd {
    Finished,
    Reconnect,
    Failed(HostAttempt),
}

/// What one probe has learnt so far, over all its sessions.
struct Findings {
    /// The evidence for each recipient, once it has some.
    found: Vec<Option<ProbeEvidence>>,
    /// Recipients the server accepted; they get the catch-all evidence
    /// when the probe ends.
    accepted: Vec<usize>,
    /// The answer for a random address at the domain, the latest one asked.
    catch_all: CatchAllEvidence,
    /// Every exchange, when the caller asked for a transcript.
    transcript: Option<Vec<Exchange>>,
}

impl Findings {
    fn new(recipients: usize, transcribe: bool) -> Self {
        Findings {
            found: vec![None; recipients],
            accepted: Vec::new(),
            catch_all: CatchAllEvidence::NotAsked,
            transcript: transcribe.then(Vec::new),
        }
    }

    /// Notes an exchange in the transcript, if one is kept.
    fn note(&mut self, host: &str, sent: impl Into<String>, heard: Result<&SmtpReply, String>) {
        if let Some(transcript) = self.transcript.as_mut()
            && transcript.len() < MAX_TRANSCRIPT
        {
            transcript.push(Exchange {
                host: host.to_owned(),
                sent: sent.into(),
                heard: heard.cloned(),
            });
        }
    }

    /// Whether the domain's catch-all answer is known for sure.
    fn catch_all_settled(&self) -> bool {
        match &self.catch_all {
            CatchAllEvidence::Known(_) => true,
            CatchAllEvidence::Reply(reply) => catch_all_answer(reply).is_some(),
            CatchAllEvidence::NotAsked | CatchAllEvidence::Failed(_) => false,
        }
    }

    /// The evidence, one per recipient, with the catch-all answer given to
    /// every accepted one; `fallback` for any left without.
    fn finish(mut self, fallback: ProbeEvidence) -> Probed {
        for &i in &self.accepted {
            if let Some(ProbeEvidence::Answered { catch_all, .. }) = self.found[i].as_mut() {
                *catch_all = self.catch_all.clone();
            }
        }
        Probed {
            evidence: self
                .found
                .into_iter()
                .map(|evidence| evidence.unwrap_or_else(|| fallback.clone()))
                .collect(),
            transcript: self.transcript.unwrap_or_default(),
            over_budget: None,
        }
    }
}

/// What a probe found: the evidence for each recipient, in order, and,
/// when asked for, the transcript of the exchanges — or the probe budget's
/// refusal, when no session was allowed.
#[derive(Debug)]
pub struct Probed {
    pub evidence: Vec<ProbeEvidence>,
    pub transcript: Vec<Exchange>,
    pub over_budget: Option<BudgetRefusal>,
}

impl Probed {
    fn over_budget(refusal: BudgetRefusal) -> Self {
        Probed {
            evidence: Vec::new(),
            transcript: Vec::new(),
            over_budget: Some(refusal),
        }
    }
}

/// Runs probes within the probe budget and the session pool's caps — and,
/// when replicas share a database, the cluster's.
#[derive(Debug)]
pub struct Prober {
    settings: ProbeSettings,
    session: SessionConfig,
    pool: HostPool,
    egress: Egress,
    catch_all: Cache<String, bool>,
    budget: ProbeBudget,
    cluster: Option<Cluster>,
}

impl Prober {
    pub fn new(settings: ProbeSettings, budget: ProbeBudget, cluster: Option<Cluster>) -> Self {
        let session = SessionConfig {
            helo_name: settings.helo_name.clone(),
            timeout: settings.timeout,
            tls: crate::smtp::probe_tls_config(),
        };
        Prober {
            pool: HostPool::new(settings.max_sessions, settings.max_sessions_per_host),
            egress: Egress::new(settings.proxies.clone()),
            settings,
            session,
            catch_all: Cache::builder()
                .max_capacity(CATCH_ALL_CAPACITY)
                .time_to_live(CATCH_ALL_TTL)
                .build(),
            budget,
            cluster,
        }
    }

    /// Whether an earlier probe found that `domain` accepts every address,
    /// while that answer is remembered.
    pub fn known_catch_all(&self, domain: &str) -> Option<bool> {
        self.catch_all.get(domain)
    }

    /// The state of each SOCKS5 proxy (empty when probes go directly).
    pub fn proxy_status(&self) -> Vec<ProxyStatus> {
        self.egress.status()
    }

    /// Forgets the session pool's state for hosts no longer in use, and
    /// the budgets of domains not probed lately.
    pub fn housekeeping(&self) {
        self.pool.prune();
        self.budget.housekeeping();
    }

    /// Probes `recipients` (all at `domain`) through `hosts`, in order,
    /// within the part of the probe budget `requester` may use. Returns the
    /// evidence for each recipient, in the same order, or the budget's
    /// refusal.
    pub async fn probe(
        &self,
        domain: &str,
        hosts: &[MailHost],
        recipients: &[EmailAddress],
        transcribe: bool,
        requester: &Requester,
    ) -> Probed {
        let mut draw = match &self.cluster {
            Some(_) => Draw::Shared {
                ask: self.budget.shared_ask(domain, requester),
                requester: requester.clone(),
            },
            None => match self.budget.take(domain, requester) {
                Ok(()) => Draw::Taken,
                Err(refusal) => return Probed::over_budget(refusal),
            },
        };
        let mut findings = Findings::new(recipients.len(), transcribe);
        let mut last_failure = None;
        // A domain may publish hundreds of MX names and addresses; trying
        // them all would make one verification a scan.
        'hosts: for host in hosts.iter().take(MAX_HOSTS_TRIED) {
            let span =
                tracing::info_span!("smtp.probe", mx.host = %host.name, email.domain = %domain);
            for &ip in host.addrs.iter().take(MAX_ADDRESSES_PER_HOST) {
                if let Some(refusal) = self.refused_target(&host.name, ip) {
                    if let ProbeEvidence::ForbiddenTarget { why, .. } = &refusal {
                        findings.note(
                            &host.name,
                            format!("connect {ip}"),
                            Err(format!("not dialled: a {why} address")),
                        );
                    }
                    last_failure = Some(refusal);
                    continue;
                }
                let addr = SocketAddr::new(ip, self.settings.port);
                let attempt = self
                    .attempt(domain, host, addr, recipients, &mut findings, &mut draw)
                    .instrument(span.clone())
                    .await;
                match attempt {
                    HostAttempt::Done => break 'hosts,
                    HostAttempt::OverBudget(refusal) => return Probed::over_budget(refusal),
                    HostAttempt::NextAddress(failure) => last_failure = Some(failure),
                    HostAttempt::NextHost(failure) => {
                        last_failure = Some(failure);
                        continue 'hosts;
                    }
                }
            }
        }
        findings.finish(last_failure.unwrap_or(ProbeEvidence::NoHostTried))
    }

    fn refused_target(&self, host: &str, ip: IpAddr) -> Option<ProbeEvidence> {
        if self.settings.allow_private_targets {
            return None;
        }
        let why = forbidden_target(ip)?;
        Some(ProbeEvidence::ForbiddenTarget {
            host: host.to_owned(),
            ip,
            why,
        })
    }

    /// Sessions with one address of a host until every recipient has its
    /// evidence (several sessions if the server's error limit is reached).
    async fn attempt(
        &self,
        domain: &str,
        host: &MailHost,
        addr: SocketAddr,
        recipients: &[EmailAddress],
        findings: &mut Findings,
        draw: &mut Draw,
    ) -> HostAttempt {
        let claim = self.pool.want(&host.name);
        loop {
            let pending: Vec<usize> = (0..recipients.len())
                .filter(|&i| findings.found[i].is_none())
                .collect();
            if pending.is_empty() {
                return HostAttempt::Done;
            }
            let right = match self
                .session_right(domain, &host.name, &claim, addr, draw)
                .await
            {
                Ok(right) => right,
                Err(refusal) => return HostAttempt::OverBudget(refusal),
            };
            let started = Instant::now();
            let end = self
                .session(
                    domain, host, &claim, addr, recipients, &pending, findings, right,
                )
                .await;
            metrics::histogram!("mailvet_smtp_session_duration_seconds")
                .record(started.elapsed().as_secs_f64());
            match end {
                SessionEnd::Finished => return HostAttempt::Done,
                SessionEnd::Reconnect => continue,
                SessionEnd::Failed(attempt) => return attempt,
            }
        }
    }

    /// What the next session needs: a session another probe of the host
    /// handed off, with its permits, or this process's permits for a new
    /// one — whichever comes first — then, when replicas share a database,
    /// a slot there, with the probe's budget if it is not taken yet (one
    /// round trip). While the database cannot be reached, this process's
    /// own caps and budget stand in for the cluster's.
    async fn session_right(
        &self,
        domain: &str,
        host: &str,
        claim: &HostClaim,
        addr: SocketAddr,
        draw: &mut Draw,
    ) -> Result<SessionRight, BudgetRefusal> {
        let mut right = tokio::select! {
            biased;
            idle = claim.handed_off(addr) => SessionRight {
                permits: idle.permits,
                idle: Some((idle.session, idle.rejections)),
            },
            permits = self.pool.permits(claim, addr.ip()) => SessionRight { permits, idle: None },
        };
        let Some(cluster) = &self.cluster else {
            return Ok(right);
        };
        let buckets = match draw {
            Draw::Shared { ask, .. } => ask.buckets.as_slice(),
            Draw::Taken => &[],
        };
        let got = match right.idle {
            // The session holds its slot already.
            Some(_) if buckets.is_empty() => return Ok(right),
            Some(_) => cluster.take_budget(buckets, domain).await,
            None => {
                cluster
                    .claim(host, addr.ip(), self.pool.max_per_host(), buckets, domain)
                    .await
            }
        };
        if let Some(known) = got.catch_all {
            self.catch_all.insert(domain.to_owned(), known);
        }
        match got.claimed {
            Claimed::Slot(lease) => right.permits.hold(lease),
            Claimed::Budget => {}
            Claimed::OverBudget(bucket, wait) => {
                let refusal = match draw {
                    Draw::Shared { ask, .. } => ask.refusal(bucket, wait),
                    Draw::Taken => unreachable!("the budget refuses only when asked"),
                };
                if let Some((session, _)) = right.idle.take() {
                    session.quit().await;
                }
                return Err(refusal);
            }
            Claimed::Unavailable(_) => {
                if let Draw::Shared { requester, .. } = draw
                    && let Err(refusal) = self.budget.take(domain, requester)
                {
                    if let Some((session, _)) = right.idle.take() {
                        session.quit().await;
                    }
                    return Err(refusal);
                }
            }
        }
        *draw = Draw::Taken;
        Ok(right)
    }

    /// Connects, reads the greeting and says EHLO: a session ready for a
    /// mail transaction, or how the attempt ended.
    async fn open(
        &self,
        name: &str,
        addr: SocketAddr,
        pending: &[usize],
        findings: &mut Findings,
    ) -> Result<Session, SessionEnd> {
        let connect = format!("connect {addr}");
        let (mut session, greeting) = match self.connect(name, addr).await {
            Ok(connected) => connected,
            Err(err) => {
                findings.note(name, connect, Err(err.to_string()));
                count_probe("connect_failed");
                let failure = ProbeEvidence::failed(name, &err);
                return Err(SessionEnd::Failed(HostAttempt::NextAddress(failure)));
            }
        };
        findings.note(name, connect, Ok(&greeting));
        if !greeting.is_positive() {
            count_probe("refused_at_greeting");
            session.quit().await;
            let refusal = refused(name, Stage::Greeting, greeting);
            return Err(SessionEnd::Failed(HostAttempt::NextHost(refusal)));
        }
        let hello = match session.hello().await {
            Ok(reply) => reply,
            Err(err) => return Err(self.fail_session(name, &err, pending, findings)),
        };
        findings.note(name, format!("EHLO {}", self.session.helo_name), Ok(&hello));
        if !hello.is_positive() {
            count_probe("refused_at_ehlo");
            session.quit().await;
            let refusal = refused(name, Stage::Ehlo, hello);
            return Err(SessionEnd::Failed(HostAttempt::NextHost(refusal)));
        }
        Ok(session)
    }
}

impl Prober {
    /// Connects to the mail host `name` at `addr` and reads its greeting:
    /// directly, or through the host's proxy, then the next ones in its
    /// order if a proxy itself fails. With every proxy set aside, nothing
    /// is tried and the attempt fails as a connection failure: never a
    /// verdict about the address.
    async fn connect(
        &self,
        name: &str,
        addr: SocketAddr,
    ) -> Result<(Session, SmtpReply), SessionError> {
        if !self.egress.proxied() {
            return Session::connect(addr, name, self.session.clone()).await;
        }
        let mut last = None;
        for (index, proxy) in self.egress.route(name) {
            let result = Session::connect_via(Some(proxy), addr, name, self.session.clone()).await;
            match &result {
                Err(err @ SessionError::Proxy { .. }) => {
                    self.egress
                        .report(index, ProxyOutcome::Failed, &err.to_string());
                }
                // A timeout through the proxy may be the proxy's or the
                // mail server's: it says nothing about the proxy.
                Err(SessionError::Timeout(Phase::Connect)) => {}
                _ => self.egress.report(index, ProxyOutcome::Worked, ""),
            }
            match result {
                Err(err @ SessionError::Proxy { .. }) => last = Some(err),
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| {
            let retry = self.egress.next_retry().unwrap_or_default();
            SessionError::Proxy {
                proxy: "every proxy".to_owned(),
                detail: format!(
                    "all are set aside after failing; the first is tried again in {} s",
                    retry.as_secs().max(1)
                ),
            }
        }))
    }
}

fn refused(host: &str, stage: Stage, reply: SmtpReply) -> ProbeEvidence {
    ProbeEvidence::Refused {
        host: host.to_owned(),
        stage,
        reply,
    }
}

fn count_probe(outcome: &'static str) {
    metrics::counter!("mailvet_smtp_probes_total", "outcome" => outcome).increment(1);
}
