//! The verdict: one pure function from the evidence about an address to
//! its status and reason. Every rule that can make an address
//! `undeliverable` is here:
//!
//! - its syntax is invalid (`invalid_syntax`);
//! - it is on the suppression list (`suppressed`);
//! - DNS says the domain does not exist (NXDOMAIN: `no_such_domain`) or
//!   takes no mail (null MX, or neither MX nor address: `no_mail_server`),
//!   with the zone's SOA (`dns.rs`), while the resolver passes its canary
//!   checks;
//! - the domain's mail server answered `RCPT TO` for it with a permanent
//!   (5xx) reply that the reply classifier reads as about the mailbox: it
//!   does not exist, it is disabled, or (rarely, in the text) the server
//!   knows no such domain.
//!
//! Nothing else is: a failed DNS lookup, a refusal before `RCPT TO` (of our
//! connection, our HELO name, our sender), any temporary (4xx) reply, and
//! any rejection that blames the sender are `unknown`, whatever the code
//! says. How a reply's text and codes are read is the classifier's job
//! (`classify.rs`); this module decides what follows from it.

use super::classify::classify_reply;
use super::evidence::{
    CatchAllEvidence, DnsEvidence, Evidence, ProbeEvidence, SessionFailure, Stage,
};
use crate::smtp::SmtpReply;
use crate::vocab::{Reason, SmtpEvidence, Status, SuppressionReason};

/// What the evidence says about an address.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub reason: Reason,
    /// The reply that decided the verdict, if one did.
    pub smtp: Option<SmtpEvidence>,
    /// Why, in words, where the reply does not say it.
    pub message: Option<String>,
    /// The domain accepts mail for any address.
    pub catch_all: bool,
    /// The suppression list's reason, for a suppressed address.
    pub suppressed: Option<SuppressionReason>,
    /// Whether the verdict says something about the address and may be
    /// kept in the cache. A refusal by mailvet's own probe budget does not.
    pub cacheable: bool,
}

impl Verdict {
    fn new(reason: Reason) -> Self {
        Verdict {
            reason,
            smtp: None,
            message: None,
            catch_all: false,
            suppressed: None,
            cacheable: true,
        }
    }

    fn because(reason: Reason, message: impl Into<String>) -> Self {
        Verdict {
            message: Some(message.into()),
            ..Verdict::new(reason)
        }
    }

    pub fn status(&self) -> Status {
        self.reason.status()
    }
}

/// The verdict the evidence supports.
pub fn decide(evidence: &Evidence<'_>) -> Verdict {
    match evidence {
        Evidence::InvalidSyntax(err) => Verdict::because(Reason::InvalidSyntax, err.to_string()),
        Evidence::Suppressed(entry) => Verdict {
            smtp: entry.diagnosis.reply(),
            suppressed: Some(entry.reason),
            ..Verdict::new(Reason::Suppressed)
        },
        Evidence::Disposable => Verdict::because(
            Reason::Disposable,
            "the domain is a disposable-mail service",
        ),
        Evidence::Dns {
            domain,
            dns,
            trusted,
        } => {
            if !*trusted && !matches!(dns, DnsEvidence::Failed(_)) {
                return Verdict::because(
                    Reason::DnsError,
                    format!(
                        "the DNS resolver fails its canary checks, so its answer for {domain} \
                         proves nothing"
                    ),
                );
            }
            from_dns(domain, dns)
        }
        Evidence::OverBudget {
            domain,
            refusal,
            known_catch_all,
        } => {
            if *known_catch_all == Some(true) {
                // Known without a probe: every address there is accepted.
                return Verdict {
                    catch_all: true,
                    cacheable: false,
                    ..Verdict::because(
                        Reason::CatchAll,
                        format!("{domain} accepts every address (known from an earlier probe)"),
                    )
                };
            }
            Verdict {
                cacheable: false,
                ..Verdict::because(
                    Reason::RateLimited,
                    format!(
                        "mailvet's probe budget for {domain} ({} new probes a minute) is used up; \
                         try again in {} s",
                        refusal.per_minute,
                        refusal.wait.as_secs().max(1)
                    ),
                )
            }
        }
        Evidence::Probe(probe) => from_probe(probe),
    }
}

fn from_dns(domain: &str, dns: &DnsEvidence<'_>) -> Verdict {
    match dns {
        DnsEvidence::NoSuchDomain => Verdict::because(
            Reason::NoSuchDomain,
            format!("{domain} does not exist (NXDOMAIN)"),
        ),
        DnsEvidence::NullMx => Verdict::because(
            Reason::NoMailServer,
            format!("{domain} accepts no mail (null MX)"),
        ),
        DnsEvidence::NoMailServer => Verdict::because(
            Reason::NoMailServer,
            format!("{domain} has no MX record and no address to deliver to"),
        ),
        // A failed lookup never proves absence.
        DnsEvidence::Failed(err) => Verdict::because(Reason::DnsError, err.to_string()),
    }
}

fn from_probe(probe: &ProbeEvidence) -> Verdict {
    match probe {
        ProbeEvidence::Answered {
            host,
            reply,
            catch_all,
        } => {
            let mut verdict = from_reply(Stage::RcptTo, host, reply);
            if verdict.reason != Reason::Accepted {
                return verdict;
            }
            match accepts_any_address(catch_all) {
                Some(true) => {
                    verdict.reason = Reason::CatchAll;
                    verdict.catch_all = true;
                }
                Some(false) => {}
                None => {
                    // Accepted, but so might any address be: an inconclusive
                    // check is never read as "not a catch-all".
                    verdict.reason = inconclusive_reason(catch_all);
                    verdict.message = Some(format!(
                        "{host} accepted the address, but whether it accepts every address \
                         could not be told: {}",
                        describe(catch_all)
                    ));
                }
            }
            verdict
        }
        ProbeEvidence::NotAsked { host, reply } => from_reply(Stage::RcptTo, host, reply),
        ProbeEvidence::Refused { host, stage, reply } => from_reply(*stage, host, reply),
        ProbeEvidence::Failed {
            host,
            failure,
            detail,
        } => {
            let reason = match failure {
                SessionFailure::Timeout => Reason::Timeout,
                SessionFailure::Connect => Reason::ConnectionFailed,
                SessionFailure::Protocol => Reason::SmtpError,
            };
            Verdict::because(reason, format!("{host}: {detail}"))
        }
        // The address cannot be delivered through that server, but nothing
        // says the mailbox is missing.
        ProbeEvidence::NoSmtputf8 { host } => Verdict::because(
            Reason::SmtpError,
            format!(
                "{host} does not support SMTPUTF8, which this address needs: \
                 it cannot receive mail there"
            ),
        ),
        ProbeEvidence::ForbiddenTarget { host, ip, why } => Verdict::because(
            Reason::ConnectionFailed,
            format!(
                "refused to connect to {host} ({ip}): a {why} address; \
                 mailvet only probes public addresses unless --allow-private-targets is set"
            ),
        ),
        ProbeEvidence::NoHostTried => Verdict::because(
            Reason::ConnectionFailed,
            "no mail host of the domain could be reached",
        ),
    }
}

/// The verdict of one reply. Before `RCPT TO` the classifier never names the
/// recipient; and only a permanent reply may make an address undeliverable,
/// whatever the classifier says.
fn from_reply(stage: Stage, host: &str, reply: &SmtpReply) -> Verdict {
    let mut reason = classify_reply(stage, reply);
    if reason.status() == Status::Undeliverable && !(stage == Stage::RcptTo && reply.is_permanent())
    {
        reason = Reason::SmtpError;
    }
    Verdict {
        smtp: Some(SmtpEvidence::new(host, reply)),
        ..Verdict::new(reason)
    }
}

/// What a reply to `RCPT TO` for a random address says about the domain
/// accepting every address: `Some(true)` when it was accepted,
/// `Some(false)` when it was refused as a mailbox that does not exist, and
/// `None` when it says neither (a deferral, a limit, a refusal of us).
pub fn catch_all_answer(reply: &SmtpReply) -> Option<bool> {
    if reply.is_positive() {
        return Some(true);
    }
    let reason = classify_reply(Stage::RcptTo, reply);
    (reply.is_permanent() && reason.status() == Status::Undeliverable).then_some(false)
}

fn accepts_any_address(evidence: &CatchAllEvidence) -> Option<bool> {
    match evidence {
        CatchAllEvidence::Known(catch_all) => Some(*catch_all),
        CatchAllEvidence::Reply(reply) => catch_all_answer(reply),
        CatchAllEvidence::NotAsked | CatchAllEvidence::Failed(_) => None,
    }
}

/// Why an accepted address stays unknown when the catch-all check was
/// inconclusive: what the check's reply says, where it says something.
fn inconclusive_reason(evidence: &CatchAllEvidence) -> Reason {
    match evidence {
        CatchAllEvidence::Reply(reply) => {
            let reason = classify_reply(Stage::RcptTo, reply);
            if reason.status() == Status::Unknown {
                reason
            } else {
                Reason::SmtpError
            }
        }
        _ => Reason::SmtpError,
    }
}

fn describe(evidence: &CatchAllEvidence) -> String {
    match evidence {
        CatchAllEvidence::Reply(reply) => format!(
            "a random address got \"{} {}\"",
            reply.code(),
            reply.message()
        ),
        CatchAllEvidence::Failed(error) => format!("asking about a random address failed: {error}"),
        CatchAllEvidence::NotAsked | CatchAllEvidence::Known(_) => {
            "no random address was asked about".to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::Utc;

    use super::*;
    use crate::address::SyntaxError;
    use crate::store::Suppression;
    use crate::verify::dns::DnsError;
    use crate::verify::evidence::BudgetRefusal;
    use crate::vocab::{Diagnosis, SuppressionSource};

    fn reply(raw: &str) -> SmtpReply {
        SmtpReply::parse(raw).expect("a valid reply")
    }

    fn answered(raw: &str, catch_all: CatchAllEvidence) -> ProbeEvidence {
        ProbeEvidence::Answered {
            host: "mx.example.test".into(),
            reply: reply(raw),
            catch_all,
        }
    }

    fn refused(stage: Stage, raw: &str) -> ProbeEvidence {
        ProbeEvidence::Refused {
            host: "mx.example.test".into(),
            stage,
            reply: reply(raw),
        }
    }

    fn failed(failure: SessionFailure) -> ProbeEvidence {
        ProbeEvidence::Failed {
            host: "mx.example.test".into(),
            failure,
            detail: "it went wrong".into(),
        }
    }

    fn suppressed() -> Suppression {
        Suppression {
            address_key: "gone@example.test".into(),
            email: "gone@example.test".into(),
            reason: SuppressionReason::Complaint,
            source: SuppressionSource::Bounce,
            diagnosis: Diagnosis {
                smtp_code: Some(550),
                enhanced_code: Some("5.1.1".into()),
                diagnostic: Some("User unknown".into()),
                mx_host: Some("mx.example.test".into()),
            },
            evidence: None,
            deleted: false,
            seq: 4,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    /// Every kind of evidence, with the verdict it must give.
    #[test]
    fn each_kind_of_evidence_gives_its_verdict() {
        let syntax = SyntaxError::MissingAt;
        let entry = suppressed();
        let dns_failure = DnsError {
            name: "example.test".into(),
            detail: "SERVFAIL".into(),
        };
        let refusal = BudgetRefusal {
            per_minute: 60,
            wait: Duration::from_secs(3),
        };
        let probes = [
            answered("250 2.1.5 Ok", CatchAllEvidence::NotAsked),
            answered(
                "250 2.1.5 Ok",
                CatchAllEvidence::Reply(reply("250 2.1.5 Ok")),
            ),
            answered(
                "250 2.1.5 Ok",
                CatchAllEvidence::Reply(reply("550 5.1.1 User unknown")),
            ),
            answered("250 2.1.5 Ok", CatchAllEvidence::Known(true)),
            answered(
                "550 5.1.1 <x@example.test>: Recipient address rejected: User unknown",
                CatchAllEvidence::NotAsked,
            ),
            answered(
                "550 5.2.1 The email account that you tried to reach is disabled",
                CatchAllEvidence::NotAsked,
            ),
            answered(
                "552 5.2.2 The email account that you tried to reach is over quota",
                CatchAllEvidence::NotAsked,
            ),
            answered(
                "450 4.2.0 <x@example.test>: Recipient address rejected: Greylisted",
                CatchAllEvidence::NotAsked,
            ),
            answered(
                "550 5.7.1 Service unavailable; client host blocked using zen.spamhaus.org",
                CatchAllEvidence::NotAsked,
            ),
            answered(
                "450 4.1.1 <x@example.test>: Recipient address rejected: User unknown",
                CatchAllEvidence::NotAsked,
            ),
            ProbeEvidence::NotAsked {
                host: "mx.example.test".into(),
                reply: reply("421 4.7.0 Try again later, closing connection."),
            },
            refused(Stage::Greeting, "554 5.7.1 No SMTP service here"),
            refused(Stage::MailFrom, "550 5.1.1 User unknown"),
            refused(Stage::MailFrom, "451 4.3.0 Local error"),
            failed(SessionFailure::Timeout),
            failed(SessionFailure::Connect),
            failed(SessionFailure::Protocol),
            ProbeEvidence::NoSmtputf8 {
                host: "mx.example.test".into(),
            },
            ProbeEvidence::ForbiddenTarget {
                host: "mx.example.test".into(),
                ip: "169.254.169.254".parse().expect("an IP"),
                why: "link-local",
            },
            ProbeEvidence::NoHostTried,
        ];
        let domain = "example.test";
        let table: Vec<(Evidence<'_>, Reason)> = vec![
            (Evidence::InvalidSyntax(&syntax), Reason::InvalidSyntax),
            (Evidence::Suppressed(&entry), Reason::Suppressed),
            (Evidence::Disposable, Reason::Disposable),
            (
                Evidence::Dns {
                    domain,
                    dns: DnsEvidence::NoSuchDomain,
                    trusted: true,
                },
                Reason::NoSuchDomain,
            ),
            (
                Evidence::Dns {
                    domain,
                    dns: DnsEvidence::NullMx,
                    trusted: true,
                },
                Reason::NoMailServer,
            ),
            (
                Evidence::Dns {
                    domain,
                    dns: DnsEvidence::NoMailServer,
                    trusted: true,
                },
                Reason::NoMailServer,
            ),
            (
                Evidence::Dns {
                    domain,
                    dns: DnsEvidence::Failed(&dns_failure),
                    trusted: true,
                },
                Reason::DnsError,
            ),
            (
                Evidence::Dns {
                    domain,
                    dns: DnsEvidence::NoSuchDomain,
                    trusted: false,
                },
                Reason::DnsError,
            ),
            (
                Evidence::Dns {
                    domain,
                    dns: DnsEvidence::NullMx,
                    trusted: false,
                },
                Reason::DnsError,
            ),
            (
                Evidence::OverBudget {
                    domain,
                    refusal: &refusal,
                    known_catch_all: None,
                },
                Reason::RateLimited,
            ),
            (
                Evidence::OverBudget {
                    domain,
                    refusal: &refusal,
                    known_catch_all: Some(false),
                },
                Reason::RateLimited,
            ),
            (
                Evidence::OverBudget {
                    domain,
                    refusal: &refusal,
                    known_catch_all: Some(true),
                },
                Reason::CatchAll,
            ),
            (Evidence::Probe(&probes[0]), Reason::SmtpError),
            (Evidence::Probe(&probes[1]), Reason::CatchAll),
            (Evidence::Probe(&probes[2]), Reason::Accepted),
            (Evidence::Probe(&probes[3]), Reason::CatchAll),
            (Evidence::Probe(&probes[4]), Reason::MailboxNotFound),
            (Evidence::Probe(&probes[5]), Reason::MailboxDisabled),
            (Evidence::Probe(&probes[6]), Reason::MailboxFull),
            (Evidence::Probe(&probes[7]), Reason::Greylisted),
            (Evidence::Probe(&probes[8]), Reason::Blocked),
            (Evidence::Probe(&probes[9]), Reason::Greylisted),
            (Evidence::Probe(&probes[10]), Reason::RateLimited),
            (Evidence::Probe(&probes[11]), Reason::Blocked),
            (Evidence::Probe(&probes[12]), Reason::Blocked),
            (Evidence::Probe(&probes[13]), Reason::SmtpError),
            (Evidence::Probe(&probes[14]), Reason::Timeout),
            (Evidence::Probe(&probes[15]), Reason::ConnectionFailed),
            (Evidence::Probe(&probes[16]), Reason::SmtpError),
            (Evidence::Probe(&probes[17]), Reason::SmtpError),
            (Evidence::Probe(&probes[18]), Reason::ConnectionFailed),
            (Evidence::Probe(&probes[19]), Reason::ConnectionFailed),
        ];
        for (evidence, expected) in &table {
            let verdict = decide(evidence);
            assert_eq!(verdict.reason, *expected, "{evidence:?}");
            assert_eq!(verdict.status(), expected.status(), "{evidence:?}");
        }
    }

    #[test]
    fn an_inconclusive_catch_all_check_is_never_read_as_not_a_catch_all() {
        let accepted = |catch_all| decide(&Evidence::Probe(&answered("250 2.1.5 Ok", catch_all)));
        let conclusive = [
            (CatchAllEvidence::Known(false), Reason::Accepted),
            (CatchAllEvidence::Known(true), Reason::CatchAll),
            (
                CatchAllEvidence::Reply(reply("550 5.1.1 <x@example.test>: User unknown")),
                Reason::Accepted,
            ),
            (
                CatchAllEvidence::Reply(reply("250 2.1.5 Ok")),
                Reason::CatchAll,
            ),
        ];
        for (evidence, expected) in conclusive {
            assert_eq!(accepted(evidence.clone()).reason, expected, "{evidence:?}");
        }
        let inconclusive = [
            (
                CatchAllEvidence::Reply(reply("452 4.5.3 Error: too many recipients")),
                Reason::RateLimited,
            ),
            (
                CatchAllEvidence::Reply(reply("450 4.2.0 Greylisted, try again later")),
                Reason::Greylisted,
            ),
            (
                CatchAllEvidence::Reply(reply(
                    "550 5.7.1 Service unavailable; client host blocked using zen.spamhaus.org",
                )),
                Reason::Blocked,
            ),
            (
                CatchAllEvidence::Failed("no answer to RCPT TO within the timeout".into()),
                Reason::SmtpError,
            ),
            (CatchAllEvidence::NotAsked, Reason::SmtpError),
        ];
        for (evidence, expected) in inconclusive {
            let verdict = accepted(evidence.clone());
            assert_eq!(verdict.reason, expected, "{evidence:?}");
            assert_eq!(verdict.status(), Status::Unknown, "{evidence:?}");
            assert!(!verdict.catch_all);
            assert!(
                verdict
                    .message
                    .is_some_and(|message| message.contains("could not be told")),
                "{evidence:?}"
            );
        }
        assert_eq!(catch_all_answer(&reply("250 2.1.5 Ok")), Some(true));
        assert_eq!(
            catch_all_answer(&reply("550 5.1.1 User unknown")),
            Some(false)
        );
        assert_eq!(
            catch_all_answer(&reply("452 4.5.3 Error: too many recipients")),
            None
        );
    }

    #[test]
    fn only_a_permanent_reply_to_rcpt_to_or_dns_makes_an_address_undeliverable() {
        // Whatever a reply says, before RCPT TO or as a 4xx it is not
        // evidence that the mailbox is missing.
        for raw in [
            "550 5.1.1 User unknown",
            "550 5.2.1 Mailbox disabled",
            "550 5.4.4 Host or domain name not found",
            "450 4.1.1 User unknown",
        ] {
            for stage in [Stage::Greeting, Stage::Ehlo, Stage::MailFrom] {
                let verdict = decide(&Evidence::Probe(&refused(stage, raw)));
                assert_ne!(verdict.status(), Status::Undeliverable, "{stage:?} {raw}");
            }
        }
        let transient = answered("450 4.1.1 User unknown", CatchAllEvidence::NotAsked);
        assert_ne!(
            decide(&Evidence::Probe(&transient)).status(),
            Status::Undeliverable
        );
    }

    #[test]
    fn verdicts_keep_their_evidence() {
        let probe = answered(
            "550 5.1.1 <x@example.test>: Recipient address rejected: User unknown",
            CatchAllEvidence::NotAsked,
        );
        let verdict = decide(&Evidence::Probe(&probe));
        let smtp = verdict.smtp.expect("the reply is kept");
        assert_eq!(smtp.code, 550);
        assert_eq!(smtp.enhanced_code.as_deref(), Some("5.1.1"));
        assert_eq!(smtp.host, "mx.example.test");
        assert!(verdict.cacheable);

        let entry = suppressed();
        let verdict = decide(&Evidence::Suppressed(&entry));
        assert_eq!(verdict.suppressed, Some(SuppressionReason::Complaint));
        assert_eq!(verdict.smtp.expect("the entry's reply").code, 550);

        let refusal = BudgetRefusal {
            per_minute: 60,
            wait: Duration::from_secs(3),
        };
        for known_catch_all in [None, Some(true)] {
            let verdict = decide(&Evidence::OverBudget {
                domain: "example.test",
                refusal: &refusal,
                known_catch_all,
            });
            assert!(
                !verdict.cacheable,
                "a budget refusal is no check of the address"
            );
        }
    }
}
