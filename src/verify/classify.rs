//! Classification: what an SMTP reply says about a recipient.
//!
//! A pure function from the reply (and where it came in the session) to a
//! [`Reason`]. The order of the checks is the policy:
//!
//! 1. A positive reply accepts.
//! 2. Rate limits and greylisting are recognised first: they are temporary
//!    whatever their code.
//! 3. Anything about the *sender* — blocklists, reputation, SPF/DKIM/DMARC,
//!    reverse DNS, relaying, spam and content policy, any `x.7.x` security
//!    code, a rejected sender address — is `blocked`. It is never evidence
//!    about the mailbox, so it is checked before the mailbox signals, and it
//!    wins even on a 550.
//! 4. Full and disabled mailboxes, then missing ones (by enhanced code, then
//!    by text).
//! 5. A 4xx is never permanent: what is left of the 4xx replies is a
//!    temporary deferral (`greylisted`) or a server fault (`smtp_error`).
//! 6. A 5xx at `RCPT TO` that names neither the mailbox nor the sender is
//!    `smtp_error`, except RFC 5321's own "mailbox unavailable".
//!
//! Replies before `RCPT TO` (greeting, `EHLO`, `MAIL FROM`) are never about
//! the recipient.

use super::Reason;
use super::smtp::{EnhancedCode, SmtpReply};

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

/// Texts of throttling and rate limits.
const RATE_LIMIT_TEXTS: &[&str] = &[
    "rate limit",
    "ratelimit",
    "rate that prevents",
    "too many connections",
    "too many concurrent",
    "too many recipients",
    "too many messages",
    "too many sessions",
    "too many errors",
    "too many invalid",
    "unusual rate",
    "unexpected volume",
    "temporarily deferred due to",
    "throttl",
    "exceeded the maximum",
    "sending quota",
    "connection limit",
    "[ts01]",
    "[ts02]",
    "[ts03]",
    "[tss04]",
    "[tss09]",
    "[tss11]",
    "[tss12]",
];

/// Texts of greylisting.
const GREYLIST_TEXTS: &[&str] = &["greylist", "graylist", "grey-list", "gray-list", "postgrey"];

/// Texts that put the blame on the sender, its IP or its message.
const SENDER_TEXTS: &[&str] = &[
    "spamhaus",
    "spamcop",
    "barracuda",
    "sorbs",
    "surbl",
    "uribl",
    "blocklist",
    "block list",
    "blacklist",
    "black list",
    "blocked",
    "banned",
    "dnsbl",
    "is listed",
    "listed at",
    "listed on",
    "listed by",
    "reputation",
    "reverse dns",
    "reverse-dns",
    "reverse lookup",
    "rdns",
    "relay access denied",
    "relaying denied",
    "relay not permitted",
    "not permitted to relay",
    "relay denied",
    "unable to relay",
    "we do not relay",
    "rcpthosts",
    "unsolicited",
    "spam",
    "policy",
    "spoof",
    "not authorized",
    "not authenticated",
    "authentication required",
    "must issue a starttls",
    "sender address rejected",
    "sender rejected",
    "sender verify",
    "sender verification",
    "verification failed for",
    "envelope sender",
    "client host rejected",
    "client host",
    "your ip",
    "your server",
    "sending ip",
    "sending server",
    "connecting ip",
    "administrative prohibition",
    "message rejected",
    "virus",
    "malware",
    "dmarc",
    "dkim",
];

/// Short tokens that are sender signals only as whole words.
const SENDER_WORDS: &[&str] = &["spf", "ptr", "rbl", "helo", "ehlo", "dnsbl"];

/// Texts of a full mailbox.
const FULL_TEXTS: &[&str] = &[
    "over quota",
    "overquota",
    "quota exceeded",
    "exceeded storage",
    "exceeds quota",
    "mailbox full",
    "mailbox is full",
    "mailbox has exceeded",
    "storage limit",
    "out of storage",
];

/// Texts of a disabled mailbox.
const DISABLED_TEXTS: &[&str] = &[
    "disabled",
    "deactivated",
    "inactive",
    "suspended",
    "account has been closed",
    "account is closed",
    "no longer active",
    "expired account",
];

/// Texts of a mailbox that does not exist.
const UNKNOWN_MAILBOX_TEXTS: &[&str] = &[
    "user unknown",
    "unknown user",
    "no such user",
    "no such recipient",
    "no such mailbox",
    "no such address",
    "unknown recipient",
    "recipient unknown",
    "recipient not found",
    "recipientnotfound",
    "user not found",
    "mailbox not found",
    "address not found",
    "unknown address",
    "address unknown",
    "does not exist",
    "doesn't exist",
    "not exist",
    "doesn't have a",
    "unrouteable address",
    "unroutable address",
    "invalid recipient",
    "invalid mailbox",
    "invalid address",
    "not a valid mailbox",
    "no mailbox",
    "mailbox unavailable",
    "mailbox not available",
    "bad recipient",
    "unknown or illegal alias",
    "not listed in",
    "no longer exists",
    "account not available",
];

/// Texts of faults of the receiving server itself.
const SERVER_FAULT_TEXTS: &[&str] = &[
    "insufficient system storage",
    "insufficient disk space",
    "local error",
    "system error",
    "internal error",
    "server error",
    "temporary failure",
    "resources temporarily",
];

fn contains_any(text: &str, needles: &[&str]) -> bool {
    needles.iter().any(|needle| text.contains(needle))
}

fn has_word(text: &str, words: &[&str]) -> bool {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| words.contains(&word))
}

fn code_is(enhanced: Option<EnhancedCode>, subject: u16, detail: u16) -> bool {
    enhanced.is_some_and(|code| code.subject == subject && code.detail == detail)
}

/// Office 365 Directory-Based Edge Blocking rejects unknown recipients with
/// `550 5.4.1 Recipient address rejected: Access denied. AS(201806281)`: an
/// "access denied" that is about the mailbox.
fn is_directory_based_edge_block(enhanced: Option<EnhancedCode>, text: &str) -> bool {
    code_is(enhanced, 4, 1) && text.contains("recipient address rejected")
}

fn is_about_sender(enhanced: Option<EnhancedCode>, text: &str) -> bool {
    let security_code = enhanced.is_some_and(|code| code.subject == 7);
    // x.1.7 bad sender mailbox syntax, x.1.8 bad sender system address.
    let sender_address_code = code_is(enhanced, 1, 7) || code_is(enhanced, 1, 8);
    security_code
        || sender_address_code
        || contains_any(text, SENDER_TEXTS)
        || has_word(text, SENDER_WORDS)
        || (text.contains("access denied") && !is_directory_based_edge_block(enhanced, text))
}

/// The reason a reply gives, at the stage where it came.
pub fn classify_reply(stage: Stage, reply: &SmtpReply) -> Reason {
    if reply.is_positive() {
        return Reason::Accepted;
    }
    let text = reply.message().to_lowercase();
    let enhanced = reply.enhanced();

    if contains_any(&text, RATE_LIMIT_TEXTS)
        || code_is(enhanced, 5, 3)
        || code_is(enhanced, 7, 500)
        || (code_is(enhanced, 2, 1) && text.contains("rate"))
    {
        return Reason::RateLimited;
    }
    if contains_any(&text, GREYLIST_TEXTS) {
        return Reason::Greylisted;
    }
    if stage != Stage::RcptTo {
        return if is_about_sender(enhanced, &text) {
            Reason::Blocked
        } else {
            Reason::SmtpError
        };
    }
    if is_directory_based_edge_block(enhanced, &text) {
        return Reason::MailboxNotFound;
    }
    if is_about_sender(enhanced, &text) {
        return Reason::Blocked;
    }
    if code_is(enhanced, 2, 2) || contains_any(&text, FULL_TEXTS) {
        return Reason::MailboxFull;
    }
    if reply.is_transient() {
        let server_fault = contains_any(&text, SERVER_FAULT_TEXTS)
            || enhanced.is_some_and(|code| matches!(code.subject, 3..=5));
        return if server_fault && !text.contains("greylist") {
            Reason::SmtpError
        } else {
            Reason::Greylisted
        };
    }
    // A permanent failure of this recipient.
    if code_is(enhanced, 2, 1) || contains_any(&text, DISABLED_TEXTS) {
        return Reason::MailboxDisabled;
    }
    let unknown_code = enhanced
        .is_some_and(|code| code.subject == 1 && matches!(code.detail, 0 | 1 | 2 | 3 | 6 | 10));
    if unknown_code || contains_any(&text, UNKNOWN_MAILBOX_TEXTS) {
        return Reason::MailboxNotFound;
    }
    Reason::SmtpError
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(stage: Stage, raw: &str) -> Reason {
        classify_reply(stage, &SmtpReply::parse(raw).expect("a valid reply"))
    }

    #[test]
    fn a_blocklisted_sender_is_never_an_unknown_mailbox() {
        let reason = classify(
            Stage::RcptTo,
            "550 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
        );
        assert_eq!(reason, Reason::Blocked);
        // The same words under a 5.1.1 still blame the sender.
        let reason = classify(Stage::RcptTo, "550 5.1.1 blocked using zen.spamhaus.org");
        assert_eq!(reason, Reason::Blocked);
    }

    #[test]
    fn temporary_replies_are_never_permanent() {
        for raw in [
            "450 4.1.1 <x@example.test>: Recipient address rejected: unverified address",
            "451 4.3.0 Temporary lookup failure",
            "421 4.7.0 Try again later, closing connection.",
            "450 4.2.0 <x@example.test>: Recipient address rejected: Greylisted",
            "452 4.2.2 The email account that you tried to reach is over quota.",
        ] {
            let reason = classify(Stage::RcptTo, raw);
            assert_ne!(
                reason.status(),
                crate::verify::Status::Undeliverable,
                "{raw}"
            );
        }
    }

    #[test]
    fn a_rejected_sender_at_mail_from_is_blocked_not_the_mailbox() {
        assert_eq!(
            classify(
                Stage::MailFrom,
                "553 5.1.8 <probe@example.test>: Sender address rejected: Domain not found"
            ),
            Reason::Blocked
        );
        assert_eq!(
            classify(Stage::MailFrom, "550 5.1.1 User unknown"),
            Reason::SmtpError
        );
    }

    #[test]
    fn the_office_365_edge_block_is_an_unknown_mailbox() {
        assert_eq!(
            classify(
                Stage::RcptTo,
                "550 5.4.1 Recipient address rejected: Access denied. AS(201806281) [DB5EUR03FT010.eop-EUR03.prod.protection.outlook.com]"
            ),
            Reason::MailboxNotFound
        );
        assert_eq!(
            classify(Stage::RcptTo, "550 5.7.1 Access denied"),
            Reason::Blocked
        );
    }

    #[test]
    fn a_bare_rejection_is_an_smtp_error() {
        assert_eq!(
            classify(Stage::RcptTo, "554 Transaction failed"),
            Reason::SmtpError
        );
        assert_eq!(
            classify(
                Stage::RcptTo,
                "550 Requested action not taken: mailbox unavailable"
            ),
            Reason::MailboxNotFound
        );
    }

    #[test]
    fn short_sender_words_match_only_whole_words() {
        assert_eq!(
            classify(Stage::RcptTo, "550 5.1.1 helper unknown user"),
            Reason::MailboxNotFound
        );
        assert_eq!(
            classify(Stage::RcptTo, "550 SPF check failed"),
            Reason::Blocked
        );
    }
}
