//! The verdict taxonomy: a status and the reason behind it.

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
            type Err = $crate::verify::UnknownVariant;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err($crate::verify::UnknownVariant { kind: $kind, value: other.to_owned() }),
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
    /// The status this reason implies (DESIGN §2).
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
