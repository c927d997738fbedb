//! The suppression list: addresses that must not be mailed again.

mod cursor;

pub use cursor::Cursor;

use crate::verify::Reason;

crate::verify::snake_case_enum! {
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

crate::verify::snake_case_enum! {
    /// What put an address on the suppression list.
    SuppressionSource, "suppression source" {
        Verify => "verify",
        Bounce => "bounce",
        Api => "api",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
