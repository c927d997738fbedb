//! One SMTP session of a probe: the mail transaction after the greeting —
//! `MAIL FROM` (with `STARTTLS` when the server demands it), the catch-all
//! check, then `RCPT TO` for each recipient — and where it hands over: to
//! a new session, the next probe of the host, or `QUIT`.

use std::net::SocketAddr;

use rand::Rng;
use rand::distr::Alphanumeric;

use super::super::dns::MailHost;
use super::super::evidence::{CatchAllEvidence, ProbeEvidence, Stage};
use super::super::hosts::HostClaim;
use super::super::verdict::catch_all_answer;
use super::{Findings, HostAttempt, Prober, SessionEnd, SessionRight, count_probe, refused};
use crate::address::EmailAddress;
use crate::smtp::{Phase, Session, SessionError, SmtpReply};

impl Prober {
    /// One SMTP session for the pending recipients: a session handed off by
    /// another probe of the host when there is one, else a new one. At the
    /// end the session is handed off to the next probe of the host if one
    /// is waiting, else closed.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn session(
        &self,
        domain: &str,
        host: &MailHost,
        claim: &HostClaim,
        addr: SocketAddr,
        recipients: &[EmailAddress],
        pending: &[usize],
        findings: &mut Findings,
        right: SessionRight,
    ) -> SessionEnd {
        let name = host.name.as_str();
        let SessionRight { permits, idle } = right;
        let (mut session, mut rejections, reused) = match idle {
            Some((session, rejections)) => {
                count_probe("session_reused");
                findings.note(
                    name,
                    format!("(the session open at {addr})"),
                    Err("taken over from an earlier probe of this host, which had the greeting and EHLO".to_owned()),
                );
                (session, rejections, true)
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
        let mail_from = format!("MAIL FROM:<{}>", self.settings.mail_from);
        let mut mail = match mail {
            Ok(reply) => reply,
            Err(err) => return self.fail_session(name, &err, &to_ask, findings),
        };
        findings.note(name, mail_from.as_str(), Ok(&mail));
        if demands_starttls(&mail) && session.extensions().starttls && !session.is_tls() {
            let upgrade = session.start_tls().await;
            if let Ok(Ok((_, hello))) = &upgrade {
                findings.note(name, "STARTTLS, then EHLO", Ok(hello));
            }
            if let Ok(Err((_, reply))) = &upgrade {
                findings.note(name, "STARTTLS", Ok(reply));
            }
            session = match upgrade {
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
            findings.note(name, mail_from.as_str(), Ok(&mail));
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
                    claim.hand_off(session, transaction.rejections, permits);
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
            findings.note(
                transaction.name,
                "(the catch-all check)",
                Err(format!(
                    "not asked: an earlier probe found that {domain} {}",
                    if known {
                        "accepts every address"
                    } else {
                        "refuses unknown addresses"
                    }
                )),
            );
            findings.catch_all = CatchAllEvidence::Known(known);
            return Ok(());
        }
        let random = format!("{}@{domain}", random_local_part());
        match session.rcpt_to(&random).await {
            Ok(reply) => {
                findings.note(transaction.name, format!("RCPT TO:<{random}>"), Ok(&reply));
                transaction.recipients += 1;
                if !reply.is_positive() {
                    transaction.rejections += 1;
                }
                if let Some(answer) = catch_all_answer(&reply) {
                    self.catch_all.insert(domain.to_owned(), answer);
                    if let Some(cluster) = &self.cluster {
                        cluster.remember_catch_all(domain, answer);
                    }
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
            let recipient = recipients[i].normalized();
            let reply = match session.rcpt_to(&recipient).await {
                Ok(reply) => reply,
                Err(err) => return Err((err, to_ask[position..].to_vec())),
            };
            findings.note(
                transaction.name,
                format!("RCPT TO:<{recipient}>"),
                Ok(&reply),
            );
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

    pub(super) fn fail_session(
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
        findings.note(host, err.phase().to_string(), Err(err.to_string()));
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
