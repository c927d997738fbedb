//! A rejection's reply, normalised: what stays the same when one server
//! refuses many recipients for one reason. Addresses, IP addresses, times,
//! numbers, queue and message ids, and the names of individual servers are
//! replaced by placeholders (`{address}`, `{ip}`, `{time}`, `{n}`, `{id}`,
//! `{host}`); the words, the URLs' shape and the names of blocklists stay.

use std::net::IpAddr;
use std::sync::LazyLock;

use regex::{Captures, Regex};
use sha2::{Digest, Sha256};

/// The most characters of normalised text kept: the cause is said early;
/// what follows a long reply's first few lines does not tell patterns
/// apart.
const MAX_TEXT_CHARS: usize = 300;

/// A normalised reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub code: u16,
    pub enhanced_code: Option<String>,
    pub text: String,
}

impl Pattern {
    /// Normalises a reply's code, enhanced code and text.
    pub fn of(code: u16, enhanced_code: Option<&str>, text: &str) -> Self {
        Pattern {
            code,
            enhanced_code: enhanced_code.map(str::to_owned),
            text: normalise_text(text),
        }
    }

    /// The pattern's identity: a digest of the code, the enhanced code and
    /// the text in lower case (servers differ in case only by accident).
    pub fn key(&self) -> String {
        let digest = Sha256::digest(format!(
            "{} {} {}",
            self.code,
            self.enhanced_code.as_deref().unwrap_or("-"),
            self.text.to_lowercase()
        ));
        hex(&digest[..16])
    }
}

/// Lower-case hex of `bytes`.
pub(super) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a valid pattern")
}

/// What comes before the reply in a bounce's diagnostic: Postfix's
/// `host mx.example.com[192.0.2.1] said:`, a DSN's `smtp;`, and the reply
/// code and enhanced code repeated in the text (`550-5.7.1`, `#5.1.0`).
static PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)^(?:smtp;\s*)?(?:host\s+\S+\s+said:\s*)?(?:[245]\d\d[\s-]+)?(?:#?[245]\.\d{1,3}\.\d{1,3}\s+)?",
    )
});

/// An email address, with or without angle brackets.
static ADDRESS: LazyLock<Regex> =
    LazyLock::new(|| regex(r#"[^\s<>()\[\]"',;:]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"#));

/// A time stamp (ISO 8601 / RFC 3339).
static TIME: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?")
});

/// An IPv4 address, or a candidate IPv6 address (checked by parsing).
static IP: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"(?i)\b\d{1,3}(?:\.\d{1,3}){3}\b|(?:\b|::)[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}\b")
});

/// A host name (two labels or more, ending in a letter label).
static HOST: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\b[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*\.[a-z][a-z0-9-]*[a-z0-9]\b",
    )
});

/// A word of letters and digits (and `._-`), a candidate id.
static WORD: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\b[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9]\b"));

/// A number, or dotted numbers.
static NUMBER: LazyLock<Regex> = LazyLock::new(|| regex(r"\b\d+(?:\.\d+)*\b"));

static SPACE: LazyLock<Regex> = LazyLock::new(|| regex(r"\s+"));

/// The reply's text, normalised (see the module's documentation).
pub fn normalise_text(text: &str) -> String {
    let text = SPACE.replace_all(text.trim(), " ");
    let text = PREFIX.replace(&text, "");
    let text = ADDRESS.replace_all(&text, "{address}");
    let text = TIME.replace_all(&text, "{time}");
    let text = IP.replace_all(&text, |caps: &Captures<'_>| {
        let found = &caps[0];
        let bare = found.trim_start_matches(':');
        if found.parse::<IpAddr>().is_ok() || bare.parse::<IpAddr>().is_ok() {
            "{ip}".to_owned()
        } else {
            found.to_owned()
        }
    });
    // A server's own name carries a number (mta1234.mail.gq1.yahoo.com,
    // AM0EUR02FT012.eop-EUR02.prod.protection.outlook.com); a blocklist's
    // or a help page's (zen.spamhaus.org, support.google.com) does not.
    let text = HOST.replace_all(&text, |caps: &Captures<'_>| {
        let found = &caps[0];
        if found.bytes().any(|byte| byte.is_ascii_digit()) {
            "{host}".to_owned()
        } else {
            found.to_owned()
        }
    });
    // Queue and message ids: long words of letters and digits.
    let text = WORD.replace_all(&text, |caps: &Captures<'_>| {
        let found = &caps[0];
        let digits = found.bytes().filter(u8::is_ascii_digit).count();
        let letters = found.bytes().filter(u8::is_ascii_alphabetic).count();
        if found.len() >= 8 && digits > 0 && letters > 0 {
            "{id}".to_owned()
        } else {
            found.to_owned()
        }
    });
    // Numbers, but an enhanced status code quoted in the text.
    let text = NUMBER.replace_all(&text, |caps: &Captures<'_>| {
        let found = &caps[0];
        if is_enhanced_code(found) {
            found.to_owned()
        } else {
            "{n}".to_owned()
        }
    });
    let text = text.trim();
    match text.char_indices().nth(MAX_TEXT_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

fn is_enhanced_code(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    matches!(parts.as_slice(), [class, subject, detail]
        if matches!(*class, "2" | "4" | "5") && subject.len() <= 3 && detail.len() <= 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real replies (addresses, IPs and ids changed), each with its
    /// normalised text.
    #[test]
    fn real_replies_lose_what_differs_between_recipients() {
        let cases = [
            // Gmail, unknown user.
            (
                "The email account that you tried to reach does not exist. Please try \
                 double-checking the recipient's email address for typos or unnecessary \
                 spaces. Learn more at https://support.google.com/mail/?p=NoSuchUser \
                 41si1234567ejh.123 - gsmtp",
                "The email account that you tried to reach does not exist. Please try \
                 double-checking the recipient's email address for typos or unnecessary \
                 spaces. Learn more at https://support.google.com/mail/?p=NoSuchUser {id} - gsmtp",
            ),
            // Gmail, unsolicited mail, with the client's IP and a counter.
            (
                "[209.85.220.41      12] Our system has detected that this message is \
                 likely unsolicited mail. To reduce the amount of spam sent to Gmail, this \
                 message has been blocked. https://support.google.com/mail/?p=UnsolicitedMessageError \
                 d2e1a72fcca58-7a1234567sor1234567b.123 - gsmtp",
                "[{ip} {n}] Our system has detected that this message is likely unsolicited \
                 mail. To reduce the amount of spam sent to Gmail, this message has been \
                 blocked. https://support.google.com/mail/?p=UnsolicitedMessageError {id} - gsmtp",
            ),
            // Outlook / Office 365, the sender's network on the block list.
            (
                "Unfortunately, messages from [40.92.10.20] weren't sent. Please contact \
                 your Internet service provider since part of their network is on our block \
                 list (S3150). You can also refer your provider to \
                 http://mail.live.com/mail/troubleshooting.aspx#errors. \
                 [AM0EUR02FT012.eop-EUR02.prod.protection.outlook.com 2026-11-30T05:01:02.345Z 08DE1234ABCD5678]",
                "Unfortunately, messages from [{ip}] weren't sent. Please contact your \
                 Internet service provider since part of their network is on our block list \
                 (S3150). You can also refer your provider to \
                 http://mail.live.com/mail/troubleshooting.aspx#errors. [{host} {time} {id}]",
            ),
            // Office 365, an unknown recipient.
            (
                "Requested action not taken: mailbox unavailable \
                 [BN8NAM11FT012.eop-nam11.prod.protection.outlook.com]",
                "Requested action not taken: mailbox unavailable [{host}]",
            ),
            // Yahoo, a deferral for the sending IP.
            (
                "[TSS04] Messages from 203.0.113.5 temporarily deferred due to unexpected \
                 volume or user complaints - 4.16.55.1; \
                 see https://postmaster.yahooinc.com/error-codes",
                "[TSS04] Messages from {ip} temporarily deferred due to unexpected volume or \
                 user complaints - {ip}; see https://postmaster.yahooinc.com/error-codes",
            ),
            // Postfix with a Spamhaus listing.
            (
                "Service unavailable; Client host [203.0.113.5] blocked using \
                 zen.spamhaus.org; https://www.spamhaus.org/query/ip/203.0.113.5",
                "Service unavailable; Client host [{ip}] blocked using zen.spamhaus.org; \
                 https://www.spamhaus.org/query/ip/{ip}",
            ),
            // Postfix, an unknown user, as a bounce's diagnostic gives it.
            (
                "host mx.example.org[192.0.2.25] said: 550 5.1.1 <bob@example.org>: \
                 Recipient address rejected: User unknown in virtual mailbox table \
                 (in reply to RCPT TO command)",
                "<{address}>: Recipient address rejected: User unknown in virtual mailbox \
                 table (in reply to RCPT TO command)",
            ),
            // Exim, a blocklist with the queue id of the session.
            (
                "JunkMail rejected - mail-ej1-f41.google.com [2a00:1450:4864:20::141] is in \
                 an RBL: see https://www.spamhaus.org/sbl/query/SBL123456 (id 1vQx3k-0004Zp-Ab)",
                "JunkMail rejected - {host} [{ip}] is in an RBL: see \
                 https://www.spamhaus.org/sbl/query/{id} (id {id})",
            ),
            // Exim, an unrouteable address after RCPT TO.
            (
                "SMTP error from remote mail server after RCPT TO:<carol@example.net>: \
                 550 Unrouteable address",
                "SMTP error from remote mail server after RCPT TO:<{address}>: {n} \
                 Unrouteable address",
            ),
            // A quoted enhanced code stays.
            (
                "5.7.1 Message rejected as spam (see RFC 5.7.1)",
                "Message rejected as spam (see RFC 5.7.1)",
            ),
        ];
        for (reply, expected) in cases {
            let expected = SPACE.replace_all(expected, " ");
            assert_eq!(normalise_text(reply), expected, "{reply}");
        }
    }

    #[test]
    fn replies_that_differ_only_in_addresses_and_ids_are_one_pattern() {
        let first = Pattern::of(
            554,
            Some("5.7.1"),
            "Service unavailable; Client host [203.0.113.5] blocked using zen.spamhaus.org; \
             queue id 4XyZ12AbCdE for <ann@example.com>",
        );
        let second = Pattern::of(
            554,
            Some("5.7.1"),
            "Service unavailable; Client host [198.51.100.7] blocked using ZEN.SPAMHAUS.ORG; \
             queue id 9QrS34TuVwX for <bob@example.com>",
        );
        assert_eq!(first.key(), second.key());
        let other_code = Pattern::of(550, Some("5.7.1"), &second.text);
        assert_ne!(first.key(), other_code.key());
        let other_list = Pattern::of(
            554,
            Some("5.7.1"),
            "Service unavailable; Client host [203.0.113.5] blocked using bl.spamcop.net",
        );
        assert_ne!(first.key(), other_list.key());
    }

    #[test]
    fn long_texts_are_cut() {
        let text = normalise_text(&"word ".repeat(200));
        assert_eq!(text.chars().count(), MAX_TEXT_CHARS + 1);
        assert!(text.ends_with('…'));
    }
}
