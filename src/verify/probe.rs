//! The SMTP probe: asks a domain's mail hosts, in order, whether they would
//! accept mail for each recipient, carrying several recipients in one
//! session and never sending `DATA`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use rand::distr::Alphanumeric;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use super::classify::{Stage, classify_reply};
use super::dns::MailHost;
use super::guard::forbidden_target;
use super::result::SmtpEvidence;
use super::smtp::{Phase, Session, SessionConfig, SessionError, SmtpReply};
use super::{EmailAddress, Reason};

/// How long a domain's catch-all answer is reused.
const CATCH_ALL_TTL: Duration = Duration::from_secs(3600);
/// How long a session handed off to the next probe of its host waits to be
/// taken before it is closed.
const HANDOFF_WAIT: Duration = Duration::from_secs(2);

/// A session left open for the next probe of the same host.
struct IdleSession {
    id: u64,
    session: Session,
    /// Recipients the server rejected in this session so far.
    rejections: usize,
}

/// One mail host: its session limit, the probes that want it, and sessions
/// handed off between them.
struct HostState {
    limit: Arc<Semaphore>,
    /// Probes of this host in progress or waiting.
    wanted: std::sync::atomic::AtomicUsize,
    idle: Mutex<Vec<IdleSession>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for HostState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostState")
            .field("wanted", &self.wanted)
            .finish_non_exhaustive()
    }
}

impl HostState {
    fn new(max_sessions: usize) -> Self {
        HostState {
            limit: Arc::new(Semaphore::new(max_sessions.max(1))),
            wanted: std::sync::atomic::AtomicUsize::new(0),
            idle: Mutex::default(),
            next_id: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// A session to `addr` handed off by an earlier probe, if any.
    fn take_idle(&self, addr: SocketAddr) -> Option<IdleSession> {
        let mut idle = self.idle.lock().expect("idle sessions");
        let at = idle.iter().position(|entry| entry.session.peer() == addr)?;
        Some(idle.swap_remove(at))
    }

    /// Leaves a session open for the next probe of this host; closes it if
    /// no probe takes it within [`HANDOFF_WAIT`].
    fn hand_off(self: &Arc<Self>, session: Session, rejections: usize) {
        use std::sync::atomic::Ordering;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.idle.lock().expect("idle sessions").push(IdleSession {
            id,
            session,
            rejections,
        });
        let state = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(HANDOFF_WAIT).await;
            let expired = {
                let mut idle = state.idle.lock().expect("idle sessions");
                idle.iter()
                    .position(|entry| entry.id == id)
                    .map(|at| idle.swap_remove(at))
            };
            if let Some(entry) = expired {
                entry.session.quit().await;
            }
        });
    }
}

/// Counts a probe as wanting a host while it lives.
struct Wanting(Arc<HostState>);

impl Wanting {
    fn new(state: Arc<HostState>) -> Self {
        state
            .wanted
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Wanting(state)
    }

    /// Whether another probe wants the host too.
    fn shared(&self) -> bool {
        self.0.wanted.load(std::sync::atomic::Ordering::SeqCst) > 1
    }
}

impl Drop for Wanting {
    fn drop(&mut self) {
        self.0
            .wanted
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

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
}

/// What the probe found for one recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct RecipientOutcome {
    pub reason: Reason,
    pub smtp: Option<SmtpEvidence>,
    pub message: Option<String>,
    pub catch_all: bool,
}

impl RecipientOutcome {
    fn new(reason: Reason) -> Self {
        RecipientOutcome {
            reason,
            smtp: None,
            message: None,
            catch_all: false,
        }
    }

    fn from_reply(stage: Stage, host: &str, reply: &SmtpReply) -> Self {
        RecipientOutcome {
            reason: classify_reply(stage, reply),
            smtp: Some(SmtpEvidence::new(host, reply)),
            message: None,
            catch_all: false,
        }
    }

    fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    fn from_session_error(host: &str, err: &SessionError) -> Self {
        let reason = match err {
            SessionError::Timeout(_) => Reason::Timeout,
            SessionError::Connect { .. } => Reason::ConnectionFailed,
            _ => Reason::SmtpError,
        };
        Self::new(reason).with_message(format!("{host}: {err}"))
    }
}

/// How talking to one address of a host ended.
enum HostAttempt {
    /// Every recipient has an outcome.
    Done,
    /// This address failed before the server said anything useful; try the
    /// next address, then the next host.
    NextAddress(RecipientOutcome),
    /// The host refused us (4xx/5xx greeting or EHLO); try the next host.
    NextHost(RecipientOutcome),
}

/// Runs probes with caps on concurrent sessions, overall and per host.
#[derive(Debug)]
pub struct Prober {
    settings: ProbeSettings,
    session: SessionConfig,
    sessions: Arc<Semaphore>,
    per_host: Mutex<HashMap<String, Arc<HostState>>>,
    catch_all: Mutex<HashMap<String, (bool, Instant)>>,
}

impl Prober {
    pub fn new(settings: ProbeSettings) -> Self {
        let session = SessionConfig {
            helo_name: settings.helo_name.clone(),
            timeout: settings.timeout,
            tls: super::smtp::probe_tls_config(),
        };
        Prober {
            sessions: Arc::new(Semaphore::new(settings.max_sessions.max(1))),
            settings,
            session,
            per_host: Mutex::default(),
            catch_all: Mutex::default(),
        }
    }

    /// Probes `recipients` (all at `domain`) through `hosts`, in order.
    /// Returns one outcome per recipient, in the same order.
    pub async fn probe(
        &self,
        domain: &str,
        hosts: &[MailHost],
        recipients: &[EmailAddress],
    ) -> Vec<RecipientOutcome> {
        let mut outcomes: Vec<Option<RecipientOutcome>> = vec![None; recipients.len()];
        let mut last_failure = None;
        'hosts: for host in hosts {
            let span =
                tracing::info_span!("smtp.probe", mx.host = %host.name, email.domain = %domain);
            for &ip in &host.addrs {
                if let Some(refusal) = self.refused_target(&host.name, ip) {
                    last_failure = Some(refusal);
                    continue;
                }
                let addr = SocketAddr::new(ip, self.settings.port);
                let attempt = self
                    .attempt(domain, host, addr, recipients, &mut outcomes)
                    .instrument(span.clone())
                    .await;
                match attempt {
                    HostAttempt::Done => break 'hosts,
                    HostAttempt::NextAddress(failure) => last_failure = Some(failure),
                    HostAttempt::NextHost(failure) => {
                        last_failure = Some(failure);
                        continue 'hosts;
                    }
                }
            }
        }
        let fallback = last_failure.unwrap_or_else(|| {
            RecipientOutcome::new(Reason::ConnectionFailed)
                .with_message("no mail host of the domain could be reached")
        });
        outcomes
            .into_iter()
            .map(|outcome| outcome.unwrap_or_else(|| fallback.clone()))
            .collect()
    }

    fn refused_target(&self, host: &str, ip: IpAddr) -> Option<RecipientOutcome> {
        if self.settings.allow_private_targets {
            return None;
        }
        let why = forbidden_target(ip)?;
        Some(
            RecipientOutcome::new(Reason::ConnectionFailed).with_message(format!(
                "refused to connect to {host} ({ip}): a {why} address; \
             mailvet only probes public addresses unless --allow-private-targets is set"
            )),
        )
    }

    fn host_state(&self, host: &str) -> Arc<HostState> {
        let mut per_host = self.per_host.lock().expect("per-host limits");
        per_host
            .entry(host.to_owned())
            .or_insert_with(|| Arc::new(HostState::new(self.settings.max_sessions_per_host)))
            .clone()
    }

    async fn permits(&self, state: &HostState) -> (OwnedSemaphorePermit, OwnedSemaphorePermit) {
        let host_limit = state.limit.clone();
        // The host's permit first, so that waiting for a busy host does not
        // hold one of the global sessions.
        let host_permit = host_limit
            .acquire_owned()
            .await
            .expect("semaphores are never closed");
        let session_permit = self
            .sessions
            .clone()
            .acquire_owned()
            .await
            .expect("semaphores are never closed");
        (host_permit, session_permit)
    }

    pub(crate) fn cached_catch_all(&self, domain: &str) -> Option<bool> {
        let cache = self.catch_all.lock().expect("catch-all cache");
        cache
            .get(domain)
            .filter(|(_, at)| at.elapsed() < CATCH_ALL_TTL)
            .map(|(catch_all, _)| *catch_all)
    }

    fn remember_catch_all(&self, domain: &str, catch_all: bool) {
        let mut cache = self.catch_all.lock().expect("catch-all cache");
        cache.retain(|_, (_, at)| at.elapsed() < CATCH_ALL_TTL);
        cache.insert(domain.to_owned(), (catch_all, Instant::now()));
    }

    /// Sessions with one address of a host until every recipient has an
    /// outcome (several sessions if the server's error limit is reached).
    async fn attempt(
        &self,
        domain: &str,
        host: &MailHost,
        addr: SocketAddr,
        recipients: &[EmailAddress],
        outcomes: &mut [Option<RecipientOutcome>],
    ) -> HostAttempt {
        let wanting = Wanting::new(self.host_state(&host.name));
        loop {
            let pending: Vec<usize> = (0..recipients.len())
                .filter(|&i| outcomes[i].is_none())
                .collect();
            if pending.is_empty() {
                return HostAttempt::Done;
            }
            let _permits = self.permits(&wanting.0).await;
            let started = Instant::now();
            let result = self
                .session(domain, host, &wanting, addr, recipients, &pending, outcomes)
                .await;
            metrics::histogram!("mailvet_smtp_session_duration_seconds")
                .record(started.elapsed().as_secs_f64());
            match result {
                SessionEnd::Finished => return HostAttempt::Done,
                SessionEnd::Reconnect => continue,
                SessionEnd::Failed(attempt) => return attempt,
            }
        }
    }

    /// Connects, reads the greeting and says EHLO: a session ready for a
    /// mail transaction, or how the attempt ended.
    async fn open(
        &self,
        name: &str,
        addr: SocketAddr,
        pending: &[usize],
        outcomes: &mut [Option<RecipientOutcome>],
    ) -> Result<Session, SessionEnd> {
        let (mut session, greeting) = match Session::connect(addr, name, self.session.clone()).await
        {
            Ok(connected) => connected,
            Err(err) => {
                count_probe("connect_failed");
                let failure = RecipientOutcome::from_session_error(name, &err);
                return Err(SessionEnd::Failed(HostAttempt::NextAddress(failure)));
            }
        };
        if !greeting.is_positive() {
            count_probe("refused_at_greeting");
            session.quit().await;
            let failure = RecipientOutcome::from_reply(Stage::Greeting, name, &greeting);
            return Err(SessionEnd::Failed(HostAttempt::NextHost(failure)));
        }
        let hello = match session.hello().await {
            Ok(reply) => reply,
            Err(err) => return Err(self.fail_session(name, &err, pending, outcomes)),
        };
        if !hello.is_positive() {
            count_probe("refused_at_ehlo");
            session.quit().await;
            let failure = RecipientOutcome::from_reply(Stage::Ehlo, name, &hello);
            return Err(SessionEnd::Failed(HostAttempt::NextHost(failure)));
        }
        Ok(session)
    }

    /// One SMTP session for the pending recipients: a session handed off by
    /// another probe of the host when there is one, else a new one. At the
    /// end the session is handed off to the next probe of the host if one
    /// is waiting, else closed.
    #[allow(clippy::too_many_lines, clippy::too_many_arguments)]
    async fn session(
        &self,
        domain: &str,
        host: &MailHost,
        wanting: &Wanting,
        addr: SocketAddr,
        recipients: &[EmailAddress],
        pending: &[usize],
        outcomes: &mut [Option<RecipientOutcome>],
    ) -> SessionEnd {
        let name = host.name.as_str();
        let (mut session, mut rejections, reused) = match wanting.0.take_idle(addr) {
            Some(idle) => {
                count_probe("session_reused");
                (idle.session, idle.rejections, true)
            }
            None => match self.open(name, addr, pending, outcomes).await {
                Ok(session) => (session, 0, false),
                Err(end) => return end,
            },
        };

        // Recipients with a UTF-8 local part need SMTPUTF8.
        let mut to_ask: Vec<usize> = Vec::with_capacity(pending.len());
        for &i in pending {
            if recipients[i].needs_smtputf8() && !session.extensions().smtputf8 {
                outcomes[i] = Some(
                    RecipientOutcome::new(Reason::SmtpError).with_message(format!(
                        "{name} does not support SMTPUTF8, which this address needs: \
                     it cannot receive mail there"
                    )),
                );
            } else {
                to_ask.push(i);
            }
        }
        if to_ask.is_empty() {
            session.quit().await;
            return SessionEnd::Finished;
        }
        let smtputf8 = to_ask.iter().any(|&i| recipients[i].needs_smtputf8());

        let mut mail = session.mail_from(&self.settings.mail_from, smtputf8).await;
        if reused && mail.is_err() {
            // The server closed the session while it waited: a new one.
            session = match self.open(name, addr, pending, outcomes).await {
                Ok(session) => session,
                Err(end) => return end,
            };
            rejections = 0;
            mail = session.mail_from(&self.settings.mail_from, smtputf8).await;
        }
        let mut mail = match mail {
            Ok(reply) => reply,
            Err(err) => return self.fail_session(name, &err, &to_ask, outcomes),
        };
        if demands_starttls(&mail) && session.extensions().starttls && !session.is_tls() {
            session = match session.start_tls().await {
                Ok(Ok((upgraded, hello))) if hello.is_positive() => upgraded,
                Ok(Ok((upgraded, hello))) => {
                    upgraded.quit().await;
                    let failure = RecipientOutcome::from_reply(Stage::Ehlo, name, &hello);
                    return SessionEnd::Failed(HostAttempt::NextHost(failure));
                }
                Ok(Err((refused, reply))) => {
                    refused.quit().await;
                    let failure = RecipientOutcome::from_reply(Stage::MailFrom, name, &reply);
                    return SessionEnd::Failed(HostAttempt::NextHost(failure));
                }
                Err(err) => return self.fail_session(name, &err, &to_ask, outcomes),
            };
            mail = match session.mail_from(&self.settings.mail_from, smtputf8).await {
                Ok(reply) => reply,
                Err(err) => return self.fail_session(name, &err, &to_ask, outcomes),
            };
        }
        if !mail.is_positive() {
            // A refusal of our sender: the same at every host of the domain.
            count_probe("refused_at_mail_from");
            let outcome = RecipientOutcome::from_reply(Stage::MailFrom, name, &mail);
            for &i in &to_ask {
                outcomes[i] = Some(outcome.clone());
            }
            session.quit().await;
            return SessionEnd::Finished;
        }

        let mut accepted = Vec::new();
        for (position, &i) in to_ask.iter().enumerate() {
            let reply = match session.rcpt_to(&recipients[i].normalized()).await {
                Ok(reply) => reply,
                Err(err) => return self.fail_session(name, &err, &to_ask[position..], outcomes),
            };
            let outcome = RecipientOutcome::from_reply(Stage::RcptTo, name, &reply);
            count_probe(outcome.reason.as_str());
            if outcome.reason == Reason::Accepted {
                accepted.push(i);
            } else {
                rejections += 1;
            }
            outcomes[i] = Some(outcome.clone());
            let rest = &to_ask[position + 1..];
            if reply.code() == 421 {
                // The server is closing the session: what it said stands for
                // the rest too, rather than hammering it again.
                for &j in rest {
                    outcomes[j] = Some(outcome.clone());
                }
                session.quit().await;
                return SessionEnd::Finished;
            }
            if rejections >= self.settings.max_rejections_per_session && !rest.is_empty() {
                let _ = session.rset().await;
                session.quit().await;
                self.check_catch_all(domain, None, &accepted, outcomes)
                    .await;
                return SessionEnd::Reconnect;
            }
        }
        self.check_catch_all(domain, Some(&mut session), &accepted, outcomes)
            .await;
        // The catch-all check may have added a rejection.
        let rejections = rejections + 1;
        let reset = session.rset().await;
        if reset.is_ok_and(|reply| reply.is_positive())
            && rejections < self.settings.max_rejections_per_session
            && wanting.shared()
        {
            wanting.0.hand_off(session, rejections);
        } else {
            session.quit().await;
        }
        SessionEnd::Finished
    }

    /// Marks accepted recipients of a catch-all domain as such. Asks the
    /// session about a random address at the domain unless the answer is
    /// cached.
    async fn check_catch_all(
        &self,
        domain: &str,
        session: Option<&mut Session>,
        accepted: &[usize],
        outcomes: &mut [Option<RecipientOutcome>],
    ) {
        if accepted.is_empty() {
            return;
        }
        let catch_all = match (self.cached_catch_all(domain), session) {
            (Some(known), _) => known,
            (None, Some(session)) => {
                let probe = format!("{}@{domain}", random_local_part());
                match session.rcpt_to(&probe).await {
                    Ok(reply) => {
                        let catch_all = reply.is_positive();
                        self.remember_catch_all(domain, catch_all);
                        catch_all
                    }
                    Err(_) => false,
                }
            }
            (None, None) => false,
        };
        if catch_all {
            for &i in accepted {
                if let Some(outcome) = outcomes[i].as_mut() {
                    outcome.reason = Reason::CatchAll;
                    outcome.catch_all = true;
                }
            }
        }
    }

    fn fail_session(
        &self,
        host: &str,
        err: &SessionError,
        unanswered: &[usize],
        outcomes: &mut [Option<RecipientOutcome>],
    ) -> SessionEnd {
        count_probe(if matches!(err, SessionError::Timeout(_)) {
            "timeout"
        } else {
            "session_error"
        });
        tracing::info!(phase = %err.phase(), error = %err, "SMTP session failed");
        let outcome = RecipientOutcome::from_session_error(host, err);
        if err.phase() == Phase::Greeting || err.phase() == Phase::Ehlo {
            // Nothing was learnt about any recipient: another host may do.
            return SessionEnd::Failed(HostAttempt::NextHost(outcome));
        }
        for &i in unanswered {
            if outcomes[i].is_none() {
                outcomes[i] = Some(outcome.clone());
            }
        }
        SessionEnd::Finished
    }
}

enum SessionEnd {
    Finished,
    Reconnect,
    Failed(HostAttempt),
}

/// `530 5.7.0 Must issue a STARTTLS command first` and its kin.
fn demands_starttls(reply: &SmtpReply) -> bool {
    reply.code() == 530 || reply.message().to_ascii_lowercase().contains("starttls")
}

/// A local part no one has: 20 random letters and digits.
fn random_local_part() -> String {
    let random: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(20)
        .map(|b| char::from(b).to_ascii_lowercase())
        .collect();
    format!("mailvet-{random}")
}

fn count_probe(outcome: &str) {
    metrics::counter!("mailvet_smtp_probes_total", "outcome" => outcome.to_owned()).increment(1);
}
