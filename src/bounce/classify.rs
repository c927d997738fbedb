//! What a reported bounce means for its recipient: the verification
//! engine's classifier on the report's SMTP evidence, then the provider's
//! own hard/soft verdict when the report has no evidence of its own.

use super::{BounceKind, ReportedRecipient};
use crate::smtp::SmtpReply;
use crate::verify::{Stage, classify_reply};
use crate::vocab::Reason;
use crate::vocab::SuppressionReason;

/// A reported recipient, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classified {
    pub kind: BounceKind,
    /// The verdict the classifier gave the report's reply, if it had one.
    pub reason: Option<Reason>,
    /// The suppression a hard bounce or a complaint calls for.
    pub suppress_as: Option<SuppressionReason>,
}

impl Classified {
    fn new(kind: BounceKind, reason: Option<Reason>) -> Self {
        Classified {
            kind,
            reason,
            suppress_as: None,
        }
    }
}

/// The SMTP reply a report stands for: its code (or one implied by its
/// status or the provider's verdict), its status and its text.
pub(super) fn evidence_reply(recipient: &ReportedRecipient) -> Option<SmtpReply> {
    let code = recipient
        .smtp_code
        .or_else(|| {
            recipient.status.map(|status| match status.class {
                2 => 250,
                4 => 450,
                _ => 550,
            })
        })
        .or(match (recipient.provider_kind, &recipient.diagnostic) {
            (Some(BounceKind::Hard | BounceKind::Undetermined), Some(_)) => Some(550),
            (Some(BounceKind::Soft), Some(_)) => Some(450),
            // A failure notice that explains itself in words only ("The
            // recipient name is not recognized"): the words are read as a
            // permanent reply's, so that only a named cause can decide.
            (None, Some(_)) if recipient.action.as_deref() == Some("failed") => Some(550),
            _ => None,
        })?;
    let text = recipient
        .diagnostic
        .as_deref()
        .map(|diagnostic| strip_codes(diagnostic, code))
        .unwrap_or_default();
    let status = recipient
        .status
        .filter(|status| u16::from(status.class) == code / 100)
        .map(|status| format!(" {status}"))
        .unwrap_or_default();
    let line = format!("{code}{status} {text}");
    SmtpReply::parse(line.replace(['\r', '\n'], " ").trim_end()).ok()
}

/// A diagnostic without its leading reply code and enhanced code (they are
/// put back from the report's fields).
fn strip_codes(diagnostic: &str, code: u16) -> String {
    let text = diagnostic.trim();
    let text = text
        .strip_prefix(&code.to_string())
        .map_or(text, |rest| rest.trim_start_matches(['-', ' ']));
    match text.split_whitespace().next() {
        Some(token) if token.parse::<crate::smtp::EnhancedCode>().is_ok() => {
            text[token.len()..].trim_start().to_owned()
        }
        _ => text.to_owned(),
    }
}

/// Where in the sending session the reported reply came, as the report
/// says in words (Postfix "in reply to MAIL FROM command", Exim "after end
/// of data", qmail "failed after I sent the message").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Said {
    BeforeMailFrom,
    AtMailFrom,
    AtRcptTo,
    AfterData,
}

impl Said {
    fn session_stage(self) -> Stage {
        match self {
            Said::BeforeMailFrom => Stage::Ehlo,
            Said::AtMailFrom => Stage::MailFrom,
            Said::AtRcptTo | Said::AfterData => Stage::RcptTo,
        }
    }
}

fn stage_of(diagnostic: &str) -> Said {
    let text = diagnostic.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|needle| text.contains(needle));
    if any(&["in reply to rcpt to", "after rcpt to", "rcpt to response"]) {
        Said::AtRcptTo
    } else if any(&[
        "in reply to mail from",
        "after mail from",
        "but sender was rejected",
    ]) {
        Said::AtMailFrom
    } else if any(&[
        "after initial connection",
        "refused to talk to me",
        "after ehlo",
        "after helo",
        "in reply to ehlo",
        "in reply to helo",
        "but my name was rejected",
        "while talking to",
    ]) && !text.contains("rcpt")
    {
        Said::BeforeMailFrom
    } else if any(&[
        "in reply to end of data",
        "in reply to data",
        "after end of data",
        "after data",
        "our final data",
        "failed after i sent the message",
    ]) {
        Said::AfterData
    } else {
        Said::AtRcptTo
    }
}

/// Classifies one recipient of a report. Only a failed delivery is a
/// bounce; a rejection of the sender (blocklist, policy) is never held
/// against the recipient, whatever the provider calls it.
pub fn classify(recipient: &ReportedRecipient) -> Classified {
    if recipient.complaint {
        return Classified {
            kind: BounceKind::Complaint,
            reason: None,
            suppress_as: Some(SuppressionReason::Complaint),
        };
    }
    if recipient.action.as_deref() == Some("failed")
        && recipient
            .diagnostic
            .as_deref()
            .is_some_and(|text| text.to_ascii_lowercase().contains("null mx"))
    {
        // RFC 7505: the domain declares that it accepts no mail, and the
        // sending side has given up. There was no reply to read; whatever
        // status class the report chose, nothing will ever be delivered.
        return Classified {
            kind: BounceKind::Hard,
            reason: Some(Reason::NoMailServer),
            suppress_as: Some(SuppressionReason::NoMailServer),
        };
    }
    let reply = evidence_reply(recipient);
    let stage = recipient
        .diagnostic
        .as_deref()
        .map_or(Said::AtRcptTo, stage_of);
    let reason = reply.as_ref().map(|reply| {
        let reason = classify_reply(stage.session_stage(), reply);
        if stage == Said::AfterData && reason == Reason::MailboxNotFound {
            // The server took the recipient at RCPT TO and refused the
            // message afterwards: "unknown user" there is a filter's word
            // (Japanese carriers answer so to senders their users block),
            // not proof that the mailbox is gone.
            Reason::Blocked
        } else {
            reason
        }
    });
    if recipient
        .action
        .as_deref()
        .is_some_and(|action| action != "failed")
    {
        // Delayed, delivered, relayed, expanded: not a bounce.
        return Classified::new(BounceKind::Undetermined, reason);
    }
    let transient = reply.as_ref().is_some_and(SmtpReply::is_transient);
    if recipient.provider_kind == Some(BounceKind::Undetermined) {
        // The provider says the receiving server refused the sender (a
        // "block"): whatever the text, that is no proof against the mailbox.
        let kind = if transient {
            BounceKind::Soft
        } else {
            BounceKind::Undetermined
        };
        return Classified::new(kind, reason);
    }
    match reason {
        Some(verdict) if verdict.is_permanent_recipient_failure() => Classified {
            kind: BounceKind::Hard,
            reason,
            suppress_as: SuppressionReason::from_verdict(verdict),
        },
        Some(Reason::MailboxFull | Reason::Greylisted) => Classified::new(BounceKind::Soft, reason),
        Some(Reason::SmtpError) if transient => Classified::new(BounceKind::Soft, reason),
        // A permanent failure whose text names no cause: the provider's
        // word decides.
        Some(Reason::SmtpError) if recipient.provider_kind == Some(BounceKind::Hard) => {
            Classified {
                kind: BounceKind::Hard,
                reason,
                suppress_as: Some(SuppressionReason::HardBounce),
            }
        }
        Some(_) => Classified::new(BounceKind::Undetermined, reason),
        None => match recipient.provider_kind {
            Some(BounceKind::Hard) => Classified {
                kind: BounceKind::Hard,
                reason: None,
                suppress_as: Some(SuppressionReason::HardBounce),
            },
            Some(BounceKind::Soft) => Classified::new(BounceKind::Soft, None),
            _ => Classified::new(BounceKind::Undetermined, None),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reported(status: &str, smtp_code: Option<u16>, diagnostic: &str) -> ReportedRecipient {
        ReportedRecipient {
            email: "x@example.test".into(),
            action: Some("failed".into()),
            status: status.parse().ok(),
            smtp_code,
            diagnostic: (!diagnostic.is_empty()).then(|| diagnostic.to_owned()),
            ..ReportedRecipient::default()
        }
    }

    #[test]
    fn an_unknown_user_is_a_hard_bounce_that_suppresses() {
        let found = classify(&reported(
            "5.1.1",
            Some(550),
            "550 5.1.1 <x@example.test>: User unknown",
        ));
        assert_eq!(found.kind, BounceKind::Hard);
        assert_eq!(found.reason, Some(Reason::MailboxNotFound));
        assert_eq!(found.suppress_as, Some(SuppressionReason::MailboxNotFound));
    }

    #[test]
    fn a_blocklisted_sender_is_never_a_hard_bounce_even_if_the_provider_says_so() {
        let mut recipient = reported(
            "5.7.1",
            Some(554),
            "554 5.7.1 Service unavailable; Client host blocked using zen.spamhaus.org",
        );
        recipient.provider_kind = Some(BounceKind::Hard);
        let found = classify(&recipient);
        assert_eq!(found.kind, BounceKind::Undetermined);
        assert_eq!(found.reason, Some(Reason::Blocked));
        assert_eq!(found.suppress_as, None);
    }

    #[test]
    fn temporary_failures_and_full_mailboxes_are_soft() {
        assert_eq!(
            classify(&reported("4.4.7", None, "")).kind,
            BounceKind::Soft
        );
        assert_eq!(
            classify(&reported("5.2.2", Some(552), "552 5.2.2 Mailbox full")).kind,
            BounceKind::Soft
        );
    }

    #[test]
    fn only_failed_deliveries_are_bounces() {
        let mut delayed = reported("4.4.1", None, "");
        delayed.action = Some("delayed".into());
        assert_eq!(classify(&delayed).kind, BounceKind::Undetermined);
        let mut delivered = reported("2.0.0", Some(250), "250 ok");
        delivered.action = Some("delivered".into());
        assert_eq!(classify(&delivered).kind, BounceKind::Undetermined);
    }

    #[test]
    fn a_provider_block_never_suppresses() {
        let mut blocked = reported("5.0.0", Some(500), "500 unknown recipient");
        blocked.provider_kind = Some(BounceKind::Undetermined);
        let found = classify(&blocked);
        assert_eq!(found.kind, BounceKind::Undetermined);
        assert_eq!(found.suppress_as, None);
    }

    #[test]
    fn without_evidence_the_providers_word_decides() {
        let mut hard = reported("", None, "");
        hard.provider_kind = Some(BounceKind::Hard);
        assert_eq!(
            classify(&hard).suppress_as,
            Some(SuppressionReason::HardBounce)
        );
        let nothing = reported("", None, "");
        assert_eq!(classify(&nothing).kind, BounceKind::Undetermined);
    }

    #[test]
    fn a_status_alone_is_enough() {
        let found = classify(&reported("5.1.1", None, ""));
        assert_eq!(found.kind, BounceKind::Hard);
        let generic = classify(&reported("5.0.0", None, ""));
        assert_eq!(
            generic.kind,
            BounceKind::Undetermined,
            "5.0.0 names no cause"
        );
    }

    #[test]
    fn the_stage_a_report_names_is_the_stage_the_reply_is_read_at() {
        let at_mail_from = reported(
            "5.1.1",
            Some(550),
            "SMTP error from remote mail server after MAIL FROM:<me@example.test>: 550 5.1.1 unknown user",
        );
        assert_eq!(classify(&at_mail_from).kind, BounceKind::Undetermined);
        let after_data = reported(
            "5.0.0",
            Some(550),
            "550 Unknown user x@example.test (in reply to end of DATA command)",
        );
        let found = classify(&after_data);
        assert_eq!(found.kind, BounceKind::Undetermined);
        assert_eq!(found.suppress_as, None);
        let at_rcpt = reported(
            "5.0.0",
            Some(550),
            "550 Unknown user x@example.test (in reply to RCPT TO command)",
        );
        assert_eq!(classify(&at_rcpt).kind, BounceKind::Hard);
    }

    #[test]
    fn a_null_mx_the_sender_gave_up_on_is_hard_whatever_the_status_class() {
        let null_mx = reported(
            "4.0.0",
            None,
            "DNS Error: The domain example.test doesn't receive email according to the administrator: returned Null MX",
        );
        let found = classify(&null_mx);
        assert_eq!(found.kind, BounceKind::Hard);
        assert_eq!(found.suppress_as, Some(SuppressionReason::NoMailServer));
    }

    #[test]
    fn a_failure_explained_in_words_only_is_read_by_its_words() {
        let words = reported("", None, "The recipient name is not recognized");
        assert_eq!(classify(&words).kind, BounceKind::Hard);
        let vague = reported("", None, "Your message could not be delivered");
        assert_eq!(classify(&vague).kind, BounceKind::Undetermined);
    }
}
