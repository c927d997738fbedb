//! The domain vocabulary every layer speaks: a verdict's status and reason,
//! why and by what an address is suppressed, and the class and origin of a
//! bounce. Plain enums, serialised in snake_case; this module depends on
//! nothing else of mailvet's.

/// Returned when a stored or submitted name is not one of an enum's variants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct UnknownVariant {
    pub kind: &'static str,
    pub value: String,
}

/// Declares a fieldless enum serialised in snake_case, with `as_str`,
/// `Display`, `FromStr` and the list of all variants.
macro_rules! snake_case_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::vocab::UnknownVariant;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err($crate::vocab::UnknownVariant { kind: $kind, value: other.to_owned() }),
                }
            }
        }
    };
}
pub(crate) use snake_case_enum;

snake_case_enum! {
    /// How an address fared.
    Status, "status" {
        Deliverable => "deliverable",
        Undeliverable => "undeliverable",
        Risky => "risky",
        Unknown => "unknown",
    }
}

snake_case_enum! {
    /// Why an address got its status. Each reason belongs to one status.
    Reason, "reason" {
        Accepted => "accepted",
        InvalidSyntax => "invalid_syntax",
        NoSuchDomain => "no_such_domain",
        NoMailServer => "no_mail_server",
        MailboxNotFound => "mailbox_not_found",
        MailboxDisabled => "mailbox_disabled",
        Suppressed => "suppressed",
        CatchAll => "catch_all",
        MailboxFull => "mailbox_full",
        Disposable => "disposable",
        Greylisted => "greylisted",
        Blocked => "blocked",
        RateLimited => "rate_limited",
        Timeout => "timeout",
        ConnectionFailed => "connection_failed",
        DnsError => "dns_error",
        SmtpError => "smtp_error",
    }
}

impl Reason {
    /// The status this reason implies (`docs/ARCHITECTURE.md`, Verdicts).
    pub fn status(self) -> Status {
        use Reason::*;
        match self {
            Accepted => Status::Deliverable,
            InvalidSyntax | NoSuchDomain | NoMailServer | MailboxNotFound | MailboxDisabled
            | Suppressed => Status::Undeliverable,
            CatchAll | MailboxFull | Disposable => Status::Risky,
            Greylisted | Blocked | RateLimited | Timeout | ConnectionFailed | DnsError
            | SmtpError => Status::Unknown,
        }
    }

    /// Whether this reason is a permanent failure of the recipient itself,
    /// the only kind of evidence that may put an address on the suppression
    /// list.
    pub fn is_permanent_recipient_failure(self) -> bool {
        matches!(
            self,
            Reason::MailboxNotFound
                | Reason::MailboxDisabled
                | Reason::NoMailServer
                | Reason::NoSuchDomain
        )
    }
}

snake_case_enum! {
    /// Why an address is on the suppression list.
    SuppressionReason, "suppression reason" {
        /// The mailbox does not exist (SMTP 5.1.1 and kin).
        MailboxNotFound => "mailbox_not_found",
        /// The mailbox exists but is disabled or deactivated.
        MailboxDisabled => "mailbox_disabled",
        /// The domain publishes a null MX or has no address to deliver to.
        NoMailServer => "no_mail_server",
        /// The domain does not exist (NXDOMAIN).
        NoSuchDomain => "no_such_domain",
        /// A permanent bounce whose report says no more than that.
        HardBounce => "hard_bounce",
        /// Repeated temporary bounces within the configured window.
        SoftBounceLimit => "soft_bounce_limit",
        /// The recipient reported a message as spam (ARF or an ESP event).
        Complaint => "complaint",
        /// Added by an operator or a client through the API.
        Manual => "manual",
    }
}

impl SuppressionReason {
    /// The suppression reason for a verification verdict, if the verdict is
    /// a permanent failure of the recipient. Every other verdict — above all
    /// rejections of the sender and temporary failures — gives `None`.
    pub fn from_verdict(reason: Reason) -> Option<Self> {
        match reason {
            Reason::MailboxNotFound => Some(Self::MailboxNotFound),
            Reason::MailboxDisabled => Some(Self::MailboxDisabled),
            Reason::NoMailServer => Some(Self::NoMailServer),
            Reason::NoSuchDomain => Some(Self::NoSuchDomain),
            _ => None,
        }
    }
}

snake_case_enum! {
    /// What put an address on the suppression list.
    SuppressionSource, "suppression source" {
        Verify => "verify",
        Bounce => "bounce",
        Api => "api",
    }
}

snake_case_enum! {
    /// The class of a bounce report for one recipient.
    BounceKind, "bounce kind" {
        /// A permanent failure of the recipient: suppress at once.
        Hard => "hard",
        /// A temporary failure: counted, suppressed only when repeated.
        Soft => "soft",
        /// A spam complaint (ARF feedback report or an ESP complaint event).
        Complaint => "complaint",
        /// A failure that says nothing about the recipient (the sender was
        /// blocked, a policy rejection) or that could not be classified.
        Undetermined => "undetermined",
    }
}

snake_case_enum! {
    /// Where a bounce report came from.
    BounceOrigin, "bounce origin" {
        /// A JSON report posted to `POST /bounces`.
        Json => "json",
        /// A raw bounce message (RFC 3464 DSN or a plain-text bounce).
        Message => "message",
        Ses => "ses",
        Sendgrid => "sendgrid",
        Postmark => "postmark",
        Mailgun => "mailgun",
    }
}

/// The reply of a mail server that decided a verdict, as `POST /verify`
/// shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SmtpEvidence {
    pub host: String,
    pub code: u16,
    pub enhanced_code: Option<String>,
    pub message: String,
}

impl SmtpEvidence {
    pub fn new(host: &str, reply: &crate::smtp::SmtpReply) -> Self {
        SmtpEvidence {
            host: host.to_owned(),
            code: reply.code(),
            enhanced_code: reply.enhanced().map(|code| code.to_string()),
            message: bounded_text(&reply.message()),
        }
    }
}

/// The most bytes of a server's text kept with one verdict, bounce or
/// suppression entry. A hostile server may send 64 lines of 4 KiB; what it
/// said that matters fits in far less.
pub const MAX_EVIDENCE_BYTES: usize = 1024;

/// Text from someone else's server, made fit to keep and show: control
/// characters (but the newlines between reply lines), bidirectional
/// overrides and the replacement characters left by invalid UTF-8 are
/// dropped, tabs become spaces, and it is cut at [`MAX_EVIDENCE_BYTES`],
/// on a character boundary, with `…` to say so.
pub fn bounded_text(text: &str) -> String {
    const ELLIPSIS: char = '…';
    let mut out = String::with_capacity(text.len().min(MAX_EVIDENCE_BYTES));
    for c in text.chars() {
        let c = match c {
            '\t' => ' ',
            '\n' => '\n',
            '\u{FFFD}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => continue,
            c if c.is_control() => continue,
            c => c,
        };
        if out.len() + c.len_utf8() > MAX_EVIDENCE_BYTES - ELLIPSIS.len_utf8() {
            out.push(ELLIPSIS);
            return out;
        }
        out.push(c);
    }
    out
}

/// What is known of why an address failed, kept with its suppression entry
/// or bounce event: as much of a server's reply as the report gave (a bounce
/// may give only an enhanced code, a hand-made entry only a note).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Diagnosis {
    pub smtp_code: Option<u16>,
    pub enhanced_code: Option<String>,
    pub diagnostic: Option<String>,
    pub mx_host: Option<String>,
}

impl Diagnosis {
    /// The reply this diagnosis holds, when it holds a reply code.
    pub fn reply(&self) -> Option<SmtpEvidence> {
        self.smtp_code.map(|code| SmtpEvidence {
            host: self.mx_host.clone().unwrap_or_default(),
            code,
            enhanced_code: self.enhanced_code.clone(),
            message: bounded_text(self.diagnostic.as_deref().unwrap_or_default()),
        })
    }
}

impl From<&SmtpEvidence> for Diagnosis {
    fn from(reply: &SmtpEvidence) -> Self {
        Diagnosis {
            smtp_code: Some(reply.code),
            enhanced_code: reply.enhanced_code.clone(),
            diagnostic: Some(reply.message.clone()),
            mx_host: Some(reply.host.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_text_is_cleaned_and_cut() {
        assert_eq!(
            bounded_text("550 5.1.1 no\tsuch\r user"),
            "550 5.1.1 no such user"
        );
        assert_eq!(bounded_text("line one\nline two"), "line one\nline two");
        assert_eq!(
            bounded_text("\u{1b}[31mred\u{7}\u{0} \u{FFFD}x\u{202E}gnp.exe"),
            "[31mred xgnp.exe"
        );
        let long = "é".repeat(4000);
        let cut = bounded_text(&long);
        assert!(cut.len() <= MAX_EVIDENCE_BYTES, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert!(cut.len() > MAX_EVIDENCE_BYTES - 8);
        assert_eq!(bounded_text(&"a".repeat(1021)), "a".repeat(1021));
        assert_eq!(bounded_text(&"a".repeat(1022)).chars().count(), 1022);
    }

    #[test]
    fn names_round_trip_through_text_and_json() {
        for reason in Reason::ALL {
            assert_eq!(reason.as_str().parse::<Reason>(), Ok(*reason));
            let json = serde_json::to_string(reason).expect("serialise");
            assert_eq!(json, format!("\"{}\"", reason.as_str()));
        }
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>(), Ok(*status));
        }
        assert!("Deliverable".parse::<Status>().is_err());
    }

    #[test]
    fn sender_side_rejections_are_never_undeliverable() {
        for reason in [Reason::Blocked, Reason::RateLimited, Reason::Greylisted] {
            assert_eq!(reason.status(), Status::Unknown);
            assert!(!reason.is_permanent_recipient_failure());
        }
    }

    #[test]
    fn only_recipient_failures_are_permanent() {
        let permanent: Vec<_> = Reason::ALL
            .iter()
            .filter(|r| r.is_permanent_recipient_failure())
            .collect();
        assert_eq!(permanent.len(), 4);
        assert!(
            permanent
                .iter()
                .all(|r| r.status() == Status::Undeliverable)
        );
    }

    #[test]
    fn only_permanent_recipient_verdicts_map_to_a_suppression_reason() {
        for reason in Reason::ALL {
            assert_eq!(
                SuppressionReason::from_verdict(*reason).is_some(),
                reason.is_permanent_recipient_failure(),
                "{reason}"
            );
        }
    }
}
