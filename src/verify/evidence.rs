//! What the pipeline learns about an address, before anything is concluded
//! from it. The stages gather evidence; [`super::verdict::decide`] alone
//! turns it into a verdict.

use std::net::IpAddr;
use std::time::Duration;

use super::dns::{DnsError, MailHost, MailRoute};
use crate::address::SyntaxError;
use crate::smtp::{SessionError, SmtpReply};
use crate::store::Suppression;

/// Where in the session a reply came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Greeting,
    Ehlo,
    MailFrom,
    RcptTo,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Greeting => "greeting",
            Stage::Ehlo => "ehlo",
            Stage::MailFrom => "mail_from",
            Stage::RcptTo => "rcpt_to",
        }
    }
}

/// Everything known about one address when its verdict is decided: how far
/// the pipeline went, and what it found at the last step.
#[derive(Debug, Clone, Copy)]
pub enum Evidence<'a> {
    /// The address could not be parsed.
    InvalidSyntax(&'a SyntaxError),
    /// The address is on the suppression list.
    Suppressed(&'a Suppression),
    /// The domain (or a parent) is a disposable-mail service.
    Disposable,
    /// DNS gave no mail host to ask. `trusted` is false while the
    /// resolver fails its canary checks (`resolver_watch.rs`).
    Dns {
        domain: &'a str,
        dns: DnsEvidence<'a>,
        trusted: bool,
    },
    /// The domain's probe budget is used up.
    OverBudget {
        domain: &'a str,
        refusal: &'a BudgetRefusal,
        /// What an earlier probe found out about the domain accepting every
        /// address, if it is still remembered.
        known_catch_all: Option<bool>,
    },
    /// The SMTP probe's findings.
    Probe(&'a ProbeEvidence),
}

/// A DNS answer that names no mail host.
#[derive(Debug, Clone, Copy)]
pub enum DnsEvidence<'a> {
    /// NXDOMAIN.
    NoSuchDomain,
    /// `MX 0 .`.
    NullMx,
    /// Neither MX records nor an address, or MX hosts without addresses.
    NoMailServer,
    /// The lookup failed (SERVFAIL, timeout): no answer at all.
    Failed(&'a DnsError),
}

impl<'a> DnsEvidence<'a> {
    /// The mail hosts a DNS answer names, or the evidence of why there are
    /// none.
    pub fn of(route: &'a Result<MailRoute, DnsError>) -> Result<&'a [MailHost], Self> {
        match route {
            Ok(MailRoute::Hosts { hosts, .. }) => Ok(hosts),
            Ok(MailRoute::NoSuchDomain) => Err(DnsEvidence::NoSuchDomain),
            Ok(MailRoute::NullMx) => Err(DnsEvidence::NullMx),
            Ok(MailRoute::NoMailServer) => Err(DnsEvidence::NoMailServer),
            Err(err) => Err(DnsEvidence::Failed(err)),
        }
    }
}

/// The probe budget's refusal of a new probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetRefusal {
    /// New probes a minute the budget allows a domain.
    pub per_minute: u32,
    /// When the next probe would be allowed.
    pub wait: Duration,
}

/// One exchange of a probe with a mail server: what was sent (or
/// `connect <address>` for the connection and its greeting), and the reply
/// or why none came. Kept when one address is probed on its own, for the
/// answer's transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange {
    pub host: String,
    pub sent: String,
    pub heard: Result<SmtpReply, String>,
}

/// What the SMTP probe learnt about one recipient.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeEvidence {
    /// The server answered `RCPT TO` for the recipient.
    Answered {
        host: String,
        reply: SmtpReply,
        catch_all: CatchAllEvidence,
    },
    /// The recipient was not asked: the server ended the session (`421`)
    /// when an earlier recipient of it was asked, and that reply stands
    /// for this one too.
    NotAsked { host: String, reply: SmtpReply },
    /// A server refused the session or our sender before any recipient
    /// was asked: a negative greeting, `EHLO` or `MAIL FROM` (after
    /// `STARTTLS`, where the server demanded it).
    Refused {
        host: String,
        stage: Stage,
        reply: SmtpReply,
    },
    /// Talking to a server failed without a reply to go by.
    Failed {
        host: String,
        failure: SessionFailure,
        detail: String,
    },
    /// The address has a UTF-8 local part and the server does not offer
    /// SMTPUTF8.
    NoSmtputf8 { host: String },
    /// The SSRF guard refused every address of the domain's mail hosts.
    ForbiddenTarget {
        host: String,
        ip: IpAddr,
        why: &'static str,
    },
    /// No mail host could be tried at all.
    NoHostTried,
}

/// How a session failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionFailure {
    /// The TCP connection could not be made.
    Connect,
    /// The server did not answer within the phase's timeout.
    Timeout,
    /// The server broke the protocol, closed the connection, or TLS failed.
    Protocol,
}

impl ProbeEvidence {
    /// The evidence of a session error at `host`.
    pub fn failed(host: &str, err: &SessionError) -> Self {
        let failure = match err {
            SessionError::Timeout(_) => SessionFailure::Timeout,
            SessionError::Connect { .. } | SessionError::Proxy { .. } => SessionFailure::Connect,
            _ => SessionFailure::Protocol,
        };
        ProbeEvidence::Failed {
            host: host.to_owned(),
            failure,
            detail: err.to_string(),
        }
    }

    /// Whether the server accepted the recipient.
    pub fn accepted(&self) -> bool {
        matches!(self, ProbeEvidence::Answered { reply, .. } if reply.is_positive())
    }
}

/// What is known about a domain accepting mail for any address, from the
/// `RCPT TO` of a random address, asked before the real recipients.
#[derive(Debug, Clone, PartialEq)]
pub enum CatchAllEvidence {
    /// Not asked.
    NotAsked,
    /// Known from an earlier probe of the domain.
    Known(bool),
    /// The server's reply to the random address.
    Reply(SmtpReply),
    /// Asking failed (the session broke or timed out).
    Failed(String),
}
