//! The SMTP probe: asks a domain's mail hosts, in order, whether they would
//! accept mail for each recipient, carrying several recipients in one
//! session and never sending `DATA`. It gathers evidence — each reply with
//! its stage, each failure — and concludes nothing from it: that is
//! `verdict.rs`'s job.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use moka::sync::Cache;
use rand::Rng;
use rand::distr::Alphanumeric;
use tracing::Instrument;

use super::dns::MailHost;
use super::evidence::{CatchAllEvidence, ProbeEvidence, Stage};
use super::guard::forbidden_target;
use super::hosts::{HostClaim, HostPool};
use super::verdict::catch_all_answer;
use crate::address::EmailAddress;
use crate::smtp::{Phase, Session, SessionConfig, SessionError, SmtpReply};

/// How long a domain's catch-all answer is reused.
const CATCH_ALL_TTL: Duration = Duration::from_secs(3600);
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
}

impl Findings {
    fn new(recipients: usize) -> Self {
        Findings {
            found: vec![None; recipients],
            accepted: Vec::new(),
            catch_all: CatchAllEvidence::NotAsked,
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
    fn finish(mut self, fallback: ProbeEvidence) -> Vec<ProbeEvidence> {
        for &i in &self.accepted {
            if let Some(ProbeEvidence::Answered { catch_all, .. }) = self.found[i].as_mut() {
                *catch_all = self.catch_all.clone();
            }
        }
        self.found
            .into_iter()
            .map(|evidence| evidence.unwrap_or_else(|| fallback.clone()))
            .collect()
    }
}

/// Runs probes within the session pool's caps.
#[derive(Debug)]
pub struct Prober {
    settings: ProbeSettings,
    session: SessionConfig,
    pool: HostPool,
    catch_all: Cache<String, bool>,
}

impl Prober {
    pub fn new(settings: ProbeSettings) -> Self {
        let session = SessionConfig {
            helo_name: settings.helo_name.clone(),
            timeout: settings.timeout,
            tls: crate::smtp::probe_tls_config(),
        };
        Prober {
            pool: HostPool::new(settings.max_sessions, settings.max_sessions_per_host),
            settings,
            session,
            catch_all: Cache::builder()
                .max_capacity(CATCH_ALL_CAPACITY)
                .time_to_live(CATCH_ALL_TTL)
                .build(),
        }
    }

    /// Whether an earlier probe found that `domain` accepts every address,
    /// while that answer is remembered.
    pub fn known_catch_all(&self, domain: &str) -> Option<bool> {
        self.catch_all.get(domain)
    }

    /// Probes `recipients` (all at `domain`) through `hosts`, in order.
    /// Returns the evidence for each recipient, in the same order.
    pub async fn probe(
        &self,
        domain: &str,
        hosts: &[MailHost],
        recipients: &[EmailAddress],
    ) -> Vec<ProbeEvidence> {
        let mut findings = Findings::new(recipients.len());
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
                    .attempt(domain, host, addr, recipients, &mut findings)
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
    ) -> HostAttempt {
        let claim = self.pool.want(&host.name);
        loop {
            let pending: Vec<usize> = (0..recipients.len())
                .filter(|&i| findings.found[i].is_none())
                .collect();
            if pending.is_empty() {
                return HostAttempt::Done;
            }
            let _permits = self.pool.permits(&claim).await;
            let started = Instant::now();
            let end = self
                .session(domain, host, &claim, addr, recipients, &pending, findings)
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

    /// Connects, reads the greeting and says EHLO: a session ready for a
    /// mail transaction, or how the attempt ended.
    async fn open(
        &self,
        name: &str,
        addr: SocketAddr,
        pending: &[usize],
        findings: &mut Findings,
    ) -> Result<Session, SessionEnd> {
        let (mut session, greeting) = match Session::connect(addr, name, self.session.clone()).await
        {
            Ok(connected) => connected,
            Err(err) => {
                count_probe("connect_failed");
                let failure = ProbeEvidence::failed(name, &err);
                return Err(SessionEnd::Failed(HostAttempt::NextAddress(failure)));
            }
        };
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
        if !hello.is_positive() {
            count_probe("refused_at_ehlo");
            session.quit().await;
            let refusal = refused(name, Stage::Ehlo, hello);
            return Err(SessionEnd::Failed(HostAttempt::NextHost(refusal)));
        }
        Ok(session)
    }

    /// One SMTP session for the pending recipients: a session handed off by
    /// another probe of the host when there is one, else a new one. At the
    /// end the session is handed off to the next probe of the host if one
    /// is waiting, else closed.
    #[allow(clippy::too_many_arguments)]
    async fn session(
        &self,
        domain: &str,
        host: &MailHost,
        claim: &HostClaim,
        addr: SocketAddr,
        recipients: &[EmailAddress],
        pending: &[usize],
        findings: &mut Findings,
    ) -> SessionEnd {
        let name = host.name.as_str();
        let (mut session, mut rejections, reused) = match claim.take_idle(addr) {
            Some(idle) => {
                count_probe("session_reused");
                (idle.session, idle.rejections, true)
            }
            None => match self.open(name, addr, pending, findings).await {
                Ok(session) => (session, 0, false),
                Err(end) => return end,
            },
        };

        // Recipients with a UTF-8 local part need SMTPUTF8.
        let mut to_ask: Vec<usize> = Vec::with_capacity(pending.len());
        for &i in pending {
            if recipients[i].needs_smtputf8() && !session.extensions().smtputf8 {
                findings.found[i] = Some(ProbeEvidence::NoSmtputf8 {
                    host: name.to_owned(),
                });
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
            session = match self.open(name, addr, pending, findings).await {
                Ok(session) => session,
                Err(end) => return end,
            };
            rejections = 0;
            mail = session.mail_from(&self.settings.mail_from, smtputf8).await;
        }
        let mut mail = match mail {
            Ok(reply) => reply,
            Err(err) => return self.fail_session(name, &err, &to_ask, findings),
        };
        if demands_starttls(&mail) && session.extensions().starttls && !session.is_tls() {
            session = match session.start_tls().await {
                Ok(Ok((upgraded, hello))) if hello.is_positive() => upgraded,
                Ok(Ok((upgraded, hello))) => {
                    upgraded.quit().await;
                    let refusal = refused(name, Stage::Ehlo, hello);
                    return SessionEnd::Failed(HostAttempt::NextHost(refusal));
                }
                Ok(Err((refusing, reply))) => {
                    refusing.quit().await;
                    let refusal = refused(name, Stage::MailFrom, reply);
                    return SessionEnd::Failed(HostAttempt::NextHost(refusal));
                }
                Err(err) => return self.fail_session(name, &err, &to_ask, findings),
            };
            mail = match session.mail_from(&self.settings.mail_from, smtputf8).await {
                Ok(reply) => reply,
                Err(err) => return self.fail_session(name, &err, &to_ask, findings),
            };
        }
        if !mail.is_positive() {
            // A refusal of our sender: the same at every host of the domain.
            count_probe("refused_at_mail_from");
            let refusal = refused(name, Stage::MailFrom, mail);
            for &i in &to_ask {
                findings.found[i] = Some(refusal.clone());
            }
            session.quit().await;
            return SessionEnd::Finished;
        }

        let mut transaction = Transaction {
            name,
            recipients: 0,
            rejections,
        };
        if let Err(err) = self
            .ask_catch_all(domain, &mut session, &mut transaction, findings)
            .await
        {
            return self.fail_session(name, &err, &to_ask, findings);
        }
        let end = match self
            .ask_recipients(
                &mut session,
                &mut transaction,
                recipients,
                &to_ask,
                findings,
            )
            .await
        {
            Ok(end) => end,
            Err((err, unanswered)) => {
                return self.fail_session(name, &err, &unanswered, findings);
            }
        };
        match end {
            Asked::All => {
                let reset = session.rset().await;
                if reset.is_ok_and(|reply| reply.is_positive())
                    && transaction.rejections < self.settings.max_rejections_per_session
                    && claim.shared()
                {
                    claim.hand_off(session, transaction.rejections);
                } else {
                    session.quit().await;
                }
                SessionEnd::Finished
            }
            Asked::Closing => {
                session.quit().await;
                SessionEnd::Finished
            }
            Asked::Enough => {
                let _ = session.rset().await;
                session.quit().await;
                SessionEnd::Reconnect
            }
        }
    }

    /// Asks, before any recipient, whether the domain accepts a random
    /// address — unless that is known already, from this probe or an
    /// earlier one. Asking first keeps the answer clear of the server's
    /// recipient limit.
    async fn ask_catch_all(
        &self,
        domain: &str,
        session: &mut Session,
        transaction: &mut Transaction<'_>,
        findings: &mut Findings,
    ) -> Result<(), SessionError> {
        if findings.catch_all_settled() {
            return Ok(());
        }
        if let Some(known) = self.known_catch_all(domain) {
            findings.catch_all = CatchAllEvidence::Known(known);
            return Ok(());
        }
        let random = format!("{}@{domain}", random_local_part());
        match session.rcpt_to(&random).await {
            Ok(reply) => {
                transaction.recipients += 1;
                if !reply.is_positive() {
                    transaction.rejections += 1;
                }
                if let Some(answer) = catch_all_answer(&reply) {
                    self.catch_all.insert(domain.to_owned(), answer);
                }
                findings.catch_all = CatchAllEvidence::Reply(reply);
                Ok(())
            }
            Err(err) => {
                findings.catch_all = CatchAllEvidence::Failed(err.to_string());
                Err(err)
            }
        }
    }

    /// `RCPT TO` for each recipient in turn, until all are asked, the
    /// server ends the session, or the session has carried enough (the
    /// recipient cap, the rejection cap, or the server's own recipient
    /// limit) and the rest go to a new one. A session error gives the
    /// recipients it left unanswered.
    async fn ask_recipients(
        &self,
        session: &mut Session,
        transaction: &mut Transaction<'_>,
        recipients: &[EmailAddress],
        to_ask: &[usize],
        findings: &mut Findings,
    ) -> Result<Asked, (SessionError, Vec<usize>)> {
        for (position, &i) in to_ask.iter().enumerate() {
            if transaction.recipients >= self.settings.max_recipients_per_session.max(1) {
                return Ok(Asked::Enough);
            }
            let reply = match session.rcpt_to(&recipients[i].normalized()).await {
                Ok(reply) => reply,
                Err(err) => return Err((err, to_ask[position..].to_vec())),
            };
            transaction.recipients += 1;
            if is_too_many_recipients(&reply) && position > 0 {
                // The server's recipient limit: this one and the rest in a
                // new session. (Refused before any answer, it is the reply.)
                count_probe("recipient_limit");
                return Ok(Asked::Enough);
            }
            count_probe(reply_class(&reply));
            if reply.is_positive() {
                findings.accepted.push(i);
            } else {
                transaction.rejections += 1;
            }
            let closing = reply.code() == 421;
            findings.found[i] = Some(ProbeEvidence::Answered {
                host: transaction.name.to_owned(),
                reply: reply.clone(),
                catch_all: CatchAllEvidence::NotAsked,
            });
            let rest = &to_ask[position + 1..];
            if closing {
                // The server is closing the session: what it said stands for
                // the rest too, rather than hammering it again.
                for &j in rest {
                    findings.found[j] = Some(ProbeEvidence::NotAsked {
                        host: transaction.name.to_owned(),
                        reply: reply.clone(),
                    });
                }
                return Ok(Asked::Closing);
            }
            if transaction.rejections >= self.settings.max_rejections_per_session
                && !rest.is_empty()
            {
                return Ok(Asked::Enough);
            }
        }
        Ok(Asked::All)
    }

    fn fail_session(
        &self,
        host: &str,
        err: &SessionError,
        unanswered: &[usize],
        findings: &mut Findings,
    ) -> SessionEnd {
        count_probe(if matches!(err, SessionError::Timeout(_)) {
            "timeout"
        } else {
            "session_error"
        });
        tracing::info!(phase = %err.phase(), error = %err, "SMTP session failed");
        let failure = ProbeEvidence::failed(host, err);
        if err.phase() == Phase::Greeting || err.phase() == Phase::Ehlo {
            // Nothing was learnt about any recipient: another host may do.
            return SessionEnd::Failed(HostAttempt::NextHost(failure));
        }
        for &i in unanswered {
            if findings.found[i].is_none() {
                findings.found[i] = Some(failure.clone());
            }
        }
        SessionEnd::Finished
    }
}

/// One mail transaction's counts.
struct Transaction<'a> {
    /// The mail host's name.
    name: &'a str,
    /// `RCPT TO` commands sent in the session.
    recipients: usize,
    /// Recipients the server refused in the session, across the probes it
    /// was handed between.
    rejections: usize,
}

/// How asking the recipients of a transaction ended.
enum Asked {
    /// Every recipient was asked.
    All,
    /// The server said it is closing the session (`421`).
    Closing,
    /// The session has carried enough; the rest go to a new one.
    Enough,
}

/// The server's limit of recipients per transaction (RFC 5321 §4.5.3.1.10:
/// `452 4.5.3 Error: too many recipients`, or the older `552`): not an
/// answer about the recipient, but a sign to go on in a new session.
fn is_too_many_recipients(reply: &SmtpReply) -> bool {
    matches!(reply.code(), 452 | 552)
        && (reply
            .enhanced()
            .is_some_and(|code| code.subject == 5 && code.detail == 3)
            || reply
                .message()
                .to_ascii_lowercase()
                .contains("too many recipients"))
}

fn refused(host: &str, stage: Stage, reply: SmtpReply) -> ProbeEvidence {
    ProbeEvidence::Refused {
        host: host.to_owned(),
        stage,
        reply,
    }
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

/// The class of a reply to `RCPT TO`, for metrics.
fn reply_class(reply: &SmtpReply) -> &'static str {
    if reply.is_positive() {
        "rcpt_accepted"
    } else if reply.is_transient() {
        "rcpt_deferred"
    } else {
        "rcpt_rejected"
    }
}

fn count_probe(outcome: &'static str) {
    metrics::counter!("mailvet_smtp_probes_total", "outcome" => outcome).increment(1);
}
