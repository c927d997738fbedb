//! Classification: what an SMTP reply says about a recipient.
//!
//! A pure function from the reply (and where it came in the session) to a
//! [`Reason`]. The verification engine and the bounce reader both use it,
//! so a reply means the same wherever it is met. The order of the checks is
//! the policy:
//!
//! 1. A positive reply accepts. Office 365's edge block (`5.4.1 Recipient
//!    address rejected: Access denied`) is an unknown mailbox.
//! 2. Causes the reply names, most explicit first: greylisting, an explicit
//!    rate limit, a recipient who refuses *us* ("due to recipient
//!    preferences"), then anything about the *sender* — blocklists,
//!    reputation, SPF/DKIM/DMARC, reverse DNS, relaying, authentication,
//!    our network, spam and content policy, a rejected sender — which is
//!    `blocked`, then other throttling texts, including per-recipient rate
//!    limits sent with a permanent code (`550 5.2.1 … receiving mail at a
//!    rate that prevents additional messages`). A rejection of the sender
//!    is never evidence about the mailbox, so it wins even on a 550 with a
//!    `5.1.1`. Only a recipient account named as blocked or locked ("the
//!    recipient account is blocked") goes before the sender's causes, as
//!    the word "blocked" would otherwise be read as a blocklist.
//! 3. Before `RCPT TO` (greeting, `EHLO`, `MAIL FROM`) nothing is about the
//!    recipient: a 5xx there is `blocked`, a 4xx `smtp_error`.
//! 4. A 5xx that says it is temporary ("try again later", "temporarily
//!    locked") is a deferral (`greylisted`), whatever its class.
//! 5. A 5xx that names the recipient's fate outright — a disabled account
//!    (`5.7.13`, "account is frozen", qmail's badrcptto list, French and
//!    Russian providers' wording) or an unknown one ("no such user", "no
//!    longer valid", "not a registered user") — is believed even under a
//!    generic or policy code (`554`, `5.7.1`, `#5.1.0`).
//! 6. A 5xx with a security code (`5.7.x`) or a bad-sender code (`5.1.7`,
//!    `5.1.8`) is `blocked`.
//! 7. A full mailbox (`x.2.2`, "over quota") is `mailbox_full`, 4xx or 5xx.
//! 8. A 4xx is never permanent: a server fault (`4.3.x`–`4.5.x`, "local
//!    error") is `smtp_error`, anything else a deferral (`greylisted`).
//! 9. A 5xx about the recipient: the text first ("disabled", "user
//!    unknown"), then the code (`5.2.1` disabled; `5.1.1`, `5.1.10` … not
//!    found). A 5xx that names neither mailbox nor sender is `smtp_error`.
//!
//! The text is read in lower case, with the line prefixes of a multi-line
//! reply (`550-5.2.1`) that a bounce report leaves inside it removed.
//! `tests/api/classification_corpus.rs` holds real replies from public
//! sources with the verdict a postmaster would give.

use super::evidence::Stage;
use crate::smtp::{EnhancedCode, SmtpReply};
use crate::vocab::Reason;

/// Texts that name a rate limit outright: they win over any other cause
/// named in the same reply.
const EXPLICIT_RATE_LIMIT_TEXTS: &[&str] = &["rate limit", "ratelimit", "throttl"];

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
    "concurrent connections",
    "per connection",
    "submission rate",
    "too quickly",
    "too fast",
    "excessive volume",
    "queue quota",
    "exceeded their limit",
    "per hour",
    "per minute",
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
    "open relay",
    "relay not allowed",
    "as a relay",
    "relaying",
    "unauthenticated",
    "not allowed from",
    "your access",
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
    "domain of sender",
    "sender domain",
    "sender address is",
    "sender is not",
    "your domain",
    "invalid dns mx",
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
    "mailbox quota",
    "quota usage",
    "user quota",
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
    "frozen",
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
    "addressee unknown",
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
    "not our user",
    "not our customer",
    "no longer on server",
    "no longer valid",
    "recipient name is not recognized",
    "invalid final delivery userid",
    "address couldn't be found",
    // Trend Micro InterScan: "Unable to deliver message to <x>. Please
    // check if address is correct."
    "check if address is correct",
    "address could not be found",
    // Lotus Notes in Japanese: "not in the directory's list".
    "ディレクトリのリストにありません",
    // Domino in Japanese: "cannot be found in the Domino directory".
    "ディレクトリには見つかりません",
    "unknown local part",
    "invalid address",
];

/// Texts of a recipient domain that does not exist (in bounces, where the
/// sending side's resolver reports it).
const UNKNOWN_DOMAIN_TEXTS: &[&str] = &[
    "host or domain name not found",
    "domain name not found",
    "no such domain",
    "domain does not exist",
    "unrouteable mail domain",
    "host unknown",
    "unknown host",
    "invalid domain",
    "domain is not reachable",
];

/// Texts of a recipient domain that accepts no mail (a null MX, RFC 7505,
/// or no mail host at all).
const NO_MAIL_SERVER_TEXTS: &[&str] = &[
    "no mx record",
    "does not accept mail",
    "doesn't receive email",
    "null mx",
    "indicated no smtp service",
];

/// Texts of a recipient who refuses mail from us in particular: the
/// mailbox exists.
const RECIPIENT_REFUSES_US_TEXTS: &[&str] = &[
    "recipient preferences",
    "recipient's preferences",
    "refused by recipient",
    "recipient has blocked",
    "recipient has chosen",
];

/// Texts that refuse our connecting host or ask it to authenticate: about
/// us, never about the mailbox.
const HOST_REFUSED_TEXTS: &[&str] = &[
    "network not allowed",
    "host network",
    "smtp authentication",
    "smtp auth",
    "authentication check",
    "authentication information",
    "must authenticate",
    "please authenticate",
    "permitted to relay",
    "rejected by destination domain",
    "by destination domain",
    "protocol error",
    "not accepting connections",
    "service refuse",
    "refused to talk",
    "open relay",
    "insecure mail relay",
    "mismatches client ip",
    "invalid ip for sending",
    "not allowed to send",
    "send e-mail to yourself",
    "use the smtp server of your isp",
    "configured to relay",
    "sending for this account",
];

/// Texts that only guess at the cause.
const HEDGED_TEXTS: &[&str] = &[
    "may not exist",
    "might not exist",
    "may not be valid",
    "may have been",
    "or you may not",
    "il se peut",
];

/// Texts of a refusal that says it is temporary, whatever its code.
const TEMPORARY_TEXTS: &[&str] = &[
    "try again later",
    "try later",
    "please try again",
    "retry later",
    "temporarily locked",
    "temporary locked",
    "temporarily unavailable",
    "temporarily disabled",
    "temporarily blocked",
    "temporarily deferred",
    "temporary failure",
    "temporarily rejected",
    "resend your message at a later time",
    "essayer plus tard",
];

/// Texts that state outright that the recipient's account is disabled,
/// frozen or locked: believed under any permanent code.
const ACCOUNT_DISABLED_TEXTS: &[&str] = &[
    // Yandex: "your message recipient's account has been blocked".
    "policy rejection on the target address",
    "recipient account is blocked",
    "account is blocked",
    "account has been blocked",
    "account is locked",
    "account has been locked",
    "mailbox is frozen",
    "account is frozen",
    "mailbox is locked",
    "mailbox locked",
    "mailbox is disabled",
    "mailbox has been disabled",
    "mailbox disabled",
    "account is disabled",
    "account has been disabled",
    "account disabled",
    "disabled recipient",
    "user disabled",
    "user account disabled",
    "account is inactive",
    "account inactive",
    "inactive account",
    "is inactive",
    "account has been suspended",
    "account is suspended",
    "account suspended",
    "mailbox is suspended",
    "account has been deactivated",
    "account deactivated",
    "discontinued",
    "compte du destinataire est bloque",
    // Orange: "Boite du destinataire archivee. Archived recipient."
    "boite du destinataire archivee",
    "boîte du destinataire archivée",
    "archived recipient",
    "compte du destinataire est bloqué",
    "compte est desactive",
    "compte est désactivé",
    "compte desactive",
    "compte désactivé",
    "boite aux lettres est desactivee",
    "boîte aux lettres est désactivée",
    "badrcptto",
    "badrecipientto",
    "badrecipient",
];

/// Russian providers' words for a recipient's mailbox or account …
const RUSSIAN_MAILBOX_WORDS: &[&str] = &[
    "ящик",
    "аккаунт",
    "учетная запись",
    "учётная запись",
    "получател",
    "пользовател",
];
/// … and for its being blocked, disabled or removed.
const RUSSIAN_DISABLED_WORDS: &[&str] = &["заблокирован", "отключен", "заморожен", "неактив"];
const RUSSIAN_UNKNOWN_WORDS: &[&str] = &["не существует", "нет такого", "не найден"];

/// Texts that state outright that the recipient does not exist: believed
/// under any permanent code.
const EXPLICIT_UNKNOWN_TEXTS: &[&str] = &[
    "not a valid recipient",
    "user has moved",
    "mailbox has moved",
    "recipient has moved",
    "no account by that name",
    "there is no one at this address",
    "no longer accepts mail",
    "is not a known user",
    "no such user",
    "no such recipient",
    "no such mailbox",
    "no such account",
    "user unknown",
    "unknown user",
    "unknown recipient",
    "recipient unknown",
    "user not found",
    "recipient not found",
    "mailbox not found",
    "no longer valid",
    "not a valid user",
    "not a registered user",
    "no longer exists",
    "no longer on server",
    "does not exist",
    "doesn't exist",
    "doesn't have a",
    "address unknown",
    "addressee unknown",
    "invalid recipient",
    "invalid mailbox",
    "not our customer",
    "not our user",
    "unknown local part",
    "recipient rejected: unknown",
    "adresse inconnue",
    "destinataire invalide",
    "destinataire inconnu",
    "utilisateur inconnu",
    "n'existe pas",
];

/// Texts of faults of the receiving server itself.
const SERVER_FAULT_TEXTS: &[&str] = &[
    "insufficient system storage",
    "insufficient disk space",
    "local error",
    "local problem",
    "system error",
    "internal error",
    "server error",
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

/// Whether the text puts the blame on the sender, its IP or its message.
fn blames_sender(text: &str) -> bool {
    contains_any(text, SENDER_TEXTS)
        || has_word(text, SENDER_WORDS)
        || text.contains("access denied")
}

/// Security and policy codes (`x.7.x`) and bad-sender codes (`x.1.7`,
/// `x.1.8`).
fn sender_code(enhanced: Option<EnhancedCode>) -> bool {
    enhanced.is_some_and(|code| code.subject == 7)
        || code_is(enhanced, 1, 7)
        || code_is(enhanced, 1, 8)
}

fn is_rate_limit(reply: &SmtpReply, text: &str, enhanced: Option<EnhancedCode>) -> bool {
    contains_any(text, RATE_LIMIT_TEXTS)
        || (has_word(text, &["rate"]) && (text.contains("exceed") || text.contains("limit")))
        // Gmail's "421 4.7.0 Try again later, closing connection."
        || (reply.code() == 421
            && text.contains("try again later")
            && enhanced.is_some_and(|code| code.subject == 7))
        || code_is(enhanced, 5, 3)
        || code_is(enhanced, 7, 500)
        || code_is(enhanced, 2, 122)
}

/// The reply's text in lower case, in one line, without the line prefixes
/// of a multi-line reply (`550-5.2.1`, `550 5.2.1`) that a bounce report
/// leaves inside it.
fn normalized_text(reply: &SmtpReply) -> String {
    let message = reply.message().to_lowercase();
    let mut words: Vec<&str> = Vec::new();
    let mut tokens = message.split_whitespace().peekable();
    while let Some(token) = tokens.next() {
        let bytes = token.as_bytes();
        let is_code = bytes.len() >= 3
            && bytes[..3].iter().all(u8::is_ascii_digit)
            && matches!(bytes[0], b'2' | b'4' | b'5');
        if is_code && bytes.len() > 3 && bytes[3] == b'-' {
            // `550-5.2.1` or `550-`: a line prefix.
            let rest = &token[4..];
            if rest.is_empty() || rest.parse::<EnhancedCode>().is_ok() {
                continue;
            }
        }
        if is_code
            && bytes.len() == 3
            && tokens
                .peek()
                .is_some_and(|next| next.parse::<EnhancedCode>().is_ok())
            && token.parse::<u16>().ok() == Some(reply.code())
        {
            // `550 5.2.1` inside the text: the last line's prefix.
            tokens.next();
            continue;
        }
        words.push(token);
    }
    words.join(" ")
}

/// An enhanced status code that opens the text in qmail's and Exchange's
/// `#5.1.0` form, which the reply parser does not take for one, when it
/// agrees with the reply's class.
fn status_in_text(reply: &SmtpReply, text: &str) -> Option<EnhancedCode> {
    let token = text.split_whitespace().next()?.strip_prefix('#')?;
    let code: EnhancedCode = token.trim_end_matches([',', ';', ')']).parse().ok()?;
    (u16::from(code.class) == reply.code() / 100).then_some(code)
}

/// Whether Russian text says that the recipient's mailbox is disabled.
fn russian_disabled(text: &str) -> bool {
    contains_any(text, RUSSIAN_MAILBOX_WORDS) && contains_any(text, RUSSIAN_DISABLED_WORDS)
}

/// Whether Russian text says that the recipient does not exist.
fn russian_unknown(text: &str) -> bool {
    contains_any(text, RUSSIAN_MAILBOX_WORDS) && contains_any(text, RUSSIAN_UNKNOWN_WORDS)
}

/// Whether the text says the refusal is temporary.
fn says_temporary(text: &str) -> bool {
    contains_any(text, TEMPORARY_TEXTS) || text.contains("temporar")
}

/// The reason a reply gives, at the stage where it came.
pub fn classify_reply(stage: Stage, reply: &SmtpReply) -> Reason {
    if reply.is_positive() {
        return Reason::Accepted;
    }
    let text = normalized_text(reply);
    let enhanced = reply.enhanced().or_else(|| status_in_text(reply, &text));

    if stage == Stage::RcptTo && is_directory_based_edge_block(enhanced, &text) {
        return Reason::MailboxNotFound;
    }
    // Named causes, most explicit first.
    if contains_any(&text, GREYLIST_TEXTS) {
        return Reason::Greylisted;
    }
    if contains_any(&text, EXPLICIT_RATE_LIMIT_TEXTS) {
        return Reason::RateLimited;
    }
    if stage == Stage::RcptTo {
        if contains_any(&text, RECIPIENT_REFUSES_US_TEXTS) {
            return Reason::Blocked;
        }
        // "The recipient account is blocked": the word is not a blocklist.
        if reply.is_permanent()
            && !says_temporary(&text)
            && !text.contains("sending")
            && (contains_any(&text, ACCOUNT_DISABLED_TEXTS) || russian_disabled(&text))
        {
            return Reason::MailboxDisabled;
        }
    }
    if blames_sender(&text) || contains_any(&text, HOST_REFUSED_TEXTS) {
        return Reason::Blocked;
    }
    if is_rate_limit(reply, &text, enhanced) {
        return Reason::RateLimited;
    }
    if stage != Stage::RcptTo {
        // Before RCPT TO a permanent refusal is of us: our connection, our
        // HELO name or our sender.
        return if reply.is_permanent() {
            Reason::Blocked
        } else {
            Reason::SmtpError
        };
    }
    if reply.is_permanent() && says_temporary(&text) {
        return Reason::Greylisted;
    }
    if contains_any(&text, HEDGED_TEXTS) {
        // "The group may not exist, or you may not have permission to
        // post": a guess is not proof.
        return Reason::SmtpError;
    }
    if reply.is_permanent() {
        // The recipient's fate named outright, under any permanent code.
        if code_is(enhanced, 7, 13) {
            return Reason::MailboxDisabled;
        }
        let about_sender =
            code_is(enhanced, 1, 7) || code_is(enhanced, 1, 8) || text.contains("sender");
        if !about_sender && contains_any(&text, UNKNOWN_DOMAIN_TEXTS) {
            return Reason::NoSuchDomain;
        }
        if !about_sender && (contains_any(&text, EXPLICIT_UNKNOWN_TEXTS) || russian_unknown(&text))
        {
            return Reason::MailboxNotFound;
        }
        // A domain that accepts no mail (a null MX, RFC 7505), as the
        // sending side's MTA reports it.
        if contains_any(&text, NO_MAIL_SERVER_TEXTS) {
            return Reason::NoMailServer;
        }
        // RFC 5248: X.7.17 "Mailbox owner has changed", X.7.18 "Domain
        // owner has changed": the address no longer reaches its owner.
        if code_is(enhanced, 7, 17) || code_is(enhanced, 7, 18) {
            return Reason::MailboxNotFound;
        }
    }
    if reply.is_permanent() && sender_code(enhanced) {
        return Reason::Blocked;
    }
    if code_is(enhanced, 2, 2) || contains_any(&text, FULL_TEXTS) {
        return Reason::MailboxFull;
    }
    if reply.is_transient() {
        let server_fault = contains_any(&text, SERVER_FAULT_TEXTS)
            || enhanced.is_some_and(|code| matches!(code.subject, 3..=5));
        return if server_fault {
            Reason::SmtpError
        } else {
            Reason::Greylisted
        };
    }
    // A permanent failure of this recipient: the text first, as it is more
    // specific than the code ("550 5.2.1 … Addressee unknown").
    if contains_any(&text, DISABLED_TEXTS) {
        return Reason::MailboxDisabled;
    }
    if contains_any(&text, UNKNOWN_MAILBOX_TEXTS) {
        return Reason::MailboxNotFound;
    }
    if contains_any(&text, UNKNOWN_DOMAIN_TEXTS)
        || (text.contains("dns lookup failure") && text.contains("not found"))
    {
        return Reason::NoSuchDomain;
    }
    // RFC 7504: 521 "does not accept mail"; RFC 3463 X.3.2 "system not
    // accepting network messages".
    if contains_any(&text, NO_MAIL_SERVER_TEXTS)
        || reply.code() == 521
        || (code_is(enhanced, 3, 2) && text.contains("not accepting"))
    {
        return Reason::NoMailServer;
    }
    if code_is(enhanced, 2, 1) {
        return Reason::MailboxDisabled;
    }
    if text.contains("name service error") || text.contains("name server reply") {
        // The sending side's resolver failed: no answer, not a missing
        // domain.
        return Reason::SmtpError;
    }
    // X.4.4 "Unable to route": no host for the domain.
    if code_is(enhanced, 4, 4) {
        return Reason::NoSuchDomain;
    }
    let unknown_code = enhanced
        .is_some_and(|code| code.subject == 1 && matches!(code.detail, 0 | 1 | 2 | 3 | 6 | 10));
    if unknown_code {
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
                crate::vocab::Status::Undeliverable,
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
        // A refusal before RCPT TO is never about the recipient.
        assert_eq!(
            classify(Stage::MailFrom, "550 5.1.1 User unknown"),
            Reason::Blocked
        );
        assert_eq!(
            classify(Stage::MailFrom, "451 4.3.0 Local error"),
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
    fn a_domain_the_remote_side_cannot_find_is_no_such_domain() {
        assert_eq!(
            classify(
                Stage::RcptTo,
                "550 5.4.4 Host or domain name not found. Name service error for name=example.jp type=A: Host not found"
            ),
            Reason::NoSuchDomain
        );
        // Temporary DNS trouble stays temporary.
        assert_eq!(
            classify(Stage::RcptTo, "450 4.4.3 Host or domain name not found"),
            Reason::SmtpError
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

    #[test]
    fn words_that_name_the_recipients_fate_beat_a_policy_or_generic_code() {
        for (raw, expected) in [
            ("550 5.7.1 No such user!", Reason::MailboxNotFound),
            ("550 #5.1.0 Address rejected.", Reason::MailboxNotFound),
            (
                "554 delivery error: dd Not a valid recipient - atlas117.free.mail.ne1.yahoo.com",
                Reason::MailboxNotFound,
            ),
            (
                "525 5.7.13 Disabled recipient address",
                Reason::MailboxDisabled,
            ),
            (
                "550 5.7.1 Policy rejection on the target address",
                Reason::MailboxDisabled,
            ),
            (
                "550 5.7.1 Почтовый ящик получателя заблокирован",
                Reason::MailboxDisabled,
            ),
            ("550 Пользователь не найден", Reason::MailboxNotFound),
            (
                "550 5.1.1 <x@example.test>: Recipient address rejected: Boite du destinataire archivee. Archived recipient.",
                Reason::MailboxDisabled,
            ),
        ] {
            assert_eq!(classify(Stage::RcptTo, raw), expected, "{raw}");
        }
    }

    #[test]
    fn words_that_name_us_or_a_delay_never_make_an_address_undeliverable() {
        for (raw, expected) in [
            ("550 5.2.1 Mailbox temporarily disabled", Reason::Greylisted),
            (
                "550 5.7.1 <x@example.test>: Recipient address rejected: User x temporary locked. Please try again later!",
                Reason::Greylisted,
            ),
            (
                "550 5.1.1 RCP-P2 Refused due to recipient preferences",
                Reason::Blocked,
            ),
            (
                "550 message sending for this account is disabled",
                Reason::Blocked,
            ),
            (
                "553 5.1.8 <a@example.test>... Domain of sender address a@example.test does not exist",
                Reason::Blocked,
            ),
            ("554 Host network not allowed", Reason::Blocked),
            ("554 protocol error", Reason::Blocked),
            (
                "550-Requested action not taken: mailbox unavailable\n550 invalid DNS MX or A/AAAA resource record",
                Reason::Blocked,
            ),
            (
                "550 The group may not exist, or you may not have permission to post",
                Reason::SmtpError,
            ),
        ] {
            let reason = classify(Stage::RcptTo, raw);
            assert_eq!(reason, expected, "{raw}");
            assert_ne!(
                reason.status(),
                crate::vocab::Status::Undeliverable,
                "{raw}"
            );
        }
    }

    #[test]
    fn line_prefixes_left_inside_a_bounce_do_not_hide_the_words() {
        let raw = "550 5.2.1 The user you are trying to contact is receiving mail at a rate that 550-5.2.1 prevents additional messages from being delivered.";
        assert_eq!(classify(Stage::RcptTo, raw), Reason::RateLimited);
    }
}
